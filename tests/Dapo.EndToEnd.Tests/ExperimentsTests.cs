using System.Security.Cryptography;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using Dapo.Testing;
using Dapo.Training.Experiments;

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
        foreach (var (file, series) in new[]
                 {
                     ("entropy.svg", 3), ("response_length.svg", 2), ("token_level_entropy.svg", 2), ("overlong_entropy.svg", 2),
                     ("clip_fraction_upper.svg", 2), ("up_clipped_probability.svg", 3), ("clip_fraction_lower.svg", 2), ("truncated_share.svg", 6), ("soft_overlong_length.svg", 2),
                     ("generation_rounds.svg", 1), ("filtered_share.svg", 1), ("held_out_truncated_share.svg", 6),
                 })
        {
            var lines = Lines(file);
            Assert.Equal(series, lines.Count);
            Assert.All(lines, l => Assert.Equal(3, Points(l)));
        }
        Assert.All(Lines("accuracy_vs_time.svg"), l => Assert.Equal(4, Points(l)));
        foreach (var file in new[] { "clip_higher_accuracy.svg", "overlong_accuracy.svg" })
            Assert.All(Lines(file), l => Assert.Equal(4, Points(l)));

        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(report, "summary.json")))!;
        Assert.Equal(6, summary["Rungs"]!.AsArray().Count);
        Assert.Contains("| Naive GRPO | 30 |", File.ReadAllText(Path.Combine(report, "table.md")));
        foreach (var dir in Directory.GetDirectories(Path.Combine(_root, "runs")))
            Assert.Equal(3, File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Length);

        // Re-running keeps the warm-start and the finished runs, also one whose recipe says where it ran as older ones
        // did ("Device": 0): the device does not make another warm-start.
        var info = Path.Combine(_root, "warm-start.json");
        var saved = JsonNode.Parse(File.ReadAllText(info))!;
        var recipe = JsonNode.Parse((string)saved["Recipe"]!)!;
        recipe["Model"]!["Device"] = 0;
        saved["Recipe"] = recipe.ToJsonString();
        File.WriteAllText(info, saved.ToJsonString());
        await using var again = SiloProcess.Start(SiloProcess.SiloDll, ["experiments", "--out", _root, "--seeds", "7", "--override", Overrides]);
        Assert.Equal(0, await again.WaitForExitAsync(TimeSpan.FromMinutes(2)));
        Assert.Contains(again.Lines, l => l.StartsWith("warm-start: reusing", StringComparison.Ordinal));
        Assert.Equal(6, again.Lines.Count(l => l.Contains("is already completed", StringComparison.Ordinal)));

        // More steps train the finished runs on from their last checkpoints, and the report follows them.
        await using var longer = SiloProcess.Start(SiloProcess.SiloDll, ["experiments", "--out", _root, "--seeds", "7", "--override", Overrides, "--steps", "4"]);
        Assert.Equal(0, await longer.WaitForExitAsync(TimeSpan.FromMinutes(3)));
        Assert.Contains(longer.Lines, l => l.StartsWith("warm-start: reusing", StringComparison.Ordinal));
        Assert.Equal(6, longer.Lines.Count(l => l.Contains("Training further, to 4 steps", StringComparison.Ordinal)));
        Assert.Equal(6, longer.Lines.Count(l => l.Contains("resumed from the checkpoint of step 3", StringComparison.Ordinal)));
        foreach (var dir in Directory.GetDirectories(Path.Combine(_root, "runs")))
            Assert.Equal([1, 2, 3, 4], File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => (int)JsonNode.Parse(l)!["step"]!));
        Assert.All(Lines("accuracy.svg"), l => Assert.Equal(5, Points(l)));
    }

    [Fact]
    public async Task The_long_solution_ladder_truncates_responses_and_writes_every_metric_its_plots_and_table_read()
    {
        await using (var run = SiloProcess.Start(SiloProcess.SiloDll,
                         ["experiments", "--task", "chain", "--out", _root, "--seeds", "7", "--override", TestRecipes.TinyChain(steps: 3)]))
        {
            Assert.Equal(0, await run.WaitForExitAsync(TimeSpan.FromMinutes(4)));
            Assert.Contains(run.Lines, l => l.Contains("task 'chain' levels 3,8", StringComparison.Ordinal));
        }
        // Every step of every rung writes what the report reads; every rung truncates responses (the 8-digit chains'
        // worked solutions are longer than the 24-token limit), and the overlong filter masks what it truncates.
        string[] perStep =
        [
            ExperimentReport.EntropyKey, ExperimentReport.LengthKey, ExperimentReport.TruncatedKey, ExperimentReport.ClipUpperKey,
            ExperimentReport.ClipLowerKey, ExperimentReport.StepSecondsKey, ExperimentReport.DistinctCorrectKey,
            ExperimentReport.SameCorrectPairsKey,
        ];
        foreach (var dir in Directory.GetDirectories(Path.Combine(_root, "runs")))
        {
            var rows = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
            Assert.Equal(3, rows.Count);
            Assert.All(rows, r => Assert.All(perStep, key => Assert.True(r[key] is not null, $"{dir}: step {r["step"]} has no {key}")));
            Assert.All(rows, r => Assert.True(r["eval/avg@2"] is not null && r["eval/pass@2"] is not null, $"{dir}: step {r["step"]} was not evaluated"));
            // Held-out per level: 16 problems each, so the overall avg@2 is their mean. No level-8 worked solution fits
            // in 24 tokens: level 8 is cut off and graded wrong (all but a lucky guess), a quarter of all samples at least.
            Assert.All(rows, r =>
            {
                Assert.Equal((double)r["eval/avg@2"]!, ((double)r["eval/avg@2/L3"]! + (double)r["eval/avg@2/L8"]!) / 2, 9);
                Assert.InRange((double)r["eval/avg@2/L8"]!, 0, 0.25);
                Assert.InRange((double)r["eval/truncated_share"]!, 0.25, 1);
            });
            var truncated = rows.Sum(r => (double)r[ExperimentReport.TruncatedKey]!);
            Assert.True(truncated > 0, $"{Path.GetFileName(dir)}: no response reached the 24-token limit in 3 steps");
            Assert.All(rows, r => Assert.InRange((double)r[ExperimentReport.TruncatedKey]!, 0, 1));
            // What the policy generated, filtered groups included: without dynamic sampling every judged group is
            // trained on, so it is the batch's share exactly; DAPO drops all-wrong groups, the cut-off ones among them.
            if (!Path.GetFileName(dir).StartsWith("dapo-", StringComparison.Ordinal))
                Assert.All(rows, r => Assert.Equal((double)r[ExperimentReport.TruncatedKey]!, (double)r["sampled/truncated_share"]!, 9));
            else Assert.True(rows.Sum(r => (double)r["sampled/truncated_share"]!) > 0, $"{dir}: DAPO generated no truncated response");
        }
        var report = Path.Combine(_root, "report");
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(report, "summary.json")))!;
        foreach (var rung in summary["Rungs"]!.AsArray())
        {
            Assert.True((double)rung!["TruncatedShare"]!["Mean"]! > 0, rung.ToJsonString());
            Assert.InRange((double)rung["HeldOutTruncatedShare"]!["Mean"]!, 0.25, 1);
            Assert.InRange((double)rung["ResponseLength"]!["Mean"]!, 1, 24);
            Assert.True((double)rung["Entropy"]!["Mean"]! > 0, rung.ToJsonString());
        }
        var table = File.ReadAllText(Path.Combine(report, "table.md"));
        Assert.Contains("| truncated % |", table);
        Assert.Contains("| run-mean avg@2 |", table);
        Assert.Contains("| Model | L3 | L8 |", table);
        // The run-mean held-out score is the mean of the run's evaluations (one seed: that run's).
        foreach (var rung in summary["Rungs"]!.AsArray())
        {
            var evaluations = File.ReadAllLines(Path.Combine(_root, "runs", $"{rung!["Key"]}-seed7", "metrics.jsonl"))
                .Select(l => (double)JsonNode.Parse(l)!["eval/avg@2"]!).ToList();
            Assert.Equal(evaluations.Average(), (double)rung["MeanAccuracy"]!["Mean"]!, 9);
        }
        // What each component changes: one row per component of the ladder; none for the leave-one-out rungs, which
        // run only when named.
        foreach (var (component, from, _) in ExperimentReport.Components)
        {
            if (from.StartsWith("dapo-no-", StringComparison.Ordinal)) Assert.DoesNotContain($"| {component} | ", table);
            else Assert.Contains($"| {component} | ", table);
        }
        XNamespace svg = "http://www.w3.org/2000/svg";

        // The directory's warm-start belongs to these levels: other levels are refused, and the finished runs stay.
        var metrics = Directory.GetDirectories(Path.Combine(_root, "runs")).ToDictionary(d => d, d => File.ReadAllText(Path.Combine(d, "metrics.jsonl")));
        await using (var other = SiloProcess.Start(SiloProcess.SiloDll,
                         ["experiments", "--task", "chain", "--out", _root, "--seeds", "7", "--override", TestRecipes.TinyChain(steps: 3).Replace("\"Levels\":[3,8]", "\"Levels\":[3,7]")]))
        {
            Assert.Equal(2, await other.WaitForExitAsync(TimeSpan.FromMinutes(1)));
            Assert.Contains(other.Lines, l => l.Contains("was trained for another recipe (it differs in Levels, Data)", StringComparison.Ordinal));
        }
        Assert.All(metrics, m => Assert.Equal(m.Value, File.ReadAllText(Path.Combine(m.Key, "metrics.jsonl"))));
        var truncatedLines = XDocument.Load(Path.Combine(report, "truncated_share.svg")).Descendants(svg + "polyline").ToList();
        Assert.Equal(6, truncatedLines.Count);
    }

    [Fact]
    public async Task A_second_command_on_a_directory_in_use_is_refused_and_an_unreadable_warm_start_record_is_named()
    {
        // Steps enough that the first is still training when the second comes.
        string[] command = ["experiments", "--out", _root, "--recipes", "dapo", "--seeds", "7", "--override", TestRecipes.Tiny(steps: 500)];
        string[] WarmStart() => [.. new[] { "warm-start.json", "warm-start.weights" }.Select(f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(_root, f)))))];
        string[] before;
        await using (var first = SiloProcess.Start(SiloProcess.SiloDll, command))
        {
            await first.WaitForLineAsync("[1/1 dapo-seed7]", TimeSpan.FromMinutes(2));
            before = WarmStart();
            await using (var second = SiloProcess.Start(SiloProcess.SiloDll, command))
            {
                Assert.Equal(2, await second.WaitForExitAsync(TimeSpan.FromMinutes(1)));
                Assert.Contains(second.Lines, l => l == $"experiments: {_root} is in use by another experiments command; nothing was changed. " +
                                                        "Wait for it to finish, or stop it and run this again to go on where it stopped.");
            }
            Assert.False(first.HasExited);
            Assert.Equal(before, WarmStart());
            first.Kill();
        }

        // Killed, it leaves no lock behind; a warm-start record that cannot be read is named, and kept as it is.
        var info = Path.Combine(_root, "warm-start.json");
        foreach (var (record, why) in new[] { ("{\"Steps\": 12, \"Accu", ""), ("{}", "it records no warm-start steps") })
        {
            File.WriteAllText(info, record);
            await using (var again = SiloProcess.Start(SiloProcess.SiloDll, command))
            {
                Assert.Equal(2, await again.WaitForExitAsync(TimeSpan.FromMinutes(1)));
                Assert.Contains(again.Lines, l => l.StartsWith($"warm-start: {info} cannot be read ({why}", StringComparison.Ordinal) &&
                                                  l.Contains($"delete warm-start.* in {_root} to train a new one", StringComparison.Ordinal));
            }
            Assert.Equal(record, File.ReadAllText(info));
        }
    }

    [Theory]
    [InlineData("--seeds", "42,x", "--seeds: 'x' is not a seed (a non-negative integer).")]
    [InlineData("--seeds", " , ", "--seeds: no seed given; give one or more, comma-separated (e.g. 42,43,44).")]
    [InlineData("--seeds", "42,43,42", "--seeds: 42 is given twice; each seed is one run of each recipe.")]
    [InlineData("--recipes", "dapo,dapo-no-clip-highr", "--recipes: unknown 'dapo-no-clip-highr'; known: ")]
    [InlineData("--recipes", ",", "--recipes: no recipe given; known: ")]
    [InlineData("--parallel", "0", "--parallel: 0 runs at a time; give 1 or more.")]
    [InlineData("--steps", "0", "Invalid recipe: Steps must be at least 1; got 0.")]
    public async Task Bad_options_are_refused_naming_the_option_before_anything_is_written(string option, string value, string error)
    {
        var output = Path.Combine(_root, "refused");
        await using var run = SiloProcess.Start(SiloProcess.SiloDll, ["experiments", "--out", output, option, value]);
        Assert.Equal(2, await run.WaitForExitAsync(TimeSpan.FromMinutes(1)));
        Assert.Contains(run.Lines, l => l.StartsWith(error, StringComparison.Ordinal));
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public async Task A_results_directory_that_cannot_be_one_is_refused_naming_it()
    {
        var file = Path.Combine(_root, "a-file");
        File.WriteAllText(file, "kept");
        await using var run = SiloProcess.Start(SiloProcess.SiloDll, ["experiments", "--out", file, "--recipes", "dapo", "--seeds", "7"]);
        Assert.Equal(2, await run.WaitForExitAsync(TimeSpan.FromMinutes(1)));
        Assert.Contains(run.Lines, l => l.StartsWith($"Cannot use {file} as the results directory (--out): ", StringComparison.Ordinal));
        Assert.DoesNotContain(run.Lines, l => l.Contains("   at ", StringComparison.Ordinal));
        Assert.Equal("kept", File.ReadAllText(file));
    }

    [Fact]
    public async Task Problems_whose_worked_solutions_do_not_fit_the_model_are_refused_before_anything_is_written()
    {
        var output = Path.Combine(_root, "refused");
        await using var run = SiloProcess.Start(SiloProcess.SiloDll,
            ["experiments", "--task", "chain", "--out", output, "--override", """{"Levels":[8],"TrainProblemsPerLevel":[10],"HeldOutProblemsPerLevel":[4],"Model":{"MaxSeqLen":60},"Dapo":{"MaxPromptLength":24,"MaxResponseLength":24,"OverlongCacheLength":8}}"""]);
        Assert.Equal(2, await run.WaitForExitAsync(TimeSpan.FromMinutes(1)));
        Assert.Contains(run.Lines, l => l.StartsWith("Cannot use the recipe's data: Problem chain-L8-", StringComparison.Ordinal) &&
                                        l.Contains("Model.MaxSeqLen is 60", StringComparison.Ordinal));
        Assert.False(Directory.Exists(output));
    }
}
