using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Dapo.Testing;
using Xunit.Abstractions;

namespace Dapo.EndToEnd.Tests;

/// <summary>
/// `--http-port`: the silo's /healthz and /metrics (Prometheus text format) during a run, the metrics checked against
/// the step ledgers the grains hold; the port serves nothing else and asks no token, while the dashboard beside it does.
/// </summary>
public sealed class MetricsEndpointTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("dapo-metrics-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>The value of a sample of <paramref name="name"/> for run "run" in a Prometheus text page; null when absent.</summary>
    private static double? Sample(string page, string name)
    {
        var match = Regex.Match(page, $@"^{Regex.Escape(name)}\{{[^}}]*run=""run""[^}}]*\}} (\S+)", RegexOptions.Multiline);
        return match.Success ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : null;
    }

    [Fact]
    public async Task Health_and_metrics_of_a_running_train_agree_with_the_step_ledgers_and_the_port_serves_nothing_else()
    {
        var (metricsPort, dashboardPort) = (FreePort.Next(), FreePort.Next());
        var run = Path.Combine(_root, "run");
        await using var train = SiloProcess.Start(SiloProcess.SiloDll,
            ["train", "--run-dir", run, "--override", TestRecipes.Tiny(400, evaluateEvery: 0), "--http-port", $"{metricsPort}", "--dashboard", $"{dashboardPort}"],
            new Dictionary<string, string> { ["DAPO_Dashboard__Token"] = "a-token-of-sixteen-or-more" });
        await train.WaitForLineAsync("step   3/400", TimeSpan.FromMinutes(3));

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{metricsPort}/") };
        var health = await http.GetAsync("healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("ok\n", await health.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("")).StatusCode);          // no dashboard page on this port
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("api/watch")).StatusCode);
        using var dashboard = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{dashboardPort}/") };
        Assert.Equal(HttpStatusCode.Unauthorized, (await dashboard.GetAsync("")).StatusCode);  // the dashboard still asks its token

        // The steps finished before and after the scrape bound the steps it counts; each finished step's ledger is fixed.
        // The client waits longer than its 10 s default to connect: on two cores shared with the rest of the suite, the
        // training silo once took longer than that to answer.
        var patient = new Dictionary<string, string> { ["DAPO_Client__ConnectTimeout"] = "00:00:45" };
        async Task<int> CompletedAsync() => (int)(await ClientProcess.RunAsync(["status", "--run-dir", run, "--json"], patient)).Json["runs"]![0]!["completedSteps"]!;
        var before = await CompletedAsync();
        var page = await http.GetStringAsync("metrics");
        var after = await CompletedAsync();
        output.WriteLine(string.Join("\n", page.Split('\n').Where(l => l.StartsWith("dapo_", StringComparison.Ordinal))));

        var steps = (int)Sample(page, "dapo_step_duration_seconds_count")!.Value;
        Assert.InRange(steps, Math.Max(before, 1), after);
        var ledgers = (await ClientProcess.RunAsync(["steps", "--run-dir", run, "--last", "100000", "--json"], patient)).Json["steps"]!.AsArray()
            .Where(s => (int)s!["step"]! <= steps).ToList();
        Assert.Equal(steps, ledgers.Count);
        Assert.Equal(ledgers.Sum(s => (int)s!["accepted"]!), Sample(page, "dapo_groups_accepted_total"));
        Assert.Equal(ledgers.Sum(s => (int)s!["filtered"]!), Sample(page, "dapo_groups_filtered_total"));
        Assert.True(Sample(page, "dapo_tokens_sampled_total") > 0, "no sampled tokens");
        Assert.True(Sample(page, "dapo_tokens_trained_total") > 0, "no trained tokens");
        var (waiting, inFlight) = (Sample(page, "dapo_step_groups_waiting"), Sample(page, "dapo_step_groups_in_flight"));
        Assert.NotNull(waiting);
        Assert.InRange(waiting!.Value, 0, inFlight!.Value);
        Assert.InRange(Sample(page, "dapo_rollout_policy_lag")!.Value, 0, 1);  // the grain samples the step's version
    }
}
