using Dapo.Core.Loss;
using Dapo.Core.Metrics;
using Dapo.Core.Rewards;

namespace Dapo.Core.Tests;

public class MetricsTests
{
    [Fact]
    public void Hand_computed_step_metrics()
    {
        // Two responses: one right (length 10, no penalty), one wrong and truncated (length 30, penalty −0.5).
        var input = new StepMetricsInput
        {
            Step = 3,
            Responses = [new(1, 0, true, 10, false), new(-1, -0.5, false, 30, true)],
            Advantages = [0.7, -0.7],
            Entropies = new float[] { 0.5f, 1.5f, 1.0f, 1.0f },
            LogProbs = new float[] { 0f, (float)Math.Log(0.5), 0f, (float)Math.Log(0.5) },
            GenerationRounds = 2,
            GroupsAccepted = 3,
            GroupsFiltered = 1,
            Updates =
            [
                new MiniBatchUpdate(0.2, new PolicyLossDiagnostics(10, 0.1, 0.1, 0, 0, 0.01, 1.0, 0, 0.3), 0.5),
                new MiniBatchUpdate(0.4, new PolicyLossDiagnostics(30, 0.5, 0.2, 0.3, 0, 0.03, 1.1, 0, 0.1), 1.5),
            ],
            LearningRate = 5e-7,
        };
        var m = StepMetrics.Compute(input);
        Assert.Equal(3, m.Step);
        TestUtil.Close(0.0, m.ScoreMean); // (1 − 1) / 2
        TestUtil.Close(-0.25, m.RewardMean); // (1 + (−1.5)) / 2
        TestUtil.Close(0.5, m.Accuracy);
        TestUtil.Close(20, m.ResponseLengthMean); // (10 + 30) / 2
        Assert.Equal(30, m.ResponseLengthMax);
        Assert.Equal(10, m.ResponseLengthMin);
        TestUtil.Close(0.5, m.ResponseClipRatio);
        TestUtil.Close(1.0, m.EntropyMean); // (0.5 + 1.5 + 1 + 1) / 4
        TestUtil.Close(0.75, m.MeanTokenProbability, 1e-7); // (1 + 0.5 + 1 + 0.5) / 4
        TestUtil.Close(-0.35, m.AdvantageMean); // token-weighted: (0.7 × 10 − 0.7 × 30) / 40 = −14 / 40
        Assert.Equal(0.7, m.AdvantageMax);
        Assert.Equal(-0.7, m.AdvantageMin);
        Assert.Equal(2, m.GenerationRounds);
        TestUtil.Close(0.25, m.FilteredGroupFraction); // 1 / (3 + 1)
        TestUtil.Close(0.3, m.PgLoss); // (0.2 + 0.4) / 2
        TestUtil.Close(0.4, m.ClipFraction); // (0.1 × 10 + 0.5 × 30) / 40 = 16 / 40
        TestUtil.Close(0.175, m.ClipFractionUpper); // (1 + 6) / 40
        TestUtil.Close((1 * 0.3 + 6 * 0.1) / 7, m.UpClippedProbability); // over the 7 tokens clipped above
        TestUtil.Close(0.225, m.ClipFractionLower); // 9 / 40
        TestUtil.Close(0.025, m.ApproxKl); // (0.1 + 0.9) / 40
        TestUtil.Close(1.075, m.MeanRatio); // (10 + 33) / 40
        TestUtil.Close(1.0, m.GradNorm); // (0.5 + 1.5) / 2
        Assert.Equal(5e-7, m.LearningRate);
        var names = m.ToDictionary();
        Assert.Equal(0.5, names["critic/accuracy"]);
        Assert.Equal(2, names["train/num_gen_batches"]);
        Assert.Contains("acc 0.500", m.ToString());
    }

    [Fact]
    public void Variety_of_right_answers_counts_whole_solutions_in_groups_with_two_or_more_right_answers()
    {
        int[] a = [5, 6, 7], b = [5, 7, 6], c = [9];
        var m = StepMetrics.Compute(new StepMetricsInput
        {
            // 2 distinct of 3 (a repeated as a fresh array: equal by content), a lone right answer (skipped), 1 of 2.
            CorrectResponsesByGroup = [[a, b, [5, 6, 7]], [c], [c, [9]]],
        });
        TestUtil.Close((2.0 / 3 + 1.0 / 2) / 2, m.DistinctCorrectShare);
        // Same pairs: 1 of the first group's 3, the third group's only pair.
        TestUtil.Close((1.0 / 3 + 1.0) / 2, m.SameCorrectPairShare);
        Assert.Equal(m.DistinctCorrectShare, m.ToDictionary()["response/distinct_correct_share"]);
        Assert.Equal(m.SameCorrectPairShare, m.ToDictionary()["response/same_correct_pair_share"]);
        var allDifferent = StepMetrics.Compute(new StepMetricsInput { CorrectResponsesByGroup = [[a, b, [7, 6, 5]]] });
        Assert.Equal(1.0, allDifferent.DistinctCorrectShare);
        Assert.Equal(0.0, allDifferent.SameCorrectPairShare);
        // Four right answers, two solutions twice each: half distinct, 2 of the 6 pairs the same.
        TestUtil.Close(2.0 / 6, StepMetrics.Compute(new StepMetricsInput { CorrectResponsesByGroup = [[a, a, b, b]] }).SameCorrectPairShare);
    }

    [Fact]
    public void An_empty_step_has_zero_metrics_not_nan()
    {
        var m = StepMetrics.Compute(new StepMetricsInput());
        Assert.All(m.ToDictionary().Values, v => Assert.False(double.IsNaN(v)));
    }

    [Fact]
    public void Advantages_must_match_responses() =>
        Assert.Throws<ArgumentException>(() => StepMetrics.Compute(new StepMetricsInput { Responses = [new ResponseOutcome(1, 0, true, 1, false)] }));
}
