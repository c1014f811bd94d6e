using System.Globalization;
using Dapo.Core.Loss;
using Dapo.Core.Rewards;

namespace Dapo.Core.Metrics;

/// <summary>
/// The metrics of one rollout step, as the paper plots them (<see href="https://arxiv.org/abs/2503.14476"/>, §4.3:
/// length, reward, entropy, mean probability) and verl logs them. Built by <see cref="StepMetrics.Compute"/>.
/// </summary>
public sealed record StepMetrics
{
    /// <summary>Rollout step (0-based).</summary>
    public int Step { get; init; }

    /// <summary>Mean rule-based score (eq. 7) of the trained responses (verl <c>critic/score/mean</c>).</summary>
    public double ScoreMean { get; init; }

    /// <summary>Mean shaped reward, score + overlong penalty (verl <c>critic/rewards/mean</c>).</summary>
    public double RewardMean { get; init; }

    /// <summary>Fraction of trained responses that are correct.</summary>
    public double Accuracy { get; init; }

    /// <summary>Mean response length in tokens.</summary>
    public double ResponseLengthMean { get; init; }

    /// <summary>Longest response.</summary>
    public int ResponseLengthMax { get; init; }

    /// <summary>Shortest response.</summary>
    public int ResponseLengthMin { get; init; }

    /// <summary>Fraction of responses truncated at the length limit (verl <c>response_length/clip_ratio</c>).</summary>
    public double ResponseClipRatio { get; init; }

    /// <summary>Mean per-token entropy of the sampling distribution over response tokens.</summary>
    public double EntropyMean { get; init; }

    /// <summary>Mean of exp(log π_old(o_t)) over response tokens (the paper's "mean probability").</summary>
    public double MeanTokenProbability { get; init; }

    /// <summary>
    /// How varied the right answers are: over the trained groups with at least two correct responses, the mean share
    /// of those responses that are distinct token sequences (1 when no two agree, 1/n when all n are the same). Entropy
    /// averages over every token; this counts whole solutions, so a policy settling on one way to solve each problem
    /// shows here even where most tokens have one right value anyway.
    /// </summary>
    public double DistinctCorrectShare { get; init; }

    /// <summary>
    /// Over the same groups, the mean share of pairs of correct responses that are the same token sequence: an
    /// estimate of Σ p² over the policy's right solutions to a problem (its collision probability; −ln of it is their
    /// Rényi entropy of order 2), which unlike <see cref="DistinctCorrectShare"/> does not depend on how many
    /// responses were right. 0 when no two agree, 1 when all do.
    /// </summary>
    public double SameCorrectPairShare { get; init; }

    /// <summary>Token-weighted mean advantage (verl <c>critic/advantages/mean</c>; ~0 by construction).</summary>
    public double AdvantageMean { get; init; }

    /// <summary>Largest advantage.</summary>
    public double AdvantageMax { get; init; }

    /// <summary>Smallest advantage.</summary>
    public double AdvantageMin { get; init; }

    /// <summary>Generation rounds this step used (verl <c>train/num_gen_batches</c>).</summary>
    public int GenerationRounds { get; init; }

    /// <summary>Groups accepted by dynamic sampling.</summary>
    public int GroupsAccepted { get; init; }

    /// <summary>Groups filtered by dynamic sampling.</summary>
    public int GroupsFiltered { get; init; }

    /// <summary>Filtered / (accepted + filtered).</summary>
    public double FilteredGroupFraction { get; init; }

    /// <summary>Mean policy-gradient loss over the step's mini-batch updates.</summary>
    public double PgLoss { get; init; }

    /// <summary>Token-weighted clip fraction over the updates.</summary>
    public double ClipFraction { get; init; }

    /// <summary>Token-weighted fraction clipped at 1 + ε_high.</summary>
    public double ClipFractionUpper { get; init; }

    /// <summary>Mean π_old of the tokens clipped at 1 + ε_high over the updates (0 when none was; the paper's Figure 3a).</summary>
    public double UpClippedProbability { get; init; }

    /// <summary>Token-weighted fraction clipped at 1 − ε_low.</summary>
    public double ClipFractionLower { get; init; }

    /// <summary>Token-weighted dual-clip fraction.</summary>
    public double DualClipFraction { get; init; }

    /// <summary>Token-weighted approximate KL(π_old ‖ π_new).</summary>
    public double ApproxKl { get; init; }

    /// <summary>Token-weighted mean importance ratio.</summary>
    public double MeanRatio { get; init; }

    /// <summary>Mean gradient norm (before clipping) over the updates.</summary>
    public double GradNorm { get; init; }

    /// <summary>Learning rate of the step.</summary>
    public double LearningRate { get; init; }

