using Dapo.Cluster.Store;
using Dapo.Cluster.Tests.Infrastructure;
using Dapo.Testing;

namespace Dapo.Cluster.Tests.Store;

/// <summary>The contract on the embedded SQLite store (a file per test).</summary>
public sealed class SqliteClusterStoreTests : ClusterStoreContractTests, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("dapo-sqlite-").FullName;

    protected override Task<IClusterStore> CreateStoreAsync() =>
        Task.FromResult(ClusterStores.Create(new ClusterStoreOptions { Kind = "sqlite", SqlitePath = Path.Combine(_directory, "cluster.db") }));

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}

/// <summary>The contract on a real PostgreSQL server (a database per test).</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresClusterStoreTests(PostgresFixture postgres) : ClusterStoreContractTests
{
    protected override async Task<IClusterStore> CreateStoreAsync() =>
        ClusterStores.Create(new ClusterStoreOptions { Kind = "postgres", ConnectionString = await postgres.Server.CreateDatabaseAsync() });
}
