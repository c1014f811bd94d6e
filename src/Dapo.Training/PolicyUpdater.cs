using System.Diagnostics;
using Dapo.Core.Advantages;
using Dapo.Core.Loss;
using Dapo.Core.Metrics;
using Dapo.Core.Options;
using Dapo.Core.Overlong;
using Dapo.Torch;

namespace Dapo.Training;

/// <summary>One response as the learner needs it.</summary>
/// <param name="Tokens">Response tokens (stop token included when there was one).</param>
/// <param name="BehaviourLogProbs">log π_old of each token, recorded while sampling at the training temperature.</param>
/// <param name="Reward">Shaped reward: score + overlong penalty.</param>
/// <param name="Truncated">Hit the length limit (overlong filtering masks it).</param>
public sealed record TrainingResponse(int[] Tokens, float[] BehaviourLogProbs, double Reward, bool Truncated);

/// <summary>An accepted group: the prompt and its G responses.</summary>
public sealed record TrainingGroup(int[] PromptTokens, IReadOnlyList<TrainingResponse> Responses);

/// <summary>What one rollout step's updates did.</summary>
/// <param name="Step">Rollout step (0-based), which set the learning rate.</param>
/// <param name="LearningRate">The scheduled learning rate every mini-batch used.</param>
/// <param name="Advantages">A_i per response, groups in order, responses in slot order.</param>
/// <param name="Entropies">Entropy of every response token under the policy as each mini-batch saw it (flat).</param>
/// <param name="Updates">One entry per mini-batch (optimizer step).</param>
/// <param name="Diagnostics">Loss diagnostics merged over the mini-batches (token-weighted).</param>
/// <param name="ScoredTokens">Tokens (prompt + response) the engine scored with gradients.</param>
/// <param name="Elapsed">Wall time of the updates.</param>
public sealed record PolicyUpdateResult(
    int Step, double LearningRate, double[] Advantages, float[] Entropies, IReadOnlyList<MiniBatchUpdate> Updates,
    PolicyLossDiagnostics Diagnostics, long ScoredTokens, TimeSpan Elapsed)
{
    /// <summary>Mean policy-gradient loss over the mini-batches.</summary>
    public double Loss => Updates.Count == 0 ? 0 : Updates.Average(u => u.PolicyGradientLoss);

    /// <summary>Mean pre-clip gradient norm over the mini-batches.</summary>
    public double GradNorm => Updates.Count == 0 ? 0 : Updates.Average(u => u.GradNorm);

    /// <summary>Mean token entropy.</summary>
    public double Entropy => Entropies.Length == 0 ? 0 : Entropies.Average(e => (double)e);

    /// <summary>Scored tokens per second of update time.</summary>
    public double TokensPerSecond => Elapsed.TotalSeconds > 0 ? ScoredTokens / Elapsed.TotalSeconds : 0;
}

/// <summary>
/// The learner's computation for one rollout step (<see href="https://arxiv.org/abs/2503.14476"/>, Algorithm 1,
/// lines 6–10): group-relative advantages (eq. 9), the accepted groups split into
/// <see cref="DapoOptions.MiniBatchesPerStep"/> mini-batches (passed over <see cref="DapoOptions.PpoEpochs"/> times),
/// and per mini-batch: score with gradients, the decoupled clip loss (eq. 8/10, aggregated per
/// <see cref="DapoOptions.LossAggregation"/>, eq. 12 for DAPO), backward of its per-token coefficients, one AdamW step
/// at the scheduled learning rate.
/// <para>
/// log π_old is the behaviour log-probability recorded while sampling. The engine's sampling and scoring agree to
/// 1e-4, so this is what recomputing them with the pre-update weights would give (verl recomputes; we save a forward
/// pass). The first mini-batch therefore starts at ratio 1; later ones see the policy the earlier ones moved.
/// </para>
/// <para>
/// A mini-batch whose tokens exceed <see cref="MaxTokensPerMicroBatch"/> runs as several engine calls, each
/// accumulating gradients, with the aggregation weights of the whole mini-batch (<see
/// cref="DecoupledClipLoss.TokenWeights"/>), so token-mean stays a mean over the whole mini-batch.
/// </para>
/// </summary>
public sealed class PolicyUpdater
{
    private readonly PolicyModel _model;
    private readonly AdamW _optimizer;
    private readonly DecoupledClipLoss _loss;
    private readonly IAdvantageEstimator _advantage;

