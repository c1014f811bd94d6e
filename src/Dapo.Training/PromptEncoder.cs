using Dapo.Core.Data;
using Dapo.Core.Text;

namespace Dapo.Training;

/// <summary>
/// The text ↔ token boundary of training: a problem becomes the prompt the policy continues (&lt;bos&gt; +
/// template(problem) for Dapo's own models; for a Hugging Face model, template(problem) as the user turn of its
/// <see cref="ChatFormat"/>), a response's tokens become the text the reward reads (up to the first stop token,
/// special tokens dropped), and a worked solution becomes the supervised target solution + stop token (so the policy
/// learns to stop, which is what ends its rollouts). One object so that rollout, warm-start and evaluation cannot
/// disagree on any of the three.
/// </summary>
public sealed class PromptEncoder
{
    /// <summary>An encoder with <paramref name="tokenizer"/> and <paramref name="template"/>, in the turns of
    /// <paramref name="chat"/> when given.</summary>
    public PromptEncoder(ITokenizer tokenizer, IPromptTemplate template, ChatFormat? chat = null)
    {
        Tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        Template = template ?? throw new ArgumentNullException(nameof(template));
        Chat = chat;
        _stops = [.. chat?.StopTokens ?? [tokenizer.EosId]];
    }

    private readonly int[] _stops;

    /// <summary>The encoder of the Hugging Face model directory <paramref name="directory"/>: its tokenizer and chat
    /// turns, with the named template (<see cref="PromptTemplates"/>) as the user's message.</summary>
    /// <exception cref="FormatException">The directory's tokenizer files are malformed or not a Qwen tokenizer.</exception>
    public static PromptEncoder ForModel(string directory, string template = PromptTemplates.Dapo)
    {
        var tokenizer = ByteLevelBpeTokenizer.FromDirectory(directory);
        return new PromptEncoder(tokenizer, PromptTemplates.Get(template), ChatFormat.FromDirectory(directory, tokenizer));
    }

    /// <summary>An encoder for the named tokenizer and template (see <see cref="Tokenizers"/>,
    /// <see cref="PromptTemplates"/>); an unknown name fails and lists the known ones.</summary>
    public static PromptEncoder Create(string tokenizer = Tokenizers.Char, string template = PromptTemplates.Short) =>
        new(Tokenizers.Create(tokenizer), PromptTemplates.Get(template));

    /// <summary>The tokenizer.</summary>
    public ITokenizer Tokenizer { get; }

    /// <summary>The prompt template.</summary>
    public IPromptTemplate Template { get; }

    /// <summary>The chat turns of a Hugging Face model, or null for Dapo's own models.</summary>
    public ChatFormat? Chat { get; }

    /// <summary>Tokens that end a response: &lt;eos&gt;, or the chat format's (&lt;|im_end|&gt;, &lt;|endoftext|&gt;).</summary>
    public IReadOnlyList<int> StopTokens => _stops;

    /// <summary>The prompt of <paramref name="problem"/>: &lt;bos&gt; then the templated problem (the bos gives the
    /// first prompt token a context, and keeps every prompt non-empty, which the engine requires); with a chat format,
    /// the templated problem as the user's turn, the assistant's turn opened.</summary>
    public int[] EncodePrompt(string problem) => Chat is null
        ? Tokenizer.Encode(Template.Apply(problem), addBos: true)
        : Tokenizer.Encode(Chat.Prompt(Template.Apply(problem)));

    /// <summary>A supervised target: <paramref name="solution"/> then the first stop token.</summary>
    public int[] EncodeResponse(string solution) => [.. Tokenizer.Encode(solution), _stops[0]];

    /// <summary>The text of a sampled response: tokens before the first stop token, other special tokens dropped.</summary>
    public string DecodeResponse(ReadOnlySpan<int> response)
    {
        var end = response.IndexOfAny(_stops);
        return Tokenizer.Decode(end < 0 ? response : response[..end], skipSpecialTokens: true);
    }
}
