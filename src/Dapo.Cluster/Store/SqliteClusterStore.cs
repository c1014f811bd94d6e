using System.Data;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Dapo.Cluster.Store;

/// <summary>The embedded cluster store: one SQLite file (in the run directory), no server to install.</summary>
internal sealed class SqliteClusterStore(string path, bool readOnly, StoreRetryOptions retry, ILogger logger)
    : SqlClusterStore(SqlDialect.Sqlite, retry, logger)
{
    private readonly string _connectionString = new SqliteConnectionStringBuilder
    {
        DataSource = path, Pooling = true, DefaultTimeout = 30,
        Mode = readOnly ? SqliteOpenMode.ReadOnly : SqliteOpenMode.ReadWriteCreate,
    }.ToString();

    public override string Description => $"SQLite {path}{(readOnly ? " (read-only)" : "")}";

    protected override async Task<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        if (readOnly && !File.Exists(path)) throw new FileNotFoundException($"There is no Dapo store at {path}.", path);
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var pragma = connection.CreateCommand();
        // WAL lets readers (the client console) read while a silo writes; waits instead of failing on a busy lock.
        pragma.CommandText = readOnly
            ? "PRAGMA busy_timeout = 10000;"
            : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;";
        await pragma.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }

    // BEGIN IMMEDIATE: take the write lock up front, so two writers never both hold a read lock and deadlock.
    // A read-only store only reads: a deferred transaction, which never takes the write lock.
    protected override Task<DbTransaction> BeginAsync(DbConnection connection, CancellationToken cancellationToken) =>
        Task.FromResult<DbTransaction>(((SqliteConnection)connection).BeginTransaction(IsolationLevel.Serializable, deferred: readOnly));

    protected override bool IsTransient(Exception exception) =>
        exception is SqliteException { SqliteErrorCode: 5 or 6 };  // SQLITE_BUSY, SQLITE_LOCKED

    protected override Task LockForMigrationAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken) =>
        Task.CompletedTask;  // BEGIN IMMEDIATE already excludes other writers
}
