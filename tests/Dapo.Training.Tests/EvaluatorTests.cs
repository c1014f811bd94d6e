using Dapo.Training;
using Dapo.Core.Rewards;
using static Dapo.Training.Tests.TrainingFixtures;

namespace Dapo.Training.Tests;

public sealed class EvaluatorTests
{
    /// <summary>A grader that a random policy passes about half the time: a response is "right" when its text has
    /// an even number of characters.</summary>
    private sealed class EvenLength : IRewardFunction
    {
        public RewardResult Score(string response, string groundTruth) =>
            response.Length % 2 == 0 ? RewardResult.Right(response) : RewardResult.Wrong(response);
    }

    [Fact]
    public void Avg_at_k_is_the_mean_correctness_of_the_samples()
    {
        using var model = TinyModel();
        var problems = new[] { Prompt("1+2", "3"), Prompt("4+5", "9"), Prompt("9-3", "6") }
            .Select((p, i) => p with { Source = i < 2 ? "a" : "b" }).ToArray();
        var settings = new EvaluationSettings(SamplesPerProblem: 8, Temperature: 1.0, TopP: 0.7, MaxNewTokens: 16, Seed: 2);
        var result = new Evaluator(Encoder, new EvenLength(), settings).Evaluate(model, problems);

        var correct = result.Samples.SelectMany(s => s).Select(s => s.Correct ? 1.0 : 0.0).ToArray();
        Assert.Equal(24, correct.Length);
        Assert.InRange(result.AverageAtK, 0.01, 0.99); // the grader makes the figure non-trivial
        Assert.Equal(correct.Average(), result.AverageAtK, 12);
        Assert.Equal(result.Samples[2].Count(s => s.Correct) / 8.0, result.AverageAtKBySource["b"], 12);
        Assert.Equal(result.Samples.Count(p => p.Any(s => s.Correct)) / 3.0, result.PassAtK, 12);
        Assert.Equal(8, result.K);

        // The same seed draws the same samples: a second evaluation of the same weights agrees exactly.
        Assert.Equal(result.AverageAtK, new Evaluator(Encoder, new EvenLength(), settings).Evaluate(model, problems).AverageAtK);
    }
}
