using System.Text.Json.Nodes;

namespace Dapo.Grains.Inspection;

// What each command shows: one record per view, printed as tables or, with --json, serialised as they are
// (camelCase; times are Unix milliseconds UTC, ages and durations are named with their unit). Every view that reads
// grains names its source and its mode: "live" (grains answered) or "history" (the grain state files of an embedded
// run whose silo is not running).

/// <summary>`status`: every run, every silo.</summary>
public sealed record StatusView(string Source, string Mode, long Now, IReadOnlyList<RunStatusView> Runs, IReadOnlyList<SiloView> Silos,
    IReadOnlyList<string> ActiveSilos);

/// <summary>A run at a glance.</summary>
/// <param name="Step">The step being sampled or trained (an ended run: its last step).</param>
/// <param name="CompletedSteps">Steps trained so far.</param>
/// <param name="TotalSteps">Steps of the run's recipe (null when its spec does not say).</param>
/// <param name="LatestCheckpoint">Step of the newest complete checkpoint, as the learner records it.</param>
public sealed record RunStatusView(string RunId, string Status, int Step, int CompletedSteps, int? TotalSteps, int PolicyVersion, int? LatestCheckpoint,
    string? Error, StepProgressView? CurrentStep, LearnerStateView Learner);

/// <summary>Where the current step's sampling is.</summary>
public sealed record StepProgressView(int Step, string Phase, int Target, int Accepted, int Filtered, int Abandoned, int InFlight,
    int Draws, int GenerationRounds);

/// <summary>What the learner grain reports.</summary>
/// <param name="Silo">The silo it runs on (empty in history).</param>
/// <param name="Epoch">Its fencing epoch: raised on every start of its work (a restart, a move to another silo).</param>
/// <param name="Phase">warm-start, sampling, training, checkpointing, evaluating, step done, done, failed; in history
/// (no silo) done, failed or stopped.</param>
/// <param name="UpdatedAt">When the learner last wrote its state.</param>
public sealed record LearnerStateView(string Silo, long Epoch, string Phase, string Detail, long UpdatedAt, long AgeMs, double? StartAccuracy,
    double? LatestAccuracy);

/// <summary>A silo of the cluster's membership.</summary>
/// <param name="Address">Orleans' silo address, host:port@generation (what rollout grain keys start with).</param>
/// <param name="Status">Orleans' status: active, joining, shuttingdown, stopping, dead (a killed silo is declared dead
/// once the others stop hearing from it).</param>
/// <param name="IAmAliveAgeMs">Since the silo last wrote that it is alive.</param>
/// <param name="RolloutGrains">Rollout grains active on it.</param>
/// <param name="Learners">Runs whose learner grain runs on it.</param>
public sealed record SiloView(string Address, string Name, string Host, string Status, bool Alive, int GatewayPort, long StartedAt,
    long IAmAliveAt, long IAmAliveAgeMs, int RolloutGrains, IReadOnlyList<string> Learners);

/// <summary>`silos`: the membership.</summary>
public sealed record SilosView(string Source, string Mode, long Now, IReadOnlyList<SiloView> Silos);

/// <summary>`steps`: the step ledger.</summary>
public sealed record StepsView(string Source, string Mode, string RunId, int? TotalSteps, IReadOnlyList<StepView> Steps);

/// <summary>One step of the ledger, as its step grain holds it.</summary>
/// <param name="Opening">How many times the step was opened (a restarted learner opens it again).</param>
/// <param name="StepSeconds">Opened to closed (or to now, while open).</param>
public sealed record StepView(int Step, string Phase, int PolicyVersion, int Target, int Accepted, int Filtered, int Abandoned,
    int InFlight, int Draws, int GenerationRounds, int SurplusCarried, string? StopReason, int Opening, long Epoch, long OpenedAt,
    long? SamplingDoneAt, long? ClosedAt, double? SamplingSeconds, double StepSeconds);

/// <summary>`prompts`: the prompts of one step.</summary>
public sealed record PromptsView(string Source, string Mode, string RunId, int Step, string? StepPhase, string? StatusFilter,
    IReadOnlyDictionary<string, int> Counts, IReadOnlyList<PromptSummaryView> Prompts);

/// <summary>A prompt of a step's ledger, with its prompt grain's group.</summary>
/// <param name="Key">Its prompt grain's key for `grain prompt`: run/step/promptId (a carried group's step is the one
/// that drew it).</param>
/// <param name="Reason">Why it was drawn, then how it ended, as the step ledger says.</param>
/// <param name="Filled">Response slots its prompt grain holds.</param>
public sealed record PromptSummaryView(string Key, int Step, long PromptId, string Status, string Reason, int DatasetIndex, long DrawOrdinal,
    int PolicyVersion, int Opening, int? Decided, bool CarryOut, int GroupSize, int Filled, double? Accuracy, double? MeanReward,
    double? MeanLength, int? TruncatedCount);

