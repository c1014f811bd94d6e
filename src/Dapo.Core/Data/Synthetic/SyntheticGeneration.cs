using Dapo.Core.Common;

namespace Dapo.Core.Data.Synthetic;

/// <summary>What the synthetic tasks share: drawing distinct problems of one split, deterministically.</summary>
internal static class SyntheticGeneration
{
    /// <summary>
    /// <paramref name="count"/> distinct problems of <paramref name="split"/> from <paramref name="draw"/>, seeded by
    /// (<paramref name="seed"/>, <paramref name="level"/>, <paramref name="split"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">Too few distinct problems in the split.</exception>
    public static IReadOnlyList<SyntheticProblem> Distinct(int level, SyntheticSplit split, int count, ulong seed,
        Func<DeterministicRandom, SyntheticProblem> draw)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (!Enum.IsDefined(split)) throw new ArgumentOutOfRangeException(nameof(split), split, "Unknown split.");
        var rng = new DeterministicRandom(DeterministicRandom.Mix(DeterministicRandom.Mix(seed, (ulong)level), (ulong)split + 1));
        var problems = new List<SyntheticProblem>(count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var maxAttempts = 20_000 + 200L * count;
        for (long attempt = 0; problems.Count < count; attempt++)
        {
            if (attempt >= maxAttempts)
                throw new InvalidOperationException(
                    $"Level {level} gave only {problems.Count} distinct {split} problems in {maxAttempts} draws; {count} were asked for.");
            var problem = draw(rng);
            if (SyntheticMathTask.SplitOf(problem.Problem) != split || !seen.Add(problem.Problem)) continue;
            problems.Add(problem);
        }
        return problems;
    }
}
