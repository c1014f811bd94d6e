using Dapo.Core.Data;
using Dapo.Core.Text;

namespace Dapo.Training;

/// <summary>
/// The text ↔ token boundary of training: a problem becomes &lt;bos&gt; + template(problem) (the prompt the policy
/// continues), a response's tokens become the text the reward reads (up to the first &lt;eos&gt;, special tokens
/// dropped), and a worked solution becomes the supervised target solution + &lt;eos&gt; (so the policy learns to
/// stop, which is what ends its rollouts). One object so that rollout, warm-start and evaluation cannot disagree on
/// any of the three.
/// </summary>
public sealed class PromptEncoder
{
    /// <summary>An encoder with <paramref name="tokenizer"/> and <paramref name="template"/>.</summary>
    public PromptEncoder(ITokenizer tokenizer, IPromptTemplate template)
    {
        Tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        Template = template ?? throw new ArgumentNullException(nameof(template));
    }

    /// <summary>An encoder for the named tokenizer and template (see <see cref="Tokenizers"/>,
    /// <see cref="PromptTemplates"/>); an unknown name fails and lists the known ones.</summary>
    public static PromptEncoder Create(string tokenizer = Tokenizers.Char, string template = PromptTemplates.Short) =>
        new(Tokenizers.Create(tokenizer), PromptTemplates.Get(template));

    /// <summary>The tokenizer.</summary>
    public ITokenizer Tokenizer { get; }

    /// <summary>The prompt template.</summary>
    public IPromptTemplate Template { get; }

    /// <summary>Tokens that end a response: &lt;eos&gt;.</summary>
    public IReadOnlyList<int> StopTokens => [Tokenizer.EosId];

    /// <summary>&lt;bos&gt; then the templated problem. The bos gives the first prompt token a context, and keeps
    /// every prompt non-empty, which the engine requires.</summary>
    public int[] EncodePrompt(string problem) => Tokenizer.Encode(Template.Apply(problem), addBos: true);

    /// <summary>A supervised target: <paramref name="solution"/> then &lt;eos&gt;.</summary>
    public int[] EncodeResponse(string solution) => Tokenizer.Encode(solution, addEos: true);

    /// <summary>The text of a sampled response: tokens before the first &lt;eos&gt;, other special tokens dropped.</summary>
    public string DecodeResponse(ReadOnlySpan<int> response)
    {
        var end = response.IndexOf(Tokenizer.EosId);
        return Tokenizer.Decode(end < 0 ? response : response[..end], skipSpecialTokens: true);
    }
}
