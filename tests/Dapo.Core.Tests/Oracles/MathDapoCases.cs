using System.Globalization;
using System.Text;
using Dapo.Core.Common;

namespace Dapo.Core.Tests.Oracles;

/// <summary>One generated input of the reward: a response, a ground truth, and what kind of case it was built as.</summary>
internal sealed record MathDapoCase(int Id, string Kind, string Response, string GroundTruth);

/// <summary>
/// Generates responses and ground truths aimed at the places where .NET and Python string semantics can make our
/// reward differ from verl's <c>math_dapo.py</c>: plain ASCII answers; LaTeX (<c>\frac</c>, <c>\sqrt</c>, <c>\boxed{}</c>,
/// <c>\text{}</c>, <c>$...$</c>), thousands commas, '=' signs and unit words; every character Python's
/// <c>str.isspace()</c> accepts (U+001C–U+001F, U+0085, U+00A0, U+2028, U+3000, ...) and some that neither side
/// treats as space; control characters; astral characters (U+1D465 𝑥, U+1D7D0 𝟐, ...) including inside the
/// shorthands; digits of other scripts; the marker "Answer:" in varied case, with U+017F ſ (which Python's
/// IGNORECASE equates with 's') and look-alikes that match nothing (U+212A KELVIN SIGN, U+212B ANGSTROM SIGN,
/// fullwidth and Greek letters); responses longer than 300 code points whose cut falls among astral characters or
/// inside the marker; and responses without an answer, some against the ground truth "[INVALID]". Deterministic in
/// the seed; never a lone surrogate.
/// </summary>
internal static class MathDapoCases
{
    /// <summary>Every character of Python 3's <c>str.isspace()</c> (verified against python3 by the tests).</summary>
    public static readonly string[] PythonWhitespace =
    [
        "\t", "\n", "\v", "\f", "\r", "\u001C", "\u001D", "\u001E", "\u001F", " ", "\u0085", "\u00A0", "\u1680",
        "\u2000", "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006", "\u2007", "\u2008", "\u2009", "\u200A",
        "\u2028", "\u2029", "\u202F", "\u205F", "\u3000",
    ];

    /// <summary>Characters that look blank or are controls, and are whitespace for neither Python nor .NET.</summary>
    private static readonly string[] NotWhitespace =
        ["\u200B", "\uFEFF", "\u180E", "\u2060", "\u00AD", "\u0000", "\u0001", "\u0007", "\u001B", "\u007F", "\u0080"];

    private static readonly string[] Astral =
    [
        "\U0001D465", "\U0001D7D0", "\U0001F600", "\U0001D538", "\U00010348", "\U0001D70B", "\U00020000",
        "\U0001FBF1", "\U00011067", "\U0001D7DA",
    ];

    /// <summary>Digits for Python's <c>isdigit()</c> outside ASCII (superscripts, circled, other scripts, astral),
    /// and '½', which is numeric but not a digit. All assigned before Unicode 14, so Python 3.11 knows them.</summary>
    private static readonly string[] DigitLike =
        ["\u00B2", "\u00B9", "\u0663", "\u0969", "\u2460", "\u00BD", "\u0ED2", "\uFF15", "\U0001D7D0", "\U0001FBF1", "\U00011067"];

    /// <summary>Letters that resemble those of "Answer" but that neither Python's IGNORECASE nor ours equates with them.</summary>
    private static readonly string[] LookAlikes =
        ["\u212A", "\u212B", "\uFF21", "\u0131", "\u0130", "\u0391", "\u1E9E", "\uFF53", "\u00E5", "\u0410", "\u0455", "\u00DF"];

    private static readonly string[] UnitWords =
    [
        "dollars", "cm", "degrees", "ways", "units", "hours", "mph", "points", "feet", "\\text{ cm}^2", "^\\circ",
        "^{\\circ}", "\\mbox{ hours}", "\\text{ m}", "apples", "\\text{s}", "students", "\\mathrm{th}", "inches",
    ];

    private static readonly string[] FillerWords =
    [
        "We", "compute", "so", "the", "answer", "is", "Answer", "ANSWER", "x", "=", "2+2=4", "\\boxed{5}", "$x$",
        "\n", "\n\n", "therefore", "\\frac{1}{2}", "a", "an", "Answers", "\U0001D465", "\U0001F600", "1,000", ".",
    ];

