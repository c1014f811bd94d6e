using Dapo.Core.Rewards;
using Dapo.Core.Sampling;
using Dapo.Grains.Hosting;
using Orleans.Runtime;

namespace Dapo.Grains.Grains;

/// <summary>A prompt grain's persistent state.</summary>
[GenerateSerializer]
public sealed class PromptState
{
    [Id(0)] public PromptGroup? Group { get; set; }
}

/// <summary>
/// A drawn prompt's group (see <see cref="IPromptGrain"/>). One write per complete group: the slots with the verdict;
/// then the group's report goes to the step (by this grain, or with its batch by the rollout grain), which counts it.
/// The step's ledger is the one record of outcomes, and counting is idempotent by prompt id, so a complete group
/// submitted again (its work item re-delivered after a crash anywhere) is simply reported again: the step answers with
/// the outcome it recorded, or decides it now if it lost the decision.
/// </summary>
[CollectionAgeLimit(Minutes = 2)]
public sealed class PromptGrain(
    [PersistentState("prompt", GrainStorage.Name)] IPersistentState<PromptState> state,
    RunCatalog catalog, TimeProvider time) : Grain, IPromptGrain
{
    public async Task<SubmitOutcome> SubmitAsync(WorkItem work, IReadOnlyList<SlotResult> slots, string worker)
    {
        var stored = await StoreAsync(work, slots, worker);
        if (stored.Report is not { } report) return stored.Outcome;
        var step = GrainFactory.GetGrain<IStepGrain>(GrainKeys.Step(work.RunId, work.Step));
        var reported = Outcome((await step.ReportAsync([report]))[0]);
        return stored.Outcome == SubmitOutcome.Duplicate ? SubmitOutcome.Duplicate : reported;
    }

    public async Task<StoredGroup> StoreAsync(WorkItem work, IReadOnlyList<SlotResult> slots, string worker)
    {
        if (work.PromptKey != this.GetPrimaryKeyString())
            throw new ArgumentException($"Work for prompt {work.PromptKey} was sent to prompt grain {this.GetPrimaryKeyString()}.", nameof(work));
        var run = await catalog.GetAsync(work.RunId);
        var group = state.State.Group ?? new PromptGroup(work, run.Options.GroupSize, [], PromptStatus.Sampling, "drawn",
            Log("", "drawn", $"step {work.Step}, dataset example {work.DatasetIndex}"));
        // The grain holds the group of one draw: work naming another (a stale or foreign work item) is refused.
        if (group.Work != work) return new StoredGroup(SubmitOutcome.Stale, null);
        foreach (var slot in slots)
            if (slot.Slot < 0 || slot.Slot >= group.GroupSize)
                throw new ArgumentOutOfRangeException(nameof(slots), slot.Slot, $"Prompt {work.PromptKey} has {group.GroupSize} slots.");
        var known = group.Slots.Select(s => s.Slot).ToHashSet();
        var added = slots.Where(s => known.Add(s.Slot)).ToList();
        if (added.Count == 0) return new StoredGroup(SubmitOutcome.Duplicate, ReportOf(group));
        group = group with
        {
            Slots = group.Slots.Concat(added).OrderBy(s => s.Slot).ToList(),
            History = Log(group.History, "slots", $"{added.Count} from {worker}"),
        };
        if (group.Slots.Count == group.GroupSize) group = Judge(run, group);
        state.State.Group = group;
        await state.WriteStateAsync();
        return group.Status switch
        {
            PromptStatus.Accepted => new StoredGroup(SubmitOutcome.Accepted, ReportOf(group)),
            PromptStatus.Filtered => new StoredGroup(SubmitOutcome.Filtered, ReportOf(group)),
            _ => new StoredGroup(SubmitOutcome.Stored, null),
        };
    }

    /// <summary>What the step counts a judged group by; null while the group is not complete.</summary>
    private static GroupReport? ReportOf(PromptGroup group)
    {
        if (group.Status is not (PromptStatus.Accepted or PromptStatus.Filtered)) return null;
        var outcomes = Outcomes(group);
        return new GroupReport(group.Work.PromptId, group.Work.PolicyVersion, group.Status == PromptStatus.Accepted,
            group.Reason, outcomes.Average(o => o.Correct ? 1.0 : 0.0), outcomes.Average(o => (double)o.Length), outcomes.Length,
            outcomes.Average(o => o.Truncated ? 1.0 : 0.0));
    }

    /// <summary>A step's outcome as the submitter sees it.</summary>
    private static SubmitOutcome Outcome(ReportOutcome outcome) => outcome switch
    {
        ReportOutcome.Accepted => SubmitOutcome.Accepted,
        ReportOutcome.Filtered => SubmitOutcome.Filtered,
        ReportOutcome.Surplus or ReportOutcome.SurplusCarried => SubmitOutcome.Surplus,
        _ => SubmitOutcome.Stale,
    };

    public Task<PromptGroup?> GetAsync() => Task.FromResult(state.State.Group);

    /// <summary>The verdict of a complete group: informative (some rewards differ) or filtered (all equal).</summary>
    private PromptGroup Judge(RunResources run, PromptGroup group)
    {
        var outcomes = Outcomes(group);
        var accuracy = outcomes.Average(o => o.Correct ? 1.0 : 0.0);
        return run.Sampling.Judge(outcomes) != GroupVerdict.Filtered
            ? group with { Status = PromptStatus.Accepted, Reason = $"accepted: accuracy {accuracy:0.###}", History = Log(group.History, "judged", "informative") }
            : group with
            {
                Status = PromptStatus.Filtered,
                Reason = $"filtered: all {outcomes.Length} responses {(accuracy == 1 ? "correct" : accuracy == 0 ? "wrong" : "equal")}",
                History = Log(group.History, "judged", "all rewards equal"),
            };
    }

    private static ResponseOutcome[] Outcomes(PromptGroup group) =>
        group.Slots.Select(s => new ResponseOutcome(s.Score, s.OverlongPenalty, s.Correct, s.Tokens.Length, s.Truncated)).ToArray();

    /// <summary>Appends one line to the grain's history.</summary>
    private string Log(string history, string @event, string detail) => $"{history}{time.GetUtcNow():O} {@event}: {detail}\n";
}
