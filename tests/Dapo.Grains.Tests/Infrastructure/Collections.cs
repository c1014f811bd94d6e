using Dapo.Testing;

namespace Dapo.Grains.Tests.Infrastructure;

/// <summary>Test classes that share one Azurite; they run one after another.</summary>
[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "Azurite";
}

/// <summary>
/// Tests that measure the whole process (its managed heap): xunit runs this collection alone, after the parallel ones,
/// so no other test's memory is counted.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SoloCollection
{
    public const string Name = "Solo";
}

/// <summary>
/// Tests on in-process Orleans clusters: one at a time, since their silos, engines and membership timings compete for
/// the machine's cores.
/// </summary>
[CollectionDefinition(Name)]
public sealed class ClusterCollection
{
    public const string Name = "Cluster";
}

/// <summary>Test classes that share one redis-server; they run one after another.</summary>
[CollectionDefinition(Name)]
public sealed class RedisCollection : ICollectionFixture<RedisFixture>
{
    public const string Name = "Redis";
}
