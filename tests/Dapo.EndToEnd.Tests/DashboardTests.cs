using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using Dapo.Testing;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace Dapo.EndToEnd.Tests;

/// <summary>
/// `train --dashboard`: the Dapo page of a running run in a real browser (Playwright driving Debian's chromium,
/// headless), its plots, the Orleans Dashboard beside it, and who may open them. Screenshots go to
/// tests/Dapo.EndToEnd.Tests/bin/.../artifacts/.
/// </summary>
public sealed class DashboardTests(ITestOutputHelper output) : IDisposable
{
    private const string Chromium = "/usr/bin/chromium";
    private readonly string _root = Directory.CreateTempSubdirectory("dapo-dashboard-").FullName;
    private static string Artifacts => Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "artifacts")).FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private SiloProcess Train(int port, int steps, string? address = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        string[] arguments = ["train", "--run-dir", Path.Combine(_root, "run"), "--override", TestRecipes.Tiny(steps, evaluateEvery: 2),
            "--dashboard", $"{port}"];
        if (address is not null) arguments = [.. arguments, "--dashboard-address", address];
        return SiloProcess.Start(SiloProcess.SiloDll, arguments, environment);
    }

    [Fact]
    public async Task The_Dapo_page_of_a_running_train_shows_the_step_and_a_plot_point_per_finished_step_and_updates_as_steps_end()
    {
        var port = FreePort.Next();
        await using var train = Train(port, steps: 400);  // more than the test needs: the run must outlast it
        var page = $"http://127.0.0.1:{port}/";
        await train.WaitForLineAsync("step   1/400", TimeSpan.FromMinutes(3));

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium, Headless = true, Args = ["--no-sandbox"],
        });
        var tab = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 1100 } });
        await tab.GotoAsync(page);

        // The run and its current step, read from the grains.
        var run = tab.Locator("#run");
        await Assertions.Expect(run).ToHaveTextAsync(new Regex(@"^Run run: running, step \d+ of 400 \(\d+ done\)$"), new() { Timeout = 30_000 });
        await Assertions.Expect(tab.Locator("#ledger")).ToContainTextAsync("accepted");
        var done = int.Parse((await run.GetAttributeAsync("data-completed-steps"))!);

        // The page updates by itself as a step ends: the step count and the plots follow.
        await Assertions.Expect(run).Not.ToHaveAttributeAsync("data-completed-steps", $"{done}", new() { Timeout = 60_000 });
        var later = int.Parse((await run.GetAttributeAsync("data-completed-steps"))!);
        Assert.True(later > done, $"{later} after {done}");
        var plot = tab.Locator("img[data-plot=accuracy]");
        await Assertions.Expect(plot).ToHaveAttributeAsync("src", new Regex($@"steps={later}$"));
        await tab.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Artifacts, "dapo-page.png"), FullPage = true });

        // One point per finished step: the steps finished before and after the plot was drawn bound its points.
        using var http = new HttpClient { BaseAddress = new Uri(page) };
        var before = await CompletedStepsAsync(http);
        var svg = await http.GetStringAsync("api/plots/accuracy.svg");
        var after = await CompletedStepsAsync(http);
        var points = Regex.Match(svg, "<polyline class=\"series\"[^>]* points=\"([^\"]*)\"").Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        Assert.InRange(points, before, after);
        output.WriteLine($"plot points {points}, finished steps {before}..{after}");

        // The Orleans Dashboard beside it lists the grain types.
        await tab.GotoAsync($"{page}orleans/#/grains");
        await Assertions.Expect(tab.GetByText("LearnerGrain").First).ToBeVisibleAsync(new() { Timeout = 30_000 });
        await tab.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Artifacts, "orleans-dashboard.png") });
    }

    [Fact]
    public async Task The_dashboard_listens_on_127_0_0_1_and_elsewhere_only_with_a_token_from_configuration()
    {
        // Another address without a token: refused before anything starts.
        var port = FreePort.Next();
        await using (var refused = Train(port, steps: 2, address: "127.0.0.2"))
        {
            Assert.NotEqual(0, await refused.WaitForExitAsync(TimeSpan.FromMinutes(1)));
            Assert.Contains("Dashboard:Address is 127.0.0.2: give a token in Dashboard:Token", refused.Output);
        }
        Assert.False(Directory.Exists(Path.Combine(_root, "run")), "a refused run left its directory");

        // With a token (127.0.0.2 is a loopback address too: tests stay on loopback): every request must carry it.
        const string token = "test-token-0123456789";
        await using var train = Train(port, steps: 400, "127.0.0.2", new Dictionary<string, string> { ["DAPO_Dashboard__Token"] = token });
        await train.WaitForLineAsync("step   1/400", TimeSpan.FromMinutes(3));
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.2:{port}/") };
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("api/watch")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("orleans/GrainTypes")).StatusCode);
        using var wrong = new HttpRequestMessage(HttpMethod.Get, "api/watch") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", token + "x") } };
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(wrong)).StatusCode);
        using var right = new HttpRequestMessage(HttpMethod.Get, "api/watch") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", token) } };
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(right)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"?token={token}")).StatusCode);  // the browser's way in; a cookie follows
        // And nothing listens on 127.0.0.1 at that port.
        await Assert.ThrowsAsync<HttpRequestException>(() => new HttpClient().GetAsync($"http://127.0.0.1:{port}/"));
    }

    private static async Task<int> CompletedStepsAsync(HttpClient http)
    {
        using var watch = JsonDocument.Parse(await http.GetStringAsync("api/watch"));
        return watch.RootElement.GetProperty("run").GetProperty("completedSteps").GetInt32();
    }
}
