using System.Globalization;
using System.Text;
using Dapo.Core.Common;

namespace Dapo.Core.Data.Synthetic;

/// <summary>
/// Multi-step integer arithmetic in the DAPO style (a question, a worked solution, a final "Answer: N" line), small
/// enough for a tiny character-level transformer. Problems are deterministic from (seed, level); every intermediate
/// result is a non-negative integer, division is exact and one factor of every product is at most 9 (12 at level 5).
/// The train / held-out partition is a fixed function of
/// the problem text (a stable hash, ~10% held out), so the splits are disjoint for every seed.
/// <para>Levels (prompt with the short template "Q: …\n" + solution, in characters):</para>
/// <list type="number">
/// <item>one + or − on 0..20 ("12+7" → "12+7=19\nAnswer: 19"; 25 characters on average, at most 28);</item>
/// <item>two operations of + − × with precedence ("12+7*3" → "7*3=21\n12+21=33\nAnswer: 33"; mean 36, max 40);</item>
/// <item>three operations, half of them with parentheses ("(8+4)*3-5"; mean 48, max 54);</item>
/// <item>two- or three-step word problems ("Ann has 12 pens, buys 3 packs of 7 and loses 5. How many pens now?"; mean 104, max 116);</item>
/// <item>four operations with exact division, parentheses and numbers to 99 ("(45+27)/8*3-16"; mean 62, max 80).</item>
/// </list>
/// </summary>
public static class SyntheticMathTask
{
    /// <summary>Easiest level.</summary>
    public const int MinLevel = 1;

    /// <summary>Hardest level.</summary>
    public const int MaxLevel = 5;

    /// <summary>A problem is held out when its text's stable hash is divisible by this.</summary>
    public const int HeldOutModulus = 10;

    /// <summary>The levels, easiest first.</summary>
    public static IReadOnlyList<SyntheticLevel> Levels { get; } =
    [
        new(1, "one addition or subtraction, numbers 0-20", "12+7"),
        new(2, "two operations (+, -, *) with precedence, numbers 1-20 (factors 2-9)", "12+7*3"),
        new(3, "three operations (+, -, *), half with parentheses, numbers 1-30", "(8+4)*3-5"),
        new(4, "two- or three-step word problems", "Ann has 12 pens, buys 3 packs of 7 and loses 5. How many pens now?"),
        new(5, "four operations (+, -, *, /) with exact division and parentheses, numbers 1-99", "(45+27)/8*3-16"),
    ];

    private const int MaxIntermediate = 9999;

    private static readonly string[] Names =
        ["Ann", "Ben", "Cal", "Dan", "Eve", "Fay", "Gus", "Ivy", "Jo", "Kim", "Leo", "Max", "Mia", "Sam", "Tom", "Zoe"];

    private static readonly string[] Items =
        ["apples", "pens", "cards", "coins", "books", "shells", "stamps", "eggs", "marbles", "stickers"];

    /// <summary>The split <paramref name="problem"/> belongs to.</summary>
    public static SyntheticSplit SplitOf(string problem) =>
        StableHash.Fnv1a64(problem) % HeldOutModulus == 0 ? SyntheticSplit.HeldOut : SyntheticSplit.Train;

    /// <summary>
    /// <paramref name="count"/> distinct problems of <paramref name="level"/> in <paramref name="split"/>, the same
    /// list for the same arguments on every machine.
    /// </summary>
    /// <exception cref="InvalidOperationException">The level has fewer distinct problems in the split than asked
    /// (level 1 has 593 train and 79 held-out problems).</exception>
    public static IReadOnlyList<SyntheticProblem> Generate(int level, SyntheticSplit split, int count, ulong seed)
    {
        CheckLevel(level);
        return SyntheticGeneration.Distinct(level, split, count, seed, rng => Draw(level, rng));
    }

    /// <summary>One problem of <paramref name="level"/> from <paramref name="rng"/> (either split).</summary>
    public static SyntheticProblem Draw(int level, DeterministicRandom rng)
    {
        CheckLevel(level);
        ArgumentNullException.ThrowIfNull(rng);
        while (true)
        {
            var candidate = level == 4 ? WordProblem(rng) : SymbolProblem(level, rng);
            if (candidate is not null) return candidate;
        }
    }

