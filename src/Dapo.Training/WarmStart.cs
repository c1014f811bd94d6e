using System.Diagnostics;
using System.Globalization;
using Dapo.Core.Data;
using Dapo.Core.Options;
using Dapo.Torch;

namespace Dapo.Training;

/// <summary>A supervised example: prompt tokens and the target response (worked solution + &lt;eos&gt;).</summary>
public sealed record SupervisedExample(int[] Prompt, int[] Response);

/// <summary>How the supervised warm-start trains and when it stops.</summary>
public sealed record WarmStartSettings
{
    /// <summary>Most optimizer steps (the step budget).</summary>
    public int MaxSteps { get; init; } = 1000;

    /// <summary>Examples per optimizer step.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Peak AdamW learning rate.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Steps of linear warm-up to the peak rate.</summary>
    public int WarmupSteps { get; init; } = 50;

    /// <summary>AdamW decoupled weight decay.</summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Global gradient-norm clip.</summary>
    public double GradClip { get; init; } = 1.0;

    /// <summary>Check held-out accuracy every this many steps (0: never; only the step budget stops).</summary>
    public int EvaluateEvery { get; init; }

    /// <summary>Stop as soon as a check finds held-out accuracy at or above this (the lower edge of the target band;
    /// null: do not stop on accuracy).</summary>
    public double? StopAtAccuracy { get; init; }

    /// <summary>Seed of the order the examples are visited in.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Most tokens per engine call.</summary>
    public int MaxTokensPerMicroBatch { get; init; } = 16_384;

    /// <summary>One message per bad field (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (MaxSteps < 0) errors.Add($"MaxSteps must be non-negative; got {MaxSteps}.");
        if (BatchSize < 1) errors.Add($"BatchSize must be at least 1; got {BatchSize}.");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) errors.Add($"LearningRate must be positive; got {LearningRate}.");
        if (WarmupSteps < 0) errors.Add($"WarmupSteps must be non-negative; got {WarmupSteps}.");
        if (!(WeightDecay >= 0)) errors.Add($"WeightDecay must be non-negative; got {WeightDecay}.");
        if (!(GradClip > 0)) errors.Add($"GradClip must be positive; got {GradClip}.");
        if (EvaluateEvery < 0) errors.Add($"EvaluateEvery must be non-negative; got {EvaluateEvery}.");
        if (StopAtAccuracy is { } a && !(a is > 0 and <= 1)) errors.Add($"StopAtAccuracy must be in (0, 1]; got {a}.");
        if (StopAtAccuracy is not null && EvaluateEvery == 0) errors.Add("StopAtAccuracy needs EvaluateEvery > 0.");
        if (MaxTokensPerMicroBatch < 1) errors.Add($"MaxTokensPerMicroBatch must be at least 1; got {MaxTokensPerMicroBatch}.");
        return errors;
    }
}

/// <summary>Why the warm-start stopped.</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<WarmStartStop>))]
public enum WarmStartStop
{
    /// <summary>It used its step budget.</summary>
    StepBudget,

    /// <summary>Held-out accuracy reached <see cref="WarmStartSettings.StopAtAccuracy"/>.</summary>
    ReachedAccuracy,

    /// <summary>Cancelled.</summary>
    Cancelled,
}

/// <summary>A progress report, after every step.</summary>
/// <param name="Step">Steps done (1-based).</param>
/// <param name="MaxSteps">The step budget.</param>
/// <param name="Loss">Mean NLL per response token of this step's batch.</param>
/// <param name="LearningRate">Learning rate of the step.</param>
/// <param name="HeldOutAccuracy">Held-out accuracy when this step ran a check, else null.</param>
/// <param name="Elapsed">Time since the start.</param>
/// <param name="TokensPerSecond">Trained tokens (prompt + response) per second so far, checks excluded.</param>
public sealed record WarmStartProgress(
    int Step, int MaxSteps, double Loss, double LearningRate, double? HeldOutAccuracy, TimeSpan Elapsed, double TokensPerSecond);

/// <summary>How the warm-start ended.</summary>
/// <param name="Steps">Steps taken.</param>
/// <param name="Loss">Mean NLL per token of the last step's batch.</param>
/// <param name="HeldOutAccuracy">The last check's accuracy (null: none ran).</param>
/// <param name="Stop">Why it stopped.</param>
/// <param name="Elapsed">Wall time, checks included.</param>
public sealed record WarmStartResult(int Steps, double Loss, double? HeldOutAccuracy, WarmStartStop Stop, TimeSpan Elapsed)
{
    /// <summary>Why it stopped where it did, in a sentence for the console.</summary>
    public string Describe(WarmStartSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var accuracy = HeldOutAccuracy?.ToString("P1", CultureInfo.InvariantCulture);
        var target = settings.StopAtAccuracy?.ToString("P0", CultureInfo.InvariantCulture);
        return Stop switch
        {
            WarmStartStop.ReachedAccuracy =>
                $"warm-start stopped at step {Steps} of at most {settings.MaxSteps}: held-out accuracy {accuracy} reached the target of {target}, leaving RL room to improve",
            WarmStartStop.StepBudget when accuracy is not null =>
                $"warm-start stopped at its step budget of {settings.MaxSteps} steps, held-out accuracy {accuracy}" + (target is null ? "" : $" (target {target} not reached)"),
            WarmStartStop.StepBudget => $"warm-start stopped at its step budget of {settings.MaxSteps} steps",
            _ => $"warm-start cancelled at step {Steps}",
        };
    }
}

