using Orleans.Concurrency;

namespace Dapo.Grains;

/// <summary>Phases of a step.</summary>
public enum StepPhase
{
    /// <summary>Not opened yet (a grain that was never written).</summary>
    None,
    /// <summary>Prompt groups are being sampled and judged.</summary>
    Sampling,
    /// <summary>The learner has its groups and is updating the policy.</summary>
    Training,
    /// <summary>Trained; the next policy version is published.</summary>
    Done,
    /// <summary>Dropped: the learner restarted from an earlier checkpoint, or the run failed.</summary>
    Abandoned,
}

/// <summary>A drawn prompt's status in its step's ledger.</summary>
public enum PromptStatus { Sampling, Accepted, Filtered, Abandoned }

/// <summary>
/// One step of a run (key: <c>{run}/{step}</c>, <see cref="GrainKeys.Step"/>): the single writer of the step's ledger
/// (target, accepted, filtered, in flight, draws, generation rounds, stop reason), its work queue (prompt groups
/// waiting for rollouts, leased with a visibility timeout) and its draws from the dataset cursor. Calls that change
/// the step carry the learner's epoch; an older epoch than the step has seen is refused.
/// </summary>
public interface IStepGrain : IGrainWithStringKey
{
    /// <summary>
    /// Opens the step (again, when a learner restarted it: what an earlier opening drew is abandoned) and draws its
    /// first prompts. Throws <see cref="StaleEpochException"/> for an epoch older than one seen.
    /// </summary>
    Task<StepLedger> OpenAsync(StepOpening opening);

    /// <summary>
    /// Leases up to <paramref name="max"/> prompt groups for <paramref name="worker"/> until the visibility timeout:
    /// groups not leased, or whose lease expired, oldest draw first. Empty when the step is not sampling.
    /// </summary>
    Task<IReadOnlyList<WorkItem>> LeaseAsync(string worker, int max, TimeSpan visibility);

    /// <summary>
    /// Returns true once the step has groups <paramref name="worker"/> can lease (drawn, given back, or their lease
    /// lapsed), or after <paramref name="maxWait"/> while the step still samples; false at once when its sampling
    /// ended. A step not opened yet (or abandoned, to be opened again) is waited on until it opens. An idle rollout
    /// grain waits here instead of polling.
    /// </summary>
    [AlwaysInterleave]
    Task<bool> WaitForWorkAsync(string worker, TimeSpan maxWait);

    /// <summary>Gives back the worker's leases (a rollout grain stopping gracefully): others take them at once.</summary>
    Task<int> ReleaseAsync(string worker);

    /// <summary>
    /// Complete, judged groups, decided in the order given, as if reported one by one: each is counted once (a second
    /// report of the same prompt returns the first outcome), and after a filtered one the step draws refills while it
    /// needs groups and the cap allows. The outcomes, in the same order.
    /// </summary>
    Task<IReadOnlyList<ReportOutcome>> ReportAsync(IReadOnlyList<GroupReport> reports);

    /// <summary>Returns once sampling stopped, or after <paramref name="maxWait"/>, with the ledger.</summary>
    [AlwaysInterleave]
    Task<StepLedger> WaitForSamplingEndAsync(TimeSpan maxWait);

    /// <summary>
    /// Ends sampling of a step whose sampling stopped: groups still sampling are abandoned, and the accepted groups
    /// are returned in decision order, with the cursor after the step's draws.
    /// </summary>
    Task<ClosedStep> CloseAsync(long epoch);

    /// <summary>Marks the step trained.</summary>
    Task CompleteAsync(long epoch);

    /// <summary>Abandons the step with its reason (a learner restarting from an earlier checkpoint).</summary>
    Task AbandonAsync(long epoch, string reason);

    /// <summary>The ledger; null when the step was never opened.</summary>
    [ReadOnly]
    Task<StepLedger?> GetAsync();

    /// <summary>Every prompt the step drew (or carried), in draw order.</summary>
    [ReadOnly]
    Task<IReadOnlyList<PromptEntry>> ListPromptsAsync();
}

/// <summary>What the learner opens a step with.</summary>
/// <param name="CursorJson">The dataset cursor after every draw of earlier steps (Dapo.Core's <c>CursorState</c> JSON).</param>
/// <param name="Carried">Surplus groups of the previous step that may count toward this one.</param>
[GenerateSerializer, Immutable]
public sealed record StepOpening(
    [property: Id(0)] long Epoch,
    [property: Id(1)] int PolicyVersion,
    [property: Id(2)] string CursorJson,
    [property: Id(3)] IReadOnlyList<PromptEntry> Carried);

/// <summary>The step ledger.</summary>
/// <param name="Opening">How many times the step was opened (a restart reopens it).</param>
/// <param name="StopReason">Set when sampling stopped: TargetMet, CapReachedTrainOnAccepted, CapReachedFail.</param>
[GenerateSerializer, Immutable]
public sealed record StepLedger(
    [property: Id(0)] string RunId,
    [property: Id(1)] int Step,
    [property: Id(2)] int PolicyVersion,
    [property: Id(3)] StepPhase Phase,
    [property: Id(4)] int Target,
    [property: Id(5)] int Accepted,
    [property: Id(6)] int Filtered,
    [property: Id(7)] int Abandoned,
    [property: Id(8)] int InFlight,
    [property: Id(9)] int Draws,
    [property: Id(10)] int GenerationRounds,
    [property: Id(11)] int SurplusCarried,
    [property: Id(12)] string? StopReason,
    [property: Id(13)] long Epoch,
    [property: Id(14)] int Opening,
    [property: Id(15)] long OpenedAt,
    [property: Id(16)] long? SamplingDoneAt,
    [property: Id(17)] long? ClosedAt);

