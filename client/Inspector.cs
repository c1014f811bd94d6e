using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Grains.Checkpoints;
using Dapo.Grains.Grains;
using Dapo.Grains.Store;

namespace Dapo.Client;

/// <summary>
/// Builds each command's view from the store (and blob storage), in as few read transactions as it can: one per
/// command, so that a view is one consistent snapshot of the run.
/// </summary>
internal sealed class Inspector(ClientSession session)
{
    private ClientConfiguration Configuration => session.Configuration;

    public Task<StatusView> StatusAsync(CancellationToken cancellationToken) =>
        session.ReadAsync(async s =>
        {
            var now = ClientSession.Now;
            var runs = await s.ListRunsAsync();
            if (Configuration.Run is { } only)
            {
                runs = runs.Where(r => r.RunId == only).ToList();
                if (runs.Count == 0) throw new ClientException(ExitCodes.NotFound, $"run '{only}' does not exist in {session.Store.Description}");
            }
            var work = await s.ListWorkAsync(null, openOnly: true);
            var views = new List<RunStatusView>();
            foreach (var run in runs) views.Add(await RunStatusAsync(s, run, work, now));
            var silos = Silos(await s.ListMembersAsync(), work, now);
            return new StatusView(session.Store.Description, now, views, silos, silos.Where(x => x.Alive).Select(x => x.SiloId).ToList());
        }, cancellationToken);

    private async Task<RunStatusView> RunStatusAsync(IStoreSession s, RunRow run, IReadOnlyList<WorkItemRow> openWork, long now)
    {
        var step = await s.GetStepAsync(run.RunId, run.Step);
        var lease = await s.GetLeaseAsync(LeaseNames.Learner(run.RunId));
        var learner = await s.GetLearnerAsync(run.RunId);
        var work = openWork.Where(w => w.RunId == run.RunId).ToList();
        var leased = work.Count(w => w.LeaseUntil > now);
        return new RunStatusView(run.RunId, Lower(run.Status), CurrentStep(run), CompletedSteps(run), TotalSteps(run), run.PolicyVersion, run.LatestCheckpoint, run.Error,
            step is null ? null : Progress(step), Lease(lease, now), State(learner, now), new QueueView(work.Count, leased, work.Count - leased));
    }

    public async Task<StepsView> StepsAsync(int last, CancellationToken cancellationToken)
    {
        var run = await session.RunAsync(cancellationToken);
        var steps = await session.ReadAsync(s => s.ListStepsAsync(run.RunId, last), cancellationToken);
        var now = ClientSession.Now;
        return new StepsView(run.RunId, TotalSteps(run), steps.Select(x => new StepView(x.Step, Lower(x.Phase), x.PolicyVersion, x.Target,
            x.Accepted, x.Filtered, x.Abandoned, x.InFlight, x.Draws, x.GenerationRounds, x.SurplusCarried, x.StopReason, x.OpenedAt,
            x.SamplingDoneAt, x.ClosedAt, x.SamplingDoneAt is { } done ? Seconds(done - x.OpenedAt) : null,
            Seconds((x.ClosedAt ?? now) - x.OpenedAt))).ToList());
    }

    public async Task<PromptsView> PromptsAsync(int? step, PromptStatus? status, CancellationToken cancellationToken)
    {
        var run = await session.RunAsync(cancellationToken);
        // Default: the step in progress, or the last one of a run that ended.
        var wanted = step ?? Math.Max(1, CurrentStep(run));
        var (ledger, all, latest) = await session.ReadAsync(async s =>
            (await s.GetStepAsync(run.RunId, wanted), await s.ListPromptsAsync(run.RunId, wanted), await s.ListStepsAsync(run.RunId, 1)), cancellationToken);
        if (ledger is null && all.Count == 0)
            throw new ClientException(ExitCodes.NotFound, $"run '{run.RunId}' has no step {wanted}" +
                                                          (latest.Count == 0 ? " (no step has opened yet)" : $" (its steps are 1 to {latest[0].Step})"));
        var counts = Enum.GetValues<PromptStatus>().ToDictionary(Lower, x => all.Count(p => p.Status == x));
        var shown = status is null ? all : all.Where(p => p.Status == status).ToList();
        return new PromptsView(run.RunId, wanted, ledger is null ? null : Lower(ledger.Phase), status is null ? null : Lower(status.Value), counts,
            shown.Select(p => new PromptSummaryView(PromptKey.Format(p.RunId, p.PromptId), p.PromptId, Lower(p.Status), p.Reason, p.DatasetIndex,
                p.PolicyVersion, p.GroupSize, p.Filled, p.Accuracy, p.MeanReward, p.MeanLength, p.TruncatedCount, p.CreatedAt,
                p.DecidedAt)).ToList());
    }