    /// <summary><paramref name="count"/> cases from <paramref name="seed"/>.</summary>
    public static IReadOnlyList<MathDapoCase> Generate(ulong seed, int count)
    {
        var random = new DeterministicRandom(seed);
        var cases = new List<MathDapoCase>(count);
        for (var id = 0; id < count; id++)
        {
            var roll = random.NextInt(100);
            var (kind, response, truth) = roll switch
            {
                < 34 => Plain(random),
                < 42 => TwoAnswers(random),
                < 46 => SameLine(random),
                < 58 => NoAnswer(random),
                < 76 => LongWithCutNearMarker(random),
                < 82 => BlankAfterMarker(random),
                _ => Jumble(random),
            };
            cases.Add(new MathDapoCase(id, kind, response, truth));
        }
        return cases;
    }

    private static (string, string, string) Plain(DeterministicRandom r)
    {
        var body = Body(r);
        return ("plain", Filler(r, r.NextInt(0, 12)) + Marker(r) + body + Trailer(r), Truth(r, body));
    }

    private static (string, string, string) TwoAnswers(DeterministicRandom r)
    {
        var first = Body(r);
        var second = Body(r);
        var response = Filler(r, r.NextInt(0, 6)) + Marker(r) + first + "\n" + Filler(r, r.NextInt(0, 4)) + "\n" +
                       Marker(r) + second + Trailer(r);
        return ("two-answers", response, Truth(r, r.NextInt(3) == 0 ? first : second));
    }

    private static (string, string, string) SameLine(DeterministicRandom r)
    {
        var first = Body(r);
        var second = Body(r);
        return ("same-line", Marker(r) + first + Spaces(r) + Marker(r) + second, Truth(r, second));
    }

    private static (string, string, string) NoAnswer(DeterministicRandom r)
    {
        var response = r.NextInt(4) switch
        {
            0 => Filler(r, r.NextInt(0, 15)),
            // a marker with a look-alike letter, or a colon that is not ':', or a blank that is not whitespace
            1 => Filler(r, r.NextInt(0, 5)) + ReplaceOneLetter(r, "Answer", r.Pick(LookAlikes)) + ": " + Body(r),
            2 => Filler(r, r.NextInt(0, 5)) + "Answer" + r.Pick(["\uFF1A", "\uA789", ";", "\u200B:", "\uFEFF:"]) + " " + Body(r),
            _ => "Answer: " + Body(r) + "\n" + new string('x', r.NextInt(300, 320)),
        };
        var truth = r.NextInt(2) == 0
            ? r.Pick(["[INVALID]", " [INVALID] ", "$[INVALID]$", "\\boxed{[INVALID]}", "\u3000[INVALID]\u001F", "x = [INVALID]"])
            : Body(r);
        return ("no-answer", response, truth);
    }

    /// <summary>
    /// filler (L code points, astral-heavy at its end) + answer line (M) + "\n" + astral-heavy padding (P), with P
    /// chosen so that the 300-code-point tail starts k code points from the answer line's start, k in [−4, 4]:
    /// before it (inside the astral filler) or inside the marker itself.
    /// </summary>
    private static (string, string, string) LongWithCutNearMarker(DeterministicRandom r)
    {
        var body = Body(r);
        var line = Marker(r) + body;
        var k = r.NextInt(-4, 4);
        var padding = 299 - CodePoints(line) + k;
        if (padding < 0) return Plain(r); // an answer line longer than the tail: not this kind's point
        var filler = Filler(r, r.NextInt(0, 20)) + AstralRun(r, r.NextInt(4, 12));
        var response = filler + line + "\n" + AstralRun(r, padding);
        return ("long-cut-at-" + k.ToString(CultureInfo.InvariantCulture), response, Truth(r, body));
    }

    private static (string, string, string) BlankAfterMarker(DeterministicRandom r)
    {
        // "Answer:" followed only by blanks: the regex backtracks to give [^\n]+ a blank, which strip() removes.
        var blanks = new StringBuilder();
        for (var i = r.NextInt(1, 3); i > 0; i--) blanks.Append(r.NextInt(4) == 0 ? r.Pick(NotWhitespace) : r.Pick(PythonWhitespace));
        var truth = r.NextInt(3) == 0 ? "" : Body(r);
        return ("blank-after-marker", Filler(r, r.NextInt(0, 5)) + Marker(r) + blanks, truth);
    }

