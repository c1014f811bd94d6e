using Dapo.Core.Common;
using Dapo.Core.Loss;
using Dapo.Core.Options;
using Dapo.Core.Overlong;

namespace Dapo.Core.Tests;

public class PolicyLossTests
{
    public static TheoryData<string> Modes => new(LossAggregations.Registry.Names);

    public static TheoryData<string, double?> ModesWithAndWithoutDualClip()
    {
        var data = new TheoryData<string, double?>();
        foreach (var mode in LossAggregations.Registry.Names)
        {
            data.Add(mode, null);
            data.Add(mode, 1.3); // low enough that the cap binds on some tokens of the random batches
        }
        return data;
    }

    private static DecoupledClipLoss Loss(string mode = "token-mean", double? dual = null, double scale = 4, double low = 0.2,
        double high = 0.28, double beta = 0, string kl = "low_var_kl") =>
        new(new PolicyLossSettings(low, high, dual, mode, scale, beta, kl));

    /// <summary>Old log-prob −1 everywhere, new = old + δ.</summary>
    private static PolicyLossBatch Batch(double[] logRatios, float[] advantages, int[] lengths, bool[]? mask = null)
    {
        var old = Enumerable.Repeat(-1.0f, logRatios.Length).ToArray();
        var @new = logRatios.Select(d => (float)(-1.0 + d)).ToArray();
        return new PolicyLossBatch(@new, old, advantages, mask ?? Enumerable.Repeat(true, logRatios.Length).ToArray(), lengths);
    }

    // Three tokens: sequence 0 = tokens 0, 1; sequence 1 = token 2. ε_low 0.2, ε_high 0.28.
    //   t0: Â = +1, r = 1.5 → max(−1.5, −1.28) = −1.28, clipped above, gradient 0
    //   t1: Â = +1, r = 1.0 → max(−1, −1) = −1, gradient −Â r = −1
    //   t2: Â = −2, r = 0.5 → max(2 × 0.5, 2 × 0.8) = 1.6, clipped below, gradient 0
    private static PolicyLossBatch HandBatch() => Batch([Math.Log(1.5), 0, Math.Log(0.5)], [1f, 1f, -2f], [2, 1]);

    [Theory]
    // token-mean: (−1.28 − 1 + 1.6) / 3 = −0.68 / 3; w = 1/3 for every token
    [InlineData("token-mean", -0.68 / 3, -1.0 / 3)]
    // seq-mean-token-mean: sequences (−1.28 − 1) / 2 = −1.14 and 1.6; mean 0.23; w(t1) = 1 / (2 tokens × 2 sequences)
    [InlineData("seq-mean-token-mean", 0.23, -0.25)]
    // seq-mean-token-sum: sums −2.28 and 1.6; mean −0.34; w = 1/2
    [InlineData("seq-mean-token-sum", -0.34, -0.5)]
    // seq-mean-token-sum-norm (current verl), scale 4: (−2.28 + 1.6) / 4 = −0.17; w = 1 / 4
    [InlineData("seq-mean-token-sum-norm", -0.17, -0.25)]
    // dr-grpo, scale 4: −0.34 / 4 = −0.085; w = 1 / (2 × 4)
    [InlineData("dr-grpo", -0.085, -0.125)]
    public void Hand_computed_loss_and_coefficients(string mode, double expectedLoss, double expectedT1)
    {
        var result = Loss(mode).Compute(HandBatch());
        TestUtil.Close(expectedLoss, result.Loss, 1e-6, "loss");
        TestUtil.Close(expectedLoss, result.PolicyGradientLoss, 1e-6, "pg loss");
        Assert.Equal(0f, result.Coefficients[0]); // clipped above: no gradient
        TestUtil.Close(expectedT1, result.Coefficients[1], 1e-6, "coefficient of t1");
        Assert.Equal(0f, result.Coefficients[2]); // clipped below: no gradient
    }

