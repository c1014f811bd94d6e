using System.Text.Json.Nodes;

namespace Dapo.Client;

// What each command shows: one record per view, printed as tables or, with --json, serialised as they are
// (camelCase; times are Unix milliseconds UTC, ages and durations are named with their unit).

/// <summary>`status`: every run, every silo.</summary>
public sealed record StatusView(string Store, long Now, IReadOnlyList<RunStatusView> Runs, IReadOnlyList<SiloView> Silos,
    IReadOnlyList<string> ActiveSilos);

/// <summary>A run at a glance.</summary>
/// <param name="Step">The step being sampled or trained (an ended run: its last step).</param>
/// <param name="CompletedSteps">Steps trained so far.</param>
/// <param name="TotalSteps">Steps of the run's recipe (null when its spec does not say).</param>
/// <param name="LatestCheckpoint">Step of the newest complete checkpoint, as the store records it.</param>
public sealed record RunStatusView(string RunId, string Status, int Step, int CompletedSteps, int? TotalSteps, int PolicyVersion, int? LatestCheckpoint,
    string? Error, StepProgressView? CurrentStep, LeaseView? Learner, LearnerStateView? LearnerState, QueueView Queue);

/// <summary>Where the current step's sampling is.</summary>
public sealed record StepProgressView(int Step, string Phase, int Target, int Accepted, int Filtered, int Abandoned, int InFlight,
    int Draws, int GenerationRounds);

/// <summary>The learner lease: who holds it and how fresh it is.</summary>
/// <param name="ExpiresInMs">Until it expires (negative: expired that long ago); null once released.</param>
/// <param name="AgeMs">Time since the holder last renewed it (its expiry minus Silo:LearnerLeaseTtl); null once released.</param>
/// <param name="Held">False when it expired or was released: no learner holds the run now.</param>
/// <param name="Released">Its holder gave it up when it stopped (graceful shutdown).</param>
public sealed record LeaseView(string Owner, long Epoch, long ExpiresAt, long? ExpiresInMs, long? AgeMs, bool Held, bool Released);

/// <summary>What the learner last reported doing.</summary>
public sealed record LearnerStateView(string SiloId, long Epoch, string Phase, int Step, string Detail, long UpdatedAt, long AgeMs);

/// <summary>Rollout work queued for a run: open items, of which leased by a worker now, and waiting for one.</summary>
public sealed record QueueView(int Open, int Leased, int Waiting);

/// <summary>A silo of the membership table.</summary>
/// <param name="State">active (heartbeat within Silo:MemberTimeout), silent (registered but no recent heartbeat:
/// crashed or cut off), or left (stopped gracefully).</param>
/// <param name="WorkInHand">Prompt groups in its hands, as its last heartbeat reported.</param>
/// <param name="Leased">Open work items its workers hold unexpired leases on now.</param>
public sealed record SiloView(string SiloId, IReadOnlyList<string> Roles, string Host, int ProcessId, string Address, string State,
    bool Alive, long StartedAt, long HeartbeatAt, long HeartbeatAgeMs, int WorkInHand, int Leased);

/// <summary>`steps`: the step ledger.</summary>
public sealed record StepsView(string RunId, int? TotalSteps, IReadOnlyList<StepView> Steps);

/// <summary>One step of the ledger.</summary>
/// <param name="StepSeconds">Opened to closed (or to now, while open).</param>
public sealed record StepView(int Step, string Phase, int PolicyVersion, int Target, int Accepted, int Filtered, int Abandoned,
    int InFlight, int Draws, int GenerationRounds, int SurplusCarried, string? StopReason, long OpenedAt, long? SamplingDoneAt,
    long? ClosedAt, double? SamplingSeconds, double StepSeconds);

/// <summary>`prompts`: the prompt grains of one step.</summary>
public sealed record PromptsView(string RunId, int Step, string? StepPhase, string? StatusFilter, IReadOnlyDictionary<string, int> Counts,
    IReadOnlyList<PromptSummaryView> Prompts);