/// <summary>`grain prompt`: one prompt grain in full.</summary>
/// <param name="Status">The prompt grain's own status (its step's ledger may say more: see <paramref name="LedgerReason"/>).</param>
/// <param name="TrainedOn">The learner trained on this group: accepted into a step (its own, or the next one for a
/// carried surplus group) that closed sampling.</param>
/// <param name="Problem">The prompt's text, from the run's dataset (null when the run's spec cannot be read).</param>
/// <param name="Slots">Every response slot exactly as stored: what the learner read to train.</param>
public sealed record PromptDetailView(string Source, string Mode, string Key, string RunId, int Step, long PromptId, string? StepPhase, string Status,
    string Reason, string? LedgerReason, bool TrainedOn, int DatasetIndex, long DrawOrdinal, int PolicyVersion, int GroupSize, int Filled,
    double? Accuracy, double? MeanReward, double? MeanLength, int? TruncatedCount, string? Problem, string? GroundTruth,
    IReadOnlyList<HistoryEntryView> History, IReadOnlyList<SlotView> Slots);

/// <summary>One line of a grain's decision history.</summary>
public sealed record HistoryEntryView(string Time, string Event, string Detail);

/// <summary>One response slot of a group.</summary>
/// <param name="Reward">Score plus overlong penalty: what the advantage is computed from.</param>
/// <param name="Worker">The rollout grain that produced it.</param>
public sealed record SlotView(int Slot, string Text, int[] Tokens, float[] LogProbs, int Length, double Score, double OverlongPenalty,
    double Reward, bool Correct, bool Truncated, string Worker);

/// <summary>`grain step`: one step grain: its ledger and its prompts' statuses.</summary>
public sealed record StepDetailView(string Source, string Mode, string Key, StepView Ledger, IReadOnlyDictionary<string, int> Counts);

/// <summary>`grain learner`: the run's learner grain.</summary>
public sealed record LearnerView(string Source, string Mode, string RunId, string RunStatus, int Step, int CompletedSteps, int? TotalSteps,
    int PolicyVersion, int? LatestCheckpoint, string? Error, LearnerStateView State, StepProgressView? CurrentStep);

/// <summary>`grain rollout`: rollout grains and what they do.</summary>
public sealed record RolloutsView(string Source, string Mode, long Now, IReadOnlyList<RolloutView> Rollouts);

/// <summary>A rollout grain (key: silo address/device).</summary>
/// <param name="InHand">Prompt groups it holds leased and not yet submitted.</param>
public sealed record RolloutView(string Key, string Silo, string? RunId, int? PolicyVersion, int InHand, long GroupsSubmitted,
    long TokensGenerated, long UpdatedAt, long AgeMs);

/// <summary>`metrics`: per-step metrics rows as the learner wrote them (blob storage).</summary>
public sealed record MetricsView(string RunId, IReadOnlyList<JsonObject> Metrics);

/// <summary>`checkpoints`: the run's checkpoints in blob storage, checked against their manifests.</summary>
/// <param name="LearnerLatest">The newest complete checkpoint as the learner records it.</param>
public sealed record CheckpointsView(string RunId, string Blobs, int? LearnerLatest, IReadOnlyList<CheckpointView> Checkpoints);

/// <summary>One checkpoint folder.</summary>
/// <param name="Checksum">"ok", or what is wrong (no manifest, a file not matching its checksum).</param>
/// <param name="Latest">The newest complete one: what a restarting learner would resume from.</param>
public sealed record CheckpointView(int Step, long SizeBytes, bool Complete, string Checksum, bool Latest);

/// <summary>`watch`: one frame of the dashboard.</summary>
/// <param name="FilteredShare">Filtered groups of the current step over all it judged (accepted + filtered).</param>
/// <param name="TokensPerSecond">Of the last completed step (throughput/tokens_per_s).</param>
public sealed record WatchView(long Now, string Source, string Mode, RunStatusView Run, int RolloutGrains, int SilosAlive, int Silos,
    double? FilteredShare, double? TokensPerSecond, double? LastStepSeconds, IReadOnlyList<MetricPointView> Recent);

/// <summary>The metrics the dashboard plots, of one step.</summary>
/// <param name="HeldOut">Held-out avg@k, on the steps that evaluated.</param>
public sealed record MetricPointView(int Step, double? Accuracy, double? Reward, double? Entropy, double? ResponseLength,
    double? FilteredFraction, double? TokensPerSecond, double? StepSeconds, double? HeldOut);
