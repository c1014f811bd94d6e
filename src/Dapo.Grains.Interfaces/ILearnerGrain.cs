using Orleans.Concurrency;

namespace Dapo.Grains;

/// <summary>Where a run is.</summary>
public enum RunStatus { Running, Completed, Failed }

/// <summary>
/// The learner of one run (key: run id; on learner silos only). It owns the run's state, raises its fencing epoch on
/// every activation, and trains: open a step, wait for its accepted groups, update the policy, publish the next
/// policy version, checkpoint, record metrics. A reminder re-activates it after its silo dies.
/// </summary>
public interface ILearnerGrain : IGrainWithStringKey
{
    /// <summary>
    /// Creates the run with this spec (the recipe as JSON) and starts it, or, when the run exists, makes sure it is
    /// running and returns it: with this spec when it differs from the run's only in more steps (a completed run then
    /// trains on to them), else unchanged (the caller compares specs).
    /// </summary>
    Task<RunInfo> StartAsync(string specJson);

    /// <summary>The run as it is now; null when no run of this name was ever started.</summary>
    [ReadOnly]
    Task<RunInfo?> GetAsync();
}

/// <summary>A run as its learner sees it.</summary>
/// <param name="Step">The step being sampled or trained; steps before it are done.</param>
/// <param name="PolicyVersion">Weights after <c>PolicyVersion</c> completed steps; step s samples with version s - 1.</param>
/// <param name="LatestCheckpoint">Step of the newest complete checkpoint, if any.</param>
/// <param name="Epoch">The learner's fencing epoch: raised on every activation of the learner grain.</param>
/// <param name="Phase">warm-start, sampling, training, checkpointing, evaluating, done, failed.</param>
/// <param name="PhaseDetail">Progress within the phase, e.g. "mini-batch 2/4 done".</param>
/// <param name="Silo">The silo the learner runs on.</param>
/// <param name="StartAccuracy">Held-out avg@k of the policy the run started from (after the warm-start).</param>
/// <param name="LatestAccuracy">Held-out avg@k at the latest evaluation.</param>
[GenerateSerializer, Immutable]
public sealed record RunInfo(
    [property: Id(0)] string RunId,
    [property: Id(1)] string SpecJson,
    [property: Id(2)] RunStatus Status,
    [property: Id(3)] int Step,
    [property: Id(4)] int PolicyVersion,
    [property: Id(5)] int? LatestCheckpoint,
    [property: Id(6)] string? Error,
    [property: Id(7)] long Epoch,
    [property: Id(8)] string Phase,
    [property: Id(9)] string PhaseDetail,
    [property: Id(10)] string Silo,
    [property: Id(11)] double? StartAccuracy,
    [property: Id(12)] double? LatestAccuracy,
    [property: Id(13)] long UpdatedAt);

/// <summary>
/// Runs the cluster serves (key: <see cref="Key"/>): the learner announces each step it opens, rollout grains ask
/// where to find work.
/// </summary>
public interface IRunRegistryGrain : IGrainWithStringKey
{
    /// <summary>The one registry of a cluster.</summary>
    const string Key = "runs";

    /// <summary>Records where a run is; an announcement with an older epoch than the registry holds is ignored.</summary>
    Task AnnounceAsync(ActiveRun run);

    [ReadOnly]
    Task<IReadOnlyList<ActiveRun>> ListAsync();

    /// <summary>
    /// The runs, once they differ from <paramref name="known"/> (a step opened, a run started or ended), or after
    /// <paramref name="maxWait"/>. An idle rollout grain waits here for the next step instead of polling.
    /// </summary>
    [AlwaysInterleave, ReadOnly]
    Task<IReadOnlyList<ActiveRun>> WaitForChangeAsync(IReadOnlyList<ActiveRun> known, TimeSpan maxWait);
}

/// <summary>A run and the step it is sampling.</summary>
[GenerateSerializer, Immutable]
public sealed record ActiveRun(
    [property: Id(0)] string RunId,
    [property: Id(1)] RunStatus Status,
    [property: Id(2)] int Step,
    [property: Id(3)] int PolicyVersion,
    [property: Id(4)] long Epoch);