    public async Task<PromptDetailView> PromptAsync(PromptKey key, CancellationToken cancellationToken)
    {
        var runId = key.RunId ?? (await session.RunAsync(cancellationToken)).RunId;
        var (run, prompt, step, slots) = await session.ReadAsync(async s =>
        {
            var p = await s.GetPromptAsync(runId, key.PromptId);
            return (await s.GetRunAsync(runId), p, p is null ? null : await s.GetStepAsync(runId, p.Step),
                p is null ? [] : await s.ListSlotsAsync(runId, key.PromptId));
        }, cancellationToken);
        if (run is null) throw new ClientException(ExitCodes.NotFound, $"run '{runId}' does not exist in {session.Store.Description}");
        if (prompt is null)
            throw new ClientException(ExitCodes.NotFound,
                $"prompt grain {PromptKey.Format(runId, key.PromptId)} does not exist (run '{runId}' has prompts 1 to {run.NextPromptId - 1})");
        // The learner trains on the accepted groups of a step once its sampling closes (LearnerLedger.CloseSamplingAsync).
        var trained = prompt.Status == PromptStatus.Accepted && prompt.Reason != PromptGrain.SurplusCarryReason &&
                      step?.Phase is StepPhase.Training or StepPhase.Done;
        return new PromptDetailView(PromptKey.Format(runId, prompt.PromptId), runId, prompt.PromptId, prompt.Step,
            step is null ? null : Lower(step.Phase), Lower(prompt.Status), prompt.Reason, trained, prompt.DatasetIndex, prompt.DrawOrdinal,
            prompt.PolicyVersion, prompt.GroupSize, prompt.Filled, prompt.Accuracy, prompt.MeanReward, prompt.MeanLength,
            prompt.TruncatedCount, prompt.Problem, prompt.GroundTruth, prompt.PromptTokens, prompt.CreatedAt, prompt.DecidedAt,
            History(prompt.History), slots.Select(x => new SlotView(x.Slot, x.Text, x.Tokens, x.LogProbs, x.Tokens.Length, x.Score,
                x.OverlongPenalty, x.Reward, x.Correct, x.Truncated, x.PolicyVersion, x.Worker, x.SubmittedAt)).ToList());
    }

    public async Task<LearnerView> LearnerAsync(CancellationToken cancellationToken)
    {
        var run = await session.RunAsync(cancellationToken);
        return await session.ReadAsync(async s =>
        {
            var now = ClientSession.Now;
            var step = await s.GetStepAsync(run.RunId, run.Step);
            return new LearnerView(run.RunId, Lower(run.Status), CurrentStep(run), CompletedSteps(run), TotalSteps(run), run.PolicyVersion, run.LatestCheckpoint,
                Lease(await s.GetLeaseAsync(LeaseNames.Learner(run.RunId)), now), State(await s.GetLearnerAsync(run.RunId), now),
                step is null ? null : Progress(step));
        }, cancellationToken);
    }

