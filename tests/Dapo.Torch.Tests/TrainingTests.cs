using Xunit.Abstractions;

namespace Dapo.Torch.Tests;

public sealed class TrainingTests(ITestOutputHelper output)
{
    private static List<ScoredSequence> Batch(int seed)
    {
        var rng = new Random(seed);
        return TinyModels.Sequences([10, 14, 7], seed: seed)
            .Select(s => new ScoredSequence(s, s.Select((_, t) => t >= 2 && rng.NextDouble() < 0.8).ToArray()))
            .ToList();
    }

    private static double Objective(PolicyModel model, List<ScoredSequence> batch, float[] c, double temperature)
    {
        using var score = model.Score(batch, temperature);
        return score.LogProbs.Select((lp, i) => (double)lp * c[i]).Sum();
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.7)]
    public void Backward_matches_finite_differences(double temperature)
    {
        using var model = TinyModels.Create(seed: 21);
        var batch = Batch(3);
        float[] c;
        using (var score = model.Score(batch, temperature, requiresGrad: true))
        {
            var rng = new Random(8);
            c = Enumerable.Range(0, score.Count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            score.Backward(c);
        }

        var checkedCount = 0;
        foreach (var name in new[] { "embed", "layers.0.w_qkv", "layers.1.w_o", "layers.1.w_down", "final_norm", "layers.0.b_qkv" })
        {
            var p = model.Parameters.Single(x => x.Name == name);
            var grad = model.ReadGradient(p.Index);
            var values = model.ReadParameter(p.Index);
            // The three largest-gradient entries: relative error is meaningful where the gradient is not tiny.
            foreach (var i in Enumerable.Range(0, grad.Length).OrderByDescending(i => Math.Abs(grad[i])).Take(3))
            {
                const float h = 2e-3f;
                var perturbed = (float[])values.Clone();
                perturbed[i] = values[i] + h;
                model.WriteParameter(p.Index, perturbed);
                var up = Objective(model, batch, c, temperature);
                perturbed[i] = values[i] - h;
                model.WriteParameter(p.Index, perturbed);
                var down = Objective(model, batch, c, temperature);
                model.WriteParameter(p.Index, values);
                var numeric = (up - down) / (2 * h);
                var relative = Math.Abs(numeric - grad[i]) / Math.Max(Math.Abs(numeric), Math.Abs(grad[i]));
                output.WriteLine($"{name}[{i}]: analytic {grad[i]:E4}, numeric {numeric:E4}, relative error {relative:E2}");
                Assert.True(Math.Abs(grad[i]) > 1e-3, $"{name}[{i}] gradient {grad[i]} too small to check");
                Assert.True(relative <= 1e-2, $"{name}[{i}]: analytic {grad[i]}, numeric {numeric}");
                checkedCount++;
            }
        }
        Assert.Equal(18, checkedCount);
    }

    [Fact]
    public void Zero_coefficients_give_zero_gradient()
    {
        using var model = TinyModels.Create(seed: 22);
        var batch = Batch(4);
        using (var score = model.Score(batch, requiresGrad: true))
            score.Backward(new float[score.Count]);
        foreach (var p in model.Parameters)
            Assert.All(model.ReadGradient(p.Index), g => Assert.Equal(0f, g));

        // A token whose coefficient is zero contributes nothing: changing the last token of a sequence (which is no
        // one's context) leaves the gradient as it was when its coefficient is zero.
        var changed = batch.Select(s => s with { Tokens = (int[])s.Tokens.Clone(), ResponseMask = (bool[])s.ResponseMask.Clone() }).ToList();
        foreach (var s in batch.Concat(changed)) s.ResponseMask[^1] = true;
        changed[0].Tokens[^1] = (changed[0].Tokens[^1] + 5) % 32;
        float[][] Gradient(List<ScoredSequence> seqs)
        {
            model.ZeroGrad();
            using var score = model.Score(seqs, requiresGrad: true);
            var c = Enumerable.Repeat(0.5f, score.Count).ToArray();
            c[score.RangeOf(0).End.Value - 1] = 0f;
            score.Backward(c);
            return model.Parameters.Select(p => model.ReadGradient(p.Index)).ToArray();
        }
        var a = Gradient(batch);
        var b = Gradient(changed);
        Assert.Contains(a, g => g.Any(x => x != 0f));
        for (var i = 0; i < a.Length; i++) Assert.Equal(a[i], b[i]);
    }

    [Fact]
    public void Supervised_training_memorises_fixed_sequences()
    {
        // 32 sequences, each starting with its own id token so that all of it can be memorised.
        using var model = PolicyModel.Create(TinyModels.Config(seed: 31) with { VocabSize = 48, DModel = 64, DFf = 128 });
        var rng = new Random(5);
        var sequences = Enumerable.Range(0, 32)
            .Select(i => new[] { i }.Concat(Enumerable.Range(0, 15).Select(_ => 32 + rng.Next(16))).ToArray())
            .Select(s => new ScoredSequence(s, s.Select((_, t) => t > 0).ToArray()))
            .ToList();
        using var optimizer = new AdamW(model, new AdamWOptions { WeightDecay = 0.0 });

        double MeanNll()
        {
            using var score = model.Score(sequences);
            return -score.LogProbs.Average();
        }
        var before = MeanNll();
        for (var step = 0; step < 150; step++)
        {
            using var score = model.Score(sequences, requiresGrad: true);
            score.Backward(Enumerable.Repeat(-1f / score.Count, score.Count).ToArray());
            var result = optimizer.Step(3e-3);
            Assert.True(result.Applied);
        }
        var after = MeanNll();
        output.WriteLine($"mean NLL {before:F4} -> {after:F4} ({100 * (1 - after / before):F1}% lower)");
        Assert.True(after <= 0.1 * before, $"mean NLL {before} -> {after}");
        Assert.Equal(150, optimizer.StepCount);
    }

    /// <summary>Small tensors take libtorch's ops; from 2^22 elements (a real vocabulary's head) the fused one-pass update.</summary>
    [Theory]
    [InlineData(32, "layers.1.w_gate_up")]
    [InlineData(131_072, "lm_head")]  // 131,072 x 32 = 2^22 elements: the fused path
    public void AdamW_step_follows_the_reference_formula(int vocab, string parameter)
    {
        using var model = PolicyModel.Create(TinyModels.Config(seed: 23) with { VocabSize = vocab });
        var options = new AdamWOptions { Beta1 = 0.8, Beta2 = 0.95, Eps = 1e-6, WeightDecay = 0.1, MaxGradNorm = 0.05 };
        using var optimizer = new AdamW(model, options);
        var p = model.Parameters.Single(x => x.Name == parameter);
        var m = new double[p.ElementCount];
        var v = new double[p.ElementCount];
        const double lr = 1e-2;
        for (var step = 1; step <= 3; step++)
        {
            using (var score = model.Score(Batch(step), requiresGrad: true))
                score.Backward(Enumerable.Repeat(-1f / score.Count, score.Count).ToArray());
            var grads = model.Parameters.Select(x => model.ReadGradient(x.Index)).ToArray();
            var norm = Math.Sqrt(grads.Sum(g => g.Sum(x => (double)x * x)));
            var clip = Math.Min(1.0, options.MaxGradNorm / (norm + 1e-6));
            var g = grads[p.Index];
            var before = model.ReadParameter(p.Index);
            var result = optimizer.Step(lr);
            Assert.Equal(norm, result.GradNorm, 1e-4 * norm);
            Assert.True(clip < 1.0, "the test should exercise clipping");
            var after = model.ReadParameter(p.Index);
            for (var i = 0; i < g.Length; i++)
            {
                var gi = g[i] * clip;
                m[i] = 0.8 * m[i] + 0.2 * gi;
                v[i] = 0.95 * v[i] + 0.05 * gi * gi;
                var mHat = m[i] / (1 - Math.Pow(0.8, step));
                var vHat = v[i] / (1 - Math.Pow(0.95, step));
                var expected = before[i] * (1 - lr * 0.1) - lr * mHat / (Math.Sqrt(vHat) + 1e-6);
                Assert.Equal(expected, after[i], 2e-6);
            }
            // The step consumed the gradient.
            Assert.All(model.ReadGradient(p.Index), x => Assert.Equal(0f, x));
        }
    }

    [Fact]
    public void A_non_finite_gradient_skips_the_update()
    {
        using var model = TinyModels.Create(seed: 24);
        using var optimizer = new AdamW(model);
        var before = model.ExportWeights().Take();
        using (var score = model.Score(Batch(1), requiresGrad: true))
            score.Backward(Enumerable.Repeat(float.NaN, score.Count).ToArray());
        var result = optimizer.Step(1e-2);
        Assert.False(result.Applied);
        Assert.True(double.IsNaN(result.GradNorm));
        Assert.Equal(before, model.ExportWeights().Take());
        Assert.Equal(0, optimizer.StepCount);
    }

    [Fact]
    public void Gradients_accumulate_over_several_backward_passes()
    {
        using var model = TinyModels.Create(seed: 25);
        var batch = Batch(6);
        float[] Once(List<ScoredSequence> seqs, float c)
        {
            using var score = model.Score(seqs, requiresGrad: true);
            score.Backward(Enumerable.Repeat(c, score.Count).ToArray());
            return model.ReadGradient(3);
        }
        var single = Once(batch, 0.3f);
        model.ZeroGrad();
        Once(batch.Take(1).ToList(), 0.3f);
        var accumulated = Once(batch.Skip(1).ToList(), 0.3f);
        for (var i = 0; i < single.Length; i++) Assert.Equal(single[i], accumulated[i], 1e-5);
    }
}
