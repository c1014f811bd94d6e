namespace Dapo.Torch.Tests;

public sealed class SamplingTests
{
    private static readonly int[][] Prompts = TinyModels.Sequences([3, 9, 1, 6], seed: 11);

    [Theory]
    [InlineData(1.0, 1.0)]
    [InlineData(0.7, 1.0)]
    [InlineData(0.7, 0.8)]
    public void Scoring_reproduces_the_logprobs_recorded_while_sampling(double temperature, double topP)
    {
        using var model = TinyModels.Create();
        var options = new SampleOptions
        {
            SamplesPerPrompt = 3, MaxNewTokens = 40, Temperature = temperature, TopP = topP, Seed = 5, StopTokens = [2],
        };
        var responses = model.Sample(Prompts, options);
        Assert.Equal(Prompts.Length * 3, responses.Count);

        using var scored = TinyModels.ScoreResponses(model, Prompts, responses, temperature);
        var maxDiff = 0.0;
        for (var i = 0; i < responses.Count; i++)
        {
            var recorded = responses[i].LogProbs;
            var rescored = scored.LogProbs[scored.RangeOf(i)];
            Assert.Equal(recorded.Length, rescored.Length);
            for (var t = 0; t < recorded.Length; t++) maxDiff = Math.Max(maxDiff, Math.Abs(recorded[t] - rescored[t]));
        }
        Assert.True(maxDiff <= 1e-4, $"max |logp_sample - logp_score| = {maxDiff}");
    }

    [Fact]
    public void Greedy_decoding_with_the_cache_matches_full_recomputation()
    {
        using var model = TinyModels.Create(seed: 3);
        var options = new SampleOptions { MaxNewTokens = 48, Temperature = 0 };
        var cached = model.Sample(Prompts, options);
        var recomputed = model.Sample(Prompts, options with { UseKvCache = false });
        for (var i = 0; i < Prompts.Length; i++)
        {
            Assert.Equal(recomputed[i].Tokens, cached[i].Tokens);
            for (var t = 0; t < cached[i].LogProbs.Length; t++)
                Assert.Equal(recomputed[i].LogProbs[t], cached[i].LogProbs[t], 1e-4);
        }
        // A random model's greedy path should not be one repeated token everywhere: the test must be able to fail.
        Assert.True(cached.SelectMany(r => r.Tokens).Distinct().Count() > 3);
    }

    [Fact]
    public void Greedy_tokens_are_the_argmax_of_the_scored_distribution()
    {
        using var model = TinyModels.Create(seed: 4);
        var responses = model.Sample(Prompts, new SampleOptions { MaxNewTokens = 12, Temperature = 0 });
        // With top-p this small only the most likely token can be drawn, so sampling must agree with greedy.
        var nucleus = model.Sample(Prompts, new SampleOptions { MaxNewTokens = 12, TopP = 1e-6, Seed = 99 });
        for (var i = 0; i < Prompts.Length; i++) Assert.Equal(responses[i].Tokens, nucleus[i].Tokens);
    }

    [Fact]
    public void Same_seed_gives_same_samples_and_another_seed_differs()
    {
        using var model = TinyModels.Create();
        var options = new SampleOptions { SamplesPerPrompt = 4, MaxNewTokens = 30, Seed = 42 };
        var a = model.Sample(Prompts, options);
        var b = model.Sample(Prompts, options);
        var c = model.Sample(Prompts, options with { Seed = 43 });
        Assert.Equal(a.Select(r => r.Tokens), b.Select(r => r.Tokens));
        Assert.Equal(a.Select(r => r.LogProbs), b.Select(r => r.LogProbs));
        Assert.NotEqual(a.Select(r => string.Join(',', r.Tokens)), c.Select(r => string.Join(',', r.Tokens)));
        // Samples of one prompt differ from each other.
        Assert.True(a.Take(4).Select(r => string.Join(',', r.Tokens)).Distinct().Count() > 1);
    }