    /// <summary>
    /// The worked solution of an expression in the order a person computes it: innermost parentheses first, then ×
    /// and / left to right, then + and − left to right; one "a op b=c" line per operation. Returns null when a step
    /// would be negative, inexact or above 9999.
    /// </summary>
    public static (IReadOnlyList<string> Steps, long Value)? Solve(string expression)
    {
        ArgumentNullException.ThrowIfNull(expression);
        var tokens = Tokenize(expression);
        var steps = new List<string>();
        while (true)
        {
            var open = tokens.LastIndexOf("(");
            var start = open + 1;
            var end = open < 0 ? tokens.Count : tokens.IndexOf(")", open);
            if (end < 0) throw new FormatException($"Unbalanced parentheses in '{expression}'.");
            if (end - start == 1)
            {
                if (open < 0) return (steps, long.Parse(tokens[0], CultureInfo.InvariantCulture));
                tokens.RemoveAt(end);
                tokens.RemoveAt(open);
                continue;
            }
            var op = -1;
            for (var i = start + 1; i < end && op < 0; i += 2)
                if (tokens[i] is "*" or "/") op = i;
            if (op < 0) op = start + 1;
            var a = long.Parse(tokens[op - 1], CultureInfo.InvariantCulture);
            var b = long.Parse(tokens[op + 1], CultureInfo.InvariantCulture);
            long c;
            switch (tokens[op])
            {
                case "+": c = a + b; break;
                case "-": c = a - b; break;
                case "*": c = a * b; break;
                case "/":
                    if (b == 0 || a % b != 0) return null;
                    c = a / b;
                    break;
                default: throw new FormatException($"Unexpected token '{tokens[op]}' in '{expression}'.");
            }
            if (c < 0 || c > MaxIntermediate) return null;
            var text = c.ToString(CultureInfo.InvariantCulture);
            steps.Add($"{tokens[op - 1]}{tokens[op]}{tokens[op + 1]}={text}");
            tokens[op - 1] = text;
            tokens.RemoveRange(op, 2);
        }
    }

    private static SyntheticProblem? SymbolProblem(int level, DeterministicRandom rng)
    {
        var (opCount, ops, big, small, parenthesize) = level switch
        {
            1 => (1, "+-", 20, 20, false),
            2 => (2, "+-*", 20, 9, false),
            3 => (3, "+-*", 30, 9, rng.NextInt(2) == 0),
            _ => (4, "+-*/", 99, 12, rng.NextInt(2) == 0),
        };
        var operators = new char[opCount];
        for (var i = 0; i < opCount; i++) operators[i] = ops[rng.NextInt(ops.Length)];
        var numbers = new int[opCount + 1];
        for (var i = 0; i <= opCount; i++)
        {
            var multiplicative = (i > 0 && operators[i - 1] is '*' or '/') || (i < opCount && operators[i] is '*' or '/');
            numbers[i] = level == 1 ? rng.NextInt(0, big) : multiplicative ? rng.NextInt(2, small) : rng.NextInt(1, big);
        }
        for (var i = 0; i < opCount; i++) // make a plain dividend a multiple of its divisor
            if (operators[i] == '/' && (i == 0 || operators[i - 1] is '+' or '-'))
                numbers[i] = numbers[i + 1] * rng.NextInt(1, Math.Max(1, big / numbers[i + 1]));

        var (groupStart, groupEnd) = parenthesize ? ChooseGroup(operators, rng) : (-1, -1);
        var text = new StringBuilder();
        for (var i = 0; i <= opCount; i++)
        {
            if (i == groupStart) text.Append('(');
            text.Append(numbers[i].ToString(CultureInfo.InvariantCulture));
            if (i == groupEnd) text.Append(')');
            if (i < opCount) text.Append(operators[i]);
        }
        var problem = text.ToString();
        var solved = Solve(problem);
        if (solved is null) return null;
        // Keep products mental: one factor of every multiplication is at most 9 (12 at level 5), so no step needs
        // long multiplication (e.g. "32*33").
        var maxSmallFactor = level == 5 ? 12 : 9;
        foreach (var line in solved.Value.Steps)
        {
            var star = line.IndexOf('*');
            if (star < 0) continue;
            var a = int.Parse(line.AsSpan(0, star), CultureInfo.InvariantCulture);
            var b = int.Parse(line.AsSpan(star + 1, line.IndexOf('=') - star - 1), CultureInfo.InvariantCulture);
            if (Math.Min(a, b) > maxSmallFactor) return null;
        }
        return Make(level, problem, solved.Value.Steps, solved.Value.Value);
    }

