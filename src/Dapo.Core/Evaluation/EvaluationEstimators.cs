namespace Dapo.Core.Evaluation;

/// <summary>One sampled answer to an evaluation problem.</summary>
/// <param name="Prediction">The extracted, normalised answer (null: none), used by maj@k voting.</param>
/// <param name="Correct">Whether the answer was graded correct.</param>
public readonly record struct EvaluationSample(string? Prediction, bool Correct);

/// <summary>
/// Estimators the paper reports (<see href="https://arxiv.org/abs/2503.14476"/>, Figure 1: avg@32, pass@32,
/// cons@32 = maj@32), each over problems with n ≥ k samples.
/// </summary>
public static class EvaluationEstimators
{
    /// <summary>
    /// avg@k: the mean over problems of the fraction of the first k samples that are correct (the paper's headline
    /// AIME number with k = 32).
    /// </summary>
    public static double AverageAtK(IReadOnlyList<IReadOnlyList<EvaluationSample>> problems, int k)
    {
        CheckArguments(problems, k);
        return problems.Average(p => p.Take(k).Count(s => s.Correct) / (double)k);
    }

    /// <summary>
    /// Unbiased pass@k (Chen et al. 2021, <see href="https://arxiv.org/abs/2107.03374"/>) of one problem with
    /// <paramref name="n"/> samples of which <paramref name="c"/> are correct: 1 − C(n−c, k) / C(n, k), computed as
    /// 1 − Π_{i=n−c+1..n} (1 − k / i), which never forms a large binomial and is exact to rounding.
    /// </summary>
    public static double PassAtK(int n, int c, int k)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, k, nameof(n));
        ArgumentOutOfRangeException.ThrowIfNegative(c);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(c, n);
        if (n - c < k) return 1.0; // every k-subset contains a correct sample
        var allWrong = 1.0;
        for (var i = n - c + 1; i <= n; i++) allWrong *= 1.0 - (double)k / i;
        return 1.0 - allWrong;
    }

    /// <summary>Mean unbiased pass@k over problems, each using all its samples.</summary>
    public static double PassAtK(IReadOnlyList<IReadOnlyList<EvaluationSample>> problems, int k)
    {
        CheckArguments(problems, k);
        return problems.Average(p => PassAtK(p.Count, p.Count(s => s.Correct), k));
    }

    /// <summary>
    /// maj@k (consensus): per problem, a majority vote over the predictions of the first k samples (samples without
    /// an answer do not vote; a tie goes to the answer seen first); the problem counts as solved when the winning
    /// answer was graded correct. Mean over problems.
    /// </summary>
    public static double MajorityAtK(IReadOnlyList<IReadOnlyList<EvaluationSample>> problems, int k)
    {
        CheckArguments(problems, k);
        return problems.Average(p => MajorityVote(p.Take(k).ToArray()) is { Correct: true } ? 1.0 : 0.0);
    }

    /// <summary>The winning sample of a vote (first sample with the most common prediction), or null when nobody
    /// answered.</summary>
    public static EvaluationSample? MajorityVote(IReadOnlyList<EvaluationSample> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var s in samples)
            if (s.Prediction is not null) counts[s.Prediction] = counts.GetValueOrDefault(s.Prediction) + 1;
        EvaluationSample? best = null;
        var bestCount = 0;
        foreach (var s in samples) // first occurrence order breaks ties
        {
            if (s.Prediction is null) continue;
            var count = counts[s.Prediction];
            if (count > bestCount)
            {
                best = s;
                bestCount = count;
            }
        }
        return best;
    }

    private static void CheckArguments(IReadOnlyList<IReadOnlyList<EvaluationSample>> problems, int k)
    {
        ArgumentNullException.ThrowIfNull(problems);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        if (problems.Count == 0) throw new ArgumentException("No problems to evaluate.", nameof(problems));
        for (var i = 0; i < problems.Count; i++)
            if (problems[i].Count < k)
                throw new ArgumentException($"Problem {i} has {problems[i].Count} samples; @{k} needs at least {k}.", nameof(problems));
    }
}
