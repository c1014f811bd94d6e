using System.Numerics;
using Dapo.Core.Evaluation;

namespace Dapo.Core.Tests;

public class EvaluationTests
{
    private static EvaluationSample S(string? prediction, bool correct) => new(prediction, correct);

    [Theory]
    [InlineData(5, 2, 2, 0.7)] // 1 − C(3,2)/C(5,2) = 1 − 3/10; product form (1 − 2/4)(1 − 2/5) = 0.3
    [InlineData(4, 3, 2, 1.0)] // only one wrong sample: every pair has a right one
    [InlineData(10, 0, 5, 0.0)]
    [InlineData(1000, 1, 1, 0.001)] // pass@1 = c / n
    [InlineData(32, 8, 1, 0.25)]
    [InlineData(32, 32, 32, 1.0)]
    public void Unbiased_pass_at_k(int n, int c, int k, double expected) =>
        TestUtil.Close(expected, EvaluationEstimators.PassAtK(n, c, k), 1e-12);

    [Fact]
    public void Pass_at_k_is_stable_where_binomials_overflow()
    {
        // C(n, k) with n = 200, k = 50 is about 4.5e47: compare with exact big-integer arithmetic.
        foreach (var (n, c, k) in new[] { (200, 3, 50), (200, 40, 10), (150, 1, 75) })
        {
            var exact = 1.0 - Ratio(Binomial(n - c, k), Binomial(n, k));
            TestUtil.Close(exact, EvaluationEstimators.PassAtK(n, c, k), 1e-12, $"n={n} c={c} k={k}");
        }
        // Far beyond double's binomials and still in [0, 1].
        var p = EvaluationEstimators.PassAtK(100_000, 5, 2_000);
        Assert.InRange(p, 0.0, 1.0);
        TestUtil.Close(1 - Math.Pow(1 - 2000.0 / 100_000, 5), p, 1e-3); // ≈ 1 − (1 − k/n)^c
    }

    [Fact]
    public void Avg_at_k_averages_the_first_k_samples()
    {
        IReadOnlyList<IReadOnlyList<EvaluationSample>> problems =
        [
            [S("1", true), S("2", false), S("1", true), S("3", false)], // 2/4
            [S("7", true), S("7", true), S("7", true), S("7", true)], // 4/4
        ];
        TestUtil.Close(0.75, EvaluationEstimators.AverageAtK(problems, 4)); // (0.5 + 1) / 2
        TestUtil.Close(0.75, EvaluationEstimators.AverageAtK(problems, 2)); // (1/2 + 2/2) / 2
        // pass@2: problem 1 has n = 4, c = 2: 1 − C(2,2)/C(4,2) = 1 − 1/6 = 5/6; problem 2: 1. Mean 11/12.
        TestUtil.Close(11.0 / 12, EvaluationEstimators.PassAtK(problems, 2), 1e-12);
    }

    [Fact]
    public void Maj_at_k_votes_and_breaks_ties_by_first_seen()
    {
        // 5 and 3 both twice among the five; "5" came first → correct.
        IReadOnlyList<EvaluationSample> tie = [S("5", true), S("3", false), S("5", true), S("3", false), S("7", false)];
        Assert.Equal("5", EvaluationEstimators.MajorityVote(tie)!.Value.Prediction);
        // "3" wins 3 to 1 among the first four; no-answers do not vote.
        IReadOnlyList<EvaluationSample> wrong = [S(null, false), S("3", false), S("3", false), S("5", true), S("3", false)];
        Assert.Equal("3", EvaluationEstimators.MajorityVote(wrong)!.Value.Prediction);
        Assert.Null(EvaluationEstimators.MajorityVote([S(null, false)]));
        TestUtil.Close(0.5, EvaluationEstimators.MajorityAtK([tie, wrong], 5));
        // first 3 of "wrong": null, 3, 3 → "3" wrong; first 3 of "tie": 5, 3, 5 → right
        TestUtil.Close(0.5, EvaluationEstimators.MajorityAtK([tie, wrong], 3));
    }

    [Fact]
    public void Too_few_samples_is_an_error_naming_the_problem()
    {
        var e = Assert.Throws<ArgumentException>(() => EvaluationEstimators.AverageAtK([[S("1", true)], []], 1));
        Assert.Contains("Problem 1", e.Message);
    }

    private static BigInteger Binomial(int n, int k)
    {
        BigInteger result = 1;
        for (var i = 1; i <= k; i++) result = result * (n - k + i) / i;
        return result;
    }

    private static double Ratio(BigInteger a, BigInteger b) => Math.Exp(BigInteger.Log(a) - BigInteger.Log(b));
}
