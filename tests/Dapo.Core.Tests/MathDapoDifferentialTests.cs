using System.Text;
using System.Text.Json;
using Dapo.Core.Rewards;
using Dapo.Core.Tests.Oracles;
using Xunit.Abstractions;

namespace Dapo.Core.Tests;

/// <summary>
/// Our DAPO math reward against an oracle of verl's <c>math_dapo.compute_score</c> written independently in Python
/// (<c>Oracles/math_dapo_oracle.py</c>, run with Debian's <c>/usr/bin/python3</c>), on generated inputs
/// (<see cref="MathDapoCases"/>). Python decides the string semantics the rule inherits from it: whitespace, case
/// folding, digits, code points. Every disagreement is listed with its input. The one documented difference: a
/// response without an answer is −1 for us (prediction null), whereas verl scores the placeholder "[INVALID]".
/// </summary>
public class MathDapoDifferentialTests(ITestOutputHelper output)
{
    private const ulong Seed = 2503_14476; // the paper's arXiv number
    private const int CaseCount = 3000;
    private const string Placeholder = "[INVALID]";

    [Fact]
    public void Reward_agrees_with_a_python_oracle_of_verl_math_dapo()
    {
        var cases = MathDapoCases.Generate(Seed, CaseCount);
        Assert.True(cases.Count >= 2000, $"Only {cases.Count} cases generated.");
        var lone = cases.Where(c => PythonOracle.HasLoneSurrogate(c.Response) || PythonOracle.HasLoneSurrogate(c.GroundTruth)).ToList();
        Assert.True(lone.Count == 0, $"The generator produced lone surrogates in cases {string.Join(", ", lone.Select(c => c.Id))}.");

        var replies = PythonOracle.Run(cases.Select(c => new { id = c.Id, response = c.Response, ground_truth = c.GroundTruth }));
        Assert.Equal(cases.Count, replies.Count);

        var reward = new DapoMathReward();
        var disagreements = new List<string>();
        int found = 0, right = 0, noAnswer = 0, placeholderMatches = 0;
        foreach (var (c, reply) in cases.Zip(replies))
        {
            var oracle = OracleReply.From(reply);
            Assert.Equal(c.Id, oracle.Id);
            var ours = reward.Score(c.Response, c.GroundTruth);
            var ourAnswer = AnswerExtraction.LastAnswer(c.Response);
            var ourTruth = MathAnswerNormalizer.Normalize(c.GroundTruth);

            var problems = new List<string>();
            if (ourAnswer != oracle.Answer)
                problems.Add($"extracted answer: ours {PythonOracle.Escape(ourAnswer)}, verl {PythonOracle.Escape(oracle.Answer)}");
            if (ourTruth != oracle.GroundTruth)
                problems.Add($"normalised ground truth: ours {PythonOracle.Escape(ourTruth)}, verl {PythonOracle.Escape(oracle.GroundTruth)}");
            if (oracle.Found)
            {
                found++;
                if (oracle.Score > 0) right++;
                if (ours.Prediction != oracle.Prediction)
                    problems.Add($"prediction: ours {PythonOracle.Escape(ours.Prediction)}, verl {PythonOracle.Escape(oracle.Prediction)}");
                if (ours.Score != oracle.Score) problems.Add($"score: ours {ours.Score}, verl {oracle.Score}");
            }
            else
            {
                // The documented difference (DapoMathReward's summary): no answer is −1 with no prediction for us;
                // verl normalises the placeholder "[INVALID]" and compares it with the ground truth.
                noAnswer++;
                if (oracle.Prediction != Placeholder)
                    problems.Add($"oracle without an answer predicted {PythonOracle.Escape(oracle.Prediction)}, not the placeholder");
                if (ours.Prediction is not null || ours.Score != -1.0 || ours.Correct)
                    problems.Add($"no answer: ours should be −1 with no prediction, got {ours.Score} with {PythonOracle.Escape(ours.Prediction)}");
                var expectedOracleScore = oracle.GroundTruth == Placeholder ? 1.0 : -1.0;
                if (oracle.Score != expectedOracleScore)
                    problems.Add($"no answer: verl should score {expectedOracleScore} (ground truth {PythonOracle.Escape(oracle.GroundTruth)}), got {oracle.Score}");
                if (oracle.Score > 0) placeholderMatches++;
            }
            if (problems.Count > 0)
                disagreements.Add($"case {c.Id} ({c.Kind}): response {PythonOracle.Escape(c.Response)}, ground truth " +
                                  $"{PythonOracle.Escape(c.GroundTruth)}\n    " + string.Join("\n    ", problems));
        }

        if (disagreements.Count > 0)
        {
            var message = new StringBuilder()
                .AppendLine($"{disagreements.Count} of {cases.Count} cases disagree with the Python oracle of verl's math_dapo:");
            foreach (var d in disagreements) message.AppendLine(d);
            Assert.Fail(message.ToString());
        }
        output.WriteLine($"{cases.Count} cases: {found} with an answer ({right} right, {found - right} wrong), {noAnswer} without " +
                         $"({placeholderMatches} of them against a ground truth normalising to \"{Placeholder}\"); kinds: " +
                         string.Join(", ", cases.GroupBy(c => c.Kind.StartsWith("long", StringComparison.Ordinal) ? "long" : c.Kind)
                             .Select(g => $"{g.Key} {g.Count()}")));
        // The generator reaches every branch, so a pass means something.
        Assert.True(found >= 1500, $"Only {found} cases with an answer.");
        Assert.True(right >= 400, $"Only {right} correct answers.");
        Assert.True(found - right >= 400, $"Only {found - right} wrong answers.");
        Assert.True(noAnswer >= 300, $"Only {noAnswer} cases without an answer.");
        // The documented difference happens exactly where expected: no answer, ground truth normalising to "[INVALID]".
        Assert.True(placeholderMatches >= 50, $"Only {placeholderMatches} no-answer cases against an \"[INVALID]\" ground truth.");
    }

