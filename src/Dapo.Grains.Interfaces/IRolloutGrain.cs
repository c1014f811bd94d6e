using Orleans.Concurrency;

namespace Dapo.Grains;

/// <summary>
/// One rollout device of a rollout silo (key: <c>{silo}/{device}</c>, placed on that silo). It holds the policy
/// engine: it leases prompt groups from the current step, loads the policy version the work names (from blob storage,
/// cached), generates and scores in batches, and submits the slots to the prompt grains. Stopping gracefully, it gives
/// its leases back.
/// </summary>
public interface IRolloutGrain : IGrainWithStringKey
{
    /// <summary>Starts the grain's work loop (idempotent).</summary>
    Task StartAsync();

    [ReadOnly]
    Task<RolloutInfo> GetAsync();
}

/// <summary>What a rollout grain is doing.</summary>
[GenerateSerializer, Immutable]
public sealed record RolloutInfo(
    [property: Id(0)] string Key,
    [property: Id(1)] string Silo,
    [property: Id(2)] string? RunId,
    [property: Id(3)] int? PolicyVersion,
    [property: Id(4)] int InHand,
    [property: Id(5)] long GroupsSubmitted,
    [property: Id(6)] long TokensGenerated,
    [property: Id(7)] long UpdatedAt);
