using Dapo.Grains;

namespace Dapo.Grains.Inspection;

/// <summary>
/// Where the commands read a cluster's grain state: from the grains themselves through an Orleans client while silos
/// run (<see cref="GrainRunReader"/>), or from the grain state files of an embedded run that stopped
/// (<see cref="HistoryRunReader"/>). Only read-only grain methods are ever called, and no file is ever written.
/// </summary>
public interface IRunReader : IAsyncDisposable
{
    /// <summary>What is read, in one line, safe to print (no keys).</summary>
    string Description { get; }

    /// <summary>True when no silo runs: the state is the run's history as its grains last stored it.</summary>
    bool IsHistory { get; }

    /// <summary>Ids of the runs there are (the run registry, plus a learner that has not announced its run yet).</summary>
    Task<IReadOnlyList<string>> ListRunIdsAsync(CancellationToken cancellationToken);

    /// <summary>A run as its learner holds it; null when there is none of that name. Call only for ids listed.</summary>
    Task<RunInfo?> GetRunAsync(string runId, CancellationToken cancellationToken);

    /// <summary>A step's ledger; null when the step was never opened.</summary>
    Task<StepLedger?> GetStepAsync(string runId, int step, CancellationToken cancellationToken);

    /// <summary>Every prompt a step drew or carried, in draw order.</summary>
    Task<IReadOnlyList<PromptEntry>> ListPromptsAsync(string runId, int step, CancellationToken cancellationToken);

    /// <summary>A prompt grain's group; null when nothing was submitted to it. Call only for prompts a step listed.</summary>
    Task<PromptGroup?> GetPromptAsync(string runId, int step, long promptId, CancellationToken cancellationToken);

    /// <summary>The silos of the cluster's membership (dead ones too); none in history.</summary>
    Task<IReadOnlyList<SiloInfo>> ListSilosAsync(CancellationToken cancellationToken);

    /// <summary>The rollout grains active now; none in history (they keep no state).</summary>
    Task<IReadOnlyList<RolloutInfo>> ListRolloutsAsync(CancellationToken cancellationToken);
}

/// <summary>A silo as the cluster's membership table holds it.</summary>
/// <param name="Address">Orleans' silo address, <c>host:port@generation</c>.</param>
/// <param name="Status">Orleans' silo status, lower case: active, joining, shuttingdown, stopping, dead.</param>
public sealed record SiloInfo(string Address, string Name, string Host, string Status, int GatewayPort, DateTimeOffset StartedAt,
    DateTimeOffset IAmAliveAt);
