using System.Text.Json.Nodes;
using Dapo.Training.Experiments;

namespace Dapo.Training.Tests.Experiments;

public sealed class ExperimentReportTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("dapo-report-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>A run of two steps, each evaluated, with the given held-out accuracies and entropies (and held-out
    /// truncated share, the same at both steps); level 3 always solved, level 10 at half the accuracy; every other
    /// metric the same.</summary>
    private static ExperimentRun Run(AblationRecipe rung, ulong seed, double[] accuracy, double[] entropy, double heldOutTruncated = 0.2) =>
        new(rung, seed, [.. accuracy.Select((a, i) => new JsonObject
        {
            ["step"] = i + 1, ["eval/avg@8"] = a, ["eval/avg@8/L10"] = a / 2, ["eval/avg@8/L3"] = 1.0, ["eval/pass@8"] = a, [ExperimentReport.EntropyKey] = entropy[i],
            [ExperimentReport.LengthKey] = 10.0, [ExperimentReport.TruncatedKey] = 0.1, [ExperimentReport.StepSecondsKey] = 1.0, [ExperimentReport.HeldOutTruncatedKey] = heldOutTruncated,
            [ExperimentReport.ClipUpperKey] = 0.001, [ExperimentReport.ClipLowerKey] = 0.001, ["train/num_gen_batches"] = 1.0, ["train/filtered_fraction"] = 0.0,
            [ExperimentReport.DistinctCorrectKey] = entropy[i] * 4, [ExperimentReport.SameCorrectPairsKey] = 1 - entropy[i] * 4,
        })]);

    [Fact]
    public void Rungs_carry_the_run_mean_accuracy_and_each_components_effect_says_whether_it_is_beyond_the_seed_spread()
    {
        var ladder = AblationLadder.Build(DemoRecipe.Default);
        AblationRecipe Rung(string key) => ladder.Single(r => r.Key == key);
        ExperimentRun[] runs =
        [
            // Without clip-higher: entropies 0.10-0.12 over the run; with it: 0.20-0.21 for every seed (beyond the spread).
            Run(Rung("overlong-filtering"), 1, [0.4, 0.6], [0.10, 0.10]),
            Run(Rung("overlong-filtering"), 2, [0.5, 0.5], [0.12, 0.12]),
            Run(Rung("clip-higher"), 1, [0.3, 0.7], [0.20, 0.20]),
            Run(Rung("clip-higher"), 2, [0.6, 0.4], [0.21, 0.21]),
        ];

        var summary = ExperimentReport.Write(_directory, runs, warmStartAccuracy: 0.3, k: 8);

        var clipHigher = summary.Rungs.Single(r => r.Key == "clip-higher");
        Assert.Equal([0.7, 0.4], clipHigher.Accuracy.PerSeed);
        Assert.Equal(0.5, clipHigher.MeanAccuracy.PerSeed[0], 12);
        Assert.Equal(0.5, clipHigher.MeanAccuracy.PerSeed[1], 12);
        // Only the clip-higher pair is present; its entropy rose beyond the spread, its accuracy did not.
        var effects = summary.Effects;
        Assert.All(effects, e => Assert.Equal("Clip-Higher", e.Component));
        var entropy = effects.Single(e => e.Metric == "entropy");
        Assert.Equal(0.095, entropy.Difference, 12);
        Assert.True(entropy.BeyondSpread);
        var final = effects.Single(e => e.Metric == "final avg@k %");
        Assert.Equal(0.0, final.Difference, 9);
        Assert.False(final.BeyondSpread);

        var table = File.ReadAllText(Path.Combine(_directory, "table.md"));
        Assert.Contains("| + Clip-Higher | 38 | 55.0 (30.0) | 50.0 (0.0) |", table);
        // Distinct right answers (four times the entropy here): 40-48 % without, 80-84 % with; same pairs the rest.
        // Seed by seed: the final avg@8 is higher with clip-higher on seed 1 (0.7 against 0.6) and lower on seed 2; the
        // entropy higher on both; the rest the same.
        Assert.Contains("| Clip-Higher | +0.0 (1↑ 1↓) | +0.0 (2=) | +0.0 (1↑ 1↓) | **+0.095** (2↑) | **+0.0950** (2↑) | +0.0 (2=) | +0.0 (2=) | +0.0 (2=) | +0.00 (2=) | **+38.0** (2↑) | **-38.0** (2↓) |", table);
        Assert.Equal(new ExperimentReport.PairedSeeds(1, 1, 0), final.Seeds);
        Assert.Equal([0.80, 0.84], clipHigher.DistinctCorrect.PerSeed);
        Assert.True(File.Exists(Path.Combine(_directory, "distinct_correct.svg")));
        Assert.True(File.Exists(Path.Combine(_directory, "same_correct_pairs.svg")));
        Assert.Contains("\"BeyondSpread\": true", File.ReadAllText(Path.Combine(_directory, "summary.json")));
    }

    [Fact]
    public void One_seed_is_never_beyond_its_spread()
    {
        var ladder = AblationLadder.Build(DemoRecipe.Default);
        var summary = ExperimentReport.Write(_directory,
            [Run(ladder[0], 1, [0.1, 0.1], [0.1, 0.1]), Run(ladder[5], 1, [0.9, 0.9], [0.5, 0.5])], warmStartAccuracy: 0.3, k: 8);
        var effect = Assert.Single(summary.Effects, e => e.Component == "DAPO vs naive GRPO" && e.Metric == "final avg@k %");
        Assert.Equal(80.0, effect.Difference, 9);
        Assert.False(effect.BeyondSpread);
        Assert.Equal(new ExperimentReport.PairedSeeds(1, 0, 0), effect.Seeds);
    }

    [Fact]
    public void Seeds_are_compared_only_with_the_same_seed_of_the_other_rung()
    {
        // Without clip-higher on seeds 1, 2, 3; with it on seeds 3, 2 and 4, in that order. Seeds 2 and 3 pair up
        // whatever the order: with it, seed 3's entropy is above seed 3's without it, seed 2's below seed 2's, although
        // both are above every seed without it but seed 3. Seeds 1 and 4 have no partner.
        var ladder = AblationLadder.Build(DemoRecipe.Default);
        AblationRecipe Rung(string key) => ladder.Single(r => r.Key == key);
        var summary = ExperimentReport.Write(_directory,
        [
            Run(Rung("overlong-filtering"), 1, [0.5, 0.5], [0.10, 0.10]), Run(Rung("overlong-filtering"), 2, [0.5, 0.5], [0.30, 0.30]),
            Run(Rung("overlong-filtering"), 3, [0.5, 0.5], [0.15, 0.15]),
            Run(Rung("clip-higher"), 3, [0.5, 0.5], [0.20, 0.20]), Run(Rung("clip-higher"), 2, [0.5, 0.5], [0.25, 0.25]),
            Run(Rung("clip-higher"), 4, [0.5, 0.5], [0.01, 0.01]),
        ], warmStartAccuracy: 0.3, k: 8);
        Assert.Equal([3UL, 2UL, 4UL], summary.Rungs.Single(r => r.Key == "clip-higher").Seeds);
        Assert.Equal(new ExperimentReport.PairedSeeds(1, 1, 0), summary.Effects.Single(e => e.Metric == "entropy").Seeds);
        Assert.Equal(new ExperimentReport.PairedSeeds(0, 0, 2), summary.Effects.Single(e => e.Metric == "final avg@k %").Seeds);
        Assert.Equal("(2=)", summary.Effects.Single(e => e.Metric == "final avg@k %").Seeds.ToString());
    }

    [Fact]
    public void A_component_taken_out_of_full_dapo_is_reported_against_dapo()
    {
        var dapo = AblationLadder.Build(DemoRecipe.Chain)[^1];
        var withoutClipHigher = AblationLadder.LeaveOneOut(DemoRecipe.Chain).Single(r => r.Key == "dapo-no-clip-higher");
        var summary = ExperimentReport.Write(_directory,
        [
            Run(dapo, 1, [0.7, 0.8], [0.030, 0.020], 0.05), Run(dapo, 2, [0.7, 0.7], [0.031, 0.021], 0.10),
            Run(withoutClipHigher, 1, [0.7, 0.7], [0.020, 0.010], 0.30), Run(withoutClipHigher, 2, [0.8, 0.8], [0.022, 0.012], 0.25),
        ], warmStartAccuracy: 0.3, k: 8);

        // Only the leave-one-out pair is present: clip-higher raised entropy by 0.0095 over the run, beyond the spread.
        Assert.All(summary.Effects, e => Assert.Equal("Clip-Higher, in DAPO", e.Component));
        var entropy = summary.Effects.Single(e => e.Metric == "entropy");
        Assert.Equal(0.0095, entropy.Difference, 12);
        Assert.True(entropy.BeyondSpread);
        Assert.False(summary.Effects.Single(e => e.Metric == "final avg@k %").BeyondSpread);
        var table = File.ReadAllText(Path.Combine(_directory, "table.md"));
        Assert.Contains("| DAPO − Clip-Higher |  | 75.0 (10.0) | 75.0 (10.0) |", table);
        // Final held-out per level, level 3 before level 10 (the metrics' order is ordinal): level 10 at half of the
        // final avg@8 (0.8 and 0.7 for DAPO).
        Assert.Contains("| Model | L3 | L10 |", table);
        Assert.Contains("| + Dynamic Sampling (DAPO) | 100.0 (0.0) | 37.5 (5.0) |", table);
        Assert.Equal(["L3", "L10"], summary.Rungs[0].AccuracyBySource.Select(p => p.Key));
        // Over the last fifth of the run (here its last step) the entropies are 0.020-0.021 against 0.010-0.012.
        Assert.Equal([0.020, 0.021], summary.Rungs.Single(r => r.Key == "dapo").LateEntropy.PerSeed);
        Assert.Contains("| Clip-Higher, in DAPO | +0.0 (1↑ 1↓) | -2.5 (1↑ 1↓) | +0.0 (1↑ 1↓) | **+0.010** (2↑) | **+0.0095** (2↑) |", table);
        // The final evaluation's share of cut-off held-out samples: 5-10 % with it, 25-30 % without.
        Assert.Equal([0.05, 0.10], summary.Rungs.Single(r => r.Key == "dapo").HeldOutTruncatedShare.PerSeed);
        var heldOutTruncated = summary.Effects.Single(e => e.Metric == "held-out truncated %");
        Assert.Equal(-20.0, heldOutTruncated.Difference, 9);
        Assert.True(heldOutTruncated.BeyondSpread);
    }
}