    /// <summary>Computes the metrics of a step from what it sampled and how it updated.</summary>
    public static StepMetrics Compute(StepMetricsInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var responses = input.Responses;
        if (input.Advantages.Count != responses.Count)
            throw new ArgumentException($"Got {input.Advantages.Count} advantages for {responses.Count} responses.", nameof(input));
        var n = responses.Count;
        double score = 0, reward = 0, correct = 0, length = 0, truncated = 0, advantageTokens = 0, advantageSum = 0;
        int maxLength = 0, minLength = n == 0 ? 0 : int.MaxValue;
        double maxAdvantage = n == 0 ? 0 : double.NegativeInfinity, minAdvantage = n == 0 ? 0 : double.PositiveInfinity;
        for (var i = 0; i < n; i++)
        {
            var r = responses[i];
            score += r.Score;
            reward += r.Reward;
            if (r.Correct) correct++;
            if (r.Truncated) truncated++;
            length += r.Length;
            maxLength = Math.Max(maxLength, r.Length);
            minLength = Math.Min(minLength, r.Length);
            var a = input.Advantages[i];
            advantageSum += a * r.Length;
            advantageTokens += r.Length;
            maxAdvantage = Math.Max(maxAdvantage, a);
            minAdvantage = Math.Min(minAdvantage, a);
        }

        var entropies = input.Entropies.Span;
        var entropy = 0.0;
        foreach (var e in entropies) entropy += e;
        var logProbs = input.LogProbs.Span;
        var probability = 0.0;
        foreach (var lp in logProbs) probability += Math.Exp(lp);

        var diagnostics = PolicyLossDiagnostics.Merge(input.Updates.Select(u => u.Diagnostics));
        var groups = input.GroupsAccepted + input.GroupsFiltered;
        var (distinctShare, samePairShare) = CorrectAnswerVariety(input.CorrectResponsesByGroup);
        return new StepMetrics
        {
            Step = input.Step,
            ScoreMean = Mean(score, n),
            RewardMean = Mean(reward, n),
            Accuracy = Mean(correct, n),
            ResponseLengthMean = Mean(length, n),
            ResponseLengthMax = maxLength,
            ResponseLengthMin = minLength,
            ResponseClipRatio = Mean(truncated, n),
            EntropyMean = Mean(entropy, entropies.Length),
            MeanTokenProbability = Mean(probability, logProbs.Length),
            DistinctCorrectShare = distinctShare,
            SameCorrectPairShare = samePairShare,
            AdvantageMean = Mean(advantageSum, advantageTokens),
            AdvantageMax = maxAdvantage,
            AdvantageMin = minAdvantage,
            GenerationRounds = input.GenerationRounds,
            GroupsAccepted = input.GroupsAccepted,
            GroupsFiltered = input.GroupsFiltered,
            FilteredGroupFraction = Mean(input.GroupsFiltered, groups),
            PgLoss = Mean(input.Updates.Sum(u => u.PolicyGradientLoss), input.Updates.Count),
            ClipFraction = diagnostics.ClipFraction,
            ClipFractionUpper = diagnostics.ClipFractionUpper,
            UpClippedProbability = diagnostics.UpClippedProbability,
            ClipFractionLower = diagnostics.ClipFractionLower,
            DualClipFraction = diagnostics.DualClipFraction,
            ApproxKl = diagnostics.ApproxKl,
            MeanRatio = diagnostics.MeanRatio,
            GradNorm = Mean(input.Updates.Sum(u => u.GradNorm), input.Updates.Count),
            LearningRate = input.LearningRate,
        };
    }

    /// <summary>The metrics under stable, verl-like names (for logs and the metrics table).</summary>
    public IReadOnlyDictionary<string, double> ToDictionary() => new Dictionary<string, double>
    {
        ["step"] = Step,
        ["critic/score/mean"] = ScoreMean,
        ["critic/rewards/mean"] = RewardMean,
        ["critic/accuracy"] = Accuracy,
        ["critic/advantages/mean"] = AdvantageMean,
        ["critic/advantages/max"] = AdvantageMax,
        ["critic/advantages/min"] = AdvantageMin,
        ["response_length/mean"] = ResponseLengthMean,
        ["response_length/max"] = ResponseLengthMax,
        ["response_length/min"] = ResponseLengthMin,
        ["response_length/clip_ratio"] = ResponseClipRatio,
        ["actor/entropy"] = EntropyMean,
        ["actor/mean_token_prob"] = MeanTokenProbability,
        ["response/distinct_correct_share"] = DistinctCorrectShare,
        ["response/same_correct_pair_share"] = SameCorrectPairShare,
        ["train/num_gen_batches"] = GenerationRounds,
        ["train/groups_accepted"] = GroupsAccepted,
        ["train/groups_filtered"] = GroupsFiltered,
        ["train/filtered_fraction"] = FilteredGroupFraction,
        ["actor/pg_loss"] = PgLoss,
        ["actor/pg_clipfrac"] = ClipFraction,
        ["actor/pg_clipfrac_upper"] = ClipFractionUpper,
        ["actor/pg_clipped_upper_prob"] = UpClippedProbability,
        ["actor/pg_clipfrac_lower_bound"] = ClipFractionLower,
        ["actor/pg_clipfrac_dual"] = DualClipFraction,
        ["actor/ppo_kl"] = ApproxKl,
        ["actor/ratio_mean"] = MeanRatio,
        ["actor/grad_norm"] = GradNorm,
        ["actor/lr"] = LearningRate,
    };

