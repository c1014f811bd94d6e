using Dapo.Core.Common;
using Dapo.Core.Options;
using Dapo.Core.Rewards;
using Dapo.Torch;

namespace Dapo.Training;

/// <summary>A prompt to roll out: its id (what seeds derive from), its tokens and the ground truth the reward
/// compares with.</summary>
/// <param name="Id">Stable id of the problem (e.g. <c>SyntheticProblem.Id</c>).</param>
/// <param name="Tokens">&lt;bos&gt; + templated problem (<see cref="PromptEncoder.EncodePrompt"/>).</param>
/// <param name="GroundTruth">The answer given to the reward function.</param>
/// <param name="Source">Where it came from (e.g. "synthetic-L2"), for per-source evaluation figures.</param>
public sealed record RolloutPrompt(string Id, int[] Tokens, string GroundTruth, string Source = "");

/// <summary>How responses are sampled.</summary>
/// <param name="GroupSize">Responses per prompt (G).</param>
/// <param name="MaxNewTokens">Most tokens per response (L_max of eq. 13 during training).</param>
/// <param name="Temperature">Sampling temperature.</param>
/// <param name="TopP">Nucleus mass.</param>
/// <param name="Seed">Base seed; each prompt's draws derive from (Seed, prompt id, first slot).</param>
public sealed record RolloutSettings(int GroupSize, int MaxNewTokens, double Temperature, double TopP, ulong Seed)
{
    /// <summary>The training-rollout settings of <paramref name="options"/> with base seed <paramref name="seed"/>.</summary>
    public static RolloutSettings ForTraining(DapoOptions options, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new RolloutSettings(options.GroupSize, options.MaxResponseLength, options.Temperature, options.TopP, seed);
    }
}

/// <summary>
/// One sampled response, scored: everything a prompt grain's slot row stores and the learner needs. Plain values
/// and arrays, so a database row can hold it.
/// </summary>
/// <param name="Slot">Index of the response in its group, 0..G−1.</param>
/// <param name="Tokens">Response tokens, the stop token included when there was one.</param>
/// <param name="LogProbs">Behaviour log-probabilities of <paramref name="Tokens"/> under the sampling policy, at the
/// sampling temperature (the learner's log π_old).</param>
/// <param name="Text">Decoded response (up to &lt;eos&gt;, specials dropped): what the reward read.</param>
/// <param name="Score">Rule-based reward (eq. 7): +1 correct, −1 otherwise.</param>
/// <param name="OverlongPenalty">Soft overlong punishment (eq. 13), ≤ 0.</param>
/// <param name="Reward">Score + penalty: what the advantage is computed from.</param>
/// <param name="Length">Tokens in the response.</param>
/// <param name="Truncated">True when it hit the token limit before &lt;eos&gt;.</param>
/// <param name="Correct">Accuracy of the response (what dynamic sampling filters on).</param>
/// <param name="Prediction">The extracted, normalised answer (null: none), for maj@k.</param>
public sealed record RolloutSlot(
    int Slot, int[] Tokens, float[] LogProbs, string Text, double Score, double OverlongPenalty, double Reward, int Length,
    bool Truncated, bool Correct, string? Prediction)
{
    /// <summary>The outcome as the algorithm core sees it (for dynamic sampling and metrics).</summary>
    public ResponseOutcome Outcome => new(Score, OverlongPenalty, Correct, Length, Truncated, Prediction);

    /// <summary>What the learner trains on.</summary>
    public TrainingResponse ToTrainingResponse() => new(Tokens, LogProbs, Reward, Truncated);
}

/// <summary>A prompt's finished group of responses.</summary>
public sealed record RolloutGroup(RolloutPrompt Prompt, IReadOnlyList<RolloutSlot> Slots)
{
    /// <summary>The outcomes of the slots, in slot order.</summary>
    public ResponseOutcome[] Outcomes => Slots.Select(s => s.Outcome).ToArray();

    /// <summary>The group as the learner's input.</summary>
    public TrainingGroup ToTrainingGroup() => new(Prompt.Tokens, Slots.Select(s => s.ToTrainingResponse()).ToArray());
}

