using Orleans.Concurrency;

namespace Dapo.Grains;

/// <summary>
/// One drawn prompt (key: <c>{run}/{step}/{prompt}</c>): owns its group's sampling state — the G response slots —
/// and judges the group when the last slot fills (informative: reported for acceptance; all rewards equal:
/// filtered, and its step draws a replacement). Submitting a slot twice is a no-op. The group and its verdict are
/// persisted before its step counts it; the step's ledger records the outcome.
/// </summary>
public interface IPromptGrain : IGrainWithStringKey
{
    /// <summary>Stores the slots not stored before; when the group is complete, judges it and reports it to its step
    /// (<see cref="StoreAsync"/>, then the step's <see cref="IStepGrain.ReportAsync"/> with its one report).</summary>
    Task<SubmitOutcome> SubmitAsync(WorkItem work, IReadOnlyList<SlotResult> slots, string worker);

    /// <summary>
    /// Stores the slots not stored before and, when the group is complete, judges it, without reporting it:
    /// <see cref="SubmitOutcome.Stored"/> while slots are missing, <see cref="SubmitOutcome.Duplicate"/> when nothing was
    /// new, <see cref="SubmitOutcome.Stale"/> for work of another draw, otherwise the verdict (Accepted or Filtered).
    /// A complete group's report comes with it, stored or duplicate alike (a re-delivered group is reported again: the
    /// step answers with the outcome it recorded). A rollout grain stores a batch's groups at once and reports them to
    /// the step in one call, in draw order, so the step's decisions do not depend on which write finished first.
    /// </summary>
    Task<StoredGroup> StoreAsync(WorkItem work, IReadOnlyList<SlotResult> slots, string worker);

    /// <summary>The group as stored; null when nothing was ever submitted.</summary>
    [ReadOnly]
    Task<PromptGroup?> GetAsync();
}

/// <summary>What <see cref="IPromptGrain.StoreAsync"/> did, and the report of the group when it is complete and judged.</summary>
[GenerateSerializer, Immutable]
public sealed record StoredGroup([property: Id(0)] SubmitOutcome Outcome, [property: Id(1)] GroupReport? Report);

/// <summary>What a submission did.</summary>
public enum SubmitOutcome
{
    /// <summary>Slots stored; the group is not complete yet.</summary>
    Stored,
    /// <summary>The group completed and was accepted for training.</summary>
    Accepted,
    /// <summary>The group completed and was filtered (all rewards equal).</summary>
    Filtered,
    /// <summary>The group completed after its step already had its target (discarded or carried, per options).</summary>
    Surplus,
    /// <summary>Every slot had been submitted before (a re-delivered work item): nothing changed.</summary>
    Duplicate,
    /// <summary>The step no longer wants this group (sampling stopped, or the learner restarted): results dropped.</summary>
    Stale,
}

/// <summary>One response as a rollout grain submits it.</summary>
[GenerateSerializer, Immutable]
public sealed record SlotResult(
    [property: Id(0)] int Slot,
    [property: Id(1)] int[] Tokens,
    [property: Id(2)] float[] LogProbs,
    [property: Id(3)] string Text,
    [property: Id(4)] double Score,
    [property: Id(5)] double OverlongPenalty,
    [property: Id(6)] bool Correct,
    [property: Id(7)] bool Truncated,
    [property: Id(8)] string Worker)
{
    public double Reward => Score + OverlongPenalty;
}

/// <summary>A prompt grain's state: the prompt, its slots, and its verdict.</summary>
/// <param name="Status">Sampling until the group is complete; then its verdict: Accepted (informative) or Filtered (all
/// rewards equal). What the step did with it (counted, surplus, too late) is the step's ledger's to say.</param>
/// <param name="Reason">Why it has its verdict.</param>
/// <param name="History">One line per transition: "time event: detail".</param>
[GenerateSerializer]
public sealed record PromptGroup(
    [property: Id(0)] WorkItem Work,
    [property: Id(1)] int GroupSize,
    [property: Id(2)] IReadOnlyList<SlotResult> Slots,
    [property: Id(3)] PromptStatus Status,
    [property: Id(4)] string Reason,
    [property: Id(5)] string History);
