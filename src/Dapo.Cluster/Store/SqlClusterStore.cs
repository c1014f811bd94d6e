using System.Data;
using System.Data.Common;
using Microsoft.Extensions.Logging;

namespace Dapo.Cluster.Store;

/// <summary>
/// The cluster store over ADO.NET: transactions with retries on transient failures, and schema migrations. The two
/// databases differ only in how a connection and a transaction are opened, which errors are transient, and the
/// <see cref="SqlDialect"/>.
/// </summary>
internal abstract partial class SqlClusterStore(SqlDialect dialect, StoreRetryOptions retry, ILogger logger) : IClusterStore
{
    public abstract string Description { get; }

    protected abstract Task<DbConnection> OpenAsync(CancellationToken cancellationToken);

    /// <summary>Starts the transaction; SQLite takes its write lock here so that two writers never deadlock.</summary>
    protected abstract Task<DbTransaction> BeginAsync(DbConnection connection, CancellationToken cancellationToken);

    protected abstract bool IsTransient(Exception exception);

    /// <summary>Serialises concurrent migrators (several silos starting at once).</summary>
    protected abstract Task LockForMigrationAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken);

    public virtual ValueTask DisposeAsync() => ValueTask.CompletedTask;

    public Task<T> TransactAsync<T>(Func<IStoreSession, Task<T>> work, CancellationToken cancellationToken) =>
        WithRetriesAsync(async () =>
        {
            await using var connection = await OpenAsync(cancellationToken);
            await using var transaction = await BeginAsync(connection, cancellationToken);
            var result = await work(new SqlSession(connection, transaction, dialect));
            await transaction.CommitAsync(cancellationToken);
            return result;
        }, cancellationToken);

    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        var applied = await WithRetriesAsync(async () =>
        {
            await using var connection = await OpenAsync(cancellationToken);
            await using var transaction = await BeginAsync(connection, cancellationToken);
            await LockForMigrationAsync(connection, transaction, cancellationToken);
            await ExecuteAsync(connection, transaction, "CREATE TABLE IF NOT EXISTS dapo_schema (version INTEGER NOT NULL)", cancellationToken);
            var current = Convert.ToInt32(await ScalarAsync(connection, transaction,
                "SELECT COALESCE(MAX(version), 0) FROM dapo_schema", cancellationToken));
            if (current > Schema.Version)
                throw new InvalidOperationException(
                    $"The {dialect.Name} store has schema version {current}, newer than this program's {Schema.Version}: " +
                    "upgrade Dapo before connecting to it.");
            for (var v = current + 1; v <= Schema.Version; v++)
            {
                await ExecuteAsync(connection, transaction, dialect.Render(Schema.Migrations[v - 1]), cancellationToken);
                await ExecuteAsync(connection, transaction, $"INSERT INTO dapo_schema (version) VALUES ({v})", cancellationToken);
            }
            await transaction.CommitAsync(cancellationToken);
            return Schema.Version - current;
        }, cancellationToken);
        if (applied > 0) LogMigrated(logger, Description, applied, Schema.Version);
    }

    public async Task VerifySchemaAsync(CancellationToken cancellationToken)
    {
        var version = await WithRetriesAsync(async () =>
        {
            await using var connection = await OpenAsync(cancellationToken);
            await using var transaction = await BeginAsync(connection, cancellationToken);
            try
            {
                return Convert.ToInt32(await ScalarAsync(connection, transaction, "SELECT COALESCE(MAX(version), 0) FROM dapo_schema", cancellationToken));
            }
            catch (DbException e) when (!IsTransient(e))
            {
                return 0;  // no schema table: not a Dapo store (yet)
            }
        }, cancellationToken);
        if (version == 0) throw new InvalidOperationException($"{Description} holds no Dapo store: no silo has used it yet.");
        if (version > Schema.Version)
            throw new InvalidOperationException($"{Description} has schema version {version}, newer than this program's {Schema.Version}: upgrade Dapo.");
    }

    /// <summary>Runs one attempt after another while they fail for a transient reason, within the retry budget.</summary>
    private async Task<T> WithRetriesAsync<T>(Func<Task<T>> attempt, CancellationToken cancellationToken)
    {
        var started = DateTime.UtcNow;
        for (var number = 1; ; number++)
        {
            try
            {
                return await attempt();
            }
            catch (Exception e) when (IsTransient(e) && !cancellationToken.IsCancellationRequested &&
                                      DateTime.UtcNow - started < retry.Budget)
            {
                var delay = retry.Delay(number);
                LogTransientFailure(logger, Description, number, delay.TotalMilliseconds, e.Message);
                try
                {
                    await Task.Delay(delay, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    // Cancelled while waiting out a failure: the caller asked to stop, so this is a cancellation (a
                    // shutdown must not read as a crash), carrying the failure it interrupted.
                    throw new OperationCanceledException(
                        $"{Description}: cancelled while retrying after a transient failure: {e.Message}", e, cancellationToken);
                }
            }
        }
    }

    private static async Task ExecuteAsync(DbConnection c, DbTransaction t, string sql, CancellationToken ct)
    {
        await using var command = c.CreateCommand();
        command.Transaction = t;
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(ct);
    }

    private static async Task<object?> ScalarAsync(DbConnection c, DbTransaction t, string sql, CancellationToken ct)
    {
        await using var command = c.CreateCommand();
        command.Transaction = t;
        command.CommandText = sql;
        return await command.ExecuteScalarAsync(ct);
    }

    protected static Task<DbTransaction> BeginDefaultAsync(DbConnection connection, CancellationToken ct) =>
        connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, ct).AsTask();

    [LoggerMessage(EventId = 1001, Level = LogLevel.Warning,
        Message = "Store {Store}: transient failure on attempt {Attempt}, retrying in {DelayMs} ms: {Error}")]
    private static partial void LogTransientFailure(ILogger logger, string store, int attempt, double delayMs, string error);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Store {Store}: applied {Count} migration(s), schema version {Version}")]
    private static partial void LogMigrated(ILogger logger, string store, int count, int version);
}

/// <summary>How long a store keeps retrying a transaction that fails for a transient reason.</summary>
/// <param name="Budget">Total time to keep trying; a PostgreSQL restart takes a few seconds.</param>
/// <param name="FirstDelay">Delay before the second attempt; doubles up to <paramref name="MaxDelay"/>.</param>
public sealed record StoreRetryOptions(TimeSpan Budget, TimeSpan FirstDelay, TimeSpan MaxDelay)
{
    public static StoreRetryOptions Default { get; } = new(TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(2));

    public TimeSpan Delay(int attempt) =>
        TimeSpan.FromMilliseconds(Math.Min(MaxDelay.TotalMilliseconds, FirstDelay.TotalMilliseconds * Math.Pow(2, attempt - 1)));
}