/// <summary>
/// The rollout worker's computation: sample G responses per prompt from a policy, decode and score them. Every
/// (prompt, first slot) has its own seed, derived from the settings' base seed and the prompt's id, and the engine
/// keys a prompt's draws by that seed (<see cref="SampleOptions.PromptSeeds"/>), so re-running a work item (after a
/// worker died, say) on the same policy weights yields the same responses, whichever other prompts it is batched
/// with — while prompts are still sampled together in one engine call (measured on the demo model: 1.75× the
/// throughput of one call per prompt).
/// </summary>
public sealed class RolloutGenerator
{
    /// <summary>Most sample rows per engine call, to bound the key/value cache's memory.</summary>
    public const int MaxRowsPerCall = 2048;

    private readonly PromptEncoder _encoder;
    private readonly ResponseScorer _scorer;

    /// <summary>A generator that decodes with <paramref name="encoder"/> and scores with <paramref name="scorer"/>
    /// (reward function plus, when on, the overlong punishment).</summary>
    public RolloutGenerator(PromptEncoder encoder, ResponseScorer scorer)
    {
        _encoder = encoder ?? throw new ArgumentNullException(nameof(encoder));
        _scorer = scorer ?? throw new ArgumentNullException(nameof(scorer));
    }

    /// <summary>The seed of the draws of slots firstSlot.. of prompt <paramref name="promptId"/>.</summary>
    public static ulong SeedFor(ulong baseSeed, string promptId, int firstSlot = 0)
    {
        ArgumentNullException.ThrowIfNull(promptId);
        ArgumentOutOfRangeException.ThrowIfNegative(firstSlot);
        return DeterministicRandom.Mix(DeterministicRandom.Mix(baseSeed, StableHash.Fnv1a64(promptId)), (ulong)firstSlot);
    }

    /// <summary>All G slots of every prompt, one group per prompt in order; slot k of a prompt is what
    /// <see cref="GenerateSlots"/>(prompt, 0, G) gives.</summary>
    public IReadOnlyList<RolloutGroup> Generate(PolicyModel model, IReadOnlyList<RolloutPrompt> prompts, RolloutSettings settings)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(settings.GroupSize);
        var groups = new List<RolloutGroup>(prompts.Count);
        var perCall = Math.Max(1, MaxRowsPerCall / settings.GroupSize);
        for (var start = 0; start < prompts.Count; start += perCall)
        {
            var chunk = prompts.Skip(start).Take(perCall).ToArray();
            var responses = Sample(model, chunk, 0, settings.GroupSize, settings);
            for (var p = 0; p < chunk.Length; p++)
            {
                var slots = new RolloutSlot[settings.GroupSize];
                for (var k = 0; k < slots.Length; k++)
                    slots[k] = Score(k, responses[p * settings.GroupSize + k], chunk[p].GroundTruth);
                groups.Add(new RolloutGroup(chunk[p], slots));
            }
        }
        return groups;
    }

    /// <summary>Slots <paramref name="firstSlot"/> .. firstSlot + count − 1 of one prompt (a rollout work item).</summary>
    public IReadOnlyList<RolloutSlot> GenerateSlots(
        PolicyModel model, RolloutPrompt prompt, int firstSlot, int count, RolloutSettings settings)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfNegative(firstSlot);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var responses = Sample(model, [prompt], firstSlot, count, settings);
        var slots = new RolloutSlot[responses.Count];
        for (var k = 0; k < responses.Count; k++) slots[k] = Score(firstSlot + k, responses[k], prompt.GroundTruth);
        return slots;
    }

    /// <summary>Decodes and scores one sampled response.</summary>
    public RolloutSlot Score(int slot, SampledResponse response, string groundTruth)
    {
        ArgumentNullException.ThrowIfNull(response);
        var text = _encoder.DecodeResponse(response.Tokens);
        var outcome = _scorer.Score(text, groundTruth, response.Tokens.Length, response.Truncated);
        return new RolloutSlot(slot, response.Tokens, response.LogProbs, text, outcome.Score, outcome.OverlongPenalty,
            outcome.Reward, outcome.Length, outcome.Truncated, outcome.Correct, outcome.Prediction);
    }

    private IReadOnlyList<SampledResponse> Sample(
        PolicyModel model, RolloutPrompt[] prompts, int firstSlot, int count, RolloutSettings settings) =>
        model.Sample(prompts.Select(p => p.Tokens).ToArray(), new SampleOptions
        {
            SamplesPerPrompt = count, MaxNewTokens = settings.MaxNewTokens, Temperature = settings.Temperature,
            TopP = settings.TopP, StopTokens = _encoder.StopTokens, Seed = settings.Seed,
            PromptSeeds = prompts.Select(p => SeedFor(settings.Seed, p.Id, firstSlot)).ToArray(),
        });
}