    [Fact]
    public void Prompt_seeds_make_a_prompts_samples_independent_of_the_batch()
    {
        using var model = TinyModels.Create();
        var options = new SampleOptions { SamplesPerPrompt = 3, MaxNewTokens = 20, Seed = 1 };
        var batch = model.Sample(Prompts, options with { PromptSeeds = Enumerable.Range(0, Prompts.Length).Select(i => (ulong)(100 + i)).ToArray() });
        var last = Prompts.Length - 1;
        var alone = model.Sample([Prompts[last]], options with { PromptSeeds = [(ulong)(100 + last)] });
        Assert.Equal(alone.Select(r => r.Tokens), batch.Skip(3 * last).Select(r => r.Tokens));
        // Log-probabilities agree to rounding (padding changes the shapes of the batched matmuls).
        var batched = batch.Skip(3 * last).SelectMany(r => r.LogProbs).ToArray();
        Assert.All(alone.SelectMany(r => r.LogProbs).Select((lp, i) => Math.Abs(lp - batched[i])), d => Assert.True(d < 1e-5, $"{d}"));
        // Without prompt seeds the same prompt alone draws by batch index 0..2, not 3·last..: other samples.
        var plain = model.Sample([Prompts[last]], options);
        Assert.NotEqual(alone.Select(r => string.Join(',', r.Tokens)), plain.Select(r => string.Join(',', r.Tokens)));
        Assert.Throws<ArgumentException>(() => model.Sample(Prompts, options with { PromptSeeds = [1UL] }));
    }

    [Fact]
    public void Finished_samples_do_not_change_the_others()
    {
        using var model = TinyModels.Create(seed: 9);
        // Stop tokens make most samples end early, so the batch sheds rows while the rest go on. Sample k draws its
        // randomness by (seed, k): the first prompts of a batch keep their sample indices when prompts are removed
        // from its end, so their samples must come out the same whatever else shares the batch.
        var options = new SampleOptions { SamplesPerPrompt = 8, MaxNewTokens = 40, Seed = 17, StopTokens = [1, 2, 3, 4] };
        var together = model.Sample(Prompts, options);
        Assert.Contains(together, r => !r.Truncated && r.Tokens.Length < 10);
        Assert.Contains(together, r => r.Tokens.Length > 20);
        for (var prefix = 1; prefix < Prompts.Length; prefix++)
        {
            var fewer = model.Sample(Prompts[..prefix], options);
            for (var k = 0; k < fewer.Count; k++)
            {
                Assert.Equal(together[k].Tokens, fewer[k].Tokens);
                Assert.Equal(together[k].Truncated, fewer[k].Truncated);
                for (var t = 0; t < fewer[k].LogProbs.Length; t++)
                    Assert.Equal(together[k].LogProbs[t], fewer[k].LogProbs[t], 1e-5);
            }
        }
    }

    [Fact]
    public void Stop_tokens_end_a_response_and_the_limit_truncates_it()
    {
        using var model = TinyModels.Create(seed: 5);
        var free = model.Sample(Prompts, new SampleOptions { SamplesPerPrompt = 4, MaxNewTokens = 20, Seed = 1 });
        Assert.All(free, r => Assert.Equal(20, r.Tokens.Length));
        Assert.All(free, r => Assert.True(r.Truncated));

        int[] stops = [0, 1, 2, 3, 4, 5, 6, 7];
        var stopped = model.Sample(Prompts, new SampleOptions { SamplesPerPrompt = 4, MaxNewTokens = 20, Seed = 1, StopTokens = stops });
        foreach (var r in stopped)
        {
            if (r.Truncated)
            {
                Assert.Equal(20, r.Tokens.Length);
                Assert.DoesNotContain(r.Tokens, stops.Contains);
            }
            else
            {
                Assert.Contains(r.Tokens[^1], stops);
                Assert.DoesNotContain(r.Tokens[..^1], stops.Contains);
            }
        }
        Assert.Contains(stopped, r => !r.Truncated);
    }

    [Fact]
    public void Sampling_follows_the_model_distribution()
    {
        // A one-token response from a fixed prompt: the empirical frequencies must match exp(logp) of the scored
        // distribution; this is where a biased sampler (off-by-one in the CDF, wrong temperature) shows.
        using var model = TinyModels.Create(seed: 12);
        int[] prompt = [5, 9, 14];
        var draws = model.Sample([prompt], new SampleOptions { SamplesPerPrompt = 4000, MaxNewTokens = 1, Temperature = 0.7, Seed = 3 });
        var counts = draws.GroupBy(r => r.Tokens[0]).ToDictionary(g => g.Key, g => g.Count());
        var probs = draws.DistinctBy(r => r.Tokens[0]).ToDictionary(r => r.Tokens[0], r => Math.Exp(r.LogProbs[0]));
        foreach (var (token, p) in probs.Where(kv => kv.Value > 0.05))
        {
            var freq = counts[token] / 4000.0;
            var sigma = Math.Sqrt(p * (1 - p) / 4000);
            Assert.True(Math.Abs(freq - p) < 5 * sigma, $"token {token}: frequency {freq:F4}, probability {p:F4}");
        }
    }
}
