namespace Dapo.Core.Loss;

/// <summary>
/// Splits a step's groups into mini-batches, one gradient update each (paper: 512 prompts in 16 mini-batches of 32).
/// A group's responses stay together.
/// </summary>
public static class MiniBatchPlan
{
    /// <summary>
    /// Ranges of group indices for <paramref name="miniBatches"/> updates over <paramref name="groups"/> groups; sizes
    /// differ by at most one (the first ones larger), and there are never empty mini-batches (fewer ranges when
    /// groups &lt; miniBatches, e.g. after training on the accepted groups at the generation cap).
    /// </summary>
    public static IReadOnlyList<Range> Split(int groups, int miniBatches)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(groups);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(miniBatches);
        var count = Math.Min(groups, miniBatches);
        var ranges = new Range[count];
        var start = 0;
        for (var i = 0; i < count; i++)
        {
            var size = groups / count + (i < groups % count ? 1 : 0);
            ranges[i] = start..(start + size);
            start += size;
        }
        return ranges;
    }
}