    /// <summary>Random concatenations of the interesting pieces, answer markers included.</summary>
    private static (string, string, string) Jumble(DeterministicRandom r)
    {
        string[] atoms =
        [
            "frac", "sqrt", "\\frac", "\\sqrt", "{", "}", "$", "\n", "\\text{", "\\textbf{", "\\overline{", "\\boxed{", "=",
            ",", " ", "a ", "an ", "1", "2", "x", "\\$", "\\ ", "mbox", "\\text{and}", "cm", "\\;", "\"", "Answer", ":",
            "ANSWER", "\u017F", "aN\u017Fwer", "{,}", "\\text{m}", ".$", "\\dots", "^\\circ", "\\text{\n}",
        ];
        string Piece() => r.NextInt(6) switch
        {
            0 => r.Pick(PythonWhitespace),
            1 => r.Pick(Astral),
            2 => r.Pick(DigitLike),
            3 when r.NextInt(3) == 0 => r.Pick(NotWhitespace),
            _ => r.Pick(atoms),
        };
        var response = new StringBuilder();
        for (var i = r.NextInt(1, 18); i > 0; i--) response.Append(Piece());
        var truth = new StringBuilder();
        for (var i = r.NextInt(0, 6); i > 0; i--) truth.Append(Piece());
        return ("jumble", response.ToString(), truth.ToString());
    }

    /// <summary>"Answer" in random case (ſ for s a third of the time), blanks, ':' and blanks.</summary>
    private static string Marker(DeterministicRandom r)
    {
        var b = new StringBuilder();
        foreach (var letter in "answer")
        {
            if (letter == 's' && r.NextInt(3) == 0) b.Append('\u017F');
            else b.Append(r.NextInt(2) == 0 ? letter : char.ToUpperInvariant(letter));
        }
        return b + Spaces(r, allowEmpty: true) + ":" + Spaces(r, allowEmpty: true);
    }

    private static string ReplaceOneLetter(DeterministicRandom r, string word, string replacement)
    {
        var at = r.NextInt(word.Length);
        return word[..at] + replacement + word[(at + 1)..];
    }

    /// <summary>Mostly one ' ', else up to three characters from Python's whitespace set.</summary>
    private static string Spaces(DeterministicRandom r, bool allowEmpty = false)
    {
        var roll = r.NextInt(10);
        if (roll < 4) return " ";
        if (roll < 5 && allowEmpty) return "";
        var b = new StringBuilder();
        for (var i = r.NextInt(1, 3); i > 0; i--) b.Append(r.Pick(PythonWhitespace));
        return b.ToString();
    }

    /// <summary>What follows the answer on its line, and maybe more lines.</summary>
    private static string Trailer(DeterministicRandom r) => r.NextInt(8) switch
    {
        0 => "\n" + Filler(r, r.NextInt(1, 6)),
        1 => r.Pick(PythonWhitespace),
        2 => Spaces(r) + r.Pick(PythonWhitespace),
        3 => ".",
        4 => r.Pick(NotWhitespace),
        _ => "",
    };

    /// <summary>The ground truth for an answer <paramref name="body"/>: the same text (decorated so that only
    /// normalisation makes it equal) most of the time, another answer otherwise.</summary>
    private static string Truth(DeterministicRandom r, string body) => r.NextInt(10) switch
    {
        < 3 => body,
        3 => r.Pick(PythonWhitespace) + body + r.Pick(PythonWhitespace),
        4 => "\\boxed{" + body + "}",
        5 => "$" + body + "$",
        6 => "x = " + body,
        _ => Body(r),
    };

    /// <summary>One to three fragments joined by blanks, commas or '='.</summary>
    private static string Body(DeterministicRandom r)
    {
        var b = new StringBuilder(Fragment(r));
        for (var i = r.NextInt(0, 2); i > 0; i--)
        {
            b.Append(r.NextInt(6) switch
            {
                0 => " ",
                1 => ",",
                2 => ", ",
                3 => r.NextInt(2) == 0 ? " = " : "=",
                4 => r.Pick(PythonWhitespace),
                _ => "",
            });
            b.Append(Fragment(r));
        }
        if (r.NextInt(8) == 0) b.Insert(0, r.Pick(PythonWhitespace));
        return b.ToString();
    }

