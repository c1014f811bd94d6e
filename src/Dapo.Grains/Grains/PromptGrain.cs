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
/// A drawn prompt's group (see <see cref="IPromptGrain"/>). The order of its writes makes every report idempotent:
/// the slots and the verdict are stored first, then the step counts the group (a second report returns the first
/// outcome), then the outcome is stored. A crash between the two writes leaves the group judged and not reported;
/// the re-delivered work item reports it.
/// </summary>
[CollectionAgeLimit(Minutes = 2)]
public sealed class PromptGrain(
    [PersistentState("prompt", GrainStorage.Name)] IPersistentState<PromptState> state,
    RunCatalog catalog, TimeProvider time) : Grain, IPromptGrain
{
    public async Task<SubmitOutcome> SubmitAsync(WorkItem work, IReadOnlyList<SlotResult> slots, string worker)
    {
        if (work.PromptKey != this.GetPrimaryKeyString())
            throw new ArgumentException($"Work for prompt {work.PromptKey} was sent to prompt grain {this.GetPrimaryKeyString()}.", nameof(work));
        var run = await catalog.GetAsync(work.RunId);
        var group = state.State.Group ?? new PromptGroup(work, run.Options.GroupSize, [], PromptStatus.Sampling, "drawn", false,
            Log("", "drawn", $"step {work.Step}, dataset example {work.DatasetIndex}"));
        if (group.Work.PolicyVersion != work.PolicyVersion) return SubmitOutcome.Stale;
        foreach (var slot in slots)
            if (slot.Slot < 0 || slot.Slot >= group.GroupSize)
                throw new ArgumentOutOfRangeException(nameof(slots), slot.Slot, $"Prompt {work.PromptKey} has {group.GroupSize} slots.");
        var stored = group.Slots.Select(s => s.Slot).ToHashSet();
        var added = slots.Where(s => stored.Add(s.Slot)).ToList();
        if (added.Count == 0)
        {
            // A re-delivered work item: nothing new, unless the group was judged and its report was lost in a crash.
            if (group.Slots.Count == group.GroupSize && !group.Reported && group.Status == PromptStatus.Sampling)
                return await ReportAsync(run, group);
            return SubmitOutcome.Duplicate;
        }
        if (group.Status != PromptStatus.Sampling) return SubmitOutcome.Stale;
        group = group with
        {
            Slots = group.Slots.Concat(added).OrderBy(s => s.Slot).ToList(),
            History = Log(group.History, "slots", $"{added.Count} from {worker}"),
        };
        state.State.Group = group;
        if (group.Slots.Count < group.GroupSize)
        {
            await state.WriteStateAsync();
            return SubmitOutcome.Stored;
        }
        return await ReportAsync(run, group);
    }

    public Task<PromptGroup?> GetAsync() => Task.FromResult(state.State.Group);

    /// <summary>Judges the complete group, stores it, has the step count it, stores the outcome.</summary>
    private async Task<SubmitOutcome> ReportAsync(RunResources run, PromptGroup group)
    {
        var outcomes = group.Slots.Select(s => new ResponseOutcome(s.Score, s.OverlongPenalty, s.Correct, s.Tokens.Length, s.Truncated)).ToArray();
        var accuracy = outcomes.Average(o => o.Correct ? 1.0 : 0.0);
        var informative = run.Sampling.Judge(outcomes) != GroupVerdict.Filtered;
        var why = informative
            ? $"accepted: accuracy {accuracy:0.###}"
            : $"filtered: all {outcomes.Length} responses {(accuracy == 1 ? "correct" : accuracy == 0 ? "wrong" : "equal")}";
        group = group with { History = Log(group.History, "judged", why) };
        state.State.Group = group;
        await state.WriteStateAsync();

        var step = GrainFactory.GetGrain<IStepGrain>(GrainKeys.Step(group.Work.RunId, group.Work.Step));
        var outcome = await step.ReportAsync(new GroupReport(group.Work.PromptId, group.Work.PolicyVersion, informative, why, accuracy,
            outcomes.Average(o => (double)o.Length), outcomes.Length));
        var (status, reason, result) = outcome switch
        {
            ReportOutcome.Accepted => (PromptStatus.Accepted, why, SubmitOutcome.Accepted),
            ReportOutcome.Filtered => (PromptStatus.Filtered, why, SubmitOutcome.Filtered),
            ReportOutcome.SurplusCarried => (PromptStatus.Accepted, "surplus: accepted after the step met its target; to carry", SubmitOutcome.Surplus),
            ReportOutcome.Surplus => (PromptStatus.Abandoned, "surplus: the step already had its target (discarded)", SubmitOutcome.Surplus),
            _ => (PromptStatus.Abandoned, "abandoned: its step no longer samples", SubmitOutcome.Stale),
        };
        state.State.Group = group with
        {
            Status = status, Reason = reason, Reported = true,
            History = Log(group.History, status.ToString().ToLowerInvariant(), reason),
        };
        await state.WriteStateAsync();
        return result;
    }

    /// <summary>Appends one line to the grain's decision history.</summary>
    private string Log(string history, string @event, string detail) => $"{history}{time.GetUtcNow():O} {@event}: {detail}\n";
}