    [Fact]
    public void Character_classes_agree_with_python()
    {
        const int lastCodePoint = 0x10FFFF;
        static bool Surrogate(int c) => c is >= 0xD800 and <= 0xDFFF;
        var ourDigits = Enumerable.Range(0, lastCodePoint + 1)
            .Where(c => !Surrogate(c) && PythonText.IsDigit(char.ConvertFromUtf32(c))).ToList();
        var facts = PythonOracle.Run([new { codepoints = ourDigits }], "--unicode").Single();
        var python = $"Python {facts.GetProperty("python").GetString()} (Unicode {facts.GetProperty("unidata_version").GetString()})";
        static HashSet<int> Set(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToHashSet();
        var problems = new List<string>();

        // str.isspace() = re's \s = str.strip(): our class, our Strip and our marker regex, every code point.
        var space = Set(facts.GetProperty("isspace"));
        Assert.Contains(0x1C, space); // the point of the class: .NET's \s lacks U+001C–U+001F
        for (var c = 0; c <= lastCodePoint; c++)
        {
            if (Surrogate(c)) continue;
            var ch = char.ConvertFromUtf32(c);
            var isSpace = space.Contains(c);
            if (PythonText.IsSpace(c) != isSpace) problems.Add($"isspace U+{c:X4}: python {isSpace}");
            if (c > char.MaxValue) continue;
            if ((PythonText.Strip(ch + "5" + ch) == "5") != isSpace) problems.Add($"strip U+{c:X4}: python strips it: {isSpace}");
            if (c != ':' && (AnswerExtraction.LastAnswer("Answer" + ch + ":" + ch + "5") == "5") != isSpace)
                problems.Add($"\\s in the marker, U+{c:X4}: python whitespace {isSpace}");
        }

        // re.IGNORECASE: which characters stand for each letter of "Answer" in the marker.
        var ignoreCase = facts.GetProperty("ignorecase");
        const string marker = "Answer";
        for (var i = 0; i < marker.Length; i++)
        {
            var equivalents = Set(ignoreCase.GetProperty(marker[i].ToString()));
            for (var c = 0; c <= lastCodePoint; c++)
            {
                if (Surrogate(c)) continue;
                var text = marker[..i] + char.ConvertFromUtf32(c) + marker[(i + 1)..] + ": 1";
                if ((AnswerExtraction.LastAnswer(text) is not null) != equivalents.Contains(c))
                    problems.Add($"(?i){marker[i]} against U+{c:X4}: python matches: {equivalents.Contains(c)}");
            }
        }

        // str.isdigit(): the same, except digits newer than this Python's Unicode data (deliberate, see PythonText.IsDigit).
        var digits = Set(facts.GetProperty("isdigit"));
        var categories = facts.GetProperty("categories");
        foreach (var c in digits.Where(c => !ourDigits.Contains(c))) problems.Add($"isdigit U+{c:X4}: python True, ours False");
        var newer = ourDigits.Where(c => !digits.Contains(c)).ToList();
        foreach (var c in newer.Where(c => categories.GetProperty(c.ToString(System.Globalization.CultureInfo.InvariantCulture)).GetString() != "Cn"))
            problems.Add($"isdigit U+{c:X4}: ours True, python False although python knows the character");
        output.WriteLine($"{python}: {space.Count} whitespace characters, {digits.Count} digits; {newer.Count} more digits " +
                         $"in .NET's newer Unicode data ({string.Join(" ", newer.Take(3).Select(c => $"U+{c:X4}"))} ...)");

        Assert.True(problems.Count == 0, $"Character classes differ from {python}:\n" + string.Join("\n", problems));
    }

    private sealed record OracleReply(int Id, bool Found, string? Answer, string Prediction, string GroundTruth, double Score)
    {
        public static OracleReply From(JsonElement e) => new(
            e.GetProperty("id").GetInt32(),
            e.GetProperty("found").GetBoolean(),
            e.GetProperty("answer").GetString(),
            e.GetProperty("prediction").GetString()!,
            e.GetProperty("ground_truth").GetString()!,
            e.GetProperty("score").GetDouble());
    }
}