/// <summary>A prompt grain in a list.</summary>
/// <param name="Key">Its key for `grain prompt`: run/promptId.</param>
public sealed record PromptSummaryView(string Key, long PromptId, string Status, string Reason, int DatasetIndex, int PolicyVersion,
    int GroupSize, int Filled, double? Accuracy, double? MeanReward, double? MeanLength, int? TruncatedCount, long CreatedAt,
    long? DecidedAt);

/// <summary>`grain prompt`: one prompt grain in full.</summary>
/// <param name="TrainedOn">The learner trained on this group: accepted into a step that closed sampling (not a
/// surplus group waiting to be carried).</param>
/// <param name="Slots">Every response slot exactly as stored: what the learner read to train.</param>
public sealed record PromptDetailView(string Key, string RunId, long PromptId, int Step, string? StepPhase, string Status, string Reason,
    bool TrainedOn, int DatasetIndex, long DrawOrdinal, int PolicyVersion, int GroupSize, int Filled, double? Accuracy, double? MeanReward,
    double? MeanLength, int? TruncatedCount, string Problem, string GroundTruth, int[] PromptTokens, long CreatedAt, long? DecidedAt,
    IReadOnlyList<HistoryEntryView> History, IReadOnlyList<SlotView> Slots);

/// <summary>One line of a grain's decision history.</summary>
public sealed record HistoryEntryView(string Time, string Event, string Detail);

/// <summary>One response slot of a group.</summary>
/// <param name="Reward">Score plus overlong penalty: what the advantage is computed from.</param>
/// <param name="Worker">The rollout worker that produced it (silo/worker).</param>
public sealed record SlotView(int Slot, string Text, int[] Tokens, float[] LogProbs, int Length, double Score, double OverlongPenalty,
    double Reward, bool Correct, bool Truncated, int PolicyVersion, string Worker, long SubmittedAt);

/// <summary>`grain learner`: the run's learner grain.</summary>
public sealed record LearnerView(string RunId, string RunStatus, int Step, int CompletedSteps, int? TotalSteps, int PolicyVersion, int? LatestCheckpoint,
    LeaseView? Lease, LearnerStateView? State, StepProgressView? CurrentStep);

/// <summary>`grain rollout`: a silo's rollout workers and the work they hold.</summary>
public sealed record RolloutView(SiloView Silo, IReadOnlyList<LeasedItemView> Leased);

/// <summary>An open work item leased by one of the silo's workers.</summary>
/// <param name="Expired">The lease ran out: the item is free for any worker again.</param>
public sealed record LeasedItemView(long ItemId, string Key, string RunId, int Step, long PromptId, int PolicyVersion, string Worker,
    long LeaseUntil, long ExpiresInMs, bool Expired, int Attempts);

/// <summary>`metrics`: per-step metrics rows as the learner wrote them.</summary>
public sealed record MetricsView(string RunId, IReadOnlyList<JsonObject> Metrics);

/// <summary>`checkpoints`: the run's checkpoints in blob storage, checked against their manifests.</summary>
/// <param name="StoreLatest">The newest complete checkpoint as the store records it.</param>
public sealed record CheckpointsView(string RunId, string Blobs, int? StoreLatest, IReadOnlyList<CheckpointView> Checkpoints);

/// <summary>One checkpoint folder.</summary>
/// <param name="Checksum">"ok", or what is wrong (no manifest, a file not matching its checksum).</param>
/// <param name="Latest">The newest complete one: what a restarting learner would resume from.</param>
public sealed record CheckpointView(int Step, long SizeBytes, bool Complete, string Checksum, bool Latest);

/// <summary>`watch`: one frame of the dashboard.</summary>
/// <param name="FilteredShare">Filtered groups of the current step over all it judged (accepted + filtered).</param>
/// <param name="TokensPerSecond">Of the last completed step (throughput/tokens_per_s).</param>
public sealed record WatchView(long Now, string Store, RunStatusView Run, int RolloutWorkersAlive, int SilosAlive, int Silos,
    double? FilteredShare, double? TokensPerSecond, double? LastStepSeconds, IReadOnlyList<MetricPointView> Recent);

/// <summary>The metrics the dashboard plots, of one step.</summary>
public sealed record MetricPointView(int Step, double? Accuracy, double? Reward, double? Entropy, double? ResponseLength,
    double? FilteredFraction, double? TokensPerSecond, double? StepSeconds);
