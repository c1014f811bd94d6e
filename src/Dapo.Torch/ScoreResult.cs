using Dapo.Torch.Native;

namespace Dapo.Torch;

/// <summary>A sequence to score: its tokens and which of them are response tokens (scored). Position 0 has no
/// context and cannot be scored.</summary>
public readonly record struct ScoredSequence(int[] Tokens, bool[] ResponseMask)
{
    /// <summary>Prompt followed by response, with every response token scored.</summary>
    public static ScoredSequence FromPromptAndResponse(ReadOnlySpan<int> prompt, ReadOnlySpan<int> response)
    {
        if (prompt.IsEmpty) throw new ArgumentException("The prompt is empty: the first response token needs context.", nameof(prompt));
        var tokens = new int[prompt.Length + response.Length];
        prompt.CopyTo(tokens);
        response.CopyTo(tokens.AsSpan(prompt.Length));
        var mask = new bool[tokens.Length];
        mask.AsSpan(prompt.Length).Fill(true);
        return new ScoredSequence(tokens, mask);
    }
}

/// <summary>
/// Log-probabilities and entropies of the scored tokens, flat in sequence order, and (when scored with gradients)
/// the graph for one <see cref="Backward"/>. Dispose it to free the graph.
/// </summary>
public sealed unsafe class ScoreResult : IDisposable
{
    private readonly ScoreHandle _handle;
    private readonly int[] _offsets;

    internal ScoreResult(ScoreHandle handle, int[] countsPerSequence)
    {
        _handle = handle;
        Count = checked((int)NativeMethods.Check(NativeMethods.dapo_score_count(handle)));
        LogProbs = new float[Count];
        Entropies = new float[Count];
        fixed (float* l = LogProbs)
        fixed (float* e = Entropies)
            NativeMethods.Check(NativeMethods.dapo_score_copy(handle, l, e, Count));
        _offsets = new int[countsPerSequence.Length + 1];
        for (var i = 0; i < countsPerSequence.Length; i++) _offsets[i + 1] = _offsets[i] + countsPerSequence[i];
    }

    /// <summary>Number of scored tokens over all sequences.</summary>
    public int Count { get; }

    public float[] LogProbs { get; }

    /// <summary>Entropy of each scored position's temperature-scaled next-token distribution.</summary>
    public float[] Entropies { get; }

    /// <summary>Where sequence <paramref name="sequence"/>'s scored tokens sit in the flat arrays.</summary>
    public Range RangeOf(int sequence) => _offsets[sequence].._offsets[sequence + 1];

    /// <summary>
    /// Accumulates into the model's gradients the gradient of sum_t coefficients[t] * logprob[t] (so coefficients are
    /// dL/dlogprob of a loss computed outside the engine). Once per result; several results may accumulate before
    /// one optimizer step.
    /// </summary>
    public void Backward(ReadOnlySpan<float> coefficients)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        if (coefficients.Length != Count)
            throw new ArgumentException($"Got {coefficients.Length} coefficients for {Count} scored tokens.", nameof(coefficients));
        fixed (float* c = coefficients)
            NativeMethods.Check(NativeMethods.dapo_score_backward(_handle, c, coefficients.Length));
    }

    public void Dispose() => _handle.Dispose();
}
