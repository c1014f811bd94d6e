namespace Dapo.Torch;

/// <summary>How <see cref="PolicyModel.Sample"/> draws responses.</summary>
public sealed record SampleOptions
{
    /// <summary>Responses per prompt (the group size G).</summary>
    public int SamplesPerPrompt { get; init; } = 1;
    public required int MaxNewTokens { get; init; }
    /// <summary>Softmax temperature; 0 decodes greedily and records log-probabilities at temperature 1.</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Nucleus mass in (0, 1]. It restricts which tokens can be drawn; recorded log-probabilities are always
    /// under the full temperature-scaled distribution, the one that scoring computes.</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Tokens that end a response; the stop token is part of the response.</summary>
    public IReadOnlyList<int> StopTokens { get; init; } = [];
    /// <summary>With the same seed, prompts and weights, the same samples come out.</summary>
    public ulong Seed { get; init; }
    /// <summary>Optional, one per prompt: prompt p's samples are keyed by (PromptSeeds[p], index within the prompt)
    /// instead of (<see cref="Seed"/>, index in the batch), so the same prompt and seed give the same samples
    /// whichever other prompts share the call (a rollout work item can be re-run alone). Null: off.</summary>
    public IReadOnlyList<ulong>? PromptSeeds { get; init; }
    /// <summary>Off: recompute the whole sequence for every new token (a reference for tests and benchmarks).</summary>
    public bool UseKvCache { get; init; } = true;
}

/// <summary>One sampled response.</summary>
/// <param name="PromptIndex">Index of its prompt in the batch.</param>
/// <param name="Tokens">Response tokens, the stop token included when there was one.</param>
/// <param name="LogProbs">Log-probability of each token under the temperature-scaled distribution it was drawn from.</param>
/// <param name="Truncated">True when it reached the token limit before a stop token.</param>
public sealed record SampledResponse(int PromptIndex, int[] Tokens, float[] LogProbs, bool Truncated);
