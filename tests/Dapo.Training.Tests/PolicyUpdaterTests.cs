using Dapo.Training;
using Dapo.Core.Loss;
using Dapo.Core.Options;
using Dapo.Torch;
using static Dapo.Training.Tests.TrainingFixtures;

namespace Dapo.Training.Tests;

public sealed class PolicyUpdaterTests
{
    /// <summary>Two groups sampled from <paramref name="model"/> with fixed rewards: group 0 informative (slots 0
    /// and 2 rewarded), group 1 all wrong (or, with <paramref name="bothInformative"/>, slot 1 right).</summary>
    private static TrainingGroup[] ToyBatch(PolicyModel model, bool bothInformative = false)
    {
        var generator = Generator();
        var settings = new RolloutSettings(4, 16, 1.0, 1.0, Seed: 9);
        var groups = generator.Generate(model, [Prompt("12+7", "19"), Prompt("3*4-5", "7")], settings);
        double[][] rewards = [[1, -1, 1, -1], [-1, bothInformative ? 1 : -1, -1, -1]];
        return groups.Select((g, i) => new TrainingGroup(g.Prompt.Tokens,
            g.Slots.Select((s, k) => new TrainingResponse(s.Tokens, s.LogProbs, rewards[i][k], s.Truncated)).ToArray())).ToArray();
    }

    /// <summary>The policy loss of <paramref name="groups"/> under the model's current weights, with the recorded
    /// behaviour log-probabilities as π_old.</summary>
    private static double Loss(PolicyModel model, PolicyUpdater updater, TrainingGroup[] groups)
    {
        var sequences = groups.SelectMany(g => g.Responses.Select(r => ScoredSequence.FromPromptAndResponse(g.PromptTokens, r.Tokens))).ToArray();
        using var score = model.Score(sequences, updater.Options.Temperature);
        var responses = groups.SelectMany(g => g.Responses).ToArray();
        var batch = PolicyLossBatch.FromSequenceAdvantages(score.LogProbs, responses.SelectMany(r => r.BehaviourLogProbs).ToArray(),
            updater.Advantages(groups), new bool[score.Count].Select(_ => true).ToArray(), responses.Select(r => r.Tokens.Length).ToArray());
        return new DecoupledClipLoss(PolicyLossSettings.FromOptions(updater.Options)).Compute(batch).Loss;
    }

    [Fact]
    public void Updates_drive_the_loss_down_on_a_fixed_batch()
    {
        using var model = TinyModel();
        // Wide clip range so that the surrogate keeps its gradient over a few updates.
        var options = Options with { ClipRatioLow = 0.9, ClipRatioHigh = 5.0, LearningRate = 3e-3 };
        using var optimizer = PolicyUpdater.CreateOptimizer(model, options);
        var updater = new PolicyUpdater(model, optimizer, options);
        var groups = ToyBatch(model);
        var before = Loss(model, updater, groups);
        Assert.True(double.IsFinite(before));
        PolicyUpdateResult? result = null;
        for (var step = 0; step < 5; step++) result = updater.Update(groups, step);
        var after = Loss(model, updater, groups);
        Assert.True(after < before - 0.05, $"loss {before} -> {after}");
        Assert.Single(result!.Updates);
        Assert.True(result.GradNorm > 0);
        Assert.Equal(8, result.Advantages.Length);
        Assert.Equal(groups.Sum(g => g.Responses.Sum(r => r.Tokens.Length)), result.Entropies.Length);
    }

    [Fact]
    public void A_group_with_equal_rewards_contributes_nothing()
    {
        using var model = TinyModel();
        using var optimizer = PolicyUpdater.CreateOptimizer(model, Options);
        var updater = new PolicyUpdater(model, optimizer, Options);
        var uninformative = ToyBatch(model)[1..];
        Assert.All(updater.Advantages(uninformative), a => Assert.Equal(0.0, a));

        var weights = model.Parameters.Select(p => model.ReadParameter(p.Index)).ToArray();
        var result = updater.Update(uninformative, 0);
        Assert.Equal(0.0, result.GradNorm);
        Assert.Equal(0.0, result.Loss);
        for (var i = 0; i < weights.Length; i++) Assert.Equal(weights[i], model.ReadParameter(i)); // no decay in Options
    }

