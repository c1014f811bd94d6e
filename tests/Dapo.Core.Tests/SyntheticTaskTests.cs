using System.Globalization;
using System.Text.RegularExpressions;
using Dapo.Core.Data;
using Dapo.Core.Data.Synthetic;
using Dapo.Core.Rewards;
using Dapo.Core.Text;

namespace Dapo.Core.Tests;

public class SyntheticTaskTests
{
    private static readonly int[] AllLevels = [1, 2, 3, 4, 5];

    [Fact]
    public void Same_seed_same_problems_different_seed_different_problems()
    {
        foreach (var level in AllLevels)
        {
            var a = SyntheticMathTask.Generate(level, SyntheticSplit.Train, 50, seed: 7);
            Assert.Equal(a, SyntheticMathTask.Generate(level, SyntheticSplit.Train, 50, seed: 7));
            Assert.NotEqual(a.Select(p => p.Problem), SyntheticMathTask.Generate(level, SyntheticSplit.Train, 50, seed: 8).Select(p => p.Problem));
        }
    }

    [Fact]
    public void Train_and_held_out_are_disjoint_for_any_seeds()
    {
        foreach (var level in new[] { 2, 3, 4, 5 })
        {
            var train = SyntheticMathTask.Generate(level, SyntheticSplit.Train, 2000, seed: 1).Select(p => p.Problem).ToHashSet();
            var heldOut = SyntheticMathTask.Generate(level, SyntheticSplit.HeldOut, 200, seed: 2).Select(p => p.Problem).ToList();
            Assert.Equal(2000, train.Count); // distinct
            Assert.DoesNotContain(heldOut, train.Contains);
            Assert.All(heldOut, p => Assert.Equal(SyntheticSplit.HeldOut, SyntheticMathTask.SplitOf(p)));
        }
    }

    [Fact]
    public void Level_one_is_small_and_says_so_when_exhausted()
    {
        // 0..20 ± 0..20 with non-negative differences: 441 sums + 231 differences = 672 problems, 79 held out.
        var all = SyntheticMathTask.Generate(1, SyntheticSplit.HeldOut, 40, seed: 3);
        Assert.Equal(40, all.Count);
        var e = Assert.Throws<InvalidOperationException>(() => SyntheticMathTask.Generate(1, SyntheticSplit.HeldOut, 500, seed: 3));
        Assert.Contains("Level 1", e.Message);
    }

    [Fact]
    public void Worked_solutions_check_out_step_by_step_and_earn_the_reward()
    {
        var step = new Regex(@"^(\d+)([-+*/])(\d+)=(\d+)$");
        var dapo = new DapoMathReward();
        var exact = new ExactIntegerReward();
        foreach (var level in AllLevels)
        foreach (var p in SyntheticMathTask.Generate(level, SyntheticSplit.Train, 300, seed: 11))
        {
            var lines = p.Solution.Split('\n');
            Assert.Equal($"Answer: {p.Answer}", lines[^1]);
            Assert.InRange(lines.Length - 1, 1, 4); // one line per operation
            foreach (var line in lines[..^1])
            {
                var m = step.Match(line);
                Assert.True(m.Success, $"level {level}: odd step '{line}' in {p.Problem}");
                long a = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), b = long.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture);
                var c = long.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture);
                Assert.Equal(m.Groups[2].Value switch { "+" => a + b, "-" => a - b, "*" => a * b, _ => a / b }, c);
                if (m.Groups[2].Value == "/") Assert.Equal(0, a % b);
            }
            Assert.Equal(lines[^2].Split('=')[1], p.Answer); // the last step's result is the answer
            Assert.Equal(1.0, dapo.Score(p.Solution, p.Answer).Score);
            Assert.Equal(1.0, exact.Score(p.Solution, p.Answer).Score);
            Assert.Equal(level, p.Level);
            Assert.StartsWith($"synthetic-L{level}-", p.Id);
        }
    }

    [Fact]
    public void Symbolic_problems_evaluate_to_their_answer_with_usual_precedence()
    {
        Assert.Equal(["7*3=21", "12+21=33"], SyntheticMathTask.Solve("12+7*3")!.Value.Steps);
        Assert.Equal(["8+4=12", "12*3=36", "36-5=31"], SyntheticMathTask.Solve("(8+4)*3-5")!.Value.Steps);
        Assert.Equal(["45+27=72", "72/8=9", "9*3=27", "27-16=11"], SyntheticMathTask.Solve("(45+27)/8*3-16")!.Value.Steps);
        Assert.Equal(["2+3=5", "10-5=5"], SyntheticMathTask.Solve("10-(2+3)")!.Value.Steps);
        Assert.Null(SyntheticMathTask.Solve("3-5")); // negative
        Assert.Null(SyntheticMathTask.Solve("7/2")); // inexact
    }

    [Fact]
    public void Easy_levels_are_short_enough_for_a_tiny_model()
    {
        var template = PromptTemplates.Get("short");
        int[] maxLength = [0, 32, 48, 72, 128, 96]; // prompt + solution characters, by level
        foreach (var level in AllLevels)
        {
            var problems = SyntheticMathTask.Generate(level, SyntheticSplit.Train, 500, seed: 5);
            var longest = problems.Max(p => template.Apply(p.Problem).Length + p.Solution.Length);
            Assert.True(longest <= maxLength[level], $"level {level}: longest is {longest} characters");
        }
    }

    [Fact]
    public void The_character_tokenizer_round_trips_every_problem_and_solution()
    {
        var tokenizer = new CharTokenizer();
        foreach (var level in AllLevels)
        foreach (var p in SyntheticMathTask.Generate(level, SyntheticSplit.Train, 200, seed: 13)
                     .Concat(SyntheticMathTask.Generate(level, SyntheticSplit.HeldOut, 20, seed: 13)))
        {
            foreach (var text in new[] { p.Problem, p.Solution, PromptTemplates.Get("short").Apply(p.Problem), PromptTemplates.Get("dapo").Apply(p.Problem) })
            {
                var ids = tokenizer.Encode(text, addBos: true, addEos: true);
                Assert.Equal(text, tokenizer.Decode(ids));
            }
        }
    }

    [Fact]
    public void Problems_become_dataset_examples()
    {
        var p = SyntheticMathTask.Generate(2, SyntheticSplit.Train, 1, seed: 1)[0];
        Assert.Equal(new PromptExample(p.Id, p.Problem, p.Answer, "synthetic-L2"), p.ToExample());
        Assert.Equal(5, SyntheticMathTask.Levels.Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => SyntheticMathTask.Generate(6, SyntheticSplit.Train, 1, 1));
    }
}
