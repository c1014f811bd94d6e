namespace Dapo.Core.Text;

/// <summary>Text ↔ token ids, with the three special tokens the rollout and the engine need.</summary>
public interface ITokenizer
{
    /// <summary>Number of token ids (the model's vocabulary size); ids are 0 .. VocabSize − 1.</summary>
    int VocabSize { get; }

    /// <summary>Padding id.</summary>
    int PadId { get; }

    /// <summary>Beginning-of-sequence id (put before a prompt), or null when the tokenizer has none (Qwen).</summary>
    int? BosId { get; }

    /// <summary>End-of-sequence id (ends a response; the rollout's stop token).</summary>
    int EosId { get; }

    /// <summary>Token ids of <paramref name="text"/>, optionally wrapped in BOS / EOS.</summary>
    /// <exception cref="ArgumentException">The text has a character the vocabulary cannot represent.</exception>
    int[] Encode(string text, bool addBos = false, bool addEos = false);

    /// <summary>The text of <paramref name="ids"/>; special tokens are dropped unless
    /// <paramref name="skipSpecialTokens"/> is false (then they appear as their text: &lt;eos&gt;, &lt;|im_end|&gt;).</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is not a token id (each implementation says which).</exception>
    string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = true);

    /// <summary>Whether <paramref name="id"/> is a special token (pad, bos, eos; a Hugging Face tokenizer's special added
    /// tokens such as &lt;|im_start|&gt;).</summary>
    bool IsSpecial(int id);
}