    [Fact]
    public void Micro_batches_give_the_update_of_the_whole_mini_batch()
    {
        var options = Options with { LossAggregation = LossAggregations.TokenMean, MiniBatchesPerStep = 2 };
        using var whole = TinyModel();
        using var split = TinyModel();
        var groups = ToyBatch(whole, bothInformative: true);
        using var optimizerWhole = PolicyUpdater.CreateOptimizer(whole, options);
        using var optimizerSplit = PolicyUpdater.CreateOptimizer(split, options);
        var a = new PolicyUpdater(whole, optimizerWhole, options).Update(groups, 0);
        var b = new PolicyUpdater(split, optimizerSplit, options, maxTokensPerMicroBatch: 20).Update(groups, 0);
        Assert.Equal(2, a.Updates.Count);
        // Same loss and same gradient norm for both mini-batches; the second also starts from the weights the first
        // update left, so it checks that the two updates agreed.
        for (var u = 0; u < 2; u++)
        {
            Assert.True(a.Updates[u].GradNorm > 0);
            Assert.Equal(a.Updates[u].PolicyGradientLoss, b.Updates[u].PolicyGradientLoss, 1e-6);
            Assert.Equal(a.Updates[u].GradNorm, b.Updates[u].GradNorm, 1e-5 * a.Updates[u].GradNorm);
        }
        Assert.Equal(a.Entropies.Length, b.Entropies.Length);
    }

    [Fact]
    public void Later_epochs_train_again_on_the_tokens_the_first_moved()
    {
        var options = Options with { LearningRate = 3e-3, PpoEpochs = 3 };
        using var once = TinyModel();
        using var thrice = TinyModel();
        var groups = ToyBatch(once);
        using var optimizerOnce = PolicyUpdater.CreateOptimizer(once, options);
        using var optimizerThrice = PolicyUpdater.CreateOptimizer(thrice, options);
        var a = new PolicyUpdater(once, optimizerOnce, options with { PpoEpochs = 1 }).Update(groups, 0);
        var b = new PolicyUpdater(thrice, optimizerThrice, options).Update(groups, 0);

        Assert.Single(a.Updates);
        Assert.Equal(3, b.Updates.Count);
        // The first pass is the one-epoch update: on-policy, ratio 1.
        Assert.Equal(a.Updates[0].PolicyGradientLoss, b.Updates[0].PolicyGradientLoss, 1e-6);
        Assert.True(Math.Abs(b.Updates[0].Diagnostics.ApproxKl) < 1e-4, $"first pass KL {b.Updates[0].Diagnostics.ApproxKl}");
        // Later passes see the policy the first moved on these very tokens.
        Assert.True(Math.Abs(b.Updates[2].Diagnostics.ApproxKl) > 1e-3, $"third pass KL {b.Updates[2].Diagnostics.ApproxKl}");
        var updater = new PolicyUpdater(once, optimizerOnce, options);
        Assert.True(Loss(thrice, updater, groups) < Loss(once, updater, groups));
        // Each trained token's entropy is reported once.
        Assert.Equal(a.Entropies.Length, b.Entropies.Length);
        Assert.Equal(3 * a.ScoredTokens, b.ScoredTokens);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Mini_batches_hold_whole_groups_or_a_share_of_every_group(bool spread)
    {
        var options = Options with { MiniBatchesPerStep = 2, SpreadGroupsOverMiniBatches = spread };
        using var model = TinyModel();
        var groups = ToyBatch(model, bothInformative: true);
        using var optimizer = PolicyUpdater.CreateOptimizer(model, options);
        var result = new PolicyUpdater(model, optimizer, options).Update(groups, 0);

        // Whole groups: group 0, then group 1. Spread: slots 0–1 of both groups, then slots 2–3.
        (int Group, int Slot)[][] expected = spread
            ? [[(0, 0), (1, 0), (0, 1), (1, 1)], [(0, 2), (1, 2), (0, 3), (1, 3)]]
            : [[(0, 0), (0, 1), (0, 2), (0, 3)], [(1, 0), (1, 1), (1, 2), (1, 3)]];
        Assert.Equal(2, result.Updates.Count);
        for (var u = 0; u < 2; u++)
        {
            var responses = expected[u].Select(x => (Response: groups[x.Group].Responses[x.Slot], Advantage: result.Advantages[4 * x.Group + x.Slot])).ToArray();
            var tokens = responses.Sum(r => r.Response.Tokens.Length);
            Assert.Equal(tokens, result.Updates[u].Diagnostics.TokenCount);
            if (u == 0)
            {
                // The first update is on-policy (ratio 1), so its token-mean loss is −Σ A·length / Σ length.
                var loss = -responses.Sum(r => r.Advantage * r.Response.Tokens.Length) / tokens;
                Assert.Equal(loss, result.Updates[0].PolicyGradientLoss, 1e-4);
            }
        }
    }

    [Fact]
    public void A_kl_term_is_refused_up_front()
    {
        using var model = TinyModel();
        using var optimizer = new AdamW(model);
        var e = Assert.Throws<NotSupportedException>(() => new PolicyUpdater(model, optimizer, Options with { KlCoefficient = 0.001 }));
        Assert.Contains("KlCoefficient", e.Message);
    }
}
