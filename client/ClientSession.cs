using System.Data.Common;
using System.Net.Sockets;
using Dapo.Grains.Blobs;
using Dapo.Grains.Store;
using Npgsql;

namespace Dapo.Client;

/// <summary>
/// One command's read-only connection: the cluster store (opened read-only, its schema checked, never migrated), the
/// blob storage when configured, and the run the command is about.
/// </summary>
internal sealed class ClientSession : IAsyncDisposable
{
    private readonly IBlobStore? _blobs;

    private ClientSession(ClientConfiguration configuration, IClusterStore store, IBlobStore? blobs)
    {
        Configuration = configuration;
        Store = store;
        _blobs = blobs;
    }

    public ClientConfiguration Configuration { get; }
    public IClusterStore Store { get; }

    /// <summary>The blob storage; a clear error when none is configured (a cluster given without --blobs).</summary>
    public IBlobStore Blobs => _blobs ?? throw new ClientException(ExitCodes.Usage,
        "no blob storage is configured: give --blobs <Azure Storage connection string> [--container dapo] (or Blobs:ConnectionString)");

    public static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>Opens the store read-only and checks that it holds a Dapo schema this client can read.</summary>
    public static async Task<ClientSession> OpenAsync(ClientConfiguration configuration, CancellationToken cancellationToken)
    {
        if (configuration.EmbeddedRunDirectory is { } directory && !File.Exists(configuration.Store.SqlitePath))
            throw new ClientException(ExitCodes.NotFound, Directory.Exists(directory)
                ? $"{directory} holds no cluster.db: it is not the directory of a `./dapo.sh train` run (or the run has not started yet)"
                : $"there is no run directory {directory}: start a run with `./dapo.sh train --run-dir {directory}`, or give --run-dir or --store");
        var store = ClusterStores.Create(configuration.Store);
        try
        {
            await store.VerifySchemaAsync(cancellationToken);
        }
        catch (Exception e) when (Translate(e, store.Description) is not null || e is InvalidOperationException)
        {
            await store.DisposeAsync();
            // InvalidOperationException: not a Dapo store, or a schema newer than this client (VerifySchemaAsync says which).
            throw Translate(e, store.Description) ?? new ClientException(ExitCodes.Unavailable, e.Message, e);
        }
        var blobs = configuration.Blobs is { } options ? BlobStoreFactory.Create(options) : null;
        return new ClientSession(configuration, store, blobs);
    }

    /// <summary>Reads in one transaction (the store is read-only: a write would be refused by the database).</summary>
    public async Task<T> ReadAsync<T>(Func<IStoreSession, Task<T>> read, CancellationToken cancellationToken)
    {
        try
        {
            return await Store.TransactAsync(read, cancellationToken);
        }
        catch (Exception e) when (Translate(e, Store.Description) is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>
    /// The run this command is about: --run; else the run of --run-dir; else the only run, or the only running one.
    /// </summary>
    public async Task<RunRow> RunAsync(CancellationToken cancellationToken)
    {
        if (Configuration.Run is { } name)
        {
            var named = await ReadAsync(s => s.GetRunAsync(name), cancellationToken);
            if (named is not null) return named;
            var known = await ReadAsync(s => s.ListRunsAsync(), cancellationToken);
            throw new ClientException(ExitCodes.NotFound,
                $"run '{name}' does not exist in {Store.Description}" + (known.Count == 0 ? " (it holds no runs)" : $" (runs: {Names(known)})"));
        }
        var runs = await ReadAsync(s => s.ListRunsAsync(), cancellationToken);
        if (runs.Count == 0) throw new ClientException(ExitCodes.NotFound, $"{Store.Description} holds no runs yet");
        if (Configuration.EmbeddedRunDirectory is { } directory &&
            runs.FirstOrDefault(r => r.RunId == Path.GetFileName(directory.TrimEnd(Path.DirectorySeparatorChar))) is { } own)
            return own;
        if (runs.Count == 1) return runs[0];
        var running = runs.Where(r => r.Status == RunStatus.Running).ToList();
        if (running.Count == 1) return running[0];
        throw new ClientException(ExitCodes.Usage, $"{Store.Description} holds {runs.Count} runs ({Names(runs)}): choose one with --run");
    }

    private static string Names(IEnumerable<RunRow> runs) => string.Join(", ", runs.Select(r => r.RunId));

    /// <summary>What a store or blob failure means for the user, as one line; null for a failure that is a bug.</summary>
    public static ClientException? Translate(Exception e, string where) => e switch
    {
        ClientException c => c,
        FileNotFoundException => new ClientException(ExitCodes.NotFound, e.Message, e),
        PostgresException p => new ClientException(ExitCodes.Unavailable, $"{where} refused: {p.MessageText} ({p.SqlState})", e),
        NpgsqlException or SocketException or TimeoutException =>
            new ClientException(ExitCodes.Unavailable, $"cannot reach {where}: {Innermost(e)}", e),
        DbException => new ClientException(ExitCodes.Unavailable, $"{where}: {e.Message}", e),
        BlobStorageException b when b.ErrorCode == BlobErrorCodes.ContainerNotFound =>
            new ClientException(ExitCodes.NotFound, $"blob container '{b.Container}' does not exist (check --container)", e),
        BlobStorageException b => new ClientException(ExitCodes.Unavailable, $"blob storage: {b.Message}", e),
        _ => null,
    };

    private static string Innermost(Exception e)
    {
        var message = e.Message;
        for (var inner = e.InnerException; inner is not null; inner = inner.InnerException)
            if (!message.Contains(inner.Message, StringComparison.Ordinal)) message = $"{message} ({inner.Message})";
        return message;
    }

    public async ValueTask DisposeAsync() => await Store.DisposeAsync();
}