/// <summary>A prompt of a step's ledger.</summary>
/// <param name="Step">The step whose prompt grain holds the group (an earlier one for a carried group).</param>
/// <param name="PromptId">Unique within its step, in draw order (never reused, across openings too).</param>
/// <param name="DrawOrdinal">How many prompts the run's cursor had yielded before this one: with the run's seed it keys
/// the rollout's randomness, so a step opened again samples what it sampled before.</param>
/// <param name="Reason">Why it was drawn (initial or refill), then why it ended (accepted, filtered, abandoned).</param>
/// <param name="Decided">Order of the decision within the step (accepted groups train in this order).</param>
/// <param name="CarryOut">Accepted after the step met its target, offered to the next step.</param>
/// <param name="Opening">The opening of the step the entry belongs to (a restarted learner opens a step again).</param>
/// <param name="TruncatedShare">Share of the group's responses cut off at the length limit, once judged.</param>
[GenerateSerializer, Immutable]
public sealed record PromptEntry(
    [property: Id(0)] int Step,
    [property: Id(1)] long PromptId,
    [property: Id(2)] int DatasetIndex,
    [property: Id(3)] long DrawOrdinal,
    [property: Id(4)] int PolicyVersion,
    [property: Id(5)] PromptStatus Status,
    [property: Id(6)] string Reason,
    [property: Id(7)] int? Decided,
    [property: Id(8)] double? Accuracy,
    [property: Id(9)] double? MeanLength,
    [property: Id(10)] int Responses,
    [property: Id(11)] bool CarryOut,
    [property: Id(12)] int Opening,
    [property: Id(13)] double? TruncatedShare = null);

/// <summary>A leased prompt group: everything a rollout grain needs to sample it and find its prompt grain.</summary>
[GenerateSerializer, Immutable]
public sealed record WorkItem(
    [property: Id(0)] string RunId,
    [property: Id(1)] int Step,
    [property: Id(2)] long PromptId,
    [property: Id(3)] int DatasetIndex,
    [property: Id(4)] long DrawOrdinal,
    [property: Id(5)] int PolicyVersion)
{
    public string PromptKey => GrainKeys.Prompt(RunId, Step, PromptId);
}

/// <summary>A complete group as its prompt grain reports it to the step.</summary>
/// <param name="TruncatedShare">Share of the group's responses cut off at the length limit.</param>
[GenerateSerializer, Immutable]
public sealed record GroupReport(
    [property: Id(0)] long PromptId,
    [property: Id(1)] int PolicyVersion,
    [property: Id(2)] bool Informative,
    [property: Id(3)] string Why,
    [property: Id(4)] double Accuracy,
    [property: Id(5)] double MeanLength,
    [property: Id(6)] int Responses,
    [property: Id(7)] double TruncatedShare);

/// <summary>What the step did with a reported group.</summary>
public enum ReportOutcome
{
    /// <summary>Counted toward the step's target.</summary>
    Accepted,
    /// <summary>Uninformative: refills were drawn if the step needs them.</summary>
    Filtered,
    /// <summary>Informative, but the step already had its target: discarded.</summary>
    Surplus,
    /// <summary>Informative after the step met its target, kept to count toward the next step.</summary>
    SurplusCarried,
    /// <summary>The step no longer wants it (sampling stopped, or it belongs to an abandoned opening).</summary>
    Stale,
}

/// <summary>A step whose sampling ended.</summary>
/// <param name="Accepted">The groups to train on, in decision order (carried ones first).</param>
/// <param name="CarryOut">Surplus groups to offer the next step.</param>
/// <param name="CursorJson">The dataset cursor after the step's draws.</param>
/// <param name="Failure">Why the step cannot train (the generation cap with "fail"), or null.</param>
[GenerateSerializer, Immutable]
public sealed record ClosedStep(
    [property: Id(0)] StepLedger Ledger,
    [property: Id(1)] IReadOnlyList<PromptEntry> Accepted,
    [property: Id(2)] IReadOnlyList<PromptEntry> Judged,
    [property: Id(3)] IReadOnlyList<PromptEntry> CarryOut,
    [property: Id(4)] string CursorJson,
    [property: Id(5)] string? Failure);

/// <summary>A call from a learner whose epoch is older than one the grain has seen: a deposed learner.</summary>
[GenerateSerializer]
public sealed class StaleEpochException : Exception
{
    public StaleEpochException(string message) : base(message) { }
}

/// <summary>Grain keys: the run, then the step, then the prompt.</summary>
public static class GrainKeys
{
    public static string Step(string runId, int step) => $"{runId}/{step}";
    public static string Prompt(string runId, int step, long promptId) => $"{runId}/{step}/{promptId}";

    /// <summary>The run and step of a step grain's key.</summary>
    public static (string RunId, int Step) ParseStep(string key)
    {
        var slash = key.LastIndexOf('/');
        return (key[..slash], int.Parse(key[(slash + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>The run, step and prompt id of a prompt grain's key.</summary>
    public static (string RunId, int Step, long PromptId) ParsePrompt(string key)
    {
        var last = key.LastIndexOf('/');
        var (run, step) = ParseStep(key[..last]);
        return (run, step, long.Parse(key[(last + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }
}
