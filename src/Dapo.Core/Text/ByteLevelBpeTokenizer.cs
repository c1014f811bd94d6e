using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace Dapo.Core.Text;

/// <summary>
/// The byte-level BPE tokenizer of a Hugging Face model directory (Qwen2, Qwen2.5, Qwen3), read from its
/// <c>tokenizer.json</c> (vocabulary, merges, pre-tokenizer, added tokens) and <c>tokenizer_config.json</c> (which
/// added tokens are eos, pad and bos). Encoding follows the Hugging Face pipeline:
/// <list type="number">
/// <item>added tokens written in the text (<c>&lt;|im_start|&gt;</c>, <c>&lt;think&gt;</c>, ...) become their ids,
/// the longest at the leftmost position first;</item>
/// <item>the text between them is NFC-normalised and split by <see cref="Qwen2PreTokenizer"/>;</item>
/// <item>each piece's UTF-8 bytes are spelled in GPT-2's byte alphabet and merged by rank, lowest first.</item>
/// </list>
/// Decoding maps tokens back to bytes and reads them as UTF-8 (an incomplete character becomes U+FFFD, as
/// <c>errors="replace"</c>). Any other tokenizer.json (another model type, normaliser, pattern or byte fallback) is
/// refused naming the field. Thread-safe.
/// </summary>
public sealed class ByteLevelBpeTokenizer : ITokenizer
{
    private readonly string[] _tokens;                  // id -> vocabulary string (byte alphabet) or added token content
    private readonly bool[] _added, _special;
    private readonly Dictionary<string, int> _ids;      // vocabulary string -> id (BPE symbols)
    private readonly Dictionary<long, (int Rank, int Id)> _merges;
    private readonly int[] _byteIds = new int[256];
    private readonly Dictionary<char, (string Content, int Id)[]> _addedByFirstChar;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private const int CacheLimit = 200_000;

    private ByteLevelBpeTokenizer(string source, Dictionary<string, int> vocabulary, List<(string Left, string Right)> merges,
        List<(string Content, int Id, bool Special)> added)
    {
        VocabSize = Math.Max(vocabulary.Values.DefaultIfEmpty(-1).Max(), added.Select(a => a.Id).DefaultIfEmpty(-1).Max()) + 1;
        _tokens = new string[VocabSize];
        _added = new bool[VocabSize];
        _special = new bool[VocabSize];
        _ids = vocabulary;
        foreach (var (token, id) in vocabulary)
        {
            if (id < 0) throw new FormatException($"{source}: model.vocab: '{token}' has the negative id {id}.");
            if (_tokens[id] is { } other) throw new FormatException($"{source}: model.vocab: id {id} is given to both '{other}' and '{token}'.");
            _tokens[id] = token;
        }
        foreach (var (content, id, special) in added)
        {
            if (_tokens[id] is { } existing && existing != content)
                throw new FormatException($"{source}: added_tokens: id {id} is '{content}' but the vocabulary has '{existing}' there.");
            _tokens[id] = content;
            _added[id] = true;
            _special[id] = special;
        }
        _addedByFirstChar = added.GroupBy(a => a.Content[0])
            .ToDictionary(g => g.Key, g => g.Select(a => (a.Content, a.Id)).OrderByDescending(a => a.Content.Length).ToArray());

        var alphabet = ByteAlphabet();
        for (var b = 0; b < 256; b++)
            _byteIds[b] = vocabulary.TryGetValue(alphabet[b].ToString(), out var id)
                ? id
                : throw new FormatException($"{source}: model.vocab has no token for byte 0x{b:X2} ('{alphabet[b]}'); a byte-level BPE needs all 256.");
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        for (var rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            if (!vocabulary.TryGetValue(left, out var l) || !vocabulary.TryGetValue(right, out var r))
                throw new FormatException($"{source}: model.merges[{rank}] '{left} {right}' names a token that is not in model.vocab.");
            if (!vocabulary.TryGetValue(left + right, out var merged))
                throw new FormatException($"{source}: model.merges[{rank}] '{left} {right}' gives '{left + right}', which is not in model.vocab.");
            _merges.TryAdd(Key(l, r), (rank, merged));  // a repeated merge keeps its first (lowest) rank
        }
    }

    /// <inheritdoc />
    public int VocabSize { get; }