    /// <summary>One line for a console: step, accuracy, reward, length, entropy, loss, clip fraction.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"step {Step}: acc {Accuracy:F3} reward {RewardMean:F3} len {ResponseLengthMean:F1} (max {ResponseLengthMax}, clip {ResponseClipRatio:F3}) " +
        $"entropy {EntropyMean:F3} pg_loss {PgLoss:F4} clipfrac {ClipFraction:F4} kl {ApproxKl:F5} rounds {GenerationRounds} lr {LearningRate:G3}");

    private static double Mean(double sum, double count) => count == 0 ? 0.0 : sum / count;

    // Over the groups with two or more right answers: the mean share of them that are distinct, and the mean share of
    // their pairs that are the same (a solution given m times makes m(m − 1)/2 such pairs).
    private static (double Distinct, double SamePairs) CorrectAnswerVariety(IReadOnlyList<IReadOnlyList<int[]>> groups)
    {
        double distinct = 0, samePairs = 0;
        var counted = 0;
        foreach (var correct in groups)
        {
            var c = correct.Count;
            if (c < 2) continue;
            var copies = new Dictionary<int[], int>(TokenSequenceComparer.Instance);
            foreach (var tokens in correct) copies[tokens] = copies.GetValueOrDefault(tokens) + 1;
            distinct += (double)copies.Count / c;
            samePairs += copies.Values.Sum(m => m * (m - 1.0)) / (c * (c - 1.0));
            counted++;
        }
        return (Mean(distinct, counted), Mean(samePairs, counted));
    }

    private sealed class TokenSequenceComparer : IEqualityComparer<int[]>
    {
        public static readonly TokenSequenceComparer Instance = new();

        public bool Equals(int[]? x, int[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(int[] tokens)
        {
            var hash = new HashCode();
            hash.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(tokens.AsSpan()));
            return hash.ToHashCode();
        }
    }
}

/// <summary>What a step produced, for <see cref="StepMetrics.Compute"/>.</summary>
public sealed record StepMetricsInput
{
    /// <summary>Rollout step (0-based).</summary>
    public int Step { get; init; }

    /// <summary>The responses trained on (accepted groups), in any order.</summary>
    public IReadOnlyList<ResponseOutcome> Responses { get; init; } = [];

    /// <summary>Advantage of each response, same order as <see cref="Responses"/>.</summary>
    public IReadOnlyList<double> Advantages { get; init; } = [];

    /// <summary>The token ids of each trained group's correct responses, one list per group (for
    /// <see cref="StepMetrics.DistinctCorrectShare"/> and <see cref="StepMetrics.SameCorrectPairShare"/>).</summary>
    public IReadOnlyList<IReadOnlyList<int[]>> CorrectResponsesByGroup { get; init; } = [];

    /// <summary>Per-token entropies of the response tokens (flat, any order).</summary>
    public ReadOnlyMemory<float> Entropies { get; init; }

    /// <summary>Per-token log-probabilities of the response tokens under the sampling policy (flat, any order).</summary>
    public ReadOnlyMemory<float> LogProbs { get; init; }

    /// <summary>Generation rounds used (<see cref="Sampling.DynamicSamplingPolicy.GenerationRounds"/>).</summary>
    public int GenerationRounds { get; init; }

    /// <summary>Groups accepted this step.</summary>
    public int GroupsAccepted { get; init; }

    /// <summary>Groups filtered this step.</summary>
    public int GroupsFiltered { get; init; }

    /// <summary>One entry per mini-batch update.</summary>
    public IReadOnlyList<MiniBatchUpdate> Updates { get; init; } = [];

    /// <summary>Learning rate of the step.</summary>
    public double LearningRate { get; init; }
}

/// <summary>What one mini-batch update reported.</summary>
/// <param name="PolicyGradientLoss">The aggregated policy-gradient loss.</param>
/// <param name="Diagnostics">The loss diagnostics.</param>
/// <param name="GradNorm">Global gradient norm before clipping.</param>
public sealed record MiniBatchUpdate(double PolicyGradientLoss, PolicyLossDiagnostics Diagnostics, double GradNorm);
