using Dapo.Core.Common;

namespace Dapo.Core.Loss;

/// <summary>
/// How a matrix of per-token losses ℓ_t becomes one scalar (verl <c>agg_loss</c>), expressed as per-token weights:
/// L = Σ_t w_t ℓ_t. Writing the aggregation as weights lets one loss implementation serve every mode, and lets a
/// mini-batch be processed in micro-batches with the normalisers of the whole mini-batch (the point of the paper's
/// token-level loss, eq. 12). Masked tokens get weight 0. Sequences with no unmasked token do not count as
/// sequences (as in current verl).
/// </summary>
public interface ILossAggregation
{
    /// <summary>The mode's name, e.g. "token-mean".</summary>
    string Name { get; }

    /// <summary>Writes w_t for every token of a mini-batch.</summary>
    /// <param name="sequenceLengths">|o_i|, shape (N).</param>
    /// <param name="lossMask">Shape (T = Σ|o_i|).</param>
    /// <param name="scaleFactor">Divisor of "seq-mean-token-sum-norm" and "dr-grpo" (ignored by the other modes).</param>
    /// <param name="weights">Output, shape (T).</param>
    void TokenWeights(ReadOnlySpan<int> sequenceLengths, ReadOnlySpan<bool> lossMask, double scaleFactor, Span<double> weights);
}

/// <summary>
/// "token-mean" (DAPO's token-level policy-gradient loss, <see href="https://arxiv.org/abs/2503.14476"/> eq. 12):
/// w_t = m_t / Σ_j m_j over the whole mini-batch, so every token weighs the same whatever its sequence's length.
/// </summary>
public sealed class TokenMeanAggregation : ILossAggregation
{
    /// <inheritdoc />
    public string Name => LossAggregations.TokenMean;

    /// <inheritdoc />
    public void TokenWeights(ReadOnlySpan<int> sequenceLengths, ReadOnlySpan<bool> lossMask, double scaleFactor, Span<double> weights)
    {
        LossAggregations.CheckShapes(sequenceLengths, lossMask, weights);
        var tokens = 0;
        foreach (var m in lossMask) if (m) tokens++;
        var w = tokens == 0 ? 0.0 : 1.0 / tokens;
        for (var t = 0; t < lossMask.Length; t++) weights[t] = lossMask[t] ? w : 0.0;
    }
}

/// <summary>
/// "seq-mean-token-mean" (GRPO's sample-level loss, paper §2.2 and §3.3): mean over tokens within each sequence, then
/// mean over sequences: w_t = m_t / (|o_i|_masked · S), with S the sequences that have a token. Every sequence weighs
/// the same, so tokens of long sequences weigh less — what DAPO's token-mean fixes.
/// </summary>
public sealed class SeqMeanTokenMeanAggregation : ILossAggregation
{
    /// <inheritdoc />
    public string Name => LossAggregations.SeqMeanTokenMean;

    /// <inheritdoc />
    public void TokenWeights(ReadOnlySpan<int> sequenceLengths, ReadOnlySpan<bool> lossMask, double scaleFactor, Span<double> weights)
    {
        LossAggregations.CheckShapes(sequenceLengths, lossMask, weights);
        var sequences = LossAggregations.CountNonEmpty(sequenceLengths, lossMask);
        var offset = 0;
        foreach (var length in sequenceLengths)
        {
            var mask = lossMask.Slice(offset, length);
            var tokens = 0;
            foreach (var m in mask) if (m) tokens++;
            var w = tokens == 0 ? 0.0 : 1.0 / ((double)tokens * sequences);
            for (var t = 0; t < length; t++) weights[offset + t] = mask[t] ? w : 0.0;
            offset += length;
        }
    }
}

/// <summary>"seq-mean-token-sum": sum over tokens within each sequence, mean over sequences: w_t = m_t / S.</summary>
public sealed class SeqMeanTokenSumAggregation : ILossAggregation
{
    /// <inheritdoc />
    public string Name => LossAggregations.SeqMeanTokenSum;

