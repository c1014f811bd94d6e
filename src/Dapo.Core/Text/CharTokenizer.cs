using System.Text;
using Dapo.Core.Common;

namespace Dapo.Core.Text;

/// <summary>
/// One token per character, for tiny models. Ids: 0 = &lt;pad&gt;, 1 = &lt;bos&gt;, 2 = &lt;eos&gt;, then the
/// alphabet in order. The default alphabet is '\n' followed by printable ASCII (' ' .. '~'), 96 characters, so the
/// default vocabulary has 99 ids: '\n' = 3, ' ' = 4, '0' = 20 .. '9' = 29, 'A' = 37, 'a' = 69, '~' = 98 (id of
/// printable c is c − 28). That covers the synthetic tasks, both prompt templates and any ASCII math text; anything
/// else is an error naming the character and its position.
/// </summary>
public sealed class CharTokenizer : ITokenizer
{
    /// <summary>Id of &lt;pad&gt;.</summary>
    public const int Pad = 0;

    /// <summary>Id of &lt;bos&gt;.</summary>
    public const int Bos = 1;

    /// <summary>Id of &lt;eos&gt;.</summary>
    public const int Eos = 2;

    private const int SpecialCount = 3;
    private static readonly string[] SpecialNames = ["<pad>", "<bos>", "<eos>"];

    /// <summary>'\n' then every printable ASCII character from ' ' to '~'.</summary>
    public static string DefaultAlphabet { get; } =
        "\n" + new string(Enumerable.Range(0x20, 0x7F - 0x20).Select(c => (char)c).ToArray());

    private readonly Dictionary<char, int> _ids = new();

    /// <summary>A tokenizer over <paramref name="alphabet"/> (default <see cref="DefaultAlphabet"/>); the characters
    /// must be distinct.</summary>
    public CharTokenizer(string? alphabet = null)
    {
        Alphabet = alphabet ?? DefaultAlphabet;
        if (Alphabet.Length == 0) throw new ArgumentException("The alphabet is empty.", nameof(alphabet));
        for (var i = 0; i < Alphabet.Length; i++)
            if (!_ids.TryAdd(Alphabet[i], SpecialCount + i))
                throw new ArgumentException($"The alphabet repeats {Describe(Alphabet[i])} at index {i}.", nameof(alphabet));
    }

    /// <summary>The characters, in id order (id = 3 + index).</summary>
    public string Alphabet { get; }

    /// <inheritdoc />
    public int VocabSize => SpecialCount + Alphabet.Length;

    /// <inheritdoc />
    public int PadId => Pad;

    /// <inheritdoc />
    public int? BosId => Bos;

    /// <inheritdoc />
    public int EosId => Eos;

    /// <inheritdoc />
    public bool IsSpecial(int id) => id is >= 0 and < SpecialCount;

    /// <summary>Whether every character of <paramref name="text"/> is in the alphabet.</summary>
    public bool CanEncode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (var c in text)
            if (!_ids.ContainsKey(c)) return false;
        return true;
    }

    /// <inheritdoc />
    public int[] Encode(string text, bool addBos = false, bool addEos = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new int[text.Length + (addBos ? 1 : 0) + (addEos ? 1 : 0)];
        var o = 0;
        if (addBos) ids[o++] = Bos;
        for (var i = 0; i < text.Length; i++)
        {
            if (!_ids.TryGetValue(text[i], out var id))
                throw new ArgumentException(
                    $"Character {Describe(text[i])} at index {i} is not in the character tokenizer's vocabulary " +
                    $"({Alphabet.Length} characters: newline and printable ASCII by default).", nameof(text));
            ids[o++] = id;
        }
        if (addEos) ids[o] = Eos;
        return ids;
    }

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = true)
    {
        var text = new StringBuilder(ids.Length);
        for (var i = 0; i < ids.Length; i++)
        {
            var id = ids[i];
            if ((uint)id >= (uint)VocabSize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token {i} has id {id}, outside the vocabulary of {VocabSize}.");
            if (id < SpecialCount)
            {
                if (!skipSpecialTokens) text.Append(SpecialNames[id]);
                continue;
            }
            text.Append(Alphabet[id - SpecialCount]);
        }
        return text.ToString();
    }

    private static string Describe(char c) =>
        c is >= ' ' and <= '~' ? $"'{c}' (U+{(int)c:X4})" : $"U+{(int)c:X4}";
}

/// <summary>Tokenizers by name.</summary>
public static class Tokenizers
{
    /// <summary>The default <see cref="CharTokenizer"/> (newline + printable ASCII, 99 ids).</summary>
    public const string Char = "char";

    /// <summary>The table (factories, so each caller gets its own instance).</summary>
    public static NamedRegistry<Func<ITokenizer>> Registry { get; } = CreateRegistry();

    /// <summary>A new tokenizer named <paramref name="name"/>.</summary>
    public static ITokenizer Create(string name) => Registry.Get(name)();

    private static NamedRegistry<Func<ITokenizer>> CreateRegistry()
    {
        var registry = new NamedRegistry<Func<ITokenizer>>("tokenizer");
        registry.Register(Char, () => new CharTokenizer());
        return registry;
    }
}
