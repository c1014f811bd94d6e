using Dapo.Core.Data;
using Dapo.Core.Options;
using Dapo.Core.Sampling;
using Dapo.Grains.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using Orleans.Runtime;

namespace Dapo.Grains.Grains;

/// <summary>A step grain's persistent state: the ledger, every prompt it drew, its cursor.</summary>
[GenerateSerializer]
public sealed class StepState
{
    [Id(0)] public StepLedger? Ledger { get; set; }
    [Id(1)] public List<PromptEntry> Prompts { get; set; } = [];
    /// <summary>The dataset cursor after the step's draws so far.</summary>
    [Id(2)] public string CursorJson { get; set; } = "";
    /// <summary>Next prompt id: never reused, across openings too.</summary>
    [Id(3)] public long NextPromptId { get; set; } = 1;
    /// <summary>Decisions taken in the current opening, to order accepted groups.</summary>
    [Id(4)] public int Decisions { get; set; }
    /// <summary>The newest learner epoch seen: calls with an older one are refused.</summary>
    [Id(5)] public long MaxEpoch { get; set; }
}

/// <summary>
/// A step's ledger and work queue (see <see cref="IStepGrain"/>). Its state is written before any prompt it drew can be
/// leased (so prompt ids are never reused) and at every phase change; a decision that draws nothing is written within
/// <see cref="FlushDelay"/>, with the next draw, or on deactivation. A decision lost in a crash is simply taken again:
/// its group is still Sampling in the stored ledger, it is offered again, and its prompt grain, which stored the group
/// before reporting it, reports it again. Leases live in memory only: after a crash every group still sampling is
/// offered again, and a slot submitted twice is a no-op at its prompt grain.
/// </summary>
[CollectionAgeLimit(Minutes = 10)]
public sealed partial class StepGrain(
    [PersistentState("step", GrainStorage.Name)] IPersistentState<StepState> state,
    RunCatalog catalog, DapoMetrics telemetry, TimeProvider time, ILogger<StepGrain> logger) : Grain, IStepGrain
{
    private readonly Dictionary<long, (string Worker, DateTimeOffset Until)> _leases = new();
    private TaskCompletionSource _samplingEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    /// <summary>Completed (and replaced) when groups may have become leasable or sampling ended: idle rollout grains wait for it.</summary>
    private TaskCompletionSource _workChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private RunResources _run = null!;
    private int _step;
    private bool _dirty;

    /// <summary>Longest a decision that drew nothing waits in memory before it is written.</summary>
    public static readonly TimeSpan FlushDelay = TimeSpan.FromMilliseconds(200);

    private StepState S => state.State;
    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var (runId, step) = GrainKeys.ParseStep(this.GetPrimaryKeyString());
        _step = step;
        _run = await catalog.GetAsync(runId);
        if (SamplingStopped) _samplingEnded.TrySetResult();
        this.RegisterGrainTimer(FlushAsync, FlushDelay, FlushDelay);
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken) => await FlushAsync();

    private async Task FlushAsync()
    {
        if (_dirty) await WriteAsync();
    }

    private async Task WriteAsync()
    {
        await state.WriteStateAsync();
        _dirty = false;
    }

    public async Task<StepLedger> OpenAsync(StepOpening opening)
    {
        CheckEpoch(opening.Epoch, "open");
        if (S.Ledger is { } open && open.Epoch == opening.Epoch && open.Phase != StepPhase.Abandoned)
            return open;  // a retried call of the same learner
        var reason = $"abandoned: step {_step} opened again by a restarted learner (epoch {opening.Epoch})";
        EndOpening(reason);
        var ledger = new StepLedger(_run.RunId, _step, opening.PolicyVersion, StepPhase.Sampling, _run.Options.PromptBatchSize,
            0, 0, 0, 0, 0, 0, 0, null, opening.Epoch, (S.Ledger?.Opening ?? 0) + 1, Now, null, null);
        S.Decisions = 0;
        S.CursorJson = opening.CursorJson;
        foreach (var carried in opening.Carried)
        {
            var take = ledger.Accepted < ledger.Target && SurplusCarry.CanCarry(_run.Options, carried.PolicyVersion, opening.PolicyVersion);
            S.Prompts.Add(carried with
            {
                Status = take ? PromptStatus.Accepted : PromptStatus.Abandoned, CarryOut = false,
                Reason = take ? $"carried from step {carried.Step}" : "surplus: too stale to carry (discarded)",
                Decided = take ? ++S.Decisions : null, Opening = ledger.Opening,
            });
            ledger = take
                ? ledger with { Accepted = ledger.Accepted + 1, SurplusCarried = ledger.SurplusCarried + 1 }
                : ledger with { Abandoned = ledger.Abandoned + 1 };
        }
        _leases.Clear();
        _samplingEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
        S.Ledger = ContinueSampling(ledger);
        await WriteAsync();
        WakeWorkers();
        LogOpened(logger, _run.RunId, _step, S.Ledger.Opening, S.Ledger.PolicyVersion, S.Ledger.Draws);
        return S.Ledger;
    }

    public Task<IReadOnlyList<WorkItem>> LeaseAsync(string worker, int max, TimeSpan visibility)
    {
        if (S.Ledger is not { Phase: StepPhase.Sampling, StopReason: null } ledger) return Task.FromResult<IReadOnlyList<WorkItem>>([]);
        var now = time.GetUtcNow();
        var leased = new List<WorkItem>();
        foreach (var p in CurrentOpening().Where(p => p.Status == PromptStatus.Sampling))
        {
            if (leased.Count == max) break;
            if (_leases.TryGetValue(p.PromptId, out var lease) && lease.Until > now && lease.Worker != worker) continue;
            _leases[p.PromptId] = (worker, now + visibility);
            leased.Add(new WorkItem(_run.RunId, _step, p.PromptId, p.DatasetIndex, p.DrawOrdinal, ledger.PolicyVersion));
        }
        PublishQueue();
        return Task.FromResult<IReadOnlyList<WorkItem>>(leased);
    }

    public async Task<bool> WaitForWorkAsync(string worker, TimeSpan maxWait)
    {
        // Not opened yet, or abandoned and about to be opened again: a restarted learner announces its step before it
        // opens it, so the registry does not change at the opening. Wait for the opening itself.
        if (S.Ledger is null or { Phase: StepPhase.Abandoned })
        {
            await Task.WhenAny(_workChanged.Task, Task.Delay(maxWait, time));
            return S.Ledger is { Phase: StepPhase.Sampling, StopReason: null };
        }
        var deadline = time.GetUtcNow() + maxWait;
        while (!SamplingStopped)
        {
            var now = time.GetUtcNow();
            var waiting = CurrentOpening().Where(p => p.Status == PromptStatus.Sampling)
                .Select(p => _leases.TryGetValue(p.PromptId, out var lease) && lease.Worker != worker && lease.Until > now ? lease.Until - now : TimeSpan.Zero)
                .DefaultIfEmpty(maxWait).Min();
            var left = deadline - now;
            if (waiting <= TimeSpan.Zero || left <= TimeSpan.Zero) return true;
            // Nothing leasable: wait for a change, or for the first lease of another worker to lapse. A timer may
            // fire a little before the clock says the lease lapsed: then look again rather than wake the worker
            // to an empty lease.
            var changed = _workChanged.Task;
            if (await Task.WhenAny(changed, Task.Delay(waiting < left ? waiting : left, time)) == changed) break;
        }
        return !SamplingStopped;
    }

    /// <summary>The step's queue as a metric (<see cref="DapoMetrics"/>): groups no rollout grain holds, and groups not judged.</summary>
    private void PublishQueue()
    {
        if (S.Ledger is not { Phase: StepPhase.Sampling, StopReason: null } ledger)
        {
            telemetry.StepQueue(_run.RunId, 0, S.Ledger?.Phase == StepPhase.Sampling ? S.Ledger.InFlight : 0);
            return;
        }
        var now = time.GetUtcNow();
        var waiting = CurrentOpening().Count(p => p.Status == PromptStatus.Sampling && !(_leases.TryGetValue(p.PromptId, out var lease) && lease.Until > now));
        telemetry.StepQueue(_run.RunId, waiting, ledger.InFlight);
    }

    /// <summary>The step's work changed (opened, given back, refilled, stopped): the rollout grains waiting in
    /// <see cref="WaitForWorkAsync"/> look again.</summary>
    private void WakeWorkers()
    {
        PublishQueue();
        var changed = _workChanged;
        _workChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    public Task<int> ReleaseAsync(string worker)
    {
        var mine = _leases.Where(l => l.Value.Worker == worker).Select(l => l.Key).ToList();
        foreach (var id in mine) _leases.Remove(id);
        if (mine.Count > 0) WakeWorkers();
        return Task.FromResult(mine.Count);
    }

    public async Task<IReadOnlyList<ReportOutcome>> ReportAsync(IReadOnlyList<GroupReport> reports)
    {
        var drawsBefore = S.Ledger?.Draws;
        var outcomes = reports.Select(Decide).ToList();
        // New prompts must be stored before they can be leased (no lease interleaves with this turn); the end of
        // sampling is stored at once too. Other decisions are written within FlushDelay.
        if (S.Ledger is { } ledger && (ledger.Draws != drawsBefore || SamplingStopped))
        {
            await WriteAsync();
            WakeWorkers();
        }
        if (SamplingStopped) _samplingEnded.TrySetResult();
        PublishQueue();
        return outcomes;
    }

    /// <summary>Decides one reported group and continues sampling (refills, stop) as the policy says.</summary>
    private ReportOutcome Decide(GroupReport report)
    {
        var index = S.Prompts.FindIndex(p => p.Step == _step && p.PromptId == report.PromptId);
        if (index < 0 || S.Ledger is not { } ledger) return ReportOutcome.Stale;
        var entry = S.Prompts[index];
        if (entry.Status != PromptStatus.Sampling) return OutcomeOf(entry);  // reported before: the same answer
        // Sampling stopped: groups finishing later are not judged, so what a step records does not depend on how
        // fast the learner closes it (a resumed run records exactly what an uninterrupted one did) — except an
        // informative group after the target was met, until the step closes: it is the surplus (discarded or carried).
        var surplus = ledger.StopReason == nameof(StopReason.TargetMet) && report.Informative;
        if (report.PolicyVersion != ledger.PolicyVersion || ledger.Phase != StepPhase.Sampling || (ledger.StopReason is not null && !surplus))
            return ReportOutcome.Stale;
        ledger = ledger with { InFlight = ledger.InFlight - 1 };
        entry = entry with
        {
            Accuracy = report.Accuracy, MeanLength = report.MeanLength, Responses = report.Responses, TruncatedShare = report.TruncatedShare,
            Decided = ++S.Decisions,
        };
        if (!report.Informative)
        {
            entry = entry with { Status = PromptStatus.Filtered, Reason = report.Why };
            ledger = ledger with { Filtered = ledger.Filtered + 1 };
        }
        else if (ledger.Accepted < ledger.Target)
        {
            entry = entry with { Status = PromptStatus.Accepted, Reason = report.Why };
            ledger = ledger with { Accepted = ledger.Accepted + 1 };
        }
        else if (_run.Options.SurplusGroups == SurplusGroupBehavior.Carry)
            entry = entry with { Status = PromptStatus.Accepted, CarryOut = true, Reason = "surplus: accepted after the step met its target; to carry" };
        else
        {
            entry = entry with { Status = PromptStatus.Abandoned, Reason = "surplus: the step already had its target (discarded)" };
            ledger = ledger with { Abandoned = ledger.Abandoned + 1 };
        }
        S.Prompts[index] = entry;
        _leases.Remove(report.PromptId);
        S.Ledger = ContinueSampling(ledger);
        _dirty = true;
        return OutcomeOf(entry);
    }

    public async Task<StepLedger> WaitForSamplingEndAsync(TimeSpan maxWait)
    {
        if (S.Ledger is null) throw new InvalidOperationException($"Step {this.GetPrimaryKeyString()} was never opened.");
        if (!SamplingStopped) await Task.WhenAny(_samplingEnded.Task, Task.Delay(maxWait, time));
        return S.Ledger;
    }

    public async Task<ClosedStep> CloseAsync(long epoch)
    {
        CheckEpoch(epoch, "close");
        var ledger = S.Ledger ?? throw new InvalidOperationException($"Step {this.GetPrimaryKeyString()} was never opened.");
        if (ledger.Phase == StepPhase.Sampling)
        {
            if (ledger.StopReason is null) throw new InvalidOperationException($"Step {_step} is still sampling.");
            var open = EndPrompts(PromptStatus.Sampling, $"abandoned: sampling stopped ({ledger.StopReason})");
            S.Ledger = ledger with { Phase = StepPhase.Training, InFlight = 0, Abandoned = ledger.Abandoned + open };
            _leases.Clear();
            await WriteAsync();
            WakeWorkers();
        }
        else if (ledger.Phase != StepPhase.Training && ledger.Phase != StepPhase.Done)
            throw new InvalidOperationException($"Step {_step} is {ledger.Phase.ToString().ToLowerInvariant()}: it cannot be closed.");
        ledger = S.Ledger;
        var current = CurrentOpening().ToList();
        var failure = ledger.StopReason == nameof(StopReason.CapReachedFail)
            ? _run.Sampling.CapReachedMessage(new StepCounters(ledger.Target, ledger.Accepted, 0, ledger.Draws))
            : null;
        return new ClosedStep(ledger,
            current.Where(p => p.Status == PromptStatus.Accepted && !p.CarryOut).OrderBy(p => p.Decided).ToList(),
            current.Where(p => p.Accuracy is not null && p.Status != PromptStatus.Abandoned && p.Step == _step).ToList(),
            current.Where(p => p.CarryOut).OrderBy(p => p.Decided).ToList(),
            S.CursorJson, failure);
    }

    public async Task CompleteAsync(long epoch)
    {
        CheckEpoch(epoch, "complete");
        if (S.Ledger is not { Phase: StepPhase.Training } ledger) return;
        S.Ledger = ledger with { Phase = StepPhase.Done, ClosedAt = Now };
        await WriteAsync();
    }

    public async Task AbandonAsync(long epoch, string reason)
    {
        CheckEpoch(epoch, "abandon");
        if (S.Ledger is null || S.Ledger.Phase == StepPhase.Abandoned) return;
        EndOpening(reason);
        _leases.Clear();
        await WriteAsync();
        WakeWorkers();
    }

    public Task<StepLedger?> GetAsync() => Task.FromResult(S.Ledger);

    public Task<IReadOnlyList<PromptEntry>> ListPromptsAsync() => Task.FromResult<IReadOnlyList<PromptEntry>>(S.Prompts.ToList());

    private bool SamplingStopped => S.Ledger is { } l && (l.StopReason is not null || l.Phase != StepPhase.Sampling);

    /// <summary>Prompts of the current opening: the ones it drew and the ones carried into it.</summary>
    private IEnumerable<PromptEntry> CurrentOpening() => S.Prompts.Where(p => p.Opening == S.Ledger?.Opening);

    /// <summary>Ends what the current opening left open: its prompts still sampling or accepted are abandoned.</summary>
    private void EndOpening(string reason)
    {
        if (S.Ledger is not { } ledger || ledger.Phase == StepPhase.Abandoned) return;
        var ended = EndPrompts(PromptStatus.Sampling, reason) + EndPrompts(PromptStatus.Accepted, reason);
        S.Ledger = ledger with { Phase = StepPhase.Abandoned, InFlight = 0, Abandoned = ledger.Abandoned + ended, ClosedAt = Now };
    }

    /// <summary>Moves the current opening's prompts of <paramref name="status"/> to Abandoned; returns how many.</summary>
    private int EndPrompts(PromptStatus status, string reason)
    {
        var count = 0;
        for (var i = 0; i < S.Prompts.Count; i++)
        {
            var p = S.Prompts[i];
            if (p.Status != status || p.Opening != S.Ledger?.Opening) continue;
            S.Prompts[i] = p with { Status = PromptStatus.Abandoned, Reason = reason, CarryOut = false };
            count++;
        }
        return count;
    }

    /// <summary>
    /// Asks the dynamic-sampling policy what the step does next and does it: draw refills, record why sampling
    /// stopped, or nothing (wait for groups in flight).
    /// </summary>
    private StepLedger ContinueSampling(StepLedger ledger)
    {
        if (ledger.Phase != StepPhase.Sampling || ledger.StopReason is not null) return ledger;
        var decision = _run.Sampling.Decide(new StepCounters(ledger.Target, ledger.Accepted, ledger.InFlight, ledger.Draws));
        return decision.Action switch
        {
            SamplingAction.Refill => Draw(ledger, decision.Prompts, ledger.Draws == 0 ? "initial draw" : $"refill after {ledger.Filtered} filtered"),
            SamplingAction.Stop => ledger with { StopReason = decision.Reason.ToString(), SamplingDoneAt = Now },
            _ => ledger,
        };
    }

    /// <summary>Draws prompts from the step's cursor into the work queue.</summary>
    private StepLedger Draw(StepLedger ledger, int count, string reason)
    {
        var cursor = DatasetCursor.Resume(CursorState.FromJson(S.CursorJson), _run.Data.Train.Count);
        for (var i = 0; i < count; i++)
        {
            var ordinal = (long)cursor.Epoch * cursor.DatasetSize + cursor.Position;
            var index = cursor.Next();
            S.Prompts.Add(new PromptEntry(_step, S.NextPromptId++, index, ordinal, ledger.PolicyVersion, PromptStatus.Sampling, reason,
                null, null, null, 0, false, ledger.Opening));
        }
        S.CursorJson = cursor.State.ToJson();
        var draws = ledger.Draws + count;
        return ledger with
        {
            Draws = draws, InFlight = ledger.InFlight + count,
            GenerationRounds = _run.Sampling.GenerationRounds(new StepCounters(ledger.Target, ledger.Accepted, ledger.InFlight + count, draws)),
        };
    }

    private static ReportOutcome OutcomeOf(PromptEntry entry) => entry.Status switch
    {
        PromptStatus.Accepted => entry.CarryOut ? ReportOutcome.SurplusCarried : ReportOutcome.Accepted,
        PromptStatus.Filtered => ReportOutcome.Filtered,
        PromptStatus.Abandoned when entry.Reason.StartsWith("surplus:", StringComparison.Ordinal) => ReportOutcome.Surplus,
        _ => ReportOutcome.Stale,
    };

    private void CheckEpoch(long epoch, string what)
    {
        if (epoch < S.MaxEpoch)
            throw new StaleEpochException(
                $"Step {this.GetPrimaryKeyString()}: refused to {what} for learner epoch {epoch}; a learner of epoch {S.MaxEpoch} took over.");
        S.MaxEpoch = epoch;
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Debug, Message = "Run {Run} step {Step} opened (opening {Opening}) at policy version {Version}: {Draws} prompts drawn")]
    private static partial void LogOpened(ILogger logger, string run, int step, int opening, int version, int draws);
}
