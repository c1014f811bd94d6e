using System.Globalization;
using System.Text.RegularExpressions;
using Dapo.Core.Data.Synthetic;
using Dapo.Core.Rewards;

namespace Dapo.Core.Tests;

public class SyntheticChainTaskTests
{
    [Fact]
    public void A_chain_is_solved_left_to_right_with_every_partial_result_written_out()
    {
        var step = new Regex(@"^(\d+)([-+])(\d)=(\d+)$");
        var reward = new ExactIntegerReward();
        for (var level = SyntheticChainTask.MinLevel; level <= SyntheticChainTask.MaxLevel; level++)
        foreach (var p in SyntheticChainTask.Generate(level, SyntheticSplit.Train, 50, seed: 11))
        {
            var terms = Regex.Matches(p.Problem, @"[-+]?\d").Select(m => m.Value).ToList();
            Assert.Equal(level, terms.Count);
            Assert.All(terms, t => Assert.InRange(t[^1] - '0', 1, 9));
            var lines = p.Solution.Split('\n');
            Assert.Equal(level - 1, lines.Length - 1);
            Assert.Equal($"Answer: {p.Answer}", lines[^1]);
            var total = terms[0][0] - '0';
            for (var i = 0; i < level - 1; i++)
            {
                var m = step.Match(lines[i]);
                Assert.True(m.Success, lines[i]);
                Assert.Equal(total, int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
                Assert.Equal(terms[i + 1], m.Groups[2].Value + m.Groups[3].Value);
                total += m.Groups[2].Value == "+" ? m.Groups[3].Value[0] - '0' : -(m.Groups[3].Value[0] - '0');
                Assert.True(total >= 0, p.Problem);
                Assert.Equal(total, int.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture));
            }
            Assert.Equal(total.ToString(CultureInfo.InvariantCulture), p.Answer);
            Assert.Equal(1.0, reward.Score(p.Solution, p.Answer).Score);
            Assert.StartsWith($"chain-L{level}-", p.Id);
        }
    }

    [Fact]
    public void Solutions_grow_with_the_level_and_the_hardest_prompt_fits_the_short_template()
    {
        var previous = double.NaN;
        for (var level = SyntheticChainTask.MinLevel + 1; level <= SyntheticChainTask.MaxLevel; level++)
        {
            var problems = SyntheticChainTask.Generate(level, SyntheticSplit.Train, 200, seed: 3);
            var mean = problems.Average(p => p.Solution.Length);
            if (!double.IsNaN(previous)) Assert.InRange(mean - previous, 6, 9); // about 7 characters a step
            previous = mean;
            Assert.True(problems.Max(p => $"Q: {p.Problem}\n".Length) <= 32, $"level {level}");
        }
    }

    [Fact]
    public void Generation_is_deterministic_disjoint_across_splits_and_apart_from_the_math_task()
    {
        var a = SyntheticTasks.Generate(SyntheticTasks.Chain, 6, SyntheticSplit.Train, 300, seed: 7);
        Assert.Equal(a, SyntheticChainTask.Generate(6, SyntheticSplit.Train, 300, seed: 7));
        Assert.NotEqual(a.Select(p => p.Problem), SyntheticChainTask.Generate(6, SyntheticSplit.Train, 300, seed: 8).Select(p => p.Problem));
        var heldOut = SyntheticChainTask.Generate(6, SyntheticSplit.HeldOut, 100, seed: 9);
        Assert.DoesNotContain(heldOut, p => a.Any(t => t.Problem == p.Problem));
        Assert.All(heldOut, p => Assert.Equal(SyntheticSplit.HeldOut, SyntheticMathTask.SplitOf(p.Problem)));
        Assert.Equal((2, 14), SyntheticTasks.Levels(SyntheticTasks.Chain));
        Assert.Throws<ArgumentOutOfRangeException>(() => SyntheticChainTask.Generate(15, SyntheticSplit.Train, 1, seed: 1));
        var unknown = Assert.Throws<KeyNotFoundException>(() => SyntheticTasks.Levels("poetry"));
        Assert.Contains("math, chain", unknown.Message);
    }
}
