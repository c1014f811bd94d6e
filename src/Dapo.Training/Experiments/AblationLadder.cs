using Dapo.Training;
using Dapo.Core.Loss;
using Dapo.Core.Options;

namespace Dapo.Training.Experiments;

/// <summary>One rung of the ablation: a name, the paper's AIME 2024 avg@32 for it (Table 1), and its recipe.</summary>
/// <param name="Key">Short name, used for folders and plot legends.</param>
/// <param name="Label">The paper's row label.</param>
/// <param name="PaperAime">The paper's AIME 2024 avg@32 (Qwen2.5-32B), or null where the paper has no row.</param>
public sealed record AblationRecipe(string Key, string Label, double? PaperAime, DemoRecipe Recipe);

/// <summary>
/// The paper's ablation (<see href="https://arxiv.org/abs/2503.14476"/>, Table 1): naive GRPO, then each DAPO
/// component added in the paper's order, ending at full DAPO. Every rung differs from the one before by exactly
/// the component it names; everything else (model, data, steps, evaluation, seeds) is the base recipe's.
/// "DAPO without dynamic sampling" is the token-level rung (the paper's 42).
/// <see cref="LeaveOneOut"/> adds the other reading of a component's effect: full DAPO with that one component
/// removed. Its rungs all keep dynamic sampling, so their runs are as steady as DAPO's and a small effect can show
/// beyond the seed spread where the ladder's early rungs (no dynamic sampling) swing by tens of points.
/// </summary>
public static class AblationLadder
{
    public static IReadOnlyList<AblationRecipe> Build(DemoRecipe baseRecipe)
    {
        var dapo = baseRecipe.Dapo;
        // Naive GRPO: symmetric clip 0.2, sample-level loss, no dynamic sampling, no overlong shaping or filtering.
        var grpo = baseRecipe.AsNaiveGrpo().Dapo;
        var filtering = grpo with { OverlongFiltering = true };
        var clipHigher = filtering with { ClipRatioHigh = dapo.ClipRatioHigh };
        var punishment = clipHigher with { OverlongPunishment = true };
        var tokenLevel = punishment with { LossAggregation = LossAggregations.TokenMean };
        var full = tokenLevel with { DynamicSampling = true };
        AblationRecipe Rung(string key, string label, double? paper, DapoOptions options) =>
            new(key, label, paper, baseRecipe with { Name = key, Dapo = options });
        return
        [
            Rung("grpo", "Naive GRPO", 30, grpo),
            Rung("overlong-filtering", "+ Overlong Filtering", 36, filtering),
            Rung("clip-higher", "+ Clip-Higher", 38, clipHigher),
            Rung("soft-overlong", "+ Soft Overlong Punishment", 41, punishment),
            Rung("token-level", "+ Token-level Loss (DAPO w/o dynamic sampling)", 42, tokenLevel),
            Rung("dapo", "+ Dynamic Sampling (DAPO)", 50, full),
        ];
    }

    /// <summary>Full DAPO (the last rung of <see cref="Build"/>) with one component taken out, each rung differing from
    /// it in that component alone (both overlong switches for "dapo-no-overlong"). The paper has no rows for these.</summary>
    public static IReadOnlyList<AblationRecipe> LeaveOneOut(DemoRecipe baseRecipe)
    {
        var full = Build(baseRecipe)[^1].Recipe;
        var naive = baseRecipe.AsNaiveGrpo().Dapo;
        AblationRecipe Without(string key, string label, DapoOptions options) =>
            new(key, label, null, full with { Name = key, Dapo = options });
        return
        [
            Without("dapo-no-clip-higher", "DAPO − Clip-Higher", full.Dapo with { ClipRatioHigh = naive.ClipRatioHigh }),
            Without("dapo-no-filtering", "DAPO − Overlong Filtering", full.Dapo with { OverlongFiltering = false }),
            Without("dapo-no-soft-overlong", "DAPO − Soft Overlong Punishment", full.Dapo with { OverlongPunishment = false }),
            Without("dapo-no-overlong", "DAPO − both overlong components", full.Dapo with { OverlongFiltering = false, OverlongPunishment = false }),
            Without("dapo-no-token-level", "DAPO − Token-level Loss", full.Dapo with { LossAggregation = naive.LossAggregation }),
        ];
    }
}
