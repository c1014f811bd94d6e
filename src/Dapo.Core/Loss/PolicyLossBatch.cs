namespace Dapo.Core.Loss;

/// <summary>
/// One mini-batch for the policy loss, flat over tokens: the response tokens of sequence 0, then of sequence 1, and
/// so on — the layout of the engine's scores (<c>ScoreResult.LogProbs</c>, <c>RangeOf</c>), so coefficients can be
/// handed back to <c>ScoreResult.Backward</c> unchanged. T = Σ SequenceLengths tokens, N = sequences.
/// </summary>
public sealed class PolicyLossBatch
{
    /// <summary>A batch; every per-token array has length T = Σ <paramref name="sequenceLengths"/>.</summary>
    /// <param name="logProbs">log π_θ(o_t) under the policy being trained, shape (T).</param>
    /// <param name="oldLogProbs">log π_θold(o_t) under the policy that sampled the response, shape (T).</param>
    /// <param name="advantages">Â_t, shape (T) (expand per-sequence advantages with
    /// <see cref="Dapo.Core.Advantages.AdvantageEstimators.ExpandToTokens"/> or use <see cref="FromSequenceAdvantages"/>).</param>
    /// <param name="lossMask">Whether token t counts in the loss, shape (T) (false for filtered tokens, e.g. overlong
    /// filtering).</param>
    /// <param name="sequenceLengths">|o_i| (scored tokens per sequence), shape (N).</param>
    /// <param name="referenceLogProbs">log π_ref(o_t), shape (T); only for the KL-to-reference term of the GRPO
    /// baseline. Empty (the default) means none.</param>
    public PolicyLossBatch(
        ReadOnlyMemory<float> logProbs,
        ReadOnlyMemory<float> oldLogProbs,
        ReadOnlyMemory<float> advantages,
        ReadOnlyMemory<bool> lossMask,
        ReadOnlyMemory<int> sequenceLengths,
        ReadOnlyMemory<float> referenceLogProbs = default)
    {
        var total = 0;
        var lengths = sequenceLengths.Span;
        for (var i = 0; i < lengths.Length; i++)
        {
            if (lengths[i] < 0)
                throw new ArgumentException($"Sequence {i} has negative length {lengths[i]}.", nameof(sequenceLengths));
            total = checked(total + lengths[i]);
        }
        Check(logProbs.Length, total, nameof(logProbs));
        Check(oldLogProbs.Length, total, nameof(oldLogProbs));
        Check(advantages.Length, total, nameof(advantages));
        Check(lossMask.Length, total, nameof(lossMask));
        if (!referenceLogProbs.IsEmpty) Check(referenceLogProbs.Length, total, nameof(referenceLogProbs));
        LogProbs = logProbs;
        OldLogProbs = oldLogProbs;
        Advantages = advantages;
        LossMask = lossMask;
        SequenceLengths = sequenceLengths;
        ReferenceLogProbs = referenceLogProbs.IsEmpty ? (ReadOnlyMemory<float>?)null : referenceLogProbs;
        TokenCount = total;
    }

    /// <summary>A batch whose advantages are given per sequence (every token of sequence i gets A_i).</summary>
    public static PolicyLossBatch FromSequenceAdvantages(
        float[] logProbs, float[] oldLogProbs, ReadOnlySpan<double> sequenceAdvantages, bool[] lossMask,
        int[] sequenceLengths, float[]? referenceLogProbs = null) =>
        new(logProbs, oldLogProbs, Dapo.Core.Advantages.AdvantageEstimators.ExpandToTokens(sequenceAdvantages, sequenceLengths),
            lossMask, sequenceLengths, referenceLogProbs);

    /// <summary>log π_θ, shape (T).</summary>
    public ReadOnlyMemory<float> LogProbs { get; }

    /// <summary>log π_θold, shape (T).</summary>
    public ReadOnlyMemory<float> OldLogProbs { get; }

    /// <summary>Â, shape (T).</summary>
    public ReadOnlyMemory<float> Advantages { get; }

    /// <summary>Loss mask, shape (T).</summary>
    public ReadOnlyMemory<bool> LossMask { get; }

    /// <summary>|o_i|, shape (N).</summary>
    public ReadOnlyMemory<int> SequenceLengths { get; }

    /// <summary>log π_ref, shape (T), or null.</summary>
    public ReadOnlyMemory<float>? ReferenceLogProbs { get; }

    /// <summary>T, tokens over all sequences (masked or not).</summary>
    public int TokenCount { get; }

    /// <summary>N, sequences.</summary>
    public int SequenceCount => SequenceLengths.Length;

    /// <summary>
    /// Sequences [<paramref name="firstSequence"/>, first + <paramref name="count"/>) as a batch of their own (no
    /// copy), with the offset of its first token in this batch. Use it to run a mini-batch through the engine in
    /// micro-batches: compute the aggregation weights once for the whole mini-batch and pass each chunk its slice.
    /// </summary>
    public (PolicyLossBatch Batch, int TokenOffset) Slice(int firstSequence, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstSequence);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (firstSequence + count > SequenceCount)
            throw new ArgumentOutOfRangeException(nameof(count), $"Sequences {firstSequence}..{firstSequence + count} exceed the batch's {SequenceCount}.");
        var lengths = SequenceLengths.Span;
        var start = 0;
        for (var i = 0; i < firstSequence; i++) start += lengths[i];
        var tokens = 0;
        for (var i = firstSequence; i < firstSequence + count; i++) tokens += lengths[i];
        var batch = new PolicyLossBatch(
            LogProbs.Slice(start, tokens), OldLogProbs.Slice(start, tokens), Advantages.Slice(start, tokens),
            LossMask.Slice(start, tokens), SequenceLengths.Slice(firstSequence, count),
            ReferenceLogProbs?.Slice(start, tokens) ?? default);
        return (batch, start);
    }

    private static void Check(int length, int total, string name)
    {
        if (length != total)
            throw new ArgumentException($"{name} has {length} tokens but the sequence lengths add up to {total}.", name);
    }
}
