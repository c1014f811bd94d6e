using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace Dapo.Grains.Grains;

/// <summary>
/// Places a grain on the silo its key starts with (<c>{silo address}/...</c>): a rollout grain holds its silo's
/// device and must never run anywhere else. A key naming a silo that is not (or no longer) a compatible member is
/// refused rather than placed elsewhere.
/// </summary>
[GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class SiloLocalPlacementStrategy : PlacementStrategy
{
    internal static readonly SiloLocalPlacementStrategy Instance = new();
}

/// <summary>Marks a grain class for <see cref="SiloLocalPlacementStrategy"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SiloLocalPlacementAttribute() : PlacementAttribute(SiloLocalPlacementStrategy.Instance);

/// <summary>The director of <see cref="SiloLocalPlacementStrategy"/>.</summary>
public sealed class SiloLocalPlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var key = target.GrainIdentity.Key.ToString()!;
        var silo = key[..Math.Max(0, key.IndexOf('/'))];
        var compatible = context.GetCompatibleSilos(target);
        var match = compatible.FirstOrDefault(s => s.ToParsableString() == silo);
        return match is not null
            ? Task.FromResult(match)
            : throw new OrleansException($"Rollout grain {key} belongs to silo {silo}, which is not an active rollout silo of the cluster.");
    }
}

/// <summary>Rollout grain keys.</summary>
public static class RolloutKeys
{
    /// <summary>The key of device <paramref name="device"/> of <paramref name="silo"/>.</summary>
    public static string Of(SiloAddress silo, int device) => $"{silo.ToParsableString()}/{device}";
}