    /// <summary>An updater of <paramref name="model"/> with <paramref name="optimizer"/> under
    /// <paramref name="options"/>.</summary>
    /// <param name="maxTokensPerMicroBatch">Most tokens (prompt + response) per engine call; bounds activation
    /// memory.</param>
    /// <exception cref="NotSupportedException">A KL-to-reference term is asked for; this learner keeps no reference
    /// policy (DAPO removes the term, paper §2.3).</exception>
    public PolicyUpdater(PolicyModel model, AdamW optimizer, DapoOptions options, int maxTokensPerMicroBatch = 16_384)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _optimizer = optimizer ?? throw new ArgumentNullException(nameof(optimizer));
        Options = (options ?? throw new ArgumentNullException(nameof(options))).EnsureValid();
        if (options.KlCoefficient > 0)
            throw new NotSupportedException(
                $"KlCoefficient is {options.KlCoefficient}, but the learner keeps no reference policy; set it to 0 (DAPO's setting).");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxTokensPerMicroBatch);
        MaxTokensPerMicroBatch = maxTokensPerMicroBatch;
        _loss = new DecoupledClipLoss(PolicyLossSettings.FromOptions(options));
        _advantage = AdvantageEstimators.Create(options.AdvantageEstimator, options.AdvantageEpsilon);
    }

    /// <summary>The AdamW optimizer the options describe (weight decay, clip, betas, ε); the learning rate comes
    /// with each step.</summary>
    public static AdamW CreateOptimizer(PolicyModel model, DapoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new AdamW(model, new AdamWOptions
        {
            Beta1 = options.AdamBeta1, Beta2 = options.AdamBeta2, Eps = options.AdamEpsilon,
            WeightDecay = options.WeightDecay, MaxGradNorm = options.GradClip,
        });
    }

    /// <summary>The options.</summary>
    public DapoOptions Options { get; }

    /// <summary>Most tokens per engine call.</summary>
    public int MaxTokensPerMicroBatch { get; }

    /// <summary>Per-response advantages of <paramref name="groups"/> (groups in order, slots in order); a group
    /// whose rewards are all equal gets zeros.</summary>
    public double[] Advantages(IReadOnlyList<TrainingGroup> groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        var advantages = new double[groups.Sum(g => g.Responses.Count)];
        var offset = 0;
        foreach (var group in groups)
        {
            var rewards = group.Responses.Select(r => r.Reward).ToArray();
            _advantage.Compute(rewards, advantages.AsSpan(offset, rewards.Length));
            offset += rewards.Length;
        }
        return advantages;
    }

    /// <summary>Runs the mini-batch updates of rollout step <paramref name="step"/> on <paramref name="groups"/>.</summary>
    /// <param name="miniBatchDone">Called after each update with (updates done, updates in the step), for progress.</param>
    public PolicyUpdateResult Update(IReadOnlyList<TrainingGroup> groups, int step, Action<int, int>? miniBatchDone = null)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        if (groups.Count == 0) throw new ArgumentException("A step needs at least one group.", nameof(groups));
        foreach (var group in groups) Check(group);
        var watch = Stopwatch.StartNew();
        var learningRate = LearningRateSchedule.At(step, Options);
        var advantages = Advantages(groups);

        var entropies = new List<float>();
        var updates = new List<MiniBatchUpdate>();
        long scoredTokens = 0;
        var plan = MiniBatches(groups, advantages);
        var total = plan.Count * Options.PpoEpochs;
        for (var epoch = 0; epoch < Options.PpoEpochs; epoch++)
        {
            // Entropy is reported for the first pass only, so each trained token counts once.
            foreach (var miniBatch in plan)
            {
                updates.Add(UpdateMiniBatch(miniBatch, learningRate, epoch == 0 ? entropies : null, ref scoredTokens));
                miniBatchDone?.Invoke(updates.Count, total);
            }
        }
        return new PolicyUpdateResult(step, learningRate, advantages, entropies.ToArray(), updates,
            PolicyLossDiagnostics.Merge(updates.Select(u => u.Diagnostics)), scoredTokens, watch.Elapsed);
    }

    /// <summary>One response to train on, with its prompt and advantage.</summary>
    private readonly record struct TrainingItem(int[] PromptTokens, TrainingResponse Response, double Advantage);

    /// <summary>
    /// The step's mini-batches: whole groups in order, or, with <see cref="DapoOptions.SpreadGroupsOverMiniBatches"/>,
    /// responses taken slot by slot across the groups (every group's first response, then every group's second, …)
    /// and cut into equal parts, so each mini-batch holds an equal share of every group.
    /// </summary>
    private IReadOnlyList<TrainingItem[]> MiniBatches(IReadOnlyList<TrainingGroup> groups, double[] advantages)
    {
        var byGroup = new List<TrainingItem[]>(groups.Count);
        var offset = 0;
        foreach (var group in groups)
        {
            byGroup.Add(group.Responses.Select((r, i) => new TrainingItem(group.PromptTokens, r, advantages[offset + i])).ToArray());
            offset += group.Responses.Count;
        }
        if (!Options.SpreadGroupsOverMiniBatches)
            return MiniBatchPlan.Split(groups.Count, Options.MiniBatchesPerStep)
                .Select(range => byGroup.Take(range).SelectMany(items => items).ToArray()).ToArray();
        var slotMajor = Enumerable.Range(0, byGroup.Max(items => items.Length))
            .SelectMany(slot => byGroup.Where(items => slot < items.Length).Select(items => items[slot])).ToArray();
        return MiniBatchPlan.Split(slotMajor.Length, Options.MiniBatchesPerStep).Select(range => slotMajor[range]).ToArray();
    }

    private MiniBatchUpdate UpdateMiniBatch(TrainingItem[] sequences, double learningRate, List<float>? entropies, ref long scoredTokens)
    {
        var lengths = sequences.Select(s => s.Response.Tokens.Length).ToArray();
        var oldLogProbs = sequences.SelectMany(s => s.Response.BehaviourLogProbs).ToArray();
        var mask = new bool[oldLogProbs.Length];
        mask.AsSpan().Fill(true);
        if (Options.OverlongFiltering)
            OverlongFiltering.MaskTruncated(mask, lengths, sequences.Select(s => s.Response.Truncated).ToArray());
        var tokenAdvantages = AdvantageEstimators.ExpandToTokens(sequences.Select(s => s.Advantage).ToArray(), lengths);
        // What sampling recorded, with log π_old standing in for log π_θ: the weights depend only on lengths and mask,
        // and each chunk takes its slice and swaps in the scored log-probabilities.
        var recorded = new PolicyLossBatch(oldLogProbs, oldLogProbs, tokenAdvantages, mask, lengths);
        var weights = _loss.TokenWeights(recorded);

        var parts = new List<PolicyLossDiagnostics>();
        double loss = 0;
        var start = 0;
        while (start < sequences.Length)
        {
            // Greedy chunks of whole sequences up to the token budget (at least one sequence per chunk).
            var end = start;
            var tokens = 0;
            while (end < sequences.Length)
            {
                var n = sequences[end].PromptTokens.Length + lengths[end];
                if (end > start && tokens + n > MaxTokensPerMicroBatch) break;
                tokens += n;
                end++;
            }
            var scored = new ScoredSequence[end - start];
            for (var i = start; i < end; i++)
                scored[i - start] = ScoredSequence.FromPromptAndResponse(sequences[i].PromptTokens, sequences[i].Response.Tokens);
            using var score = _model.Score(scored, Options.Temperature, requiresGrad: true);
            var (old, offset) = recorded.Slice(start, end - start);
            var chunk = new PolicyLossBatch(score.LogProbs, old.OldLogProbs, old.Advantages, old.LossMask, old.SequenceLengths);
            var result = _loss.Compute(chunk, weights.AsSpan(offset, chunk.TokenCount));
            score.Backward(result.Coefficients);
            entropies?.AddRange(score.Entropies);
            parts.Add(result.Diagnostics);
            loss += result.PolicyGradientLoss;
            scoredTokens += tokens;
            start = end;
        }
        var step = _optimizer.Step(learningRate);
        return new MiniBatchUpdate(loss, PolicyLossDiagnostics.Merge(parts), step.GradNorm);
    }

    private static void Check(TrainingGroup group)
    {
        ArgumentNullException.ThrowIfNull(group);
        if (group.PromptTokens is not { Length: > 0 }) throw new ArgumentException("A group has an empty prompt.", nameof(group));
        if (group.Responses.Count == 0) throw new ArgumentException("A group has no responses.", nameof(group));
        foreach (var r in group.Responses)
        {
            if (r.Tokens is null || r.BehaviourLogProbs is null || r.Tokens.Length != r.BehaviourLogProbs.Length)
                throw new ArgumentException(
                    $"A response has {r.Tokens?.Length} tokens but {r.BehaviourLogProbs?.Length} behaviour log-probabilities.", nameof(group));
            if (r.Tokens.Length == 0) throw new ArgumentException("A response is empty (the engine always samples one token).", nameof(group));
        }
    }
}
