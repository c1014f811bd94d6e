using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Grains;
using Dapo.Grains.Checkpoints;
using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;

namespace Dapo.Grains.Inspection;

/// <summary>
/// Builds each command's view from the session's <see cref="IRunReader"/> (grains, live or history) and its blob
/// storage (metrics, checkpoints). Commands do not care which reader it is; the views say which in their Mode.
/// </summary>
public sealed class Inspector(InspectionSession session)
{
    private IRunReader Reader => session.Reader;
    private string Mode => Reader.IsHistory ? "history" : "live";

    public async Task<StatusView> StatusAsync(CancellationToken cancellationToken)
    {
        var runs = await session.RunsAsync(cancellationToken);
        if (session.Run is { } only)
        {
            runs = runs.Where(r => r.RunId == only).ToList();
            if (runs.Count == 0) await session.RunAsync(only, cancellationToken);  // throws: not found, with the runs there are
        }
        var now = InspectionSession.Now;
        var views = await Task.WhenAll(runs.Select(r => RunStatusAsync(r, now, cancellationToken)));
        var silos = await SilosAsync(runs, now, cancellationToken);
        return new StatusView(session.Description, Mode, now, views, silos, silos.Where(s => s.Alive).Select(s => s.Address).ToList());
    }

    public async Task<SilosView> SilosViewAsync(CancellationToken cancellationToken)
    {
        var now = InspectionSession.Now;
        return new SilosView(session.Description, Mode, now, await SilosAsync(await session.RunsAsync(cancellationToken), now, cancellationToken));
    }

    private async Task<RunStatusView> RunStatusAsync(RunInfo run, long now, CancellationToken cancellationToken)
    {
        var current = CurrentStep(run);
        var step = current >= 1 ? await Reader.GetStepAsync(run.RunId, current, cancellationToken) : null;
        return new RunStatusView(run.RunId, Lower(run.Status), current, CompletedSteps(run), TotalSteps(run), run.PolicyVersion, run.LatestCheckpoint,
            run.Error, step is null ? null : Progress(step), Learner(run, now));
    }

    private async Task<IReadOnlyList<SiloView>> SilosAsync(IReadOnlyList<RunInfo> runs, long now, CancellationToken cancellationToken)
    {
        var silos = await Reader.ListSilosAsync(cancellationToken);
        if (silos.Count == 0) return [];
        var rollouts = await Reader.ListRolloutsAsync(cancellationToken);
        return silos.OrderBy(s => s.Status == "dead").ThenBy(s => s.Address, StringComparer.Ordinal).Select(s =>
        {
            var iAmAlive = s.IAmAliveAt.ToUnixTimeMilliseconds();
            return new SiloView(s.Address, s.Name, s.Host, s.Status, s.Status == "active", s.GatewayPort, s.StartedAt.ToUnixTimeMilliseconds(),
                iAmAlive, now - iAmAlive, rollouts.Count(r => r.Silo == s.Address),
                runs.Where(r => r.Silo == s.Address && r.Status == RunStatus.Running).Select(r => r.RunId).ToList());
        }).ToList();
    }

    public async Task<StepsView> StepsAsync(int last, CancellationToken cancellationToken)
    {
        var run = await session.RunAsync(cancellationToken);
        var upper = LastOpenedStep(run);
        var numbers = Enumerable.Range(Math.Max(1, upper - last + 1), Math.Max(0, Math.Min(last, upper)));
        var ledgers = await Task.WhenAll(numbers.Select(s => Reader.GetStepAsync(run.RunId, s, cancellationToken)));
        var now = InspectionSession.Now;
        return new StepsView(session.Description, Mode, run.RunId, TotalSteps(run), ledgers.OfType<StepLedger>().Select(l => Step(l, now)).ToList());
    }

    public async Task<PromptsView> PromptsAsync(int? step, PromptStatus? status, CancellationToken cancellationToken)
    {
        var run = await session.RunAsync(cancellationToken);
        // Default: the step in progress, or the last one of a run that ended.
        var wanted = step ?? Math.Max(1, CurrentStep(run));
        var ledger = await ExistingStepAsync(run, wanted, cancellationToken);
        var all = await Reader.ListPromptsAsync(run.RunId, wanted, cancellationToken);
        var counts = Enum.GetValues<PromptStatus>().ToDictionary(Lower, x => all.Count(p => p.Status == x));
        var shown = status is null ? all : all.Where(p => p.Status == status).ToList();
        var groups = await Task.WhenAll(shown.Select(p => Reader.GetPromptAsync(run.RunId, p.Step, p.PromptId, cancellationToken)));
        return new PromptsView(session.Description, Mode, run.RunId, wanted, Lower(ledger.Phase), status is null ? null : Lower(status.Value), counts,
            shown.Select((p, i) => Summary(run.RunId, p, groups[i])).ToList());
    }

