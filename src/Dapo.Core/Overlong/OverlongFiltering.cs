namespace Dapo.Core.Overlong;

/// <summary>
/// Overlong filtering (<see href="https://arxiv.org/abs/2503.14476"/>, §3.4): truncated responses are masked out of
/// the loss, so they neither contribute gradient nor count in any normaliser (token count, sequence count).
/// </summary>
public static class OverlongFiltering
{
    /// <summary>Clears the loss mask of every token of every truncated sequence.</summary>
    /// <param name="lossMask">Per-token loss mask, flat over sequences in order; modified in place.</param>
    /// <param name="sequenceLengths">Tokens per sequence; they sum to the mask's length.</param>
    /// <param name="truncated">Per sequence: whether it hit the length limit before a stop token.</param>
    /// <returns>How many sequences were masked.</returns>
    public static int MaskTruncated(Span<bool> lossMask, ReadOnlySpan<int> sequenceLengths, ReadOnlySpan<bool> truncated)
    {
        if (truncated.Length != sequenceLengths.Length)
            throw new ArgumentException(
                $"Got {truncated.Length} truncation flags for {sequenceLengths.Length} sequences.", nameof(truncated));
        var offset = 0;
        var masked = 0;
        for (var i = 0; i < sequenceLengths.Length; i++)
        {
            var length = sequenceLengths[i];
            if (length < 0) throw new ArgumentException($"Sequence {i} has negative length {length}.", nameof(sequenceLengths));
            if (offset + length > lossMask.Length)
                throw new ArgumentException($"Sequence lengths add up to more than the mask's {lossMask.Length} tokens.", nameof(sequenceLengths));
            if (truncated[i])
            {
                lossMask.Slice(offset, length).Clear();
                masked++;
            }
            offset += length;
        }
        if (offset != lossMask.Length)
            throw new ArgumentException($"Sequence lengths add up to {offset} but the mask has {lossMask.Length} tokens.", nameof(sequenceLengths));
        return masked;
    }
}