    /// <summary>A span of operands whose parentheses change the order of operations (it holds a + or − and touches
    /// a × or /, or follows a −), or (−1, −1) when there is none.</summary>
    private static (int Start, int End) ChooseGroup(char[] operators, DeterministicRandom rng)
    {
        var candidates = new List<(int, int)>();
        var operands = operators.Length + 1;
        for (var s = 0; s < operands; s++)
        for (var e = s + 1; e < operands; e++)
        {
            if (s == 0 && e == operands - 1) continue;
            var additive = false;
            for (var k = s; k < e; k++) additive |= operators[k] is '+' or '-';
            var left = s > 0 ? operators[s - 1] : ' ';
            var right = e < operands - 1 ? operators[e] : ' ';
            if (additive && (left is '*' or '/' or '-' || right is '*' or '/')) candidates.Add((s, e));
        }
        return candidates.Count == 0 ? (-1, -1) : rng.Pick(candidates);
    }

    private static SyntheticProblem? WordProblem(DeterministicRandom rng)
    {
        var name = rng.Pick(Names);
        var other = rng.Pick(Names);
        if (other == name) return null;
        var item = rng.Pick(Items);
        int a = rng.NextInt(2, 30), b = rng.NextInt(2, 9), c = rng.NextInt(2, 9), d = rng.NextInt(1, 20);
        var (problem, expression) = rng.NextInt(5) switch
        {
            0 => ($"{name} has {a} {item} and buys {b} packs of {c}. How many {item} does {name} have now?", $"{a}+{b}*{c}"),
            1 => ($"{name} has {a} {item}, gives away {d} and then finds {c}. How many {item} now?", $"{a}-{d}+{c}"),
            2 => ($"{name} buys {b} boxes of {c} {item} and gives away {d}. How many {item} are left?", $"{b}*{c}-{d}"),
            3 => ($"{name} has {b} {item}. {other} has {c} times as many. How many {item} do they have together?", $"{b}+{b}*{c}"),
            _ => ($"{name} has {a} {item}, buys {b} packs of {c} and loses {d}. How many {item} now?", $"{a}+{b}*{c}-{d}"),
        };
        var solved = Solve(expression);
        return solved is null ? null : Make(4, problem, solved.Value.Steps, solved.Value.Value);
    }

    private static SyntheticProblem Make(int level, string problem, IReadOnlyList<string> steps, long value)
    {
        var answer = value.ToString(CultureInfo.InvariantCulture);
        var solution = string.Join("\n", steps) + "\nAnswer: " + answer;
        var id = $"synthetic-L{level}-{StableHash.Fnv1a64(problem):x16}";
        return new SyntheticProblem(id, level, problem, solution, answer);
    }

    private static List<string> Tokenize(string expression)
    {
        var tokens = new List<string>();
        for (var i = 0; i < expression.Length;)
        {
            var ch = expression[i];
            if (char.IsAsciiDigit(ch))
            {
                var j = i;
                while (j < expression.Length && char.IsAsciiDigit(expression[j])) j++;
                tokens.Add(expression[i..j]);
                i = j;
            }
            else if ("+-*/()".Contains(ch))
            {
                tokens.Add(ch.ToString());
                i++;
            }
            else throw new FormatException($"Unexpected character '{ch}' in '{expression}'.");
        }
        return tokens;
    }

    private static void CheckLevel(int level)
    {
        if (level is < MinLevel or > MaxLevel)
            throw new ArgumentOutOfRangeException(nameof(level), level, $"Levels are {MinLevel} to {MaxLevel}.");
    }
}
