using Dapo.Cluster.Store;
using Dapo.Cluster.Tests.Infrastructure;
using Dapo.Testing;

namespace Dapo.Cluster.Tests.Store;

/// <summary>The contract on the embedded SQLite store (a file per test).</summary>
public sealed class SqliteClusterStoreTests : ClusterStoreContractTests, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("dapo-sqlite-").FullName;

    protected override Task<IClusterStore> CreateStoreAsync(bool readOnly = false) => Task.FromResult(ClusterStores.Create(
        new ClusterStoreOptions { Kind = "sqlite", SqlitePath = Path.Combine(_directory, "cluster.db"), ReadOnly = readOnly }));

    [Fact]
    public async Task A_reader_of_a_missing_or_empty_store_gets_a_clear_error()
    {
        await using var missing = ClusterStores.Create(new ClusterStoreOptions { Kind = "sqlite", SqlitePath = Path.Combine(_directory, "none.db"), ReadOnly = true });
        var error = await Assert.ThrowsAsync<FileNotFoundException>(() => missing.VerifySchemaAsync(CancellationToken.None));
        Assert.Contains("There is no Dapo store at", error.Message);
        await using (var empty = ClusterStores.Create(new ClusterStoreOptions { Kind = "sqlite", SqlitePath = Path.Combine(_directory, "empty.db") }))
            await empty.TransactAsync(_ => Task.FromResult(0), CancellationToken.None);
        await using var reader = ClusterStores.Create(new ClusterStoreOptions { Kind = "sqlite", SqlitePath = Path.Combine(_directory, "empty.db"), ReadOnly = true });
        var none = await Assert.ThrowsAsync<InvalidOperationException>(() => reader.VerifySchemaAsync(CancellationToken.None));
        Assert.Contains("holds no Dapo store", none.Message);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}

/// <summary>The contract on a real PostgreSQL server (a database per test).</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresClusterStoreTests(PostgresFixture postgres) : ClusterStoreContractTests
{
    private string? _database;

    protected override async Task<IClusterStore> CreateStoreAsync(bool readOnly = false) => ClusterStores.Create(new ClusterStoreOptions
    {
        Kind = "postgres", ConnectionString = _database ??= await postgres.Server.CreateDatabaseAsync(), ReadOnly = readOnly,
    });

    [Fact]
    public async Task Cancelling_while_retrying_an_unreachable_server_is_a_cancellation_that_carries_the_failure()
    {
        // A port nobody listens on: every attempt fails transiently, so the store retries until the caller cancels
        // (a silo shutting down during an outage must stop, not report a crash).
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        await using var store = ClusterStores.Create(new ClusterStoreOptions
        {
            Kind = "postgres", ConnectionString = $"Host=127.0.0.1;Port={port};Username=dapo;Database=none;Timeout=2",
        });
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => store.TransactAsync(_ => Task.FromResult(0), cancel.Token));
        Assert.Contains("cancelled while retrying after a transient failure", error.Message);
        Assert.IsAssignableFrom<Npgsql.NpgsqlException>(error.InnerException);
    }
}
