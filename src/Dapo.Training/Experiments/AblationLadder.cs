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
}