    private static string Fragment(DeterministicRandom r) => r.NextInt(22) switch
    {
        0 or 1 => Integer(r),
        2 => Integer(r) + "." + r.NextInt(0, 999).ToString(CultureInfo.InvariantCulture),
        3 => "\\frac" + Symbol(r) + Symbol(r),
        4 => "\\frac{" + Symbol(r) + "}{" + Symbol(r) + "}",
        5 => "\\sqrt" + Symbol(r),
        6 => "\\sqrt{" + Symbol(r) + "}",
        7 => "\\boxed{" + Simple(r) + "}",
        8 => r.Pick(["\\text{", "\\textbf{", "\\overline{", "\\mbox{"]) + Simple(r) + "}",
        9 => "$" + Simple(r) + "$",
        10 => "\\$" + Integer(r),
        11 => Integer(r) + " " + r.Pick(UnitWords),
        12 => r.Pick(["an ", "a ", "A "]) + Simple(r),
        13 => AsciiWord(r),
        14 => r.Pick(Astral) + Integer(r),
        15 => Integer(r) + r.Pick(Astral),
        16 => r.NextInt(0, 9).ToString(CultureInfo.InvariantCulture) + "," + r.Pick(DigitLike) + r.Pick(DigitLike),
        17 => Integer(r) + r.Pick(PythonWhitespace) + Integer(r),
        18 => Integer(r) + r.Pick(NotWhitespace) + Integer(r),
        19 => r.Pick(["\\left( 3, \\frac{\\pi}{2} \\right)", "(1, 2)", "\\{1,2\\}", "1{,}000", "5\\;", "\"7\"", "2\\ldots",
            "\\dfrac{1}{2}", "x^2+1", "[INVALID]", "-\\infty", "\\frac" + r.Pick(Astral)]),
        20 => "\\frac" + r.Pick(Astral) + (r.NextInt(2) == 0 ? r.Pick(Astral) : "2"),
        _ => "\\sqrt" + r.Pick(Astral) + Simple(r),
    };

    /// <summary>A single character or a short atom for the inside of \frac and \sqrt.</summary>
    private static string Symbol(DeterministicRandom r) => r.NextInt(8) switch
    {
        0 or 1 => r.NextInt(0, 9).ToString(CultureInfo.InvariantCulture),
        2 => ((char)('a' + r.NextInt(26))).ToString(),
        3 => r.Pick(Astral),
        4 => r.Pick(DigitLike),
        5 => "\\pi",
        6 => r.Pick(PythonWhitespace),
        _ => Integer(r),
    };

    private static string Simple(DeterministicRandom r) => r.NextInt(5) switch
    {
        0 => Integer(r),
        1 => "\\frac" + Symbol(r) + Symbol(r),
        2 => r.Pick(Astral),
        3 => AsciiWord(r),
        _ => Integer(r) + " " + r.Pick(UnitWords),
    };

    /// <summary>An integer, sometimes negative, sometimes with thousands commas.</summary>
    private static string Integer(DeterministicRandom r)
    {
        var value = r.NextInt(4) switch
        {
            0 => r.NextInt(0, 9),
            1 => r.NextInt(10, 999),
            _ => r.NextInt(1000, 9_999_999),
        };
        var text = r.NextInt(3) == 0
            ? value.ToString("#,0", CultureInfo.InvariantCulture)
            : value.ToString(CultureInfo.InvariantCulture);
        return r.NextInt(6) == 0 ? "-" + text : text;
    }

    private static string AsciiWord(DeterministicRandom r)
    {
        var b = new StringBuilder();
        for (var i = r.NextInt(1, 6); i > 0; i--) b.Append((char)r.NextInt(0x21, 0x7E));
        return b.ToString();
    }

    private static string Filler(DeterministicRandom r, int words)
    {
        var b = new StringBuilder();
        for (var i = 0; i < words; i++)
        {
            if (i > 0) b.Append(r.NextInt(5) == 0 ? r.Pick(PythonWhitespace) : " ");
            b.Append(r.Pick(FillerWords));
        }
        if (words > 0) b.Append('\n');
        return b.ToString();
    }

    /// <summary><paramref name="codePoints"/> code points, mostly astral, some ASCII and blanks.</summary>
    private static string AstralRun(DeterministicRandom r, int codePoints)
    {
        var b = new StringBuilder();
        for (var i = 0; i < codePoints; i++)
            b.Append(r.NextInt(4) switch { 0 => "x", 1 => r.Pick(PythonWhitespace) is var w && w != "\n" ? w : " ", _ => r.Pick(Astral) });
        return b.ToString();
    }

    public static int CodePoints(string s)
    {
        var n = 0;
        for (var i = 0; i < s.Length; i += char.IsSurrogatePair(s, i) ? 2 : 1) n++;
        return n;
    }
}