    private static PromptSummaryView Summary(string runId, PromptEntry p, PromptGroup? g) =>
        new(GrainKeys.Prompt(runId, p.Step, p.PromptId), p.Step, p.PromptId, Lower(p.Status), p.Reason, p.DatasetIndex, p.DrawOrdinal,
            p.PolicyVersion, p.Opening, p.Decided, p.CarryOut, g?.GroupSize ?? 0, g?.Slots.Count ?? 0,
            p.Accuracy ?? (g is { Slots.Count: > 0 } ? g.Slots.Average(s => s.Correct ? 1.0 : 0.0) : null),
            g is { Slots.Count: > 0 } ? g.Slots.Average(s => s.Reward) : null,
            p.MeanLength ?? (g is { Slots.Count: > 0 } ? g.Slots.Average(s => (double)s.Tokens.Length) : null),
            g is null ? null : g.Slots.Count(s => s.Truncated));

    public async Task<PromptDetailView> PromptAsync(PromptKey key, CancellationToken cancellationToken)
    {
        var run = await session.RunAsync(key.RunId, cancellationToken);
        var ledger = await ExistingStepAsync(run, key.Step, cancellationToken);
        var entries = await Reader.ListPromptsAsync(run.RunId, key.Step, cancellationToken);
        var entry = entries.LastOrDefault(p => p.Step == key.Step && p.PromptId == key.PromptId)
                    ?? throw new InspectionException(ExitCodes.NotFound, $"prompt grain {GrainKeys.Prompt(run.RunId, key.Step, key.PromptId)} does not exist " +
                        (entries.Count == 0 ? $"(step {key.Step} drew no prompts)" : $"(step {key.Step} drew prompts {entries.Where(p => p.Step == key.Step).Min(p => p.PromptId)} to {entries.Where(p => p.Step == key.Step).Max(p => p.PromptId)})"));
        var group = await Reader.GetPromptAsync(run.RunId, key.Step, key.PromptId, cancellationToken);
        var trained = await TrainedOnAsync(run, ledger, entry, cancellationToken);
        var (problem, truth) = Problem(run, entry.DatasetIndex);
        var slots = group?.Slots ?? [];
        return new PromptDetailView(session.Description, Mode, GrainKeys.Prompt(run.RunId, key.Step, key.PromptId), run.RunId, key.Step, key.PromptId,
            Lower(ledger.Phase), Lower(group?.Status ?? entry.Status), group?.Reason ?? entry.Reason, entry.Reason, trained, entry.DatasetIndex,
            entry.DrawOrdinal, entry.PolicyVersion, group?.GroupSize ?? 0, slots.Count,
            slots.Count > 0 ? slots.Average(s => s.Correct ? 1.0 : 0.0) : null, slots.Count > 0 ? slots.Average(s => s.Reward) : null,
            slots.Count > 0 ? slots.Average(s => (double)s.Tokens.Length) : null, group is null ? null : slots.Count(s => s.Truncated),
            problem, truth, History(group?.History ?? ""),
            slots.Select(s => new SlotView(s.Slot, s.Text, s.Tokens, s.LogProbs, s.Tokens.Length, s.Score, s.OverlongPenalty, s.Reward, s.Correct,
                s.Truncated, s.Worker)).ToList());
    }

    /// <summary>
    /// The learner trains on the accepted groups of a step once its sampling closes; a surplus group accepted after
    /// its step met the target is offered to the next step, and trained on there when that step takes it.
    /// </summary>
    private async Task<bool> TrainedOnAsync(RunInfo run, StepLedger ledger, PromptEntry entry, CancellationToken cancellationToken)
    {
        static bool Trained(StepLedger? l) => l?.Phase is StepPhase.Training or StepPhase.Done;
        if (entry.Status != PromptStatus.Accepted) return false;
        if (!entry.CarryOut) return Trained(ledger);
        if (entry.Step + 1 > LastOpenedStep(run)) return false;
        var next = await Reader.GetStepAsync(run.RunId, entry.Step + 1, cancellationToken);
        if (!Trained(next)) return false;
        var taken = await Reader.ListPromptsAsync(run.RunId, entry.Step + 1, cancellationToken);
        return taken.Any(p => p.Step == entry.Step && p.PromptId == entry.PromptId && p.Status == PromptStatus.Accepted);
    }

