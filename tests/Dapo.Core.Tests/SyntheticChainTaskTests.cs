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

    [Fact]
    public void Mixed_solutions_solve_the_same_problems_in_lines_of_one_or_two_operations_that_check_out()
    {
        var line = new Regex(@"^(\d+)((?:[-+]\d){1,2})=(\d+)$");
        var reward = new ExactIntegerReward();
        var twoOperationLines = 0;
        var lines = 0;
        for (var level = SyntheticChainTask.MinLevel; level <= SyntheticChainTask.MaxLevel; level++)
        {
            var plain = SyntheticChainTask.Generate(level, SyntheticSplit.Train, 100, seed: 11);
            var mixed = SyntheticTasks.Generate(SyntheticTasks.ChainMixed, level, SyntheticSplit.Train, 100, seed: 11);
            Assert.Equal(plain.Select(p => (p.Problem, p.Answer, p.Level)), mixed.Select(p => (p.Problem, p.Answer, p.Level)));
            foreach (var p in mixed)
            {
                Assert.StartsWith($"chain-mixed-L{level}-", p.Id);
                var steps = p.Solution.Split('\n');
                Assert.Equal($"Answer: {p.Answer}", steps[^1]);
                // The lines' operations, in order, are the problem's, and each line's result is the running total.
                var total = p.Problem[0] - '0';
                var operations = "";
                foreach (var step in steps[..^1])
                {
                    var m = line.Match(step);
                    Assert.True(m.Success, step);
                    Assert.Equal(total, int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
                    for (var i = 0; i < m.Groups[2].Value.Length; i += 2)
                        total += m.Groups[2].Value[i] == '+' ? m.Groups[2].Value[i + 1] - '0' : -(m.Groups[2].Value[i + 1] - '0');
                    Assert.True(total >= 0, p.Problem);
                    Assert.Equal(total, int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture));
                    operations += m.Groups[2].Value;
                    lines++;
                    if (m.Groups[2].Value.Length == 4) twoOperationLines++;
                }
                Assert.Equal(p.Problem[1..], operations);
                Assert.Equal(1.0, reward.Score(p.Solution, p.Answer).Score);
            }
        }
        // Half the lines that could take two operations do; so about two in five of all lines.
        Assert.InRange((double)twoOperationLines / lines, 0.38, 0.48);
        Assert.Equal(SyntheticChainTask.GenerateMixed(9, SyntheticSplit.HeldOut, 50, seed: 4), SyntheticChainTask.GenerateMixed(9, SyntheticSplit.HeldOut, 50, seed: 4));
        var plain9 = SyntheticChainTask.Generate(9, SyntheticSplit.Train, 1, seed: 11)[0];
        Assert.Throws<ArgumentException>(() => SyntheticChainTask.WithMixedLines(plain9 with { Answer = "0" }));
    }
}
