using System.Globalization;

namespace Dapo.Core.Rewards;

/// <summary>
/// The pieces of Python 3's string semantics that verl's <c>math_dapo.py</c> inherits, for .NET strings. Where
/// .NET's own notion differs (its regex <c>\s</c> and <c>string.Trim()</c> do not count U+001C–U+001F as
/// whitespace; its regex works on UTF-16 code units, Python's on code points), the rule must use these instead.
/// Checked against python3 itself by <c>MathDapoDifferentialTests</c>.
/// </summary>
internal static class PythonText
{
    /// <summary>
    /// Python's whitespace as a .NET regex character class: the characters of <c>str.isspace()</c>, which are also
    /// what a <c>\s</c> in a str pattern and <c>str.strip()</c> use: \t \n \v \f \r, U+001C–U+001F (file, group,
    /// record and unit separators), space, U+0085, U+00A0, U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F,
    /// U+3000. .NET's <c>\s</c> is this set without U+001C–U+001F.
    /// </summary>
    internal const string WhitespaceClass = @"[\t-\r\x1C-\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

    /// <summary>
    /// One Python character (a code point) other than '\n', as a .NET regex: Python's <c>.</c>. A surrogate pair is
    /// taken whole, and the group is atomic so that backtracking cannot split it into two "characters" either.
    /// </summary>
    internal const string AnyCharExceptNewline = @"(?>[\uD800-\uDBFF][\uDC00-\uDFFF]|[^\n])";

    /// <summary>One Python character other than '{', as a .NET regex: Python's <c>[^{]</c> (see
    /// <see cref="AnyCharExceptNewline"/>).</summary>
    internal const string AnyCharExceptOpenBrace = @"(?>[\uD800-\uDBFF][\uDC00-\uDFFF]|[^{])";

    private static readonly char[] WhitespaceChars =
    [
        '\t', '\n', '\v', '\f', '\r', '\u001C', '\u001D', '\u001E', '\u001F', ' ', '\u0085', '\u00A0', '\u1680',
        '\u2000', '\u2001', '\u2002', '\u2003', '\u2004', '\u2005', '\u2006', '\u2007', '\u2008', '\u2009', '\u200A',
        '\u2028', '\u2029', '\u202F', '\u205F', '\u3000',
    ];

    /// <summary>Python's <c>chr(codePoint).isspace()</c> (all its whitespace lies in the Basic Multilingual Plane).</summary>
    internal static bool IsSpace(int codePoint) => codePoint <= char.MaxValue && Array.IndexOf(WhitespaceChars, (char)codePoint) >= 0;

    /// <summary>Python's <c>s.strip()</c>: removes <see cref="WhitespaceClass"/> characters at both ends.</summary>
    internal static string Strip(string s) => s.Trim(WhitespaceChars);

    /// <summary>
    /// Python's <c>s.isdigit()</c>: non-empty and every code point has a digit value (Numeric_Type Decimal or Digit,
    /// so superscripts such as '²', circled '①' and other scripts' digits count, '½' does not). The Unicode data
    /// are .NET's (Unicode 16.0 in .NET 10); a Python with older data (3.11 has Unicode 14.0) does not know the
    /// digits added since, e.g. U+1E4F0 NAG MUNDARI DIGIT ZERO. That difference is deliberate: we follow the newer
    /// data, as verl does on a newer Python, rather than freeze an old Unicode version.
    /// </summary>
    internal static bool IsDigit(string s)
    {
        if (s.Length == 0) return false;
        for (var i = 0; i < s.Length; i += char.IsSurrogatePair(s, i) ? 2 : 1)
            if (CharUnicodeInfo.GetDigitValue(s, i) < 0) return false;
        return true;
    }
}