    /// <summary>The prompt's text and ground truth from the run's dataset (built from its spec, as the silos build it).</summary>
    private static (string? Problem, string? GroundTruth) Problem(RunInfo run, int datasetIndex)
    {
        try
        {
            var resources = new RunResources(run.RunId, RunResources.ParseSpec(run.SpecJson));
            if (datasetIndex < 0 || datasetIndex >= resources.Data.Train.Count) return (null, null);
            return (resources.ProblemText(datasetIndex), resources.Data.Train[datasetIndex].GroundTruth);
        }
        catch (Exception e) when (e is JsonException or FormatException or ArgumentException or IOException or Dapo.Core.Data.DatasetFormatException)
        {
            return (null, null);  // a spec this client cannot build: the slots and the decision are still shown
        }
    }

    public async Task<StepDetailView> StepAsync(StepKey key, CancellationToken cancellationToken)
    {
        var run = await session.RunAsync(key.RunId, cancellationToken);
        var ledger = await ExistingStepAsync(run, key.Step, cancellationToken);
        var prompts = await Reader.ListPromptsAsync(run.RunId, key.Step, cancellationToken);
        return new StepDetailView(session.Description, Mode, GrainKeys.Step(run.RunId, key.Step), Step(ledger, InspectionSession.Now),
            Enum.GetValues<PromptStatus>().ToDictionary(Lower, x => prompts.Count(p => p.Status == x)));
    }

    public async Task<LearnerView> LearnerAsync(CancellationToken cancellationToken)
    {
        var run = await session.RunAsync(cancellationToken);
        var current = CurrentStep(run);
        var step = current >= 1 ? await Reader.GetStepAsync(run.RunId, current, cancellationToken) : null;
        return new LearnerView(session.Description, Mode, run.RunId, Lower(run.Status), current, CompletedSteps(run), TotalSteps(run), run.PolicyVersion,
            run.LatestCheckpoint, run.Error, Learner(run, InspectionSession.Now), step is null ? null : Progress(step));
    }

    /// <summary>Rollout grains whose key is <paramref name="key"/> or starts with it (a silo's address: all of its grains).</summary>
    public async Task<RolloutsView> RolloutsAsync(string? key, CancellationToken cancellationToken)
    {
        if (Reader.IsHistory)
            throw new InspectionException(ExitCodes.NotFound,
                "rollout grains keep no state: with no silo running there are none to show (`status` shows the run's history)");
        var all = await Reader.ListRolloutsAsync(cancellationToken);
        var shown = key is null ? all : all.Where(r => r.Key == key || r.Key.StartsWith(key.TrimEnd('/') + "/", StringComparison.Ordinal)).ToList();
        if (key is not null && shown.Count == 0)
            throw new InspectionException(ExitCodes.NotFound, $"no active rollout grain '{key}'" +
                (all.Count == 0 ? " (none is active)" : $" (active: {string.Join(", ", all.Select(r => r.Key))})"));
        var now = InspectionSession.Now;
        return new RolloutsView(session.Description, Mode, now, shown.Select(r => new RolloutView(r.Key, r.Silo, r.RunId, r.PolicyVersion, r.InHand,
            r.GroupsSubmitted, r.TokensGenerated, r.UpdatedAt, now - r.UpdatedAt)).ToList());
    }

    /// <summary>Metrics rows of steps after <paramref name="afterStep"/>, from blob storage (MetricsLog), in step order.</summary>
    public async Task<IReadOnlyList<JsonObject>> MetricsAsync(string runId, int afterStep, CancellationToken cancellationToken)
    {
        try
        {
            var names = new List<(int Step, string Name)>();
            await foreach (var blob in session.Blobs.ListAsync($"runs/{runId}/metrics/", cancellationToken))
                if (int.TryParse(Path.GetFileNameWithoutExtension(blob.Name), NumberStyles.None, CultureInfo.InvariantCulture, out var step) && step > afterStep)
                    names.Add((step, blob.Name));
            var rows = await Task.WhenAll(names.OrderBy(n => n.Step).Select(async n =>
            {
                var bytes = await session.Blobs.GetAsync(n.Name, cancellationToken);
                // A row pruned between the listing and the read (a learner restarting from an earlier checkpoint).
                return bytes is null ? null : JsonNode.Parse(Encoding.UTF8.GetString(bytes)) as JsonObject ?? new JsonObject { ["step"] = n.Step };
            }));
            return rows.OfType<JsonObject>().ToList();
        }
        catch (Exception e) when (InspectionSession.Translate(e) is { } translated)
        {
            throw translated;
        }
    }

