using Dapo.Client.Reading;
using Dapo.Grains;
using Dapo.Grains.Blobs;
using Dapo.Grains.Hosting;

namespace Dapo.Client;

/// <summary>
/// One command's read-only view of a cluster: the <see cref="IRunReader"/> of its grains (live, or the history of a
/// stopped embedded run), its blob storage (metrics, checkpoints), and the run the command is about.
/// </summary>
internal sealed class ClientSession : IAsyncDisposable
{
    private ClientSession(ClientConfiguration configuration, IRunReader reader, IBlobStore blobs)
    {
        Configuration = configuration;
        Reader = reader;
        Blobs = blobs;
    }

    public ClientConfiguration Configuration { get; }
    public IRunReader Reader { get; private set; }
    public IBlobStore Blobs { get; }

    /// <summary>The first line of every table: what is read, live or history.</summary>
    public string Description => Reader.Description;

    public static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    public static async Task<ClientSession> OpenAsync(ClientConfiguration configuration, CancellationToken cancellationToken)
    {
        var reader = await OpenReaderAsync(configuration, cancellationToken);
        return new ClientSession(configuration, reader, BlobStoreFactory.Create(configuration.Blobs));
    }

    /// <summary>
    /// The reader of the target: the running silo of an embedded run (its silo.json names its gateway), else the run's
    /// history; the cluster's gateways for a cluster.
    /// </summary>
    private static async Task<IRunReader> OpenReaderAsync(ClientConfiguration configuration, CancellationToken cancellationToken)
    {
        switch (configuration.Target)
        {
            case ClusterTarget.Cluster cluster:
                return await LiveRunReader.ConnectAsync(cluster, null, configuration.Client,
                    $"cluster '{cluster.ClusterId}' on Azure Storage, blobs in {BlobStoreFactory.Create(configuration.Blobs).Description}: live (read-only)",
                    cancellationToken);
            case ClusterTarget.Embedded embedded:
                var directory = embedded.Directory;
                if (!Directory.Exists(directory))
                    throw new ClientException(ExitCodes.NotFound,
                        $"there is no run directory {directory}: start a run with `./dapo.sh train --run-dir {directory}`, or give --run-dir or --storage");
                if (EmbeddedSiloFile.Read(directory) is { } silo)
                {
                    try
                    {
                        return await LiveRunReader.ConnectAsync(embedded, silo, configuration.Client,
                            $"embedded run {directory}: live, silo process {silo.ProcessId} at 127.0.0.1:{silo.GatewayPort} (read-only)", cancellationToken);
                    }
                    catch (ClientException) when (EmbeddedSiloFile.Read(directory) is null)
                    {
                        // The silo stopped while we connected: what it left is the run's history.
                    }
                }
                if (!Directory.Exists(HistoryRunReader.GrainsDirectory(directory)))
                    throw new ClientException(ExitCodes.NotFound,
                        $"{directory} holds no grains/ and no running silo: it is not the directory of a `./dapo.sh train` run (or the run has not started yet)");
                return new HistoryRunReader(embedded);
            default:
                throw new InvalidOperationException($"Unknown target {configuration.Target}.");
        }
    }

    /// <summary>
    /// Opens the reader again after it lost its cluster (`metrics --follow`, `watch`): an embedded run whose silo
    /// stopped is then read as history. Throws when the target still cannot be read.
    /// </summary>
    public async Task ReopenAsync(CancellationToken cancellationToken)
    {
        var fresh = await OpenReaderAsync(Configuration, cancellationToken);
        var old = Reader;
        Reader = fresh;
        await old.DisposeAsync();
    }

    /// <summary>The runs there are.</summary>
    public async Task<IReadOnlyList<RunInfo>> RunsAsync(CancellationToken cancellationToken)
    {
        var ids = await Reader.ListRunIdsAsync(cancellationToken);
        var runs = await Task.WhenAll(ids.Select(id => Reader.GetRunAsync(id, cancellationToken)));
        return runs.OfType<RunInfo>().ToList();
    }

    /// <summary>
    /// The run this command is about: --run; else the run of --run-dir; else the only run, or the only running one.
    /// </summary>
    public Task<RunInfo> RunAsync(CancellationToken cancellationToken) => RunAsync(null, cancellationToken);

    /// <summary>The run <paramref name="name"/>, or when null the run of --run or the default one.</summary>
    public async Task<RunInfo> RunAsync(string? name, CancellationToken cancellationToken)
    {
        name ??= Configuration.Run;
        var ids = await Reader.ListRunIdsAsync(cancellationToken);
        if (name is not null)
        {
            if (ids.Contains(name) && await Reader.GetRunAsync(name, cancellationToken) is { } named) return named;
            throw new ClientException(ExitCodes.NotFound,
                $"run '{name}' does not exist in {Where}" + (ids.Count == 0 ? " (there are no runs)" : $" (runs: {string.Join(", ", ids)})"));
        }
        if (Configuration.Target is ClusterTarget.Embedded embedded && ids.Contains(embedded.RunId) &&
            await Reader.GetRunAsync(embedded.RunId, cancellationToken) is { } own)
            return own;
        var runs = await RunsAsync(cancellationToken);
        if (runs.Count == 0) throw new ClientException(ExitCodes.NotFound, $"there are no runs yet in {Where}");
        if (runs.Count == 1) return runs[0];
        var running = runs.Where(r => r.Status == RunStatus.Running).ToList();
        if (running.Count == 1) return running[0];
        throw new ClientException(ExitCodes.Usage, $"there are {runs.Count} runs in {Where} ({string.Join(", ", ids)}): choose one with --run");
    }

    private string Where => Configuration.Target switch
    {
        ClusterTarget.Cluster c => $"cluster '{c.ClusterId}'",
        ClusterTarget.Embedded e => e.Directory,
        _ => "the cluster",
    };

    /// <summary>What a blob storage failure means for the user, as one line; null for a failure that is a bug.</summary>
    public static ClientException? Translate(Exception e) => e switch
    {
        ClientException c => c,
        BlobStorageException b when b.ErrorCode == BlobErrorCodes.ContainerNotFound =>
            new ClientException(ExitCodes.NotFound, $"blob container '{b.Container}' does not exist (check --container)", e),
        BlobStorageException b => new ClientException(ExitCodes.Unavailable, $"blob storage: {b.Message}", e),
        IOException => new ClientException(ExitCodes.Unavailable, $"blob storage: {e.Message}", e),
        _ => null,
    };

    public ValueTask DisposeAsync() => Reader.DisposeAsync();
}
