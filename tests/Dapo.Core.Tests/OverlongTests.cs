using Dapo.Core.Options;
using Dapo.Core.Overlong;
using Dapo.Core.Rewards;

namespace Dapo.Core.Tests;

public class OverlongTests
{
    // Paper defaults: L_max = 20480, L_cache = 4096, so L_max − L_cache = 16384.
    [Theory]
    [InlineData(100, 0.0)]
    [InlineData(16384, 0.0)] // |y| ≤ 16384: no penalty
    [InlineData(16385, -1.0 / 4096)] // (16384 − 16385) / 4096
    [InlineData(18432, -0.5)] // (16384 − 18432) / 4096 = −2048 / 4096
    [InlineData(20480, -1.0)] // (16384 − 20480) / 4096 = −4096 / 4096
    [InlineData(20481, -1.0)] // beyond L_max: −1
    [InlineData(99999, -1.0)]
    public void Soft_punishment_follows_eq_13(int length, double expected) =>
        TestUtil.Close(expected, OverlongRewardShaping.Penalty(length, 20480, 4096), 1e-15);

    [Fact]
    public void Penalty_factor_scales_it()
    {
        // (16384 − 18432) / 4096 × 0.5 = −0.25; beyond L_max −1 × 0.5.
        TestUtil.Close(-0.25, OverlongRewardShaping.Penalty(18432, 20480, 4096, 0.5), 1e-15);
        TestUtil.Close(-0.5, OverlongRewardShaping.Penalty(30000, 20480, 4096, 0.5), 1e-15);
    }

    [Fact]
    public void Matches_verls_formula_within_the_limit()
    {
        // verl: min(−(|y| − (L_max − L_cache)) / L_cache × factor, 0)
        for (var length = 0; length <= 64; length++)
        {
            var verl = Math.Min(-(length - (64 - 16)) / 16.0 * 1.5, 0);
            TestUtil.Close(verl, OverlongRewardShaping.Penalty(length, 64, 16, 1.5), 1e-15, $"length {length}");
        }
    }

    [Fact]
    public void Bad_settings_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => OverlongRewardShaping.Penalty(1, 10, 11));
        Assert.Throws<ArgumentOutOfRangeException>(() => OverlongRewardShaping.Penalty(1, 10, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => OverlongRewardShaping.Penalty(-1, 10, 5));
    }

    [Fact]
    public void Scorer_adds_the_penalty_only_when_on()
    {
        var options = new DapoOptions { MaxResponseLength = 100, OverlongCacheLength = 20 };
        var shaped = new ResponseScorer(options).Score("Answer: 5", "5", responseTokens: 90, truncated: false);
        // score +1; penalty (80 − 90) / 20 = −0.5; reward 0.5
        Assert.Equal(1.0, shaped.Score);
        TestUtil.Close(-0.5, shaped.OverlongPenalty);
        TestUtil.Close(0.5, shaped.Reward);
        Assert.True(shaped.Correct);
        Assert.Equal("5", shaped.Prediction);
        var off = new ResponseScorer(options with { OverlongPunishment = false }).Score("Answer: 4", "5", 90, false);
        Assert.Equal(-1.0, off.Reward);
    }

    [Fact]
    public void Filtering_masks_every_token_of_truncated_sequences()
    {
        var mask = Enumerable.Repeat(true, 9).ToArray();
        mask[1] = false; // an already masked token stays masked
        var masked = OverlongFiltering.MaskTruncated(mask, [2, 3, 4], [false, true, false]);
        Assert.Equal(1, masked);
        Assert.Equal([true, false, false, false, false, true, true, true, true], mask);
    }

    [Fact]
    public void Filtering_checks_shapes()
    {
        Assert.Throws<ArgumentException>(() => OverlongFiltering.MaskTruncated(new bool[5], [2, 2], [false, false]));
        Assert.Throws<ArgumentException>(() => OverlongFiltering.MaskTruncated(new bool[4], [2, 2], [false]));
    }
}
