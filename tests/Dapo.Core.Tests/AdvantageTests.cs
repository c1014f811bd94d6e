using Dapo.Core.Advantages;
using Dapo.Core.Common;

namespace Dapo.Core.Tests;

public class AdvantageTests
{
    private const double Eps = 1e-6;

    [Fact]
    public void Hand_computed_group_uses_the_unbiased_std()
    {
        // R = [1, −1, −1, −1]: mean −0.5; deviations 1.5, −0.5, −0.5, −0.5; squares sum 2.25 + 3 × 0.25 = 3;
        // unbiased variance 3 / (4 − 1) = 1, std 1. (The biased std would be sqrt(0.75) ≈ 0.866.)
        var a = new double[4];
        new GrpoAdvantage().Compute([1, -1, -1, -1], a);
        TestUtil.Close(1.5 / (1 + Eps), a[0], 1e-15);
        for (var i = 1; i < 4; i++) TestUtil.Close(-0.5 / (1 + Eps), a[i], 1e-15);
    }

    [Fact]
    public void Dapo_plus_minus_one_rewards_follow_the_closed_form()
    {
        // G = 16, k = 4 correct: mean = (4 − 12) / 16 = −0.5; std = sqrt(4k(G−k) / (G(G−1))) = sqrt(192 / 240) = sqrt(0.8).
        var rewards = Enumerable.Range(0, 16).Select(i => i < 4 ? 1.0 : -1.0).ToArray();
        var a = new double[16];
        new GrpoAdvantage().Compute(rewards, a);
        TestUtil.Close(1.5 / (Math.Sqrt(0.8) + Eps), a[0], 1e-12);
        TestUtil.Close(-0.5 / (Math.Sqrt(0.8) + Eps), a[15], 1e-12);
    }

    [Fact]
    public void Group_of_one_and_equal_rewards_give_zero()
    {
        var single = new double[1];
        new GrpoAdvantage().Compute([1.0], single);
        Assert.Equal(0.0, single[0]);
        var equal = new double[5];
        new GrpoAdvantage().Compute([-1, -1, -1, -1, -1], equal);
        Assert.All(equal, a => Assert.Equal(0.0, a));
    }

    [Fact]
    public void Dr_grpo_only_centres()
    {
        // mean of [2, 0, 1] is 1 → [1, −1, 0]
        var a = new double[3];
        AdvantageEstimators.Create("dr-grpo").Compute([2, 0, 1], a);
        Assert.Equal([1.0, -1.0, 0.0], a);
    }

    [Fact]
    public void Advantages_of_a_group_sum_to_zero_for_any_rewards()
    {
        var rng = new DeterministicRandom(7);
        var estimator = AdvantageEstimators.Create("grpo");
        for (var trial = 0; trial < 500; trial++)
        {
            var g = rng.NextInt(2, 32);
            var rewards = Enumerable.Range(0, g).Select(_ => rng.NextInt(3) switch
            {
                0 => 1.0,
                1 => -1.0,
                _ => -1.0 - rng.NextDouble(), // with overlong penalty
            }).ToArray();
            var a = new double[g];
            estimator.Compute(rewards, a);
            TestUtil.Close(0.0, a.Sum(), 1e-9, $"trial {trial}");
        }
    }

    [Fact]
    public void Matches_a_plain_verl_style_reference_on_random_batches()
    {
        // verl: group by prompt index in a dictionary, mean and torch.std (N − 1), then (R − mean) / (std + ε).
        var rng = new DeterministicRandom(11);
        for (var trial = 0; trial < 50; trial++)
        {
            var g = rng.NextInt(2, 16);
            var groups = rng.NextInt(1, 8);
            var rewards = Enumerable.Range(0, g * groups).Select(_ => rng.NextDouble() * 4 - 2).ToArray();
            var fast = AdvantageEstimators.ComputeGroups(new GrpoAdvantage(), rewards, g);
            var byIndex = new Dictionary<int, List<double>>();
            for (var i = 0; i < rewards.Length; i++)
            {
                if (!byIndex.TryGetValue(i / g, out var list)) byIndex[i / g] = list = [];
                list.Add(rewards[i]);
            }
            for (var i = 0; i < rewards.Length; i++)
            {
                var group = byIndex[i / g];
                var mean = group.Average();
                var std = Math.Sqrt(group.Sum(r => (r - mean) * (r - mean)) / (group.Count - 1));
                TestUtil.Close((rewards[i] - mean) / (std + Eps), fast[i], 1e-12);
            }
        }
    }

    [Fact]
    public void Expanding_repeats_each_advantage_over_its_tokens()
    {
        Assert.Equal([0.5f, 0.5f, -1f, 2f, 2f, 2f], AdvantageEstimators.ExpandToTokens([0.5, -1, 2], [2, 1, 3]));
        Assert.Throws<ArgumentException>(() => AdvantageEstimators.ComputeGroups(new GrpoAdvantage(), [1, 2, 3], 2));
    }
}
