namespace Dapo.Cluster.Store;

// Rows of the cluster store. Times are Unix milliseconds (UTC), the same on SQLite and PostgreSQL.

/// <summary>Where a run is.</summary>
public enum RunStatus { Running, Completed, Failed }

/// <summary>A run: its specification, how far it got, and the dataset cursor shared by every prompt draw.</summary>
/// <param name="Step">The step being sampled or trained; steps before it are done.</param>
/// <param name="PolicyVersion">Weights after <c>PolicyVersion</c> completed steps; step s samples with version s - 1.</param>
/// <param name="CursorJson">The dataset cursor after every prompt drawn so far (<c>CursorState</c> JSON).</param>
/// <param name="NextPromptId">Prompt ids are unique within a run, in draw order.</param>
/// <param name="LatestCheckpoint">Step of the newest complete checkpoint, if any.</param>
/// <param name="Error">Why the run failed.</param>
public sealed record RunRow(
    string RunId, string SpecJson, RunStatus Status, int Step, int PolicyVersion, string CursorJson, long NextPromptId,
    int? LatestCheckpoint, string? Error, long CreatedAt, long UpdatedAt);

/// <summary>Phases of a step.</summary>
public enum StepPhase
{
    /// <summary>Prompt groups are being sampled and judged.</summary>
    Sampling,
    /// <summary>The learner has its groups and is updating the policy.</summary>
    Training,
    /// <summary>Trained; the next policy version is published.</summary>
    Done,
    /// <summary>Dropped: the learner restarted from an earlier checkpoint.</summary>
    Abandoned,
}

/// <summary>The step ledger: target, accepted, filtered, abandoned, in flight, draws, generation rounds.</summary>
/// <param name="StopReason">Set when sampling stopped: TargetMet, CapReachedTrainOnAccepted, CapReachedFail.</param>
public sealed record StepRow(
    string RunId, int Step, int PolicyVersion, StepPhase Phase, int Target, int Accepted, int Filtered, int Abandoned,
    int InFlight, int Draws, int GenerationRounds, int SurplusCarried, string? StopReason, long OpenedAt,
    long? SamplingDoneAt, long? ClosedAt);

/// <summary>A prompt grain's status.</summary>
public enum PromptStatus { Sampling, Accepted, Filtered, Abandoned }

/// <summary>A prompt grain: one prompt of one step, its group of response slots, and its decision.</summary>
/// <param name="PromptId">Unique in the run, in draw order.</param>
/// <param name="DatasetIndex">Index of the example in the run's dataset.</param>
/// <param name="DrawOrdinal">How many prompts the run's cursor had yielded before this one: with the run's seed it
/// keys the rollout's randomness, so a run resumed from a checkpoint samples what it sampled before.</param>
/// <param name="PromptTokens">The encoded prompt.</param>
/// <param name="Filled">Response slots submitted so far, of <c>GroupSize</c>.</param>
/// <param name="MeanLength">Mean response length in tokens, once the group is complete.</param>
/// <param name="TruncatedCount">Responses truncated at the length limit, once the group is complete.</param>
/// <param name="Reason">Why it was drawn (initial or refill), then why it ended (accepted, filtered, abandoned).</param>
/// <param name="History">One line per transition: "time event detail".</param>
public sealed record PromptRow(
    string RunId, long PromptId, int Step, int DatasetIndex, long DrawOrdinal, string Problem, string GroundTruth, int[] PromptTokens,
    int PolicyVersion, int GroupSize, int Filled, PromptStatus Status, string Reason, double? Accuracy,
    double? MeanReward, double? MeanLength, int? TruncatedCount, string History, long CreatedAt, long? DecidedAt);

/// <summary>One response of a group, as the rollout worker submitted it.</summary>
public sealed record SlotRow(
    string RunId, long PromptId, int Slot, int[] Tokens, float[] LogProbs, string Text, double Score,
    double OverlongPenalty, double Reward, bool Correct, bool Truncated, int PolicyVersion, string Worker,
    long SubmittedAt);

/// <summary>A queued piece of rollout work: every slot of one prompt group, at one policy version.</summary>
/// <param name="LeaseOwner">The worker holding it, while <c>LeaseUntil</c> is in the future.</param>
public sealed record WorkItemRow(
    long ItemId, string RunId, int Step, long PromptId, int PolicyVersion, string? LeaseOwner, long? LeaseUntil,
    int Attempts, bool Done);

/// <summary>A named lease; the epoch grows with every new holder and fences out a deposed one.</summary>
public sealed record LeaseRow(string Name, string Owner, long Epoch, long ExpiresAt);

/// <summary>Status of a silo in the membership table.</summary>
public enum MemberStatus { Active, Left }

/// <summary>A silo: where it runs, its roles, its last heartbeat and the work in its hands.</summary>
public sealed record MemberRow(
    string SiloId, string Host, int ProcessId, string Roles, MemberStatus Status, long StartedAt, long HeartbeatAt,
    int WorkInHand);

/// <summary>Metrics of one completed step, as JSON (Dapo.Core's step metrics plus timings).</summary>
public sealed record MetricsRow(string RunId, int Step, string Json, long CreatedAt);

/// <summary>What a run's learner is doing: written by the lease holder at every phase change.</summary>
/// <param name="Phase">warm-start, sampling, training, checkpointing, evaluating, done.</param>
/// <param name="Detail">Progress within the phase, e.g. "mini-batch 2/4" or "last checkpoint: step 12".</param>
public sealed record LearnerRow(string RunId, string SiloId, long Epoch, string Phase, int Step, string Detail, long UpdatedAt);