    public Task<RolloutView> RolloutAsync(string siloId, CancellationToken cancellationToken) =>
        session.ReadAsync(async s =>
        {
            var now = ClientSession.Now;
            var members = await s.ListMembersAsync();
            // A worker id (silo/w0) names its silo too.
            var member = members.FirstOrDefault(m => m.SiloId == siloId)
                         ?? members.FirstOrDefault(m => siloId.StartsWith(m.SiloId + "/", StringComparison.Ordinal))
                         ?? throw new ClientException(ExitCodes.NotFound, $"no silo '{siloId}' in the membership table" +
                             (members.Count == 0 ? "" : $" (silos: {string.Join(", ", members.Select(m => m.SiloId))})"));
            var work = await s.ListWorkAsync(null, openOnly: true);
            var silo = Silos([member], work, now).Single();
            var leased = work.Where(w => OwnedBy(w, member.SiloId)).Select(w => new LeasedItemView(w.ItemId, PromptKey.Format(w.RunId, w.PromptId),
                w.RunId, w.Step, w.PromptId, w.PolicyVersion, w.LeaseOwner!, w.LeaseUntil ?? 0, (w.LeaseUntil ?? 0) - now,
                w.LeaseUntil is null || w.LeaseUntil <= now, w.Attempts)).ToList();
            return new RolloutView(silo, leased);
        }, cancellationToken);

    /// <summary>Metrics rows of steps after <paramref name="afterStep"/>.</summary>
    public async Task<IReadOnlyList<JsonObject>> MetricsAsync(string runId, int afterStep, CancellationToken cancellationToken)
    {
        var rows = await session.ReadAsync(s => s.ListMetricsAsync(runId, afterStep), cancellationToken);
        return rows.Select(r => JsonNode.Parse(r.Json) as JsonObject ?? new JsonObject { ["step"] = r.Step }).ToList();
    }

    public async Task<CheckpointsView> CheckpointsAsync(RunRow run, CancellationToken cancellationToken)
    {
        var blobs = session.Blobs;
        IReadOnlyList<CheckpointInfo> listed;
        try
        {
            listed = await new CheckpointStore(blobs, run.RunId).ListAsync(cancellationToken);
        }
        catch (Exception e) when (ClientSession.Translate(e, blobs.Description) is { } translated)
        {
            throw translated;
        }
        var latest = listed.FirstOrDefault(c => c.Complete)?.Step;
        return new CheckpointsView(run.RunId, blobs.Description, run.LatestCheckpoint,
            listed.Select(c => new CheckpointView(c.Step, c.Size, c.Complete, c.Problem ?? "ok", c.Step == latest)).ToList());
    }

    public async Task<WatchView> WatchAsync(string runId, int recentSteps, CancellationToken cancellationToken)
    {
        var (status, metrics) = await session.ReadAsync(async s =>
        {
            var now = ClientSession.Now;
            var run = await s.GetRunAsync(runId) ?? throw new ClientException(ExitCodes.NotFound, $"run '{runId}' no longer exists");
            var work = await s.ListWorkAsync(runId, openOnly: true);
            var members = await s.ListMembersAsync();
            return ((await RunStatusAsync(s, run, work, now), Silos(members, work, now)),
                await s.ListMetricsAsync(runId, run.Step - 1 - recentSteps));
        }, cancellationToken);
        var (runView, silos) = status;
        var points = metrics.Select(Point).ToList();
        var last = points.LastOrDefault();
        var progress = runView.CurrentStep;
        double? filtered = progress is { } p && p.Accepted + p.Filtered > 0 ? (double)p.Filtered / (p.Accepted + p.Filtered) : null;
        return new WatchView(ClientSession.Now, session.Store.Description, runView,
            silos.Count(x => x.Alive && x.Roles.Contains("rollout")), silos.Count(x => x.Alive), silos.Count, filtered,
            last?.TokensPerSecond, last?.StepSeconds, points);
    }

    private static MetricPointView Point(MetricsRow row)
    {
        var json = JsonNode.Parse(row.Json) as JsonObject ?? [];
        return new MetricPointView(row.Step, Number(json, "sampled/accuracy") ?? Number(json, "critic/accuracy"), Number(json, "critic/rewards/mean"),
            Number(json, "actor/entropy"), Number(json, "response_length/mean"), Number(json, "train/filtered_fraction"),
            Number(json, "throughput/tokens_per_s"), Number(json, "timing/step_s"));
    }

