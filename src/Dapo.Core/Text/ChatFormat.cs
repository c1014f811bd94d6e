using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Dapo.Core.Text;

/// <summary>
/// The ChatML turns of Qwen models, as their tokenizer_config.json's chat template renders one user message with
/// <c>add_generation_prompt</c> (what verl's DAPO recipe feeds the policy):
/// <c>[&lt;|im_start|&gt;system\n{default system}&lt;|im_end|&gt;\n]&lt;|im_start|&gt;user\n{prompt}&lt;|im_end|&gt;\n&lt;|im_start|&gt;assistant\n</c>.
/// The default system turn is the one the template writes when the messages have none (Qwen2.5: "You are Qwen,
/// created by Alibaba Cloud...", Qwen2.5-Math: "Please reason step by step..."; Qwen3: none), read from the template's
/// text rather than run through a Jinja engine. A response ends at the tokenizer's eos, &lt;|im_end|&gt; or
/// &lt;|endoftext|&gt;, whichever of them the vocabulary has, by id looked up in the tokenizer.
/// </summary>
public sealed class ChatFormat
{
    private const string Start = "<|im_start|>", End = "<|im_end|>";

    /// <summary>A format with <paramref name="defaultSystem"/> (null: no system turn) ending at <paramref name="stopTokens"/>.</summary>
    public ChatFormat(string? defaultSystem, IReadOnlyList<int> stopTokens)
    {
        if (stopTokens.Count == 0) throw new ArgumentException("A chat format needs at least one token that ends a response.", nameof(stopTokens));
        DefaultSystem = defaultSystem;
        StopTokens = stopTokens;
    }

    /// <summary>The system message the template adds when the conversation has none, or null.</summary>
    public string? DefaultSystem { get; }

    /// <summary>Ids that end a response, the tokenizer's eos first.</summary>
    public IReadOnlyList<int> StopTokens { get; }

    /// <summary>The text of a conversation of one user turn, <paramref name="user"/>, with the assistant's turn opened.</summary>
    public string Prompt(string user)
    {
        ArgumentNullException.ThrowIfNull(user);
        var system = DefaultSystem is null ? "" : $"{Start}system\n{DefaultSystem}{End}\n";
        return $"{system}{Start}user\n{user}{End}\n{Start}assistant\n";
    }

    /// <summary>The chat format of the model directory <paramref name="directory"/>, whose tokenizer is
    /// <paramref name="tokenizer"/>.</summary>
    /// <exception cref="FormatException">tokenizer_config.json has no chat template, or one that is not ChatML; the
    /// message names the file and field.</exception>
    public static ChatFormat FromDirectory(string directory, ByteLevelBpeTokenizer tokenizer)
    {
        var path = Path.Combine(directory, "tokenizer_config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"{directory}: the model directory has no tokenizer_config.json.", path);
        string? template;
        try
        {
            using var config = JsonDocument.Parse(File.ReadAllBytes(path));
            template = config.RootElement.TryGetProperty("chat_template", out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
        }
        catch (JsonException e)
        {
            throw new FormatException($"{path}: not valid JSON: {Common.JsonErrors.Describe(e)}", e);
        }
        if (template is null)
            throw new FormatException($"{path}: chat_template is missing; Dapo prompts Qwen models in their ChatML turns and reads them from it.");
        if (!template.Contains(Start) || !template.Contains(End) || !template.Contains("add_generation_prompt"))
            throw new FormatException($"{path}: chat_template is not a ChatML template ({Start} ... {End} with add_generation_prompt); Dapo supports Qwen's.");
        foreach (var marker in new[] { Start, End })
            if (tokenizer.AddedTokenId(marker) is null) throw new FormatException($"{path}: the chat template uses {marker}, which tokenizer.json does not add as a token.");
        var stops = new[] { tokenizer.EosId, tokenizer.AddedTokenId(End), tokenizer.AddedTokenId("<|endoftext|>") }
            .OfType<int>().Distinct().ToArray();
        return new ChatFormat(DefaultSystemOf(template), stops);
    }

    /// <summary>The literal system turn of the template, <c>'&lt;|im_start|&gt;system\n...&lt;|im_end|&gt;\n'</c> in a
    /// Jinja string (no variables in it), unescaped; null when the template has none (it only echoes messages[0]).</summary>
    internal static string? DefaultSystemOf(string template)
    {
        var match = Regex.Match(template, @"(['""])<\|im_start\|>system\\n((?:(?!\1)[^\\]|\\.)*?)<\|im_end\|>\\n\1");
        return match.Success ? Unescape(match.Groups[2].Value) : null;
    }

    private static string Unescape(string literal)
    {
        var text = new StringBuilder(literal.Length);
        for (var i = 0; i < literal.Length; i++)
        {
            if (literal[i] != '\\' || i + 1 == literal.Length)
            {
                text.Append(literal[i]);
                continue;
            }
            var c = literal[++i];
            text.Append(c switch { 'n' => '\n', 't' => '\t', 'r' => '\r', _ => c });
        }
        return text.ToString();
    }
}
