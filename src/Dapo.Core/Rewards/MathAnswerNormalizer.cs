using System.Text.RegularExpressions;

namespace Dapo.Core.Rewards;

/// <summary>
/// The answer normalisation of verl's <c>math_dapo.py</c> (<c>normalize_final_answer</c>, from the Minerva / lm-eval
/// hendrycks_math utilities), reproduced rule for rule so that rewards agree with the DAPO recipe. Prediction and
/// ground truth go through the same function and are compared as strings. The rules, in order:
/// <list type="number">
/// <item>keep the text after the last '=';</item>
/// <item>apply <see cref="Substitutions"/> then delete <see cref="RemovedExpressions"/> (articles, spaces, unit words
/// such as "dollars", "cm", "degrees", <c>\text{}</c> leftovers, <c>^\circ</c>, <c>{,}</c>, ...);</item>
/// <item>keep what is between the first pair of '$'; unwrap <c>\text{..}</c>, <c>\textbf{..}</c>,
/// <c>\overline{..}</c>, <c>\boxed{..}</c>;</item>
/// <item>expand the shorthands <c>\fracab</c> → <c>\frac{a}{b}</c> and <c>\sqrta</c> → <c>\sqrt{a}</c>, where a
/// and b are single characters;</item>
/// <item>delete '$'; if what is left is digits and commas (Python's <c>isdigit</c>), drop the commas
/// (1,000 → 1000); strip whitespace.</item>
/// </list>
/// Consequences worth knowing: "12" ≠ "120"; "1,000" = "1000"; <c>\boxed{\frac{1}{2}}</c> ≠ "1/2" (no numeric
/// equivalence); <c>\frac12</c> = <c>\frac{1}{2}</c>; case matters.
/// <para>
/// The rules are Python code, so they are read with Python's string semantics (<see cref="PythonText"/>): a
/// "character" is a code point, so <c>\frac𝑥2</c> (U+1D465, two UTF-16 units) becomes <c>\frac{𝑥}{2}</c>, never
/// two lone surrogates; "whitespace" for the final strip is Python's, U+001C–U+001F included. The one known
/// difference is deliberate: the digit test uses .NET's Unicode data, newer than some Pythons' (see
/// <see cref="PythonText.IsDigit"/>).
/// </para>
/// </summary>
public static partial class MathAnswerNormalizer
{
    /// <summary>verl's <c>SUBSTITUTIONS</c>, applied in order with plain (non-regex) replacement.</summary>
    public static readonly IReadOnlyList<(string Before, string After)> Substitutions =
    [
        ("an ", ""),
        ("a ", ""),
        (".$", "$"),
        ("\\$", ""),
        ("\\ ", ""),
        (" ", ""),
        ("mbox", "text"),
        (",\\text{and}", ","),
        ("\\text{and}", ","),
        ("\\text{m}", "\\text{}"),
    ];

    /// <summary>verl's <c>REMOVED_EXPRESSIONS</c>, deleted in order with plain replacement.</summary>
    public static readonly IReadOnlyList<string> RemovedExpressions =
    [
        "square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units", "\\ldots", "sue", "points",
        "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters", "meals", "edges", "students",
        "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3",
        "\\text{\n}", "\\text{}", "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", "\"", "\\dots",
    ];

    // Python's '.' and .NET's '.' both stop at '\n' only, so these patterns behave as in math_dapo.py: their groups
    // begin and end next to ASCII delimiters ('$', '{', '}'), so a surrogate pair is never cut.
    [GeneratedRegex(@"(.*?)(\$)(.*?)(\$)(.*)", RegexOptions.CultureInvariant)]
    private static partial Regex DollarPattern();

    [GeneratedRegex(@"(\\text\{)(.*?)(\})", RegexOptions.CultureInvariant)]
    private static partial Regex TextPattern();

    [GeneratedRegex(@"(\\textbf\{)(.*?)(\})", RegexOptions.CultureInvariant)]
    private static partial Regex TextBfPattern();

    [GeneratedRegex(@"(\\overline\{)(.*?)(\})", RegexOptions.CultureInvariant)]
    private static partial Regex OverlinePattern();

    [GeneratedRegex(@"(\\boxed\{)(.*)(\})", RegexOptions.CultureInvariant)]
    private static partial Regex BoxedPattern();

    // math_dapo's "(frac)([^{])(.)" and "(sqrt)([^{])" take one Python character (a code point) per group.
    [GeneratedRegex("(frac)(" + PythonText.AnyCharExceptOpenBrace + ")(" + PythonText.AnyCharExceptNewline + ")")]
    private static partial Regex FracShorthandPattern();

    [GeneratedRegex("(sqrt)(" + PythonText.AnyCharExceptOpenBrace + ")")]
    private static partial Regex SqrtShorthandPattern();

    /// <summary>Normalises a final answer (see the type's summary for the rules).</summary>
    public static string Normalize(string finalAnswer)
    {
        ArgumentNullException.ThrowIfNull(finalAnswer);
        var s = finalAnswer[(finalAnswer.LastIndexOf('=') + 1)..];
        foreach (var (before, after) in Substitutions) s = s.Replace(before, after, StringComparison.Ordinal);
        foreach (var expression in RemovedExpressions) s = s.Replace(expression, "", StringComparison.Ordinal);

        s = DollarPattern().Replace(s, "$$${3}$$"); // Python "$\3$": keep the first $...$ span
        s = TextPattern().Replace(s, "${2}");
        s = TextBfPattern().Replace(s, "${2}");
        s = OverlinePattern().Replace(s, "${2}");
        s = BoxedPattern().Replace(s, "${2}");
        s = FracShorthandPattern().Replace(s, "frac{${2}}{${3}}");
        s = SqrtShorthandPattern().Replace(s, "sqrt{${2}}");
        s = s.Replace("$", "", StringComparison.Ordinal);

        var withoutCommas = s.Replace(",", "", StringComparison.Ordinal);
        if (PythonText.IsDigit(withoutCommas)) s = withoutCommas;
        return PythonText.Strip(s);
    }

    /// <summary>The last <c>\boxed{...}</c> of <paramref name="text"/> with balanced braces (verl
    /// <c>last_boxed_only_string</c>), or null when there is none or its braces never close.</summary>
    public static string? LastBoxedOnly(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var start = text.LastIndexOf("\\boxed{", StringComparison.Ordinal);
        if (start < 0) return null;
        var open = 0;
        for (var i = start; i < text.Length; i++)
        {
            if (text[i] == '{') open++;
            if (text[i] == '}' && --open == 0) return text[start..(i + 1)];
        }
        return null;
    }

    /// <summary>The content of <c>\boxed{content}</c> (verl <c>remove_boxed</c>).</summary>
    /// <exception cref="ArgumentException">The text is not of that form.</exception>
    public static string RemoveBoxed(string boxed)
    {
        ArgumentNullException.ThrowIfNull(boxed);
        const string left = "\\boxed{";
        if (!boxed.StartsWith(left, StringComparison.Ordinal) || !boxed.EndsWith('}') || boxed.Length < left.Length + 1)
            throw new ArgumentException($"Not a \\boxed{{...}} expression: '{boxed}'.", nameof(boxed));
        return boxed[left.Length..^1];
    }
}