    public async Task<CheckpointsView> CheckpointsAsync(RunInfo run, CancellationToken cancellationToken)
    {
        IReadOnlyList<CheckpointInfo> listed;
        try
        {
            listed = await new CheckpointStore(session.Blobs, run.RunId).ListAsync(cancellationToken);
        }
        catch (Exception e) when (InspectionSession.Translate(e) is { } translated)
        {
            throw translated;
        }
        var latest = listed.FirstOrDefault(c => c.Complete)?.Step;
        return new CheckpointsView(run.RunId, session.Blobs.Description, run.LatestCheckpoint,
            listed.Select(c => new CheckpointView(c.Step, c.Size, c.Complete, c.Problem ?? "ok", c.Step == latest)).ToList());
    }

    /// <summary>
    /// The plotted metrics of the finished steps after <paramref name="afterStep"/>, in step order. The learner writes
    /// a step's row before it counts the step finished, so a row may be ahead of <paramref name="run"/>: it is left
    /// out, and the points agree with the step count shown beside them.
    /// </summary>
    public async Task<IReadOnlyList<MetricPointView>> PointsAsync(RunInfo run, int afterStep, CancellationToken cancellationToken) =>
        (await MetricsAsync(run.RunId, afterStep, cancellationToken)).Select(Point).Where(p => p.Step <= CompletedSteps(run)).ToList();

    public async Task<WatchView> WatchAsync(string runId, int recentSteps, CancellationToken cancellationToken)
    {
        var run = await session.RunAsync(runId, cancellationToken);
        var now = InspectionSession.Now;
        var view = await RunStatusAsync(run, now, cancellationToken);
        var silos = await SilosAsync([run], now, cancellationToken);
        var points = await PointsAsync(run, CompletedSteps(run) - recentSteps, cancellationToken);
        var last = points.LastOrDefault();
        var progress = view.CurrentStep;
        double? filtered = progress is { } p && p.Accepted + p.Filtered > 0 ? (double)p.Filtered / (p.Accepted + p.Filtered) : null;
        return new WatchView(now, session.Description, Mode, view, silos.Sum(s => s.RolloutGrains), silos.Count(x => x.Alive), silos.Count,
            filtered, last?.TokensPerSecond, last?.StepSeconds, points);
    }

    /// <summary>A step the run opened; one clear line for one it did not.</summary>
    private async Task<StepLedger> ExistingStepAsync(RunInfo run, int step, CancellationToken cancellationToken)
    {
        var upper = LastOpenedStep(run);
        if (step >= 1 && step <= upper && await Reader.GetStepAsync(run.RunId, step, cancellationToken) is { } ledger) return ledger;
        throw new InspectionException(ExitCodes.NotFound, $"run '{run.RunId}' has no step {step}" +
                                                      (upper < 1 ? " (no step has opened yet)" : $" (its steps are 1 to {upper})"));
    }

    private static MetricPointView Point(JsonObject json) =>
        new((int)(Number(json, "step") ?? 0), Number(json, "sampled/accuracy") ?? Number(json, "critic/accuracy"), Number(json, "critic/rewards/mean"),
            Number(json, "actor/entropy"), Number(json, "response_length/mean"), Number(json, "train/filtered_fraction"),
            Number(json, "throughput/tokens_per_s"), Number(json, "timing/step_s"),
            HeldOutAccuracy(json));

    /// <summary>A metrics row's overall held-out "eval/avg@k" (whatever its k), not a per-source "eval/avg@k/L3";
    /// null on a step without evaluation.</summary>
    public static double? HeldOutAccuracy(JsonObject row) =>
        row.FirstOrDefault(kv => kv.Key.StartsWith("eval/avg@", StringComparison.Ordinal) && kv.Key.IndexOf('/', "eval/".Length) < 0).Value
            is JsonValue v && v.TryGetValue<double>(out var accuracy) ? accuracy : null;

    public static double? Number(JsonObject row, string key) =>
        row[key] is JsonValue v && v.TryGetValue<double>(out var d) ? d : null;