    [Fact]
    public void Seq_mean_token_sum_norm_is_current_verl_and_dr_grpo_divides_by_the_sequences()
    {
        // Three sequences, scale factor 10:
        //   sequence 0: length 3, mask 1 1 0, losses 0.5  −1.0  7.0  → masked token sum −0.5
        //   sequence 1: length 2, mask 1 1,   losses 2.0   0.25      → masked token sum  2.25
        //   sequence 2: length 2, mask 0 0,   losses 9.0   9.0       → no unmasked token
        // current verl, torch.sum(seq_losses) / loss_scale_factor: (−0.5 + 2.25) / 10 = 0.175
        // dr-grpo, sequences with a token S = 2: 1.75 / (2 × 10) = 0.0875 (TRL, counting all 3 rows: 0.058333…)
        int[] lengths = [3, 2, 2];
        bool[] mask = [true, true, false, true, true, false, false];
        float[] losses = [0.5f, -1.0f, 7.0f, 2.0f, 0.25f, 9.0f, 9.0f];
        var verl = LossAggregations.Get("seq-mean-token-sum-norm");
        var drGrpo = LossAggregations.Get("dr-grpo");
        TestUtil.Close(0.175, LossAggregations.Aggregate(verl, losses, lengths, mask, 10), 1e-12, "seq-mean-token-sum-norm");
        TestUtil.Close(0.0875, LossAggregations.Aggregate(drGrpo, losses, lengths, mask, 10), 1e-12, "dr-grpo");
        Assert.Equal([0.1, 0.1, 0, 0.1, 0.1, 0, 0], LossAggregations.TokenWeights(verl, lengths, mask, 10));
        Assert.Equal([0.05, 0.05, 0, 0.05, 0.05, 0, 0], LossAggregations.TokenWeights(drGrpo, lengths, mask, 10));
        // Not divided by the number of sequences: one more sequence adds its token sum, nothing is averaged.
        TestUtil.Close(0.175 + 0.3, LossAggregations.Aggregate(verl, [.. losses, 3f], [.. lengths, 1], [.. mask, true], 10), 1e-12);
        Assert.Throws<ArgumentOutOfRangeException>(() => LossAggregations.TokenWeights(drGrpo, lengths, mask, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => LossAggregations.TokenWeights(verl, lengths, mask, double.NaN));
    }

    [Fact]
    public void Hand_computed_diagnostics()
    {
        var d = Loss().Compute(HandBatch()).Diagnostics;
        Assert.Equal(3, d.TokenCount);
        TestUtil.Close(2.0 / 3, d.ClipFraction, 1e-12);
        TestUtil.Close(1.0 / 3, d.ClipFractionUpper, 1e-12);
        TestUtil.Close(1.0 / 3, d.ClipFractionLower, 1e-12);
        Assert.Equal(0.0, d.DualClipFraction);
        // mean(−δ) = −(ln 1.5 + 0 + ln 0.5) / 3 = −ln 0.75 / 3 ≈ 0.0958940
        TestUtil.Close(-Math.Log(0.75) / 3, d.ApproxKl, 1e-7);
        TestUtil.Close((1.5 + 1 + 0.5) / 3, d.MeanRatio, 1e-7);
    }

    [Fact]
    public void Symmetric_clip_clips_where_clip_higher_does_not()
    {
        // Â = +1, r = 1.25: inside [0.8, 1.28] (DAPO) but above 1.2 (naive GRPO).
        var batch = Batch([Math.Log(1.25)], [1f], [1]);
        var dapo = Loss(high: 0.28).Compute(batch);
        TestUtil.Close(-1.25, dapo.Loss, 1e-6);
        TestUtil.Close(-1.25, dapo.Coefficients[0], 1e-6); // −Â r
        var grpo = Loss(high: 0.2).Compute(batch);
        TestUtil.Close(-1.2, grpo.Loss, 1e-6);
        Assert.Equal(0f, grpo.Coefficients[0]);
        Assert.Equal(1.0, grpo.Diagnostics.ClipFractionUpper);
    }

    [Fact]
    public void Dual_clip_caps_negative_advantage_losses()
    {
        // Â = −2, r = 5: max(10, 2 × 1.28 = 2.56) = 10, gradient −Â r = 10.
        var batch = Batch([Math.Log(5)], [-2f], [1]);
        var plain = Loss().Compute(batch);
        TestUtil.Close(10, plain.Loss, 1e-5);
        TestUtil.Close(10, plain.Coefficients[0], 1e-5);
        // c = 3: min(10, −Â c = 6) = 6, constant, so gradient 0.
        var capped = Loss(dual: 3).Compute(batch);
        TestUtil.Close(6, capped.Loss, 1e-12);
        Assert.Equal(0f, capped.Coefficients[0]);
        Assert.Equal(1.0, capped.Diagnostics.DualClipFraction);
        // c = 10: min(10, 20) = 10, not capped.
        var loose = Loss(dual: 10).Compute(batch);
        TestUtil.Close(10, loose.Loss, 1e-5);
        Assert.Equal(0.0, loose.Diagnostics.DualClipFraction);
    }

    [Fact]
    public void Log_ratio_is_clamped_to_20_before_exp()
    {
        // Â = −1, δ = 25 → clamped to 20: loss max(e^20, 1.28) = e^20, and no gradient through the clamp.
        var clamped = Loss().Compute(Batch([25], [-1f], [1]));
        TestUtil.Close(Math.Exp(20), clamped.Loss, Math.Exp(20) * 1e-12);
        Assert.Equal(0f, clamped.Coefficients[0]);
        TestUtil.Close(-20, clamped.Diagnostics.ApproxKl, 1e-12);
        // δ = 19 is inside the clamp: gradient −Â r = e^19 (relative float rounding of δ ≈ 1e-6).
        var inside = Loss().Compute(Batch([19], [-1f], [1]));
        TestUtil.Close(Math.Exp(19), inside.Coefficients[0], Math.Exp(19) * 1e-5);
    }

    [Theory]
    [MemberData(nameof(ModesWithAndWithoutDualClip))]
    public void Coefficients_match_finite_differences_of_the_loss(string mode, double? dual)
    {
        var rng = new DeterministicRandom(StableHash.Fnv1a64(mode) + (dual is null ? 0UL : 1UL));
        for (var trial = 0; trial < 5; trial++)
        {
            var batch = RandomBatch(rng, dualClip: dual);
            var loss = Loss(mode, dual, scale: 7);
            var result = loss.Compute(batch);
            var logProbs = batch.LogProbs.ToArray();
            for (var t = 0; t < logProbs.Length; t++)
            {
                var fd = FiniteDifference(loss, batch, logProbs, t);
                TestUtil.Close(fd, result.Coefficients[t], 2e-5 + 1e-4 * Math.Abs(fd), $"{mode} dual {dual} trial {trial} token {t}");
            }
        }
    }

    [Theory]
    [InlineData("low_var_kl")]
    [InlineData("kl")]
    [InlineData("mse")]
    [InlineData("abs")]
    public void Kl_to_reference_coefficients_match_finite_differences(string estimator)
    {
        var rng = new DeterministicRandom(99);
        var batch = RandomBatch(rng, withReference: true);
        var loss = Loss("seq-mean-token-mean", beta: 0.1, kl: estimator, high: 0.2);
        var result = loss.Compute(batch);
        Assert.NotEqual(0.0, result.KlLoss);
        TestUtil.Close(result.PolicyGradientLoss + 0.1 * result.KlLoss, result.Loss, 1e-12);
        var logProbs = batch.LogProbs.ToArray();
        for (var t = 0; t < logProbs.Length; t++)
        {
            var fd = FiniteDifference(loss, batch, logProbs, t);
            TestUtil.Close(fd, result.Coefficients[t], 2e-5 + 1e-4 * Math.Abs(fd), $"{estimator} token {t}");
        }
    }

    [Fact]
    public void K3_is_schulmans_estimator_with_verls_clamps()
    {
        var k3 = KlEstimators.Get("low_var_kl");
        // logp = −1, ref = −1.5: d = −0.5, e^d − d − 1 = e^−0.5 + 0.5 − 1 ≈ 0.1065307
        TestUtil.Close(Math.Exp(-0.5) + 0.5 - 1, k3.Value(-1, -1.5), 1e-12);
        TestUtil.Close(1 - Math.Exp(-0.5), k3.Derivative(-1, -1.5), 1e-12);
        // d = 5: e^5 − 6 ≈ 142 → clamped to 10, derivative 0
        Assert.Equal(10.0, k3.Value(-6, -1));
        Assert.Equal(0.0, k3.Derivative(-6, -1));
    }

    [Fact]
    public void Log_ratio_clamp_passes_the_gradient_on_its_bounds_as_torch_clamp()
    {
        // torch.clamp's backward passes the gradient where −20 ≤ δ ≤ 20, bounds included. Checked once by hand with
        // Debian's python3-torch 1.13 on verl's compute_policy_loss_vanilla (token-mean, one token):
        //   new −1 + 20 = 19, old −1, Â = −1 → dL/dlogp = e^20 ≈ 485165195;  new = next float above 19 → 0
        //   new −21,         old −1, Â = +1 → dL/dlogp = −e^−20 ≈ −2.0612e−9; new = next float below −21 → 0
        static PolicyLossBatch One(float @new, float advantage) =>
            new(new[] { @new }, new[] { -1f }, new[] { advantage }, new[] { true }, new[] { 1 });

        var upper = Loss().Compute(One(19f, -1f)); // δ = 20 exactly (19 − (−1) is exact in float and double)
        TestUtil.Close(Math.Exp(20), upper.Coefficients[0], Math.Exp(20) * 1e-7, "δ = 20");
        Assert.Equal(0f, Loss().Compute(One(MathF.BitIncrement(19f), -1f)).Coefficients[0]); // δ = 20 + 2^−19

        var lower = Loss().Compute(One(-21f, 1f)); // δ = −20 exactly
        TestUtil.Close(-Math.Exp(-20), lower.Coefficients[0], Math.Exp(-20) * 1e-7, "δ = −20");
        Assert.Equal(0f, Loss().Compute(One(MathF.BitDecrement(-21f), 1f)).Coefficients[0]); // δ = −20 − 2^−19

        // The rule itself.
        Assert.Equal(1.0, TorchClamp.Gradient(20, -20, 20));
        Assert.Equal(1.0, TorchClamp.Gradient(-20, -20, 20));
        Assert.Equal(0.0, TorchClamp.Gradient(Math.BitIncrement(20.0), -20, 20));
        Assert.Equal(0.0, TorchClamp.Gradient(Math.BitDecrement(-20.0), -20, 20));
        Assert.Equal(0.0, TorchClamp.Gradient(double.NaN, -20, 20));
    }

    [Fact]
    public void K3_clamps_pass_the_gradient_on_their_bounds_as_torch_clamp()
    {
        var k3 = KlEstimators.Get("low_var_kl");
        // Outer clamp at exactly 10: e^d − d − 1 = 10 at d ≈ −10.99998; find the double where it is exactly 10.
        var candidates = Enumerable.Range(-100, 201).Select(i => Nudge(-10.999983298020256, i))
            .Where(x => Math.Exp(x) - x - 1.0 == 10.0).ToList();
        Assert.True(candidates.Count > 0, "No double d near −11 with e^d − d − 1 exactly 10.");
        var exact = candidates[0];
        // logp = 0, ref = d: k3 = 10 on the bound → gradient passes: dk3/dlogp = 1 − e^d
        Assert.Equal(10.0, k3.Value(0, exact));
        TestUtil.Close(1 - Math.Exp(exact), k3.Derivative(0, exact), 1e-15, "k3 = 10");
        // one step further from 0, k3 > 10: clamped, gradient 0
        Assert.True(Math.Exp(Math.BitDecrement(exact)) - Math.BitDecrement(exact) - 1.0 > 10.0);
        Assert.Equal(0.0, k3.Derivative(0, Math.BitDecrement(exact)));
        // Inner clamp at d = ±20: passes, but k3 there (e^20 − 21 or 19 + e^−20) is beyond the outer bound, so 0 —
        // torch gives the same (checked by hand: −0 at ref − logp = ±20).
        Assert.Equal(0.0, k3.Derivative(0, 20));
        Assert.Equal(0.0, k3.Derivative(0, -20));
        Assert.Equal(10.0, k3.Value(0, 20));
        Assert.Equal(10.0, k3.Value(0, -20));

        static double Nudge(double x, int ulps)
        {
            for (; ulps > 0; ulps--) x = Math.BitIncrement(x);
            for (; ulps < 0; ulps++) x = Math.BitDecrement(x);
            return x;
        }
    }

    [Fact]
    public void Kl_needs_reference_log_probs()
    {
        var e = Assert.Throws<ArgumentException>(() => Loss(beta: 0.1).Compute(HandBatch()));
        Assert.Contains("reference", e.Message);
    }

    [Theory]
    [MemberData(nameof(ModesWithAndWithoutDualClip))]
    public void Matches_a_plain_padded_reference_written_like_verl(string mode, double? dual)
    {
        var rng = new DeterministicRandom(1234);
        for (var trial = 0; trial < 20; trial++)
        {
            var batch = RandomBatch(rng, dualClip: dual, avoidKinks: false);
            var result = Loss(mode, dual, scale: 7).Compute(batch);
            var reference = VerlReference(batch, mode, 0.2, 0.28, dual, 7);
            TestUtil.Close(reference.Loss, result.Loss, 1e-6 * (1 + Math.Abs(reference.Loss)), $"{mode} loss");
            TestUtil.Close(reference.ClipFraction, result.Diagnostics.ClipFraction, 1e-12, "clipfrac");
            TestUtil.Close(reference.PpoKl, result.Diagnostics.ApproxKl, 1e-9, "ppo_kl");
            TestUtil.Close(reference.DualFraction, result.Diagnostics.DualClipFraction, 1e-12, "dual clipfrac");
        }
    }

    [Fact]
    public void Token_mean_gives_every_token_equal_weight_whatever_its_sequence_length()
    {
        var rng = new DeterministicRandom(21);
        for (var trial = 0; trial < 200; trial++)
        {
            var lengths = Enumerable.Range(0, rng.NextInt(1, 8)).Select(_ => rng.NextInt(0, 30)).ToArray();
            var mask = Enumerable.Range(0, lengths.Sum()).Select(_ => rng.NextInt(4) != 0).ToArray();
            var weights = LossAggregations.TokenWeights(LossAggregations.Get("token-mean"), lengths, mask, 1);
            var tokens = mask.Count(m => m);
            for (var t = 0; t < mask.Length; t++) Assert.Equal(mask[t] ? 1.0 / tokens : 0.0, weights[t]);
        }
        // Same (Â, r) in a 1-token and a 9-token sequence: same coefficient on every token.
        var result = Loss().Compute(Batch(Enumerable.Repeat(0.1, 10).ToArray(), Enumerable.Repeat(1f, 10).ToArray(), [1, 9]));
        Assert.All(result.Coefficients, c => Assert.Equal(result.Coefficients[0], c));
    }

    [Fact]
    public void Seq_mean_token_mean_gives_every_sequence_equal_weight()
    {
        var rng = new DeterministicRandom(22);
        for (var trial = 0; trial < 200; trial++)
        {
            var lengths = Enumerable.Range(0, rng.NextInt(1, 8)).Select(_ => rng.NextInt(0, 30)).ToArray();
            var mask = Enumerable.Range(0, lengths.Sum()).Select(_ => rng.NextInt(4) != 0).ToArray();
            var weights = LossAggregations.TokenWeights(LossAggregations.Get("seq-mean-token-mean"), lengths, mask, 1);
            var sums = new List<double>();
            var offset = 0;
            foreach (var length in lengths)
            {
                if (mask.AsSpan(offset, length).Contains(true)) sums.Add(weights.AsSpan(offset, length).ToArray().Sum());
                offset += length;
            }
            Assert.All(sums, s => TestUtil.Close(1.0 / sums.Count, s, 1e-12));
        }
        // Same (Â, r) in a 1-token and a 9-token sequence: the lone token weighs 9 times each of the nine.
        var result = Loss("seq-mean-token-mean").Compute(Batch(Enumerable.Repeat(0.1, 10).ToArray(), Enumerable.Repeat(1f, 10).ToArray(), [1, 9]));
        TestUtil.Close(9 * result.Coefficients[1], result.Coefficients[0], 1e-6);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Micro_batches_with_the_mini_batch_weights_add_up_to_the_mini_batch(string mode)
    {
        var rng = new DeterministicRandom(31);
        var batch = RandomBatch(rng);
        var loss = Loss(mode, scale: 7);
        var whole = loss.Compute(batch);
        var weights = loss.TokenWeights(batch);
        double sum = 0;
        var coefficients = new List<float>();
        for (var first = 0; first < batch.SequenceCount; first += 2)
        {
            var (chunk, offset) = batch.Slice(first, Math.Min(2, batch.SequenceCount - first));
            var part = loss.Compute(chunk, weights.AsSpan(offset, chunk.TokenCount));
            sum += part.Loss;
            coefficients.AddRange(part.Coefficients);
        }
        TestUtil.Close(whole.Loss, sum, 1e-12);
        Assert.Equal(whole.Coefficients, coefficients);
    }

    [Fact]
    public void Overlong_filtered_sequences_contribute_nothing_and_leave_the_normaliser()
    {
        // Three sequences; the middle one is truncated. With filtering, the loss equals the loss of the batch
        // without it: token-mean divides by the 2 + 4 remaining tokens.
        double[] deltas = [0.1, -0.1, 0.3, 0.2, 0.05, 0.1, -0.05, 0.0, 0.15];
        float[] advantages = [1, 1, -1, -1, -1, 0.5f, 0.5f, 0.5f, 0.5f];
        int[] lengths = [2, 3, 4];
        var mask = Enumerable.Repeat(true, 9).ToArray();
        OverlongFiltering.MaskTruncated(mask, lengths, [false, true, false]);
        var filtered = Loss().Compute(Batch(deltas, advantages, lengths, mask));
        var without = Loss().Compute(Batch([.. deltas[..2], .. deltas[5..]], [.. advantages[..2], .. advantages[5..]], [2, 4]));
        TestUtil.Close(without.Loss, filtered.Loss, 1e-12);
        Assert.Equal([0f, 0f, 0f], filtered.Coefficients[2..5]);
        Assert.Equal([.. without.Coefficients[..2], .. without.Coefficients[2..]], [.. filtered.Coefficients[..2], .. filtered.Coefficients[5..]]);
        Assert.Equal(6, filtered.Diagnostics.TokenCount);
    }

    [Fact]
    public void An_all_masked_batch_has_zero_loss()
    {
        var result = Loss().Compute(Batch([0.1, 0.2], [1f, 1f], [2], [false, false]));
        Assert.Equal(0.0, result.Loss);
        Assert.Equal([0f, 0f], result.Coefficients);
        Assert.Equal(PolicyLossDiagnostics.Empty, result.Diagnostics);
    }

    [Fact]
    public void Settings_come_from_options_and_bad_shapes_are_refused()
    {
        var settings = PolicyLossSettings.FromOptions(new DapoOptions { DualClipRatio = 10, LossScaleFactor = 512 });
        Assert.Equal(new PolicyLossSettings(0.2, 0.28, 10, "token-mean", 512, 0, "low_var_kl"), settings);
        Assert.Throws<KeyNotFoundException>(() => new DecoupledClipLoss(settings with { Aggregation = "nope" }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DecoupledClipLoss(settings with { DualClipRatio = 1.0 }));
        var e = Assert.Throws<ArgumentException>(() => new PolicyLossBatch(new float[3], new float[3], new float[2], new bool[3], new[] { 3 }));
        Assert.Contains("advantages has 2 tokens", e.Message);
    }

    [Fact]
    public void Diagnostics_merge_by_token_count()
    {
        var a = new PolicyLossDiagnostics(1, 1, 1, 0, 0, 0.3, 1.0, 0, 0);
        var b = new PolicyLossDiagnostics(3, 0, 0, 0, 0, 0.1, 2.0, 0, 0);
        var merged = PolicyLossDiagnostics.Merge([a, b]);
        Assert.Equal(4, merged.TokenCount);
        TestUtil.Close(0.25, merged.ClipFraction); // (1 × 1 + 3 × 0) / 4
        TestUtil.Close(0.15, merged.ApproxKl); // (0.3 + 0.3) / 4
        TestUtil.Close(1.75, merged.MeanRatio); // (1 + 6) / 4
        Assert.Equal(0.25, merged.ToMetrics()["actor/pg_clipfrac"]);
    }

    [Fact]
    public void Up_clipped_probability_is_the_mean_old_probability_of_the_tokens_clipped_above()
    {
        // Four tokens, Â = +1 except t3: t0 (π_old 0.1) and t1 (π_old 0.3) rise past 1.28 and are clipped above;
        // t2 (π_old 0.9) stays inside; t3 (Â < 0, π_old 0.05) is clipped below and does not count.
        float[] old = [(float)Math.Log(0.1), (float)Math.Log(0.3), (float)Math.Log(0.9), (float)Math.Log(0.05)];
        double[] logRatios = [Math.Log(1.5), Math.Log(2.0), Math.Log(1.1), Math.Log(0.5)];
        var @new = old.Zip(logRatios, (o, d) => (float)(o + d)).ToArray();
        var batch = new PolicyLossBatch(@new, old, new[] { 1f, 1f, 1f, -1f }, new[] { true, true, true, true }, new[] { 4 });
        var d = Loss().Compute(batch).Diagnostics;
        TestUtil.Close(0.5, d.ClipFractionUpper, 1e-12);
        TestUtil.Close(0.2, d.UpClippedProbability, 1e-6); // (0.1 + 0.3) / 2
        TestUtil.Close(0.2, d.ToMetrics()["actor/pg_clipped_upper_prob"], 1e-6);
        // Nothing clipped above: 0, not a mean of nothing.
        Assert.Equal(0.0, Loss(high: 2.0).Compute(batch).Diagnostics.UpClippedProbability);
    }

    [Fact]
    public void Up_clipped_probability_merges_by_the_tokens_clipped_above()
    {
        // 10 tokens with 1 clipped above at mean 0.5, 40 tokens with 4 clipped above at mean 0.1, 50 with none.
        var merged = PolicyLossDiagnostics.Merge([
            new PolicyLossDiagnostics(10, 0.1, 0.1, 0, 0, 0, 1, 0, 0.5),
            new PolicyLossDiagnostics(40, 0.1, 0.1, 0, 0, 0, 1, 0, 0.1),
            new PolicyLossDiagnostics(50, 0, 0, 0, 0, 0, 1, 0, 0),
        ]);
        TestUtil.Close(0.05, merged.ClipFractionUpper, 1e-12);
        TestUtil.Close((0.5 + 4 * 0.1) / 5, merged.UpClippedProbability, 1e-12);
        Assert.Equal(0.0, PolicyLossDiagnostics.Merge([new PolicyLossDiagnostics(5, 0, 0, 0, 0, 0, 1, 0, 0)]).UpClippedProbability);
    }

    [Fact]
    public void Mini_batch_plan_splits_evenly_without_empty_batches()
    {
        Assert.Equal([0..32, 32..64], MiniBatchPlan.Split(64, 2));
        Assert.Equal([0..4, 4..7, 7..10], MiniBatchPlan.Split(10, 3));
        Assert.Equal([0..1, 1..2], MiniBatchPlan.Split(2, 16));
        Assert.Empty(MiniBatchPlan.Split(0, 16));
    }

    // ---- helpers ----------------------------------------------------------------------------------------------

    private static double FiniteDifference(DecoupledClipLoss loss, PolicyLossBatch batch, float[] logProbs, int t)
    {
        const double h = 1e-3;
        var plus = (float[])logProbs.Clone();
        var minus = (float[])logProbs.Clone();
        plus[t] = (float)(logProbs[t] + h);
        minus[t] = (float)(logProbs[t] - h);
        var lossPlus = loss.Compute(With(batch, plus)).Loss;
        var lossMinus = loss.Compute(With(batch, minus)).Loss;
        return (lossPlus - lossMinus) / ((double)plus[t] - minus[t]);
    }

    private static PolicyLossBatch With(PolicyLossBatch b, float[] logProbs) =>
        new(logProbs, b.OldLogProbs, b.Advantages, b.LossMask, b.SequenceLengths, b.ReferenceLogProbs ?? default);

    /// <summary>
    /// 3–7 sequences of 0–8 tokens, a quarter of tokens masked, one sequence fully masked, advantages of both signs
    /// (some zero), log-ratios in ±0.6 (so some tokens clip) plus clamp cases at ±25 with Â &gt; 0. With avoidKinks,
    /// log-ratios within 0.01 of a clip boundary are redrawn so central differences see a smooth loss.
    /// </summary>
    private static PolicyLossBatch RandomBatch(DeterministicRandom rng, double? dualClip = null, bool withReference = false, bool avoidKinks = true)
    {
        var lengths = Enumerable.Range(0, rng.NextInt(3, 7)).Select(_ => rng.NextInt(0, 8)).ToArray();
        lengths[0] = Math.Max(lengths[0], 2);
        var total = lengths.Sum();
        var old = new float[total];
        var @new = new float[total];
        var reference = new float[total];
        var advantages = new float[total];
        var mask = new bool[total];
        double[] kinks = [Math.Log(0.8), Math.Log(1.28), dualClip is { } c ? Math.Log(c) : double.NaN];
        var offset = 0;
        for (var s = 0; s < lengths.Length; s++)
        {
            var a = rng.NextInt(5) switch { 0 => 0f, 1 => 1.5f, 2 => -1.5f, _ => (float)(rng.NextDouble() * 4 - 2) };
            for (var t = 0; t < lengths[s]; t++)
            {
                var i = offset + t;
                old[i] = (float)(-0.1 - rng.NextDouble() * 4);
                double delta;
                do delta = rng.NextDouble() * 1.2 - 0.6;
                while (avoidKinks && kinks.Any(k => Math.Abs(delta - k) < 0.01));
                advantages[i] = a;
                if (s == 0 && t < 2)
                {
                    delta = t == 0 ? 25 : -25; // beyond the clamp
                    advantages[i] = 1f;
                }
                @new[i] = (float)(old[i] + delta);
                reference[i] = (float)(@new[i] + rng.NextDouble() * 1.0 - 0.5);
                mask[i] = s != 1 && rng.NextInt(4) != 0;
            }
            offset += lengths[s];
        }
        return new PolicyLossBatch(@new, old, advantages, mask, lengths, withReference ? reference : default(ReadOnlyMemory<float>));
    }

    /// <summary>verl's compute_policy_loss_vanilla + agg_loss, on a padded (N, maxLen) layout, in plain loops.</summary>
    private static (double Loss, double ClipFraction, double PpoKl, double DualFraction) VerlReference(
        PolicyLossBatch batch, string mode, double clipLow, double clipHigh, double? dualClip, double scale)
    {
        var lengths = batch.SequenceLengths.ToArray();
        var n = lengths.Length;
        var width = Math.Max(1, lengths.Max());
        var pg = new double[n, width];
        var mask = new double[n, width];
        double kl = 0, clipped = 0, dual = 0, maskSum = 0;
        var offset = 0;
        for (var i = 0; i < n; i++)
        {
            for (var t = 0; t < lengths[i]; t++)
            {
                var k = offset + t;
                var m = batch.LossMask.Span[k] ? 1.0 : 0.0;
                double a = batch.Advantages.Span[k];
                var nak = Math.Clamp((double)batch.LogProbs.Span[k] - batch.OldLogProbs.Span[k], -20, 20);
                var ratio = Math.Exp(nak);
                var pg1 = -a * ratio;
                var pg2 = -a * Math.Clamp(ratio, 1 - clipLow, 1 + clipHigh);
                var clip1 = Math.Max(pg1, pg2);
                var loss = clip1;
                if (dualClip is { } c)
                {
                    var pg3 = -a * c;
                    if (a < 0) loss = Math.Min(pg3, clip1);
                    dual += (clip1 > pg3 && a < 0 ? 1 : 0) * m;
                }
                pg[i, t] = loss;
                mask[i, t] = m;
                kl += -nak * m;
                clipped += (pg2 > pg1 ? 1 : 0) * m;
                maskSum += m;
            }
            offset += lengths[i];
        }
        double result;
        if (mode == "token-mean")
        {
            double sum = 0;
            for (var i = 0; i < n; i++)
            for (var t = 0; t < width; t++) sum += pg[i, t] * mask[i, t];
            result = sum / maskSum;
        }
        else
        {
            double sum = 0, sequences = 0;
            for (var i = 0; i < n; i++)
            {
                double seq = 0, count = 0;
                for (var t = 0; t < width; t++)
                {
                    seq += pg[i, t] * mask[i, t];
                    count += mask[i, t];
                }
                if (mode == "seq-mean-token-mean") seq /= count + 1e-8;
                if (count > 0)
                {
                    sum += seq;
                    sequences++;
                }
            }
            result = mode switch
            {
                "seq-mean-token-sum-norm" => sum / scale, // current verl: torch.sum(seq_losses) / loss_scale_factor
                "dr-grpo" => sum / (sequences * scale), // TRL dr_grpo (counting the sequences that have a token)
                _ => sum / sequences,
            };
        }
        return (result, clipped / maskSum, kl / maskSum, dual / maskSum);
    }
}
