using System.Text.Json.Nodes;
using System.Xml.Linq;
using Dapo.Testing;

namespace Dapo.EndToEnd.Tests;

/// <summary>A reduced `experiments` (tiny model, one seed, three steps): the files, plots and table it must produce.</summary>
public sealed class ExperimentsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("dapo-exp-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static readonly string Overrides = TestRecipes.Tiny(steps: 3, evaluateEvery: 1);

    [Fact]
    public async Task A_reduced_suite_writes_well_formed_plots_with_a_point_per_step_and_the_ablation_table()
    {
        await using (var run = SiloProcess.Start(SiloProcess.SiloDll, ["experiments", "--out", _root, "--seeds", "7", "--override", Overrides]))
        {
            Assert.Equal(0, await run.WaitForExitAsync(TimeSpan.FromMinutes(4)));
            Assert.Contains(run.Lines, l => l.StartsWith("| + Dynamic Sampling (DAPO) | 50 |", StringComparison.Ordinal));
        }
        var report = Path.Combine(_root, "report");
        XNamespace svg = "http://www.w3.org/2000/svg";
        IReadOnlyList<XElement> Lines(string file) => XDocument.Load(Path.Combine(report, file)).Descendants(svg + "polyline").ToList();
        int Points(XElement line) => ((string)line.Attribute("points")!).Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;

        // Held-out accuracy: six rungs, each evaluated at the start and after each of the 3 steps.
        var accuracy = Lines("accuracy.svg");
        Assert.Equal(6, accuracy.Count);
        Assert.All(accuracy, l => Assert.Equal(4, Points(l)));
        foreach (var (file, series) in new[] { ("entropy.svg", 3), ("response_length.svg", 2), ("generation_rounds.svg", 1), ("filtered_share.svg", 1) })
        {
            var lines = Lines(file);
            Assert.Equal(series, lines.Count);
            Assert.All(lines, l => Assert.Equal(3, Points(l)));
        }
        Assert.All(Lines("accuracy_vs_time.svg"), l => Assert.Equal(4, Points(l)));

        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(report, "summary.json")))!;
        Assert.Equal(6, summary["Rungs"]!.AsArray().Count);
        Assert.Contains("| Naive GRPO | 30 |", File.ReadAllText(Path.Combine(report, "table.md")));
        foreach (var dir in Directory.GetDirectories(Path.Combine(_root, "runs")))
            Assert.Equal(3, File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Length);

        // Re-running keeps the warm-start and the finished runs.
        await using var again = SiloProcess.Start(SiloProcess.SiloDll, ["experiments", "--out", _root, "--seeds", "7", "--override", Overrides]);
        Assert.Equal(0, await again.WaitForExitAsync(TimeSpan.FromMinutes(2)));
        Assert.Contains(again.Lines, l => l.StartsWith("warm-start: reusing", StringComparison.Ordinal));
        Assert.Equal(6, again.Lines.Count(l => l.Contains("is already completed", StringComparison.Ordinal)));
    }
}
