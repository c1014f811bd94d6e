using Dapo.Grains.Grains;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;

namespace Dapo.Grains.Inspection;

/// <summary>
/// What a cluster keeps in its storage, read without a silo: whether its membership lists any silo as active (else
/// there is no one to ask), and the run's history in its grain state. Reads only.
/// </summary>
public interface IClusterStore
{
    /// <summary>How many silos the membership lists as active; 0 when none (or none ever joined).</summary>
    Task<int> ActiveSilosAsync(CancellationToken cancellationToken);

    /// <summary>A reader of the grain state the silos stored, whose views start with <paramref name="description"/>.</summary>
    Task<HistoryRunReader> HistoryAsync(string description, CancellationToken cancellationToken);

    /// <summary>The store of a cluster target; each call waits at most <paramref name="timeout"/> for an answer.</summary>
    static IClusterStore For(ClusterTarget target, TimeSpan timeout) => target switch
    {
        ClusterTarget.Cluster azure => new AzureClusterStore(azure, timeout),
        ClusterTarget.RedisCluster redis => new RedisClusterStore(redis, timeout),
        _ => throw new ArgumentException($"{target} is not a cluster.", nameof(target)),
    };

    /// <summary>The silos' serializer of the [GenerateSerializer] state classes, without a silo.</summary>
    static ServiceProvider Serializers() => new ServiceCollection()
        .AddSerializer(s => s.AddAssembly(typeof(LearnerState).Assembly).AddAssembly(typeof(RunInfo).Assembly))
        .BuildServiceProvider();
}