    /// <inheritdoc />
    public int PadId { get; }

    /// <inheritdoc />
    public int? BosId { get; }

    /// <inheritdoc />
    public int EosId { get; }

    /// <summary>The id of <paramref name="content"/> when it is an added token (&lt;|im_end|&gt;, ...), else null.</summary>
    public int? AddedTokenId(string content) =>
        content.Length > 0 && _addedByFirstChar.TryGetValue(content[0], out var candidates) && candidates.FirstOrDefault(c => c.Content == content) is { Content: not null } hit
            ? hit.Id
            : null;

    /// <inheritdoc />
    public bool IsSpecial(int id) => id >= 0 && id < VocabSize && _special[id];

    /// <summary>
    /// The tokenizer of the Hugging Face model directory <paramref name="directory"/>: its tokenizer.json, and the
    /// eos / pad / bos tokens named by its tokenizer_config.json.
    /// </summary>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="FormatException">A file is malformed or describes a tokenizer this class does not implement; the
    /// message names the file and field.</exception>
    public static ByteLevelBpeTokenizer FromDirectory(string directory)
    {
        var tokenizerPath = Path.Combine(directory, "tokenizer.json");
        var configPath = Path.Combine(directory, "tokenizer_config.json");
        foreach (var path in new[] { tokenizerPath, configPath })
            if (!File.Exists(path)) throw new FileNotFoundException($"{directory}: the model directory has no {Path.GetFileName(path)}.", path);
        var tokenizer = FromTokenizerJson(tokenizerPath);
        using var config = ReadJson(configPath);
        int? Role(string field, bool required)
        {
            if (!config.RootElement.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
                return required ? throw new FormatException($"{configPath}: {field} is missing; Dapo needs it to end responses.") : null;
            // A string, or an object {"content": "..."} as older files write it.
            var content = value.ValueKind == JsonValueKind.Object && value.TryGetProperty("content", out var c) ? c.GetString() : value.ValueKind == JsonValueKind.String ? value.GetString() : null;
            if (content is null) throw new FormatException($"{configPath}: {field} is neither a string nor {{\"content\": ...}}.");
            return tokenizer.AddedTokenId(content) ?? tokenizer._ids.GetValueOrDefault(content, -1) switch
            {
                -1 => throw new FormatException($"{configPath}: {field} '{content}' is not a token of tokenizer.json."),
                var id => id,
            };
        }
        var eos = Role("eos_token", required: true)!.Value;
        return new ByteLevelBpeTokenizer(tokenizer, eos, Role("pad_token", required: false) ?? eos, Role("bos_token", required: false));
    }

    /// <summary>The same vocabulary with other eos / pad / bos ids.</summary>
    private ByteLevelBpeTokenizer(ByteLevelBpeTokenizer other, int eos, int pad, int? bos)
    {
        (_tokens, _added, _special, _ids, _merges, _byteIds, _addedByFirstChar, _cache, VocabSize) =
            (other._tokens, other._added, other._special, other._ids, other._merges, other._byteIds, other._addedByFirstChar, other._cache, other.VocabSize);
        (EosId, PadId, BosId) = (eos, pad, bos);
    }

    /// <summary>The tokenizer of a tokenizer.json alone; eos and pad are its first special added token.</summary>
    public static ByteLevelBpeTokenizer FromTokenizerJson(string path)
    {
        using var document = ReadJson(path);
        var root = document.RootElement;
        JsonElement Field(JsonElement parent, string name, string where) =>
            parent.TryGetProperty(name, out var value) ? value : throw new FormatException($"{path}: {where}{name} is missing.");
        void Expect(bool ok, string what)
        {
            if (!ok) throw new FormatException($"{path}: {what}");
        }

        var model = Field(root, "model", "");
        var type = model.TryGetProperty("type", out var t) ? t.GetString() : null;
        Expect(type == "BPE", $"model.type is '{type}'; Dapo reads byte-level BPE tokenizers (Qwen2, Qwen2.5, Qwen3) only.");
        Expect(!model.TryGetProperty("byte_fallback", out var fallback) || fallback.ValueKind != JsonValueKind.True,
            "model.byte_fallback is true; that is a SentencePiece-style BPE, not the byte-level BPE Dapo reads.");
        foreach (var affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            Expect(!model.TryGetProperty(affix, out var v) || v.ValueKind == JsonValueKind.Null || v.GetString() == "",
                $"model.{affix} is '{(model.TryGetProperty(affix, out var w) ? w.ToString() : "")}'; Dapo supports none.");
        if (root.TryGetProperty("normalizer", out var normalizer) && normalizer.ValueKind != JsonValueKind.Null)
        {
            var kind = normalizer.TryGetProperty("type", out var k) ? k.GetString() : null;
            Expect(kind == "NFC", $"normalizer.type is '{kind}'; Dapo supports NFC or none.");
        }
        var pattern = FindSplitPattern(root);
        Expect(pattern == Qwen2PreTokenizer.Pattern,
            $"pre_tokenizer's Split pattern is {(pattern is null ? "missing" : $"'{pattern}'")}; Dapo implements the Qwen2 pattern '{Qwen2PreTokenizer.Pattern}' only.");

        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in Field(model, "vocab", "model.").EnumerateObject())
            vocabulary[entry.Name] = entry.Value.TryGetInt32(out var id) ? id : throw new FormatException($"{path}: model.vocab['{entry.Name}'] is not an integer id.");
        var merges = new List<(string, string)>();
        var index = 0;
        foreach (var merge in Field(model, "merges", "model.").EnumerateArray())
        {
            // ["a", "b"] (current files) or "a b" (older ones)
            if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2)
                merges.Add((merge[0].GetString()!, merge[1].GetString()!));
            else if (merge.ValueKind == JsonValueKind.String && merge.GetString()!.Split(' ') is [var a, var b])
                merges.Add((a, b));
            else throw new FormatException($"{path}: model.merges[{index}] is neither [\"a\", \"b\"] nor \"a b\": {merge}.");
            index++;
        }
        var added = new List<(string, int, bool)>();
        if (root.TryGetProperty("added_tokens", out var addedTokens))
            foreach (var token in addedTokens.EnumerateArray())
            {
                var content = Field(token, "content", "added_tokens[].").GetString() ?? "";
                var id = Field(token, "id", "added_tokens[].").GetInt32();
                foreach (var flag in new[] { "lstrip", "rstrip", "single_word" })
                    Expect(!token.TryGetProperty(flag, out var f) || f.ValueKind != JsonValueKind.True,
                        $"added token '{content}' has {flag}: true, which Dapo does not implement.");
                Expect(content.Length > 0, $"added token {id} is empty.");
                added.Add((content, id, token.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True));
            }
        var tokenizer = new ByteLevelBpeTokenizer(path, vocabulary, merges, added);
        var first = added.Where(a => a.Item3).Select(a => a.Item2).DefaultIfEmpty(-1).First();
        if (first < 0) throw new FormatException($"{path}: added_tokens has no special token to end a response with.");
        return new ByteLevelBpeTokenizer(tokenizer, first, first, bos: null);
    }

