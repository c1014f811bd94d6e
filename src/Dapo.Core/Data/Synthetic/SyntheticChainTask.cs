using System.Globalization;
using System.Text;
using Dapo.Core.Common;

namespace Dapo.Core.Data.Synthetic;

/// <summary>
/// Running sums, the long-solution task: level n is a chain of n digits (1–9) joined by + and −, solved left to right
/// with every partial result written out, one line per operation:
/// "7+5-3+8" → "7+5=12\n12-3=9\n9+8=17\nAnswer: 17". Each step is easy (a digit added to or taken from a number
/// below 100), but the worked solution grows by about 7 characters a step, so the hard levels' responses reach a
/// length limit that the easy ones never see — the regime where the DAPO paper's overlong filtering and soft
/// punishment act. A − appears only where the running total stays non-negative. Problems are deterministic from
/// (seed, level) and split train / held-out by <see cref="SyntheticMathTask.SplitOf"/>, like the math task.
/// </summary>
public static class SyntheticChainTask
{
    /// <summary>Shortest chain (level 2 has about 100 distinct train problems, level 3 about 1,700).</summary>
    public const int MinLevel = 2;

    /// <summary>Longest chain: 14 digits make a 31-character prompt with the short template ("Q: …\n").</summary>
    public const int MaxLevel = 14;

    /// <summary>
    /// <paramref name="count"/> distinct problems of <paramref name="level"/> in <paramref name="split"/>, the same
    /// list for the same arguments on every machine.
    /// </summary>
    /// <exception cref="InvalidOperationException">The level has fewer distinct problems in the split than asked.</exception>
    public static IReadOnlyList<SyntheticProblem> Generate(int level, SyntheticSplit split, int count, ulong seed)
    {
        CheckLevel(level);
        // Salted apart from the math task's draws, which use the same (seed, level, split) mixing.
        return SyntheticGeneration.Distinct(level, split, count, DeterministicRandom.Mix(seed, 0xC4A1), rng => Draw(level, rng));
    }

    /// <summary>One problem of <paramref name="level"/> from <paramref name="rng"/> (either split).</summary>
    public static SyntheticProblem Draw(int level, DeterministicRandom rng)
    {
        CheckLevel(level);
        ArgumentNullException.ThrowIfNull(rng);
        var problem = new StringBuilder();
        var steps = new List<string>(level - 1);
        var total = rng.NextInt(1, 9);
        problem.Append(total.ToString(CultureInfo.InvariantCulture));
        for (var i = 1; i < level; i++)
        {
            var digit = rng.NextInt(1, 9);
            // About one operation in three subtracts, where the total allows it.
            var subtract = total >= digit && rng.NextInt(3) == 0;
            var next = subtract ? total - digit : total + digit;
            var op = subtract ? '-' : '+';
            problem.Append(op).Append(digit.ToString(CultureInfo.InvariantCulture));
            steps.Add(string.Create(CultureInfo.InvariantCulture, $"{total}{op}{digit}={next}"));
            total = next;
        }
        var text = problem.ToString();
        var answer = total.ToString(CultureInfo.InvariantCulture);
        return new SyntheticProblem($"chain-L{level}-{StableHash.Fnv1a64(text):x16}", level, text, string.Join("\n", steps) + "\nAnswer: " + answer, answer);
    }

    /// <summary>
    /// The same problems as <see cref="Generate"/>, with worked solutions whose lines do one or two operations
    /// ("7+5-3=9\n9+8=17\nAnswer: 17"): the "chain-mixed" task. Each line takes two operations with probability
    /// <see cref="TwoOperationShare"/>, drawn from the problem's text, so the form is a choice the warm-started policy
    /// makes at every line (one right answer, several right solutions: entropy that is not arithmetic uncertainty), and
    /// a solution's length depends on that choice: written out line by line a long chain passes the length limit, in
    /// two-operation lines it fits. That is the paper's regime for overlong filtering and soft punishment, where the
    /// limit can cut off a sound solution the policy chose to write long.
    /// </summary>
    public static IReadOnlyList<SyntheticProblem> GenerateMixed(int level, SyntheticSplit split, int count, ulong seed) =>
        [.. Generate(level, split, count, seed).Select(WithMixedLines)];

    /// <summary>Share of a mixed solution's lines (those with two operations left) that take two. At a half, about a
    /// quarter of the solutions of 10-digit chains pass a 64-token limit, so the warm-started policy can write the
    /// hardest levels to fit. At a third more than half of them passed it: the policy then drifted to the long form,
    /// lost levels 9 and 10 entirely, and no group kept a right answer in the short form for the soft punishment to
    /// favour (docs/results.md).</summary>
    public const double TwoOperationShare = 0.5;

    /// <summary><paramref name="problem"/> (a chain problem) with its solution written in one- and two-operation lines.</summary>
    public static SyntheticProblem WithMixedLines(SyntheticProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var rng = new DeterministicRandom(DeterministicRandom.Mix(StableHash.Fnv1a64(problem.Problem), 0x2F0A));
        var text = problem.Problem;
        var total = text[0] - '0';
        var lines = new List<string>();
        // The problem is "d(±d)*": the operations sit at the odd positions.
        for (var i = 1; i < text.Length;)
        {
            var take = i + 2 < text.Length && rng.NextDouble() < TwoOperationShare ? 2 : 1;
            var line = new StringBuilder(total.ToString(CultureInfo.InvariantCulture));
            for (var k = 0; k < take; k++, i += 2)
            {
                var digit = text[i + 1] - '0';
                total += text[i] == '+' ? digit : -digit;
                line.Append(text, i, 2);
            }
            lines.Add(line.Append('=').Append(total.ToString(CultureInfo.InvariantCulture)).ToString());
        }
        var answer = total.ToString(CultureInfo.InvariantCulture);
        if (answer != problem.Answer) throw new ArgumentException($"'{text}' is not a chain problem: its answer is {problem.Answer}, its terms sum to {answer}.", nameof(problem));
        return problem with { Id = "chain-mixed" + problem.Id["chain".Length..], Solution = string.Join("\n", lines) + "\nAnswer: " + answer };
    }

    private static void CheckLevel(int level)
    {
        if (level is < MinLevel or > MaxLevel)
            throw new ArgumentOutOfRangeException(nameof(level), level, $"Chain levels are {MinLevel} to {MaxLevel}.");
    }
}
