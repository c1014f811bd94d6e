using System.Globalization;
using Dapo.Core.Common;

namespace Dapo.Core.Data.Synthetic;

/// <summary>
/// Sums of digits added in any order, the many-answers task: level n is n digits (1–9) joined by +, and a worked
/// solution adds them one per line in an order of its own, every partial result written out:
/// "7+5+3+8" → "3+8=11\n11+7=18\n18+5=23\nAnswer: 23". Every order is right, so at each line the policy chooses among
/// the terms it has not used yet: a solution's tokens carry entropy by design, not from arithmetic uncertainty, which
/// is the regime of the DAPO paper's entropy collapse (its Figure 2). The warm-start's orders are drawn uniformly from
/// the problem's text. Problems are deterministic from (seed, level) and split train / held-out by
/// <see cref="SyntheticMathTask.SplitOf"/>, like the other tasks.
/// </summary>
public static class SyntheticSumTask
{
    /// <summary>Fewest terms (level 3 has about 650 distinct train problems).</summary>
    public const int MinLevel = 3;

    /// <summary>Most terms: 10 digits make a 23-character prompt with the short template ("Q: …\n").</summary>
    public const int MaxLevel = 10;

    /// <summary><paramref name="count"/> distinct problems of <paramref name="level"/> in <paramref name="split"/>,
    /// the same list for the same arguments on every machine.</summary>
    /// <exception cref="InvalidOperationException">The level has fewer distinct problems in the split than asked.</exception>
    public static IReadOnlyList<SyntheticProblem> Generate(int level, SyntheticSplit split, int count, ulong seed)
    {
        if (level is < MinLevel or > MaxLevel)
            throw new ArgumentOutOfRangeException(nameof(level), level, $"Sum levels are {MinLevel} to {MaxLevel}.");
        // Salted apart from the other tasks' draws, which use the same (seed, level, split) mixing.
        return SyntheticGeneration.Distinct(level, split, count, DeterministicRandom.Mix(seed, 0x5A11), rng => Draw(level, rng));
    }

    private static SyntheticProblem Draw(int level, DeterministicRandom rng)
    {
        var terms = new int[level];
        for (var i = 0; i < level; i++) terms[i] = rng.NextInt(1, 9);
        var text = string.Join("+", terms);
        // The order comes from the text, not from rng, so a problem has one warm-start solution whatever drew it.
        var order = terms.ToArray();
        new DeterministicRandom(DeterministicRandom.Mix(StableHash.Fnv1a64(text), 0x0DE5)).Shuffle(order.AsSpan());
        var lines = new List<string>(level);
        var total = order[0];
        foreach (var term in order.Skip(1))
        {
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"{total}+{term}={total + term}"));
            total += term;
        }
        var answer = total.ToString(CultureInfo.InvariantCulture);
        lines.Add("Answer: " + answer);
        return new SyntheticProblem($"sum-L{level}-{StableHash.Fnv1a64(text):x16}", level, text, string.Join("\n", lines), answer);
    }
}
