using Dapo.Testing;

namespace Dapo.EndToEnd.Tests;

/// <summary>Cluster tests share one Azurite (blobs and tables; each test has its own container and cluster id) and one
/// Redis (each test its own cluster id), and run one after another: each starts several silo processes, and the
/// machine has two cores.</summary>
[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<AzuriteFixture>, ICollectionFixture<RedisFixture>
{
    public const string Name = "Cluster";
}