    private static LearnerStateView Learner(RunInfo run, long now) =>
        new(run.Silo, run.Epoch, run.Phase, run.PhaseDetail, run.UpdatedAt, now - run.UpdatedAt, run.StartAccuracy, run.LatestAccuracy);

    private static StepProgressView Progress(StepLedger s) =>
        new(s.Step, Lower(s.Phase), s.Target, s.Accepted, s.Filtered, s.Abandoned, s.InFlight, s.Draws, s.GenerationRounds);

    private static StepView Step(StepLedger x, long now) =>
        new(x.Step, Lower(x.Phase), x.PolicyVersion, x.Target, x.Accepted, x.Filtered, x.Abandoned, x.InFlight, x.Draws, x.GenerationRounds,
            x.SurplusCarried, x.StopReason, x.Opening, x.Epoch, x.OpenedAt, x.SamplingDoneAt, x.ClosedAt,
            x.SamplingDoneAt is { } done ? Seconds(done - x.OpenedAt) : null, Seconds((x.ClosedAt ?? now) - x.OpenedAt));

    /// <summary>Lines "time event: detail" of a grain's history (PromptGrain.Log).</summary>
    private static IReadOnlyList<HistoryEntryView> History(string history) =>
        history.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line =>
        {
            var space = line.IndexOf(' ');
            var rest = space < 0 ? line : line[(space + 1)..];
            var colon = rest.IndexOf(": ", StringComparison.Ordinal);
            return colon < 0
                ? new HistoryEntryView(space < 0 ? "" : line[..space], rest, "")
                : new HistoryEntryView(line[..space], rest[..colon], rest[(colon + 2)..]);
        }).ToList();

    /// <summary>Steps of the run's recipe, from its spec.</summary>
    public static int? TotalSteps(RunInfo run) => RunResources.StepsOf(run.SpecJson);

    /// <summary>The learner's step is the one being sampled or trained: every step before it is done.</summary>
    public static int CompletedSteps(RunInfo run) => Math.Max(0, run.Step - 1);

    /// <summary>The step being worked on (a failed run: the step that failed); a completed run's last step (the learner already points past it).</summary>
    public static int CurrentStep(RunInfo run) => run.Status == RunStatus.Completed ? CompletedSteps(run) : run.Step;

    /// <summary>The newest step the learner may have opened.</summary>
    private static int LastOpenedStep(RunInfo run) => CurrentStep(run);

    private static double Seconds(long milliseconds) => milliseconds / 1000.0;

    private static string Lower<T>(T value) where T : struct, Enum => value.ToString().ToLower(CultureInfo.InvariantCulture);
}

/// <summary>
/// The key of a prompt grain: <c>RUN/STEP/PROMPT_ID</c> (e.g. <c>demo/3/17</c>), as `prompts` lists them;
/// <c>STEP/PROMPT_ID</c> means the default run. Prompt ids are unique within a step. The run is everything before the
/// last two '/', so run names may contain '/'.
/// </summary>
public sealed record PromptKey(string? RunId, int Step, long PromptId)
{
    public static PromptKey Parse(string key)
    {
        var parts = key.Split('/');
        var run = parts.Length > 2 ? string.Join('/', parts[..^2]) : null;
        if (parts.Length >= 2 && run is not "" &&
            int.TryParse(parts[^2], NumberStyles.None, CultureInfo.InvariantCulture, out var step) && step > 0 &&
            long.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id > 0)
            return new PromptKey(run, step, id);
        throw new InspectionException(ExitCodes.Usage,
            $"malformed prompt key '{key}': use RUN/STEP/PROMPT_ID with positive numbers, e.g. demo/3/17 (`dapo-client prompts` lists the keys)");
    }
}

/// <summary>The key of a step grain: <c>RUN/STEP</c> (e.g. <c>demo/3</c>); a bare <c>STEP</c> means the default run.</summary>
public sealed record StepKey(string? RunId, int Step)
{
    public static StepKey Parse(string key)
    {
        var slash = key.LastIndexOf('/');
        var run = slash < 0 ? null : key[..slash];
        if (run is not "" && int.TryParse(key[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var step) && step > 0)
            return new StepKey(run, step);
        throw new InspectionException(ExitCodes.Usage,
            $"malformed step key '{key}': use RUN/STEP or STEP with a positive number, e.g. demo/3 (`dapo-client steps` lists them)");
    }
}
