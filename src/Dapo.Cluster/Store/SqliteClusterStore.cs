using System.Data;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Dapo.Cluster.Store;

/// <summary>The embedded cluster store: one SQLite file (in the run directory), no server to install.</summary>
internal sealed class SqliteClusterStore(string path, StoreRetryOptions retry, ILogger logger)
    : SqlClusterStore(SqlDialect.Sqlite, retry, logger)
{
    private readonly string _connectionString = new SqliteConnectionStringBuilder
    {
        DataSource = path, Pooling = true, DefaultTimeout = 30,
    }.ToString();

    public override string Description => $"SQLite {path}";

    protected override async Task<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var pragma = connection.CreateCommand();
        // WAL lets readers (the client console) read while a silo writes; waits instead of failing on a busy lock.
        pragma.CommandText = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;";
        await pragma.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }

    // BEGIN IMMEDIATE: take the write lock up front, so two writers never both hold a read lock and deadlock.
    protected override Task<DbTransaction> BeginAsync(DbConnection connection, CancellationToken cancellationToken) =>
        Task.FromResult<DbTransaction>(((SqliteConnection)connection).BeginTransaction(IsolationLevel.Serializable, deferred: false));

    protected override bool IsTransient(Exception exception) =>
        exception is SqliteException { SqliteErrorCode: 5 or 6 };  // SQLITE_BUSY, SQLITE_LOCKED

    protected override Task LockForMigrationAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken) =>
        Task.CompletedTask;  // BEGIN IMMEDIATE already excludes other writers
}
