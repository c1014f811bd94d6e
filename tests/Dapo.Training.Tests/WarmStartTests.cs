using Dapo.Training;
using Dapo.Core.Data.Synthetic;
using static Dapo.Training.Tests.TrainingFixtures;

namespace Dapo.Training.Tests;

public sealed class WarmStartTests
{
    private static SupervisedExample[] Examples(int count) => SyntheticMathTask.Generate(1, SyntheticSplit.Train, count, 4)
        .Select(p => new SupervisedExample(Encoder.EncodePrompt(p.Problem), Encoder.EncodeResponse(p.Solution))).ToArray();

    [Fact]
    public void Supervised_steps_lower_the_nll()
    {
        using var model = TinyModel();
        var examples = Examples(32);
        var settings = new WarmStartSettings { MaxSteps = 30, BatchSize = 16, LearningRate = 3e-3, WarmupSteps = 3 };
        using var optimizer = WarmStart.CreateOptimizer(model, settings);
        var before = WarmStart.MeanNll(model, examples);
        var reports = new List<WarmStartProgress>();
        var result = WarmStart.Run(model, optimizer, examples, settings, progress: reports.Add);
        var after = WarmStart.MeanNll(model, examples);
        Assert.True(after < before - 1.0, $"NLL {before:F3} -> {after:F3}");
        Assert.Equal(WarmStartStop.StepBudget, result.Stop);
        Assert.Equal(30, result.Steps);
        Assert.Equal(Enumerable.Range(1, 30), reports.Select(r => r.Step));
        Assert.True(reports[^1].Loss < reports[0].Loss);
    }

    [Fact]
    public void Stops_when_held_out_accuracy_reaches_the_band()
    {
        using var model = TinyModel();
        var settings = new WarmStartSettings { MaxSteps = 100, BatchSize = 4, EvaluateEvery = 5, StopAtAccuracy = 0.15 };
        using var optimizer = WarmStart.CreateOptimizer(model, settings);
        var checks = new List<int>();
        var result = WarmStart.Run(model, optimizer, Examples(8), settings, step =>
        {
            checks.Add(step);
            return step >= 15 ? 0.2 : 0.05;
        });
        Assert.Equal([5, 10, 15], checks);
        Assert.Equal(WarmStartStop.ReachedAccuracy, result.Stop);
        Assert.Equal(15, result.Steps);
        Assert.Equal(0.2, result.HeldOutAccuracy);
        Assert.Equal("warm-start stopped at step 15 of at most 100: held-out accuracy 20.0 % reached the target of 15 %, leaving RL room to improve",
            result.Describe(settings));
        Assert.Equal("warm-start stopped at its step budget of 100 steps, held-out accuracy 5.0 % (target 15 % not reached)",
            (result with { Stop = WarmStartStop.StepBudget, HeldOutAccuracy = 0.05 }).Describe(settings));
    }
}