    public static double? Number(JsonObject row, string key) =>
        row[key] is JsonValue v && v.TryGetValue<double>(out var d) ? d : null;

    private IReadOnlyList<SiloView> Silos(IReadOnlyList<MemberRow> members, IReadOnlyList<WorkItemRow> openWork, long now) =>
        members.Select(m =>
        {
            var alive = Membership.IsAlive(m, now, Configuration.MemberTimeout);
            var state = m.Status == MemberStatus.Left ? "left" : alive ? "active" : "silent";
            return new SiloView(m.SiloId, m.Roles.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), m.Host,
                m.ProcessId, $"{m.Host}:{m.ProcessId}", state, alive, m.StartedAt, m.HeartbeatAt, now - m.HeartbeatAt, m.WorkInHand,
                openWork.Count(w => OwnedBy(w, m.SiloId) && w.LeaseUntil > now));
        }).ToList();

    /// <summary>Workers are named silo/wN (RolloutService).</summary>
    private static bool OwnedBy(WorkItemRow item, string siloId) =>
        item.LeaseOwner is { } owner && (owner == siloId || owner.StartsWith(siloId + "/", StringComparison.Ordinal));

    private LeaseView? Lease(LeaseRow? lease, long now)
    {
        if (lease is null) return null;
        var released = lease.ExpiresAt == 0;  // Leases.ReleaseAsync: given up on a graceful stop
        return new LeaseView(lease.Owner, lease.Epoch, lease.ExpiresAt, released ? null : lease.ExpiresAt - now,
            released ? null : Math.Max(0, now - (lease.ExpiresAt - (long)Configuration.LearnerLeaseTtl.TotalMilliseconds)),
            lease.ExpiresAt > now, released);
    }

    private static LearnerStateView? State(LearnerRow? learner, long now) => learner is null
        ? null
        : new LearnerStateView(learner.SiloId, learner.Epoch, learner.Phase, learner.Step, learner.Detail, learner.UpdatedAt, now - learner.UpdatedAt);

    private static StepProgressView Progress(StepRow s) =>
        new(s.Step, Lower(s.Phase), s.Target, s.Accepted, s.Filtered, s.Abandoned, s.InFlight, s.Draws, s.GenerationRounds);

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
    public static int? TotalSteps(RunRow run)
    {
        try
        {
            return JsonNode.Parse(run.SpecJson)?["Steps"] is JsonValue v && v.TryGetValue<int>(out var steps) ? steps : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The run's step is the one being sampled or trained: every step before it is done.</summary>
    private static int CompletedSteps(RunRow run) => Math.Max(0, run.Step - 1);

    /// <summary>The step being worked on, or for an ended run its last step (the store already points past it).</summary>
    private static int CurrentStep(RunRow run) => run.Status == RunStatus.Running ? run.Step : CompletedSteps(run);

    private static double Seconds(long milliseconds) => milliseconds / 1000.0;

    private static string Lower<T>(T value) where T : struct, Enum => value.ToString().ToLower(CultureInfo.InvariantCulture);
}

/// <summary>
/// The key of a prompt grain: <c>RUN/PROMPT_ID</c> (e.g. <c>demo/17</c>), as `prompts` lists them; a bare
/// <c>PROMPT_ID</c> means the default run. Prompt ids are unique within a run. The run is everything before the last
/// '/', so run names may contain '/'.
/// </summary>
public sealed record PromptKey(string? RunId, long PromptId)
{
    public static string Format(string runId, long promptId) => $"{runId}/{promptId.ToString(CultureInfo.InvariantCulture)}";

    public static PromptKey Parse(string key)
    {
        var slash = key.LastIndexOf('/');
        var run = slash < 0 ? null : key[..slash];
        var id = slash < 0 ? key : key[(slash + 1)..];
        if (run is "" || !long.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var promptId) || promptId <= 0)
            throw new ClientException(ExitCodes.Usage,
                $"malformed prompt key '{key}': use RUN/PROMPT_ID with a positive number, e.g. demo/17 (`dapo-client prompts` lists the keys)");
        return new PromptKey(run, promptId);
    }
}
