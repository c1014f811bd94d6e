using System.Text;

namespace Dapo.Core.Text;

/// <summary>
/// The pre-tokenizer split of Qwen2 / Qwen2.5 / Qwen3 tokenizers: the regular expression of their tokenizer.json,
/// <c>(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+</c>,
/// matched by hand rather than by .NET's <see cref="System.Text.RegularExpressions.Regex"/>. The reason: .NET matches
/// UTF-16 code units, so a letter outside the Basic Multilingual Plane (𝑥, CJK extension B) is not <c>\p{L}</c> to it,
/// while Hugging Face's Oniguruma and JavaScript's <c>u</c> mode match code points. Here every class is tested on the
/// code point. <c>\s</c> is Unicode White_Space, as in Oniguruma; the apostrophe forms are case-insensitive in ASCII.
/// </summary>
public static class Qwen2PreTokenizer
{
    /// <summary>The pattern this class implements, exactly as tokenizer.json writes it.</summary>
    public const string Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private enum Kind : byte { Letter, Number, Newline, Space, Other }

    private static readonly string[] Contractions = ["s", "t", "re", "ve", "m", "ll", "d"];

    /// <summary>The pieces of <paramref name="text"/> in order, as (start, length) in UTF-16 units; together they
    /// cover the text exactly.</summary>
    /// <exception cref="ArgumentException">The text has an unpaired surrogate.</exception>
    public static List<(int Start, int Length)> Split(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        // Code points: their kind and where each starts in the string (one extra entry for the end).
        var kinds = new List<Kind>(text.Length);
        var starts = new List<int>(text.Length + 1);
        var points = new List<int>(text.Length);
        for (var i = 0; i < text.Length;)
        {
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out var width) != System.Buffers.OperationStatus.Done)
                throw new ArgumentException($"The text has an unpaired surrogate (U+{(int)text[i]:X4}) at index {i}.", nameof(text));
            kinds.Add(KindOf(rune));
            starts.Add(i);
            points.Add(rune.Value);
            i += width;
        }
        starts.Add(text.Length);
        var pieces = new List<(int, int)>();
        for (var p = 0; p < kinds.Count;)
        {
            var end = MatchAt(p, kinds, points);
            pieces.Add((starts[p], starts[end] - starts[p]));
            p = end;
        }
        return pieces;
    }

    /// <summary>The end (exclusive, in code points) of the pattern's match at <paramref name="p"/>: the first
    /// alternative that matches, each as greedy as the regular expression's backtracking leaves it.</summary>
    private static int MatchAt(int p, List<Kind> kinds, List<int> points)
    {
        var n = kinds.Count;
        bool Is(int i, Kind kind) => i < n && kinds[i] == kind;
        bool IsSpace(int i) => i < n && kinds[i] is Kind.Space or Kind.Newline;
        int Run(int i, Kind kind)
        {
            while (Is(i, kind)) i++;
            return i;
        }

        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if (points[p] == '\'')
            foreach (var c in Contractions)
            {
                var k = 0;
                while (k < c.Length && p + 1 + k < n && points[p + 1 + k] < 128 && char.ToLowerInvariant((char)points[p + 1 + k]) == c[k]) k++;
                if (k == c.Length) return p + 1 + k;
            }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (Is(p, Kind.Letter)) return Run(p, Kind.Letter);
        if (kinds[p] is Kind.Space or Kind.Other && Is(p + 1, Kind.Letter)) return Run(p + 1, Kind.Letter);
        // \p{N}
        if (kinds[p] == Kind.Number) return p + 1;
        // ' '?[^\s\p{L}\p{N}]+[\r\n]*
        var s = points[p] == ' ' && Is(p + 1, Kind.Other) ? p + 1 : p;
        if (Is(s, Kind.Other)) return Run(Run(s, Kind.Other), Kind.Newline);
        // Whitespace from here: the run of it ends at j.
        var j = p;
        while (IsSpace(j)) j++;
        // \s*[\r\n]+ : up to the run's last newline
        for (var k = j - 1; k >= p; k--)
            if (kinds[k] == Kind.Newline) return k + 1;
        // \s+(?!\S) : the run, less its last space unless the text ends; \s+ : a single space before a non-space
        return j == n || j - 1 == p ? j : j - 1;
    }

    private static Kind KindOf(Rune rune)
    {
        if (Rune.IsLetter(rune)) return Kind.Letter;
        if (Rune.IsNumber(rune)) return Kind.Number;
        if (rune.Value is '\r' or '\n') return Kind.Newline;
        return IsWhiteSpace(rune.Value) ? Kind.Space : Kind.Other;
    }

    /// <summary>Unicode's White_Space property (what <c>\s</c> matches in Oniguruma).</summary>
    private static bool IsWhiteSpace(int c) =>
        c is >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680 or >= 0x2000 and <= 0x200A or 0x2028 or 0x2029 or 0x202F
            or 0x205F or 0x3000;
}
