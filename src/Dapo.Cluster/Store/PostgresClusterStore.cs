using System.Data.Common;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Dapo.Cluster.Store;

/// <summary>The cluster store on PostgreSQL (Npgsql), shared by every silo of a cluster.</summary>
internal sealed class PostgresClusterStore : SqlClusterStore
{
    private readonly NpgsqlDataSource _dataSource;

    public PostgresClusterStore(string connectionString, bool readOnly, StoreRetryOptions retry, ILogger logger)
        : base(SqlDialect.Postgres, retry, logger)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString);
        // Read-only: the server refuses every write of these sessions.
        if (readOnly) b.Options = $"{b.Options} -c default_transaction_read_only=on".Trim();
        _dataSource = NpgsqlDataSource.Create(b.ConnectionString);
        Description = $"PostgreSQL {b.Host}:{b.Port}/{b.Database} as {b.Username}{(readOnly ? " (read-only)" : "")}";  // never the password
    }

    public override string Description { get; }

    protected override async Task<DbConnection> OpenAsync(CancellationToken cancellationToken) =>
        await _dataSource.OpenConnectionAsync(cancellationToken);

    protected override Task<DbTransaction> BeginAsync(DbConnection connection, CancellationToken cancellationToken) =>
        BeginDefaultAsync(connection, cancellationToken);

    // Connection loss and server restarts, lock conflicts, and a server still starting up.
    protected override bool IsTransient(Exception exception) => exception switch
    {
        PostgresException p => p.SqlState is "40001" or "40P01" or "57P01" or "57P02" or "57P03" or "53300" || p.IsTransient,
        NpgsqlException n => n.IsTransient,
        TimeoutException or System.Net.Sockets.SocketException or IOException => true,
        _ => false,
    };

    protected override async Task LockForMigrationAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "SELECT pg_advisory_xact_lock(7461537)";  // any constant shared by all silos
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public override async ValueTask DisposeAsync() => await _dataSource.DisposeAsync();
}
