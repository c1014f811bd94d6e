namespace Dapo.Torch.Tests;

[CollectionDefinition(nameof(ThreadCountTests), DisableParallelization = true)]
public sealed class ThreadCountTestCollection;

/// <summary>The engine's thread count is process-wide: these tests change it, so they run alone.</summary>
[Collection(nameof(ThreadCountTests))]
public sealed class ThreadCountTests
{
    [Theory]
    [InlineData(1.0)]
    [InlineData(0.9)]
    public void A_large_vocabulary_samples_the_same_tokens_on_one_thread_as_on_several(double topP)
    {
        // 8,192 tokens a row: the draws are split across threads a few rows at a time (see sampling.cpp's choose).
        using var model = PolicyModel.Create(TinyModels.Config(seed: 12) with { VocabSize = 8192 });
        var prompts = TinyModels.Sequences([3, 9, 1, 6], vocab: 8192, seed: 4);
        var options = new SampleOptions { SamplesPerPrompt = 4, MaxNewTokens = 12, TopP = topP, Seed = 8 };
        var threads = TorchEngine.Threads;
        try
        {
            TorchEngine.Threads = 1;
            var single = model.Sample(prompts, options);
            TorchEngine.Threads = 3;
            var several = model.Sample(prompts, options);
            Assert.Equal(single.Select(r => r.Tokens), several.Select(r => r.Tokens));
            for (var i = 0; i < single.Count; i++)
                Assert.Equal(single[i].LogProbs, several[i].LogProbs, (a, b) => Math.Abs(a - b) <= 1e-5f);
            // The draws must be able to differ: another seed gives other tokens.
            var other = model.Sample(prompts, options with { Seed = 9 });
            Assert.NotEqual(single.Select(r => string.Join(',', r.Tokens)), other.Select(r => string.Join(',', r.Tokens)));
        }
        finally
        {
            TorchEngine.Threads = threads;
        }
    }
}