    /// <inheritdoc />
    public void TokenWeights(ReadOnlySpan<int> sequenceLengths, ReadOnlySpan<bool> lossMask, double scaleFactor, Span<double> weights)
    {
        LossAggregations.CheckShapes(sequenceLengths, lossMask, weights);
        var sequences = LossAggregations.CountNonEmpty(sequenceLengths, lossMask);
        var w = sequences == 0 ? 0.0 : 1.0 / sequences;
        for (var t = 0; t < lossMask.Length; t++) weights[t] = lossMask[t] ? w : 0.0;
    }
}

/// <summary>
/// "seq-mean-token-sum-norm" (current verl <c>agg_loss</c>; Dr. GRPO's constant normaliser,
/// <see href="https://arxiv.org/abs/2503.20783"/>): the token sums of all sequences, summed, divided by a constant,
/// the scale factor (verl: the maximum response length by default; ours: <c>LossScaleFactor</c>, by default the
/// maximum response length): w_t = m_t / scale. No division by the number of sequences, so the loss grows with the
/// mini-batch (verl added a division by the batch size in January 2026 and reverted it; the mode with that division
/// is <see cref="DrGrpoAggregation"/>, "dr-grpo"). As verl's own Dr. GRPO recipe uses this mode, so can ours.
/// </summary>
public sealed class SeqMeanTokenSumNormAggregation : ILossAggregation
{
    /// <inheritdoc />
    public string Name => LossAggregations.SeqMeanTokenSumNorm;

    /// <inheritdoc />
    public void TokenWeights(ReadOnlySpan<int> sequenceLengths, ReadOnlySpan<bool> lossMask, double scaleFactor, Span<double> weights)
    {
        LossAggregations.CheckScaleFactor(scaleFactor);
        LossAggregations.CheckShapes(sequenceLengths, lossMask, weights);
        var w = 1.0 / scaleFactor;
        for (var t = 0; t < lossMask.Length; t++) weights[t] = lossMask[t] ? w : 0.0;
    }
}

/// <summary>
/// "dr-grpo": the Dr. GRPO normaliser of its authors' implementation and of TRL's <c>GRPOTrainer</c>
/// (<c>loss_type="dr_grpo"</c>: Σ masked token losses / (batch size · max completion length);
/// <see href="https://arxiv.org/abs/2503.20783"/>): the token sum of each sequence divided by a constant, the scale
/// factor, averaged over sequences: w_t = m_t / (S · scale). It is "seq-mean-token-sum-norm" divided by S, which is
/// what that mode computed here before it followed current verl; it keeps the loss's size independent of how many
/// sequences a mini-batch holds. S counts the sequences with at least one unmasked token, as the other seq- modes
/// do; TRL divides by every row of the batch, fully masked ones included (e.g. with its
/// <c>mask_truncated_completions</c>), so the two differ only when whole sequences are masked, as by overlong
/// filtering.
/// </summary>
public sealed class DrGrpoAggregation : ILossAggregation
{
    /// <inheritdoc />
    public string Name => LossAggregations.DrGrpo;

    /// <inheritdoc />
    public void TokenWeights(ReadOnlySpan<int> sequenceLengths, ReadOnlySpan<bool> lossMask, double scaleFactor, Span<double> weights)
    {
        LossAggregations.CheckScaleFactor(scaleFactor);
        LossAggregations.CheckShapes(sequenceLengths, lossMask, weights);
        var sequences = LossAggregations.CountNonEmpty(sequenceLengths, lossMask);
        var w = sequences == 0 ? 0.0 : 1.0 / (sequences * scaleFactor);
        for (var t = 0; t < lossMask.Length; t++) weights[t] = lossMask[t] ? w : 0.0;
    }
}

/// <summary>The loss aggregation modes by name (verl's <c>loss_agg_mode</c> strings).</summary>
public static class LossAggregations
{
    /// <summary>Token-level mean over the mini-batch (DAPO, the default).</summary>
    public const string TokenMean = "token-mean";

