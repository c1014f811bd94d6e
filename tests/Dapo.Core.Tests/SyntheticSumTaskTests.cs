using System.Globalization;
using System.Text.RegularExpressions;
using Dapo.Core.Data.Synthetic;
using Dapo.Core.Rewards;

namespace Dapo.Core.Tests;

public class SyntheticSumTaskTests
{
    [Fact]
    public void A_sum_adds_every_term_once_in_an_order_of_its_own_with_every_partial_result_written_out()
    {
        var step = new Regex(@"^(\d+)\+(\d)=(\d+)$");
        var reward = new ExactIntegerReward();
        var leftToRight = 0;
        var solutions = 0;
        for (var level = SyntheticSumTask.MinLevel; level <= SyntheticSumTask.MaxLevel; level++)
        foreach (var p in SyntheticTasks.Generate(SyntheticTasks.Sum, level, SyntheticSplit.Train, 100, seed: 11))
        {
            Assert.Matches($"^[1-9](\\+[1-9]){{{level - 1}}}$", p.Problem);
            var lines = p.Solution.Split('\n');
            Assert.Equal(level, lines.Length);
            Assert.Equal($"Answer: {p.Answer}", lines[^1]);
            // The terms the lines add, the first line's two included, are the problem's terms in some order.
            var used = new List<char> { lines[0][0] };
            var total = lines[0][0] - '0';
            foreach (var line in lines[..^1])
            {
                var m = step.Match(line);
                Assert.True(m.Success, line);
                Assert.Equal(total, int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
                used.Add(m.Groups[2].Value[0]);
                total += m.Groups[2].Value[0] - '0';
                Assert.Equal(total, int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture));
            }
            var terms = p.Problem.Split('+').Select(t => t[0]).ToList();
            Assert.Equal(terms.Order(), used.Order());
            Assert.Equal(total.ToString(CultureInfo.InvariantCulture), p.Answer);
            Assert.Equal(1.0, reward.Score(p.Solution, p.Answer).Score);
            Assert.StartsWith($"sum-L{level}-", p.Id);
            solutions++;
            if (used.SequenceEqual(terms)) leftToRight++;
        }
        // The orders are drawn, not the problem's: left to right is one order in n! (fewer with repeated digits).
        Assert.InRange((double)leftToRight / solutions, 0, 0.05);
    }

    [Fact]
    public void Generation_is_deterministic_disjoint_across_splits_and_apart_from_the_chain_task()
    {
        var a = SyntheticSumTask.Generate(6, SyntheticSplit.Train, 300, seed: 7);
        Assert.Equal(a, SyntheticSumTask.Generate(6, SyntheticSplit.Train, 300, seed: 7));
        Assert.NotEqual(a.Select(p => p.Problem), SyntheticSumTask.Generate(6, SyntheticSplit.Train, 300, seed: 8).Select(p => p.Problem));
        var heldOut = SyntheticSumTask.Generate(6, SyntheticSplit.HeldOut, 100, seed: 9);
        Assert.DoesNotContain(heldOut, p => a.Any(t => t.Problem == p.Problem));
        Assert.All(heldOut, p => Assert.Equal(SyntheticSplit.HeldOut, SyntheticMathTask.SplitOf(p.Problem)));
        var chain = SyntheticChainTask.Generate(6, SyntheticSplit.Train, 300, seed: 7).Where(p => !p.Problem.Contains('-')).Select(p => p.Problem);
        Assert.True(a.Select(p => p.Problem).Intersect(chain).Count() < 10);
        Assert.Equal((3, 10), SyntheticTasks.Levels(SyntheticTasks.Sum));
        Assert.Throws<ArgumentOutOfRangeException>(() => SyntheticSumTask.Generate(2, SyntheticSplit.Train, 1, seed: 1));
        // Level 3 has 9^3 problems, about nine in ten of them in the train split.
        Assert.Equal(600, SyntheticSumTask.Generate(3, SyntheticSplit.Train, 600, seed: 1).Count);
        Assert.Throws<InvalidOperationException>(() => SyntheticSumTask.Generate(3, SyntheticSplit.Train, 729, seed: 1));
    }
}
