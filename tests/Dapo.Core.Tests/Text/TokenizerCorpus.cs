using System.Text;
using Dapo.Core.Data;
using Dapo.Core.Data.Synthetic;

namespace Dapo.Core.Tests.Text;

/// <summary>
/// Strings the Qwen tokenizer is checked on against its JavaScript peer: DAPO prompts, LaTeX, Chinese and other
/// scripts, emoji, letters outside the Basic Multilingual Plane, runs of spaces and newlines, special tokens written in
/// text, contractions in every case, and deterministic random mixes of all of them. Two characters are left out on
/// purpose: U+0085 and U+FEFF, where the peer's JavaScript <c>\s</c> disagrees with Hugging Face's Oniguruma (ours
/// follows Oniguruma: U+0085 is white space, U+FEFF is not).
/// </summary>
internal static class TokenizerCorpus
{
    private static readonly string[] Handwritten =
    [
        "", " ", "  ", "\n", "\n\n", "\r\n", " \n ", "\t", "\t\t\n", "a", "Hello world", "Hello  world", "Hello   world  ",
        "   leading spaces", "trailing spaces   ", "line one\nline two\n\n\nline five", "windows\r\nline\r\n\r\nend",
        "mixed \t tabs\t\tand  spaces \n\t\n", "    indented code\n        more\n", "x\u00a0y\u2003z\u3000w",
        "don't", "DON'T", "I'm", "I'M", "we'll", "WE'LL", "we'Ll", "she'd", "they're", "THEY'RE", "you've", "it's", "IT'S",
        "'s 't 're", "rock'n'roll", "the cat's toy's", "'", "''", "'''", "''s",
        "0", "12", "123", "1234567890", "3.14159", "-42", "1,000,000", "1e-10", "2^{10} = 1024", "x1y2z3", "٣٤٥", "五十",
        "What is $\\frac{1}{2} + \\frac{1}{3}$?", "$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$", "\\boxed{42}", "Answer: $\\boxed{7}$",
        "Let $f(x) = \\sqrt{x^2 + 1}$. Find $f'(0)$.", "\\begin{align} a &= b \\\\ c &= d \\end{align}",
        "$\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}$", "$\\binom{10}{3} = 120$", "$\\alpha + \\beta \\geq \\gamma$",
        "\\left( \\frac{a}{b} \\right)^{-1}", "$|x - 3| < 5$", "$\\lfloor 2.7 \\rfloor = 2$", "$\\mathbb{R}^n$", "$a \\cdot b$",
        "数学题：求解方程 x^2 = 4。", "已知三角形ABC中，AB=3，AC=4，求BC的长度。", "答案是42。", "你好，世界！", "我们来一步一步地解决这个问题。",
        "日本語のテキストです。", "한국어 텍스트", "Привет, мир!", "مرحبا بالعالم", "नमस्ते दुनिया", "Ελληνικά γράμματα",
        "עברית", "ภาษาไทย", "Tiếng Việt có dấu", "café naïve résumé", "Straße", "ﬁ ligature", "Ǆ Ǉ",
        "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷🇯🇵", "❤️", "🔥🔥🔥", "emoji 😀 in 🎉 text", "✓ ✗ → ← ∞ ≠ ≤ ≥ ± × ÷",
        "𝑥 + 𝑦 = 𝑧", "𝐀𝐁𝐂", "𠀀𠀁 extension B", "𝟘𝟙𝟚", "a𝑥b",
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|>", "<|im_end|><|im_end|>",
        "text<|im_start|>more", "<think>\nreasoning\n</think>\n\nanswer", "<|im_start", "<|im_start|", "<im_start>",
        "<tool_call>{\"a\": 1}</tool_call>", "<|fim_prefix|>def f():<|fim_suffix|>", "<<|im_end|>>",
        "e\u0301", "Cafe\u0301", "A\u030a", "\u1100\u1161", "Å vs Å",
        "def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; i++) { sum += a[i]; }", "SELECT * FROM t WHERE x='1';",
        "http://example.com/path?q=1&r=2", "user@example.com", "C:\\Users\\name\\file.txt", "#hashtag @mention",
        "!!!???...", "---", "***bold***", "__init__", "a.b.c.d", "((((nested))))", "[1, 2, 3]", "{\"key\": \"value\"}",
        "The answer is 5.\n\nAnswer: 5", "Step 1: 3 + 4 = 7\nStep 2: 7 * 2 = 14\nAnswer: 14",
    ];

    private static readonly string[] Fragments =
    [
        " ", "  ", "\n", "\n\n", "\t", "\r\n", "'s", "'LL", "'re", "the", " the", "The", " word", "Answer:", " 42", "7", "3.5",
        "\\frac{", "}", "{", "$", "^2", "_1", "\\sqrt", "数学", "题", "，", "。", "😀", "👍🏽", "🇯🇵", "𝑥", "𠀀", "é", "e\u0301",
        "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<|endoftext|>", "<", "|", ">", "!", "?", "...", "—", "–", "\u00a0",
        "\u3000", "Привет", "مرحبا", "γ", "∑", "≤", "x", "X", "  \n  ", "   ", "ABC", "abc123", "123abc", "(", ")", "[", "]",
    ];

    /// <summary>The corpus: at least 500 distinct strings, the same on every run.</summary>
    public static IReadOnlyList<string> Build()
    {
        var strings = new List<string>(Handwritten);
        var template = new DapoPromptTemplate();
        for (var level = 1; level <= 5; level++)
            foreach (var problem in SyntheticMathTask.Generate(level, SyntheticSplit.Train, 30, seed: 11))
            {
                strings.Add(template.Apply(problem.Problem));
                strings.Add(problem.Solution);
            }
        var random = new Random(2024);
        for (var i = 0; i < 200; i++)
        {
            var text = new StringBuilder();
            var parts = random.Next(1, 16);
            for (var p = 0; p < parts; p++) text.Append(Fragments[random.Next(Fragments.Length)]);
            strings.Add(text.ToString());
        }
        // Random code points from several planes (letters, marks, symbols, controls), no surrogates, no U+0085/U+FEFF.
        for (var i = 0; i < 60; i++)
        {
            var text = new StringBuilder();
            var length = random.Next(1, 24);
            while (text.Length < length)
            {
                var c = random.Next(4) switch
                {
                    0 => random.Next(0x20, 0x7F),
                    1 => random.Next(0x80, 0x800),
                    2 => random.Next(0x800, 0xD800),
                    _ => random.Next(0x10000, 0x2FFFF),
                };
                if (c is 0x85 or 0xFEFF || !Rune.IsValid(c)) continue;
                text.Append(new Rune(c).ToString());
            }
            strings.Add(text.ToString());
        }
        return strings.Distinct(StringComparer.Ordinal).ToArray();
    }
}