    /// <summary>Mean over sequences of per-sequence token means (GRPO).</summary>
    public const string SeqMeanTokenMean = "seq-mean-token-mean";

    /// <summary>Mean over sequences of per-sequence token sums.</summary>
    public const string SeqMeanTokenSum = "seq-mean-token-sum";

    /// <summary>Sum of all token losses divided by a constant (current verl; Dr. GRPO).</summary>
    public const string SeqMeanTokenSumNorm = "seq-mean-token-sum-norm";

    /// <summary>Mean over sequences of token sums, divided by a constant (Dr. GRPO's code and TRL's "dr_grpo").</summary>
    public const string DrGrpo = "dr-grpo";

    /// <summary>The table.</summary>
    public static NamedRegistry<ILossAggregation> Registry { get; } = CreateRegistry();

    /// <summary>The mode named <paramref name="name"/>.</summary>
    public static ILossAggregation Get(string name) => Registry.Get(name);

    /// <summary>Token weights of a mini-batch as a new array.</summary>
    public static double[] TokenWeights(ILossAggregation aggregation, ReadOnlySpan<int> sequenceLengths, ReadOnlySpan<bool> lossMask,
        double scaleFactor)
    {
        ArgumentNullException.ThrowIfNull(aggregation);
        var weights = new double[lossMask.Length];
        aggregation.TokenWeights(sequenceLengths, lossMask, scaleFactor, weights);
        return weights;
    }

    /// <summary>Σ_t w_t v_t: aggregates any per-token quantity (entropy, KL) the way the loss is aggregated.</summary>
    public static double Aggregate(ILossAggregation aggregation, ReadOnlySpan<float> values, ReadOnlySpan<int> sequenceLengths,
        ReadOnlySpan<bool> lossMask, double scaleFactor)
    {
        if (values.Length != lossMask.Length)
            throw new ArgumentException($"Got {values.Length} values for {lossMask.Length} tokens.", nameof(values));
        var weights = TokenWeights(aggregation, sequenceLengths, lossMask, scaleFactor);
        var sum = 0.0;
        for (var t = 0; t < values.Length; t++)
            if (weights[t] != 0) sum += weights[t] * values[t];
        return sum;
    }

    internal static void CheckScaleFactor(double scaleFactor)
    {
        if (!(scaleFactor > 0) || !double.IsFinite(scaleFactor))
            throw new ArgumentOutOfRangeException(nameof(scaleFactor), scaleFactor, "The scale factor must be positive and finite.");
    }

    internal static void CheckShapes(ReadOnlySpan<int> sequenceLengths, ReadOnlySpan<bool> lossMask, Span<double> weights)
    {
        var total = 0;
        foreach (var length in sequenceLengths)
        {
            if (length < 0) throw new ArgumentException($"Negative sequence length {length}.", nameof(sequenceLengths));
            total = checked(total + length);
        }
        if (total != lossMask.Length)
            throw new ArgumentException($"Sequence lengths add up to {total} but the mask has {lossMask.Length} tokens.", nameof(lossMask));
        if (weights.Length != lossMask.Length)
            throw new ArgumentException($"Got room for {weights.Length} weights for {lossMask.Length} tokens.", nameof(weights));
    }

    internal static int CountNonEmpty(ReadOnlySpan<int> sequenceLengths, ReadOnlySpan<bool> lossMask)
    {
        var count = 0;
        var offset = 0;
        foreach (var length in sequenceLengths)
        {
            if (lossMask.Slice(offset, length).Contains(true)) count++;
            offset += length;
        }
        return count;
    }

    private static NamedRegistry<ILossAggregation> CreateRegistry()
    {
        var registry = new NamedRegistry<ILossAggregation>("loss aggregation");
        foreach (var mode in new ILossAggregation[]
                 {
                     new TokenMeanAggregation(), new SeqMeanTokenMeanAggregation(), new SeqMeanTokenSumAggregation(),
                     new SeqMeanTokenSumNormAggregation(), new DrGrpoAggregation(),
                 })
            registry.Register(mode.Name, mode);
        return registry;
    }
}
