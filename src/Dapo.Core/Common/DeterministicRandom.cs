namespace Dapo.Core.Common;

/// <summary>
/// A small random generator (SplitMix64) whose sequence is fixed by this code alone, not by the .NET version, so that
/// data shuffles and synthetic problems are reproducible across machines and releases (System.Random's algorithm is
/// an implementation detail). Not thread-safe; not for cryptography.
/// </summary>
public sealed class DeterministicRandom
{
    private ulong _state;

    /// <summary>A generator whose whole sequence is determined by <paramref name="seed"/>.</summary>
    public DeterministicRandom(ulong seed) => _state = seed;

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        _state += 0x9E3779B97F4A7C15UL;
        return Finalize(_state);
    }

    /// <summary>Uniform in [0, <paramref name="maxExclusive"/>), without modulo bias.</summary>
    public int NextInt(int maxExclusive)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxExclusive);
        var bound = (ulong)maxExclusive;
        var limit = ulong.MaxValue - ulong.MaxValue % bound; // reject the incomplete top bucket
        ulong x;
        do x = NextUInt64(); while (x >= limit);
        return (int)(x % bound);
    }

    /// <summary>Uniform in [<paramref name="minInclusive"/>, <paramref name="maxInclusive"/>].</summary>
    public int NextInt(int minInclusive, int maxInclusive)
    {
        if (maxInclusive < minInclusive)
            throw new ArgumentOutOfRangeException(nameof(maxInclusive), $"Empty range [{minInclusive}, {maxInclusive}].");
        return minInclusive + NextInt(maxInclusive - minInclusive + 1);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>One element of <paramref name="items"/>, uniformly.</summary>
    public T Pick<T>(IReadOnlyList<T> items) => items[NextInt(items.Count)];

    /// <summary>Shuffles <paramref name="items"/> in place (Fisher–Yates).</summary>
    public void Shuffle<T>(Span<T> items)
    {
        for (var i = items.Length - 1; i > 0; i--)
        {
            var j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    /// <summary>A seed derived from <paramref name="seed"/> and <paramref name="salt"/> (for independent streams).</summary>
    public static ulong Mix(ulong seed, ulong salt) => Finalize(seed ^ Finalize(salt + 0x9E3779B97F4A7C15UL));

    private static ulong Finalize(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
