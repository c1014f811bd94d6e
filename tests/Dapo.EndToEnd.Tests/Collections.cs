using Dapo.Testing;

namespace Dapo.EndToEnd.Tests;

/// <summary>Cluster tests share one PostgreSQL server and one Azurite, and run one after another: each starts
/// several silo processes, and the machine has two cores.</summary>
[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<PostgresFixture>, ICollectionFixture<AzuriteFixture>
{
    public const string Name = "Cluster";
}
