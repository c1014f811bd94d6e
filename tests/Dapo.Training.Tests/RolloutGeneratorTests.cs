using Dapo.Training;
using Dapo.Core.Rewards;
using Dapo.Torch;
using static Dapo.Training.Tests.TrainingFixtures;

namespace Dapo.Training.Tests;

public sealed class RolloutGeneratorTests
{
    private static readonly RolloutPrompt A = Prompt("12+7", "19"), B = Prompt("3*4-5", "7");

    private static RolloutSettings Settings(ulong seed) => new(GroupSize: 4, MaxNewTokens: 24, Temperature: 1.0, TopP: 1.0, seed);

    [Fact]
    public void Same_seed_gives_the_same_samples_whatever_the_batch()
    {
        using var model = TinyModel();
        var generator = Generator();
        var both = generator.Generate(model, [A, B], Settings(11));
        var alone = generator.Generate(model, [B], Settings(11));
        var again = generator.Generate(model, [A, B], Settings(11));
        var other = generator.Generate(model, [A, B], Settings(12));

        Assert.Equal(2, both.Count);
        Assert.All(both, g => Assert.Equal([0, 1, 2, 3], g.Slots.Select(s => s.Slot)));
        for (var k = 0; k < 4; k++)
        {
            Assert.Equal(both[1].Slots[k].Tokens, alone[0].Slots[k].Tokens);
            // Log-probabilities agree to rounding: padding changes the shapes of the batched matmuls.
            Assert.All(both[1].Slots[k].LogProbs.Zip(alone[0].Slots[k].LogProbs), x => Assert.Equal(x.First, x.Second, 1e-5));
            Assert.Equal(both[0].Slots[k].Tokens, again[0].Slots[k].Tokens);
        }
        Assert.NotEqual(both[0].Slots.SelectMany(s => s.Tokens), other[0].Slots.SelectMany(s => s.Tokens));
        // A work item of slots 2..3 has its own seed: re-running it reproduces it.
        Assert.Equal(both[0].Slots[3].Tokens, generator.GenerateSlots(model, A, 0, 4, Settings(11))[3].Tokens);
        var item = generator.GenerateSlots(model, A, 2, 2, Settings(11));
        Assert.Equal([2, 3], item.Select(s => s.Slot));
        Assert.Equal(item[1].Tokens, generator.GenerateSlots(model, A, 2, 2, Settings(11))[1].Tokens);
    }

    [Fact]
    public void Slots_carry_the_reward_function_and_the_overlong_penalty()
    {
        using var model = TinyModel();
        var generator = Generator();
        var scorer = new ResponseScorer(Options);
        foreach (var (group, slot) in generator.Generate(model, [A, B], Settings(3)).SelectMany(g => g.Slots.Select(s => (g, s))))
        {
            Assert.Equal(Encoder.DecodeResponse(slot.Tokens), slot.Text);
            Assert.Equal(slot.Tokens.Length, slot.LogProbs.Length);
            var expected = scorer.Score(slot.Text, group.Prompt.GroundTruth, slot.Tokens.Length, slot.Truncated);
            Assert.Equal(expected.Score, slot.Score);
            Assert.Equal(expected.Correct, slot.Correct);
            Assert.Equal(expected.OverlongPenalty, slot.OverlongPenalty);
            Assert.Equal(slot.Score + slot.OverlongPenalty, slot.Reward);
            Assert.Equal(slot.Truncated, slot.Length == 24 && slot.Tokens[^1] != Encoder.Tokenizer.EosId);
        }

        // Hand-made responses: right, wrong, and right but long enough to be punished (L_max 24, cache 8).
        int[] Response(string text) => Encoder.EncodeResponse(text);
        var right = generator.Score(0, new SampledResponse(0, Response("Answer: 19"), new float[11], false), "19");
        Assert.True(right.Correct);
        Assert.Equal(1.0, right.Score);
        Assert.Equal(0.0, right.OverlongPenalty);
        Assert.Equal(1.0, right.Reward);
        var wrong = generator.Score(1, new SampledResponse(0, Response("Answer: 18"), new float[11], false), "19");
        Assert.False(wrong.Correct);
        Assert.Equal(-1.0, wrong.Reward);
        var tokens = Response("12+7=19\n19+0=19\nAnswer: 19"); // 27 tokens > 24: beyond L_max
        var longRight = generator.Score(2, new SampledResponse(0, tokens[..20], new float[20], true), "19");
        Assert.Equal(-1.0, longRight.Score); // the answer line was cut off
        var penalised = generator.Score(3, new SampledResponse(0, Response("1+18=19\nAnswer: 19  "), new float[21], false), "19");
        Assert.True(penalised.Correct);
        Assert.Equal((16.0 - 21) / 8, penalised.OverlongPenalty, 12);
        Assert.Equal(1.0 + (16.0 - 21) / 8, penalised.Reward, 12);
    }
}
