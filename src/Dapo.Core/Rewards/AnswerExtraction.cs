using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Dapo.Core.Rewards;

/// <summary>
/// Finds the final answer in a response the way verl's <c>math_dapo.py</c> does: look only at the tail of the
/// response (its last 300 characters) and take the last match of <c>(?i)Answer\s*:\s*([^\n]+)</c>.
/// </summary>
public static partial class AnswerExtraction
{
    /// <summary>Characters of the response that are searched (verl: "The longest answer in MATH-500 has 159
    /// characters", so it keeps <c>solution_str[-300:]</c>).</summary>
    public const int DefaultTailLength = 300;

    [GeneratedRegex(@"Answer\s*:\s*([^\n]+)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
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

    /// <summary>Python's <c>str.isdigit()</c>: non-empty and every code point has a digit value (includes
    /// superscripts such as '²', as Python does).</summary>
    internal static bool IsPythonDigit(string s)
    {
        if (s.Length == 0) return false;
        for (var i = 0; i < s.Length; i += char.IsSurrogatePair(s, i) ? 2 : 1)
            if (CharUnicodeInfo.GetDigitValue(s, i) < 0) return false;
        return true;
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
