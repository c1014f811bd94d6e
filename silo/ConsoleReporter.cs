using System.Globalization;
using System.Text.Json;
using Dapo.Grains.Hosting;
using Dapo.Grains;
using Dapo.Training;

namespace Dapo.Silo;

/// <summary>
/// `train`'s progress on the console: warm-start checks, one line per step, held-out evaluations, the end. With
/// --json, one JSON object per line instead. Completes <see cref="Finished"/> when the run ends.
/// </summary>
/// <param name="prefix">Put before every line (the experiments name their runs).</param>
/// <param name="stepEvery">Print every this many steps (and the last).</param>
/// <param name="progressAfter">After this long without a line, a line saying where the run is (<see cref="Progress"/>);
/// default 30 s: a real model's step takes minutes on a CPU. Zero: never.</param>
internal sealed class ConsoleReporter(bool json, string prefix = "", int stepEvery = 1, TimeSpan? progressAfter = null) : ITrainingReporter
{
    public TimeSpan ProgressAfter { get; } = progressAfter ?? TimeSpan.FromSeconds(30);

    private readonly TaskCompletionSource<(RunStatus Status, string? Error)> _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _lock = new();

    public Task<(RunStatus Status, string? Error)> Finished => _finished.Task;

    /// <summary>Completes when the run ended or its learner stopped without ending it.</summary>
    public Task Ended => Task.WhenAny(_finished.Task, _stopped.Task);

    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A resumed run: the held-out figures it recorded before, for the closing summary.</summary>
    public void Resume(double? start, double? latest, int k)
    {
        if (start is not null) HeldOut = (start, latest ?? start, k);
    }

    /// <summary>Held-out avg@k after the warm-start and after the last evaluation, for the closing summary.</summary>
    public (double? AfterWarmStart, double? Latest, int K) HeldOut { get; private set; }

    private double? _meanStepSeconds;

    public void WarmStart(string runId, WarmStartProgress p)
    {
        // The warm-start may stop early (on accuracy): what is left of its step budget is an upper bound.
        var left = p.Elapsed / p.Step * (p.MaxSteps - p.Step);
        if (json)
            Write(new { type = "warm_start", run = runId, p.Step, max_steps = p.MaxSteps, loss = p.Loss, held_out = p.HeldOutAccuracy,
                tokens_per_s = p.TokensPerSecond, at_most_s_left = left.TotalSeconds });
        else if (p.HeldOutAccuracy is { } accuracy)
            Write(F($"warm-start step {p.Step,4}: nll {p.Loss:F3}, held-out accuracy {accuracy:P1}, {p.TokensPerSecond:N0} tok/s, {p.Elapsed.TotalSeconds:F0}s, at most {Duration(left)} left"));
        else if (p.Step % (50 * stepEvery) == 0)
            Write(F($"warm-start step {p.Step,4}: nll {p.Loss:F3}, {p.TokensPerSecond:N0} tok/s, {p.Elapsed.TotalSeconds:F0}s, at most {Duration(left)} left"));
    }

    public void Evaluated(string runId, string when, EvaluationResult r)
    {
        var start = when is "after warm-start" or "of the initial weights";
        HeldOut = start ? (r.AverageAtK, r.AverageAtK, r.K) : (HeldOut.AfterWarmStart, r.AverageAtK, r.K);
        if (json) Write(new { type = "evaluation", run = runId, when, k = r.K, avg_at_k = r.AverageAtK, pass_at_k = r.PassAtK, maj_at_k = r.MajorityAtK });
        else Write(F($"held-out {when}: avg@{r.K} {r.AverageAtK:P1}, pass@{r.K} {r.PassAtK:P1}, maj@{r.K} {r.MajorityAtK:P1} ({r.Problems} problems)"));
    }

    public void Step(StepReport r)
    {
        // Time left at the recent pace: a moving mean of step times (an evaluation counts in the step it ends).
        var seconds = r.StepTime.TotalSeconds;
        _meanStepSeconds = _meanStepSeconds is { } mean ? 0.9 * mean + 0.1 * seconds : seconds;
        var left = TimeSpan.FromSeconds(_meanStepSeconds.Value * (r.TotalSteps - r.Step));
        if (r.Step % stepEvery != 0 && r.Step != r.TotalSteps) return;
        var m = r.Metrics;
        if (json)
        {
            Write(new
            {
                type = "step", run = r.RunId, step = r.Step, steps = r.TotalSteps, accuracy = r.SampledAccuracy, reward = m.RewardMean,
                entropy = m.EntropyMean, response_length = m.ResponseLengthMean, filtered = m.GroupsFiltered, rounds = m.GenerationRounds,
                tokens_per_s = r.TokensPerSecond, step_s = r.StepTime.TotalSeconds, checkpoint = r.Checkpoint, s_left = left.TotalSeconds,
            });
            return;
        }
        Write(F($"step {r.Step,3}/{r.TotalSteps}  acc {r.SampledAccuracy:F3}  reward {m.RewardMean,6:F3}  entropy {m.EntropyMean:F3}  len {m.ResponseLengthMean,5:F1}  filtered {m.GroupsFiltered,3}  rounds {m.GenerationRounds}  {r.TokensPerSecond,6:N0} tok/s  {r.StepTime.TotalSeconds,5:F1}s  {Duration(left),6} left"));
    }

    public void Message(string runId, string message)
    {
        if (json) Write(new { type = "message", run = runId, message });
        else Write(message);
    }

    public void RunEnded(string runId, RunStatus status, string? error)
    {
        if (json) Write(new { type = "end", run = runId, status = status.ToString(), error });
        _finished.TrySetResult((status, error));
    }

    public void Stopped(string runId, string error)
    {
        if (json) Write(new { type = "stopped", run = runId, error });
        else Write($"The learner stopped: {error}");
        _stopped.TrySetResult();
    }

    /// <summary>Where a long step is (<see cref="EmbeddedTraining"/> asks the grains when nothing was printed for
    /// <see cref="ProgressAfter"/>).</summary>
    public void Progress(string runId, string where)
    {
        if (json) Write(new { type = "progress", run = runId, where });
        else Write($"  ... {where}");
    }

    /// <summary>Time since the last line.</summary>
    public TimeSpan Quiet => TimeSpan.FromMilliseconds(Environment.TickCount64 - Interlocked.Read(ref _lastWriteMs));

    private long _lastWriteMs = Environment.TickCount64;

    private void Write(object value) => Write(JsonSerializer.Serialize(value));

    private void Write(string line)
    {
        lock (_lock) Console.WriteLine(prefix + line);
        Interlocked.Exchange(ref _lastWriteMs, Environment.TickCount64);
    }

    private static string F(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>"1h05m", "12m30s", "45s".</summary>
    internal static string Duration(TimeSpan t) => t.TotalHours >= 1 ? F($"{(int)t.TotalHours}h{t.Minutes:D2}m")
        : t.TotalMinutes >= 1 ? F($"{(int)t.TotalMinutes}m{t.Seconds:D2}s")
        : F($"{(int)Math.Ceiling(t.TotalSeconds)}s");
}