    private static string? FindSplitPattern(JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object) return null;
        var steps = pre.TryGetProperty("pretokenizers", out var list) ? list.EnumerateArray().ToArray() : [pre];
        var split = steps.FirstOrDefault(s => s.TryGetProperty("type", out var type) && type.GetString() == "Split");
        return split.ValueKind == JsonValueKind.Object && split.TryGetProperty("pattern", out var pattern) && pattern.TryGetProperty("Regex", out var regex)
            ? regex.GetString()
            : null;
    }

    private static JsonDocument ReadJson(string path)
    {
        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new FormatException($"{path}: not valid JSON: {Common.JsonErrors.Describe(e)}", e);
        }
    }

    /// <summary>Token ids of <paramref name="text"/>; added tokens written in it (<c>&lt;|im_end|&gt;</c>) are their ids.</summary>
    /// <exception cref="ArgumentException">An unpaired surrogate, or <paramref name="addBos"/> when the tokenizer has no bos.</exception>
    public int[] Encode(string text, bool addBos = false, bool addEos = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 2);
        if (addBos) ids.Add(BosId ?? throw new ArgumentException("This tokenizer has no bos token (tokenizer_config.json bos_token is null).", nameof(addBos)));
        var start = 0;
        for (var i = 0; i < text.Length;)
        {
            if (MatchAddedToken(text, i) is { } hit)
            {
                EncodeOrdinary(text[start..i], ids);
                ids.Add(hit.Id);
                i += hit.Length;
                start = i;
            }
            else i++;
        }
        EncodeOrdinary(text[start..], ids);
        if (addEos) ids.Add(EosId);
        return ids.ToArray();
    }

    private (int Id, int Length)? MatchAddedToken(string text, int at)
    {
        if (!_addedByFirstChar.TryGetValue(text[at], out var candidates)) return null;
        foreach (var (content, id) in candidates)  // longest first
            if (at + content.Length <= text.Length && string.CompareOrdinal(text, at, content, 0, content.Length) == 0) return (id, content.Length);
        return null;
    }

    private void EncodeOrdinary(string segment, List<int> ids)
    {
        if (segment.Length == 0) return;
        segment = Nfc.Normalize(segment);
        foreach (var (start, length) in Qwen2PreTokenizer.Split(segment))
        {
            var piece = segment.Substring(start, length);
            if (!_cache.TryGetValue(piece, out var pieceIds))
            {
                pieceIds = MergePiece(piece);
                if (_cache.Count >= CacheLimit) _cache.Clear();  // a bound, not an LRU: pieces repeat a lot in practice
                _cache.TryAdd(piece, pieceIds);
            }
            ids.AddRange(pieceIds);
        }
    }

    /// <summary>BPE of one piece: its bytes as symbols, then the adjacent pair of lowest merge rank merged (every
    /// non-overlapping occurrence, left to right) until no pair has a merge.</summary>
    private int[] MergePiece(string piece)
    {
        var bytes = Encoding.UTF8.GetBytes(piece);
        var symbols = new List<int>(bytes.Length);
        foreach (var b in bytes) symbols.Add(_byteIds[b]);
        while (symbols.Count > 1)
        {
            var best = (Rank: int.MaxValue, Left: -1, Right: -1, Id: -1);
            for (var i = 0; i + 1 < symbols.Count; i++)
                if (_merges.TryGetValue(Key(symbols[i], symbols[i + 1]), out var merge) && merge.Rank < best.Rank)
                    best = (merge.Rank, symbols[i], symbols[i + 1], merge.Id);
            if (best.Id < 0) break;
            var merged = new List<int>(symbols.Count);
            for (var i = 0; i < symbols.Count; i++)
            {
                if (i + 1 < symbols.Count && symbols[i] == best.Left && symbols[i + 1] == best.Right)
                {
                    merged.Add(best.Id);
                    i++;
                }
                else merged.Add(symbols[i]);
            }
            symbols = merged;
        }
        return symbols.ToArray();
    }

    /// <inheritdoc />
    /// <remarks>An id with no token (past the vocabulary, as in a padded embedding table) decodes to nothing.</remarks>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = true)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        var byteOf = ByteOfAlphabetChar;
        void Flush()
        {
            if (bytes.Count == 0) return;
            text.Append(Encoding.UTF8.GetString(bytes.ToArray()));  // invalid sequences -> U+FFFD
            bytes.Clear();
        }
        foreach (var id in ids)
        {
            if (id < 0) throw new ArgumentOutOfRangeException(nameof(ids), $"Token id {id} is negative.");
            // A model's embedding table is often padded past its tokenizer (Qwen2.5: 151,936 rows for 151,665 tokens),
            // and a sampling policy can draw those rows. Like Hugging Face's tokenizers, they decode to nothing.
            if (id >= VocabSize || _tokens[id] is null) continue;
            if (_added[id])
            {
                if (skipSpecialTokens && _special[id]) continue;
                Flush();
                text.Append(_tokens[id]);
                continue;
            }
            foreach (var c in _tokens[id]) bytes.Add(byteOf[c]);
        }
        Flush();
        return text.ToString();
    }

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>GPT-2's spelling of bytes as printable characters: printable Latin-1 bytes stand for themselves, the
    /// rest (controls, space, 0x7F-0xA0, 0xAD) become U+0100 onwards in byte order.</summary>
    private static char[] ByteAlphabet()
    {
        var alphabet = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
            alphabet[b] = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF ? (char)b : (char)next++;
        return alphabet;
    }

    private static readonly Dictionary<char, byte> ByteOfAlphabetChar =
        ByteAlphabet().Select((c, b) => (c, (byte)b)).ToDictionary(x => x.c, x => x.Item2);
}