/// <summary>
/// Supervised warm-start on worked solutions: the policy learns the format (steps, "Answer: N", &lt;eos&gt;) and some
/// arithmetic, so that RL starts from a policy that sometimes succeeds. The loss is the mean negative
/// log-likelihood of the response tokens of a batch, L = −(1/N) Σ log π(o_t), handed to the engine as the
/// coefficients c_t = −1/N. It stops at its step budget or, with <see cref="WarmStartSettings.StopAtAccuracy"/>, as
/// soon as held-out accuracy enters the target band, so RL has room to improve.
/// </summary>
public static class WarmStart
{
    /// <summary>The AdamW optimizer of <paramref name="settings"/> (its own; the RL steps use a fresh one).</summary>
    public static AdamW CreateOptimizer(PolicyModel model, WarmStartSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new AdamW(model, new AdamWOptions { WeightDecay = settings.WeightDecay, MaxGradNorm = settings.GradClip });
    }

    /// <summary>Trains <paramref name="model"/> on <paramref name="examples"/>.</summary>
    /// <param name="heldOutAccuracy">Called every <see cref="WarmStartSettings.EvaluateEvery"/> steps with the step
    /// count; returns held-out accuracy (e.g. an <see cref="Evaluator"/>'s avg@k).</param>
    /// <param name="progress">Called after every step.</param>
    public static WarmStartResult Run(
        PolicyModel model, AdamW optimizer, IReadOnlyList<SupervisedExample> examples, WarmStartSettings settings,
        Func<int, double>? heldOutAccuracy = null, Action<WarmStartProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(settings);
        var errors = settings.Validate();
        if (errors.Count > 0) throw new ArgumentException("Invalid warm-start settings: " + string.Join(" ", errors), nameof(settings));
        if (examples.Count == 0) throw new ArgumentException("No supervised examples.", nameof(examples));
        if (settings.EvaluateEvery > 0 && heldOutAccuracy is null)
            throw new ArgumentException("EvaluateEvery is set but no held-out accuracy function was given.", nameof(heldOutAccuracy));

        var watch = Stopwatch.StartNew();
        var evaluating = TimeSpan.Zero;
        var cursor = new DatasetCursor(examples.Count, settings.Seed);
        long trainedTokens = 0;
        double loss = double.NaN;
        double? accuracy = null;
        for (var step = 0; step < settings.MaxSteps; step++)
        {
            if (cancellationToken.IsCancellationRequested)
                return new WarmStartResult(step, loss, accuracy, WarmStartStop.Cancelled, watch.Elapsed);
            var batch = cursor.Take(settings.BatchSize).Select(i => examples[i]).ToArray();
            var learningRate = LearningRateSchedule.At(step, settings.LearningRate, settings.WarmupSteps);
            (loss, var tokens) = TrainStep(model, batch, settings.MaxTokensPerMicroBatch);
            optimizer.Step(learningRate);
            trainedTokens += tokens;

            double? checkedAccuracy = null;
            if (settings.EvaluateEvery > 0 && (step + 1) % settings.EvaluateEvery == 0)
            {
                var before = watch.Elapsed;
                checkedAccuracy = accuracy = heldOutAccuracy!(step + 1);
                evaluating += watch.Elapsed - before;
            }
            var training = (watch.Elapsed - evaluating).TotalSeconds;
            progress?.Invoke(new WarmStartProgress(step + 1, settings.MaxSteps, loss, learningRate, checkedAccuracy, watch.Elapsed,
                training > 0 ? trainedTokens / training : 0));
            if (checkedAccuracy >= settings.StopAtAccuracy)
                return new WarmStartResult(step + 1, loss, accuracy, WarmStartStop.ReachedAccuracy, watch.Elapsed);
        }
        return new WarmStartResult(settings.MaxSteps, loss, accuracy, WarmStartStop.StepBudget, watch.Elapsed);
    }

    /// <summary>Mean NLL per response token of <paramref name="examples"/> (no gradients).</summary>
    public static double MeanNll(PolicyModel model, IReadOnlyList<SupervisedExample> examples)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(examples);
        using var score = model.Score(examples.Select(e => ScoredSequence.FromPromptAndResponse(e.Prompt, e.Response)).ToArray());
        return score.Count == 0 ? 0 : -score.LogProbs.Average(lp => (double)lp);
    }

    /// <summary>Accumulates the gradient of the batch's mean NLL; returns the NLL and the tokens scored.</summary>
    private static (double Loss, long Tokens) TrainStep(PolicyModel model, SupervisedExample[] batch, int maxTokens)
    {
        var responseTokens = batch.Sum(e => e.Response.Length);
        var coefficient = -1f / responseTokens;
        double nll = 0;
        long tokens = 0;
        var start = 0;
        while (start < batch.Length)
        {
            var end = start;
            var chunkTokens = 0;
            while (end < batch.Length)
            {
                var n = batch[end].Prompt.Length + batch[end].Response.Length;
                if (end > start && chunkTokens + n > maxTokens) break;
                chunkTokens += n;
                end++;
            }
            var sequences = batch[start..end].Select(e => ScoredSequence.FromPromptAndResponse(e.Prompt, e.Response)).ToArray();
            using var score = model.Score(sequences, requiresGrad: true);
            var coefficients = new float[score.Count];
            coefficients.AsSpan().Fill(coefficient);
            score.Backward(coefficients);
            nll -= score.LogProbs.Sum(lp => (double)lp);
            tokens += chunkTokens;
            start = end;
        }
        return (nll / responseTokens, tokens);
    }
}
