using System.Text;
using System.Text.RegularExpressions;

namespace Dapo.Core.Rewards;

/// <summary>
/// Finds the final answer in a response the way verl's <c>math_dapo.py</c> does: look only at the tail of the
/// response (its last 300 characters) and take the capture of the last match of <c>(?i)Answer\s*:\s*([^\n]+)</c>.
/// That pattern is a Python regex, so its meaning is Python's, and .NET's regex reads it differently in two places,
/// which this type corrects: <c>\s</c> is Python's whitespace (<see cref="PythonText.WhitespaceClass"/>, which adds
/// U+001C–U+001F to .NET's), and <c>(?i)</c> is Python's case folding (<see cref="CaseInsensitiveAnswer"/>, which
/// adds ſ). "Characters" are code points, as in Python, for the tail too.
/// </summary>
public static partial class AnswerExtraction
{
    /// <summary>Characters of the response that are searched (verl: "The longest answer in MATH-500 has 159
    /// characters", so it keeps <c>solution_str[-300:]</c>).</summary>
    public const int DefaultTailLength = 300;

    /// <summary>"Answer" under Python's <c>re.IGNORECASE</c>, letter by letter: each letter with its other case,
    /// and 's' also with U+017F LATIN SMALL LETTER LONG S (ſ), which Python folds to 's'. Found by brute force over
    /// all code points with python3 (<c>re.fullmatch("(?i)s", chr(c))</c>; the tests repeat it); .NET's own
    /// IgnoreCase does not equate ſ with s. Look-alikes such as U+212A KELVIN SIGN (folds to 'k', not in "Answer")
    /// or U+212B ANGSTROM SIGN (folds to 'å') match none of these letters on either side.</summary>
    internal const string CaseInsensitiveAnswer = "[Aa][Nn][Ss\u017F][Ww][Ee][Rr]";

    // Python's "(?i)Answer\s*:\s*([^\n]+)" in .NET terms. The capture runs to the end of the line, so it never ends
    // inside a surrogate pair, and it starts after ':' or Python whitespace (all in the BMP), so never inside one either.
    [GeneratedRegex(CaseInsensitiveAnswer + PythonText.WhitespaceClass + "*:" + PythonText.WhitespaceClass + @"*([^\n]+)")]
    private static partial Regex AnswerPattern();

    /// <summary>The last <paramref name="length"/> characters (Unicode code points, as Python slices) of
    /// <paramref name="text"/>.</summary>
    public static string Tail(string text, int length = DefaultTailLength)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var start = text.Length;
        for (var count = 0; count < length && start > 0; count++)
        {
            start--;
            if (start > 0 && char.IsLowSurrogate(text[start]) && char.IsHighSurrogate(text[start - 1])) start--;
        }
        return text[start..];
    }

    /// <summary>The raw text after the last "Answer:" in the tail (rest of that line), or null if there is none.</summary>
    public static string? LastAnswer(string response, int tailLength = DefaultTailLength)
    {
        var matches = AnswerPattern().Matches(Tail(response, tailLength));
        return matches.Count == 0 ? null : matches[^1].Groups[1].Value;
    }

    /// <summary>Whether <paramref name="s"/> is a plain integer: optional sign, ASCII digits only.</summary>
    internal static bool IsPlainInteger(string s)
    {
        var digits = s.AsSpan();
        if (digits.Length > 0 && (digits[0] == '-' || digits[0] == '+')) digits = digits[1..];
        if (digits.IsEmpty) return false;
        foreach (var c in digits)
            if (c is < '0' or > '9') return false;
        return true;
    }

    internal static string Describe(string s)
    {
        var b = new StringBuilder();
        foreach (var c in s) b.Append(c < ' ' ? $"\\x{(int)c:x2}" : c.ToString());
        return b.ToString();
    }
}
