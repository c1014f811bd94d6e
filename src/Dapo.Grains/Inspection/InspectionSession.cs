using Dapo.Grains.Blobs;

namespace Dapo.Grains.Inspection;

/// <summary>
/// One read-only view of a cluster: the <see cref="IRunReader"/> of its grains (live, or the history of a stopped
/// embedded run), its blob storage (metrics, checkpoints), and which run is meant when none is named.
/// </summary>
/// <param name="reader">Owned: disposed with the session.</param>
/// <param name="run">The run asked for (--run); null: the target's own run, else the only one or the only running one.</param>
/// <param name="reopen">Opens the reader again after it lost its cluster (null: it cannot be reopened).</param>
/// <param name="reopenWithin">How long a long-running reader keeps trying to reopen a lost cluster.</param>
public sealed class InspectionSession(IRunReader reader, IBlobStore blobs, ClusterTarget target, string? run,
    Func<CancellationToken, Task<IRunReader>>? reopen = null, TimeSpan reopenWithin = default) : IAsyncDisposable
{
    /// <summary>How long a long-running reader keeps trying to reopen a lost cluster.</summary>
    public TimeSpan ReopenWithin { get; } = reopenWithin;

    public IRunReader Reader { get; private set; } = reader;
    public IBlobStore Blobs { get; } = blobs;
    public ClusterTarget Target { get; } = target;

    /// <summary>The run asked for, if any.</summary>
    public string? Run { get; } = run;

    /// <summary>The first line of every table: what is read, live or history.</summary>
    public string Description => Reader.Description;

    public static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>
    /// Opens the reader again after it lost its cluster (`metrics --follow`, `watch`): an embedded run whose silo
    /// stopped is then read as history. Throws when the target still cannot be read.
    /// </summary>
    public async Task ReopenAsync(CancellationToken cancellationToken)
    {
        if (reopen is null) throw new InvalidOperationException($"{Description} cannot be opened again.");
        var fresh = await reopen(cancellationToken);
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
        name ??= Run;
        var ids = await Reader.ListRunIdsAsync(cancellationToken);
        if (name is not null)
        {
            if (ids.Contains(name) && await Reader.GetRunAsync(name, cancellationToken) is { } named) return named;
            throw new InspectionException(ExitCodes.NotFound,
                $"run '{name}' does not exist in {Where}" + (ids.Count == 0 ? " (there are no runs)" : $" (runs: {string.Join(", ", ids)})"));
        }
        if (Target is ClusterTarget.Embedded embedded && ids.Contains(embedded.RunId) &&
            await Reader.GetRunAsync(embedded.RunId, cancellationToken) is { } own)
            return own;
        var runs = await RunsAsync(cancellationToken);
        if (runs.Count == 0) throw new InspectionException(ExitCodes.NotFound, $"there are no runs yet in {Where}");
        if (runs.Count == 1) return runs[0];
        var running = runs.Where(r => r.Status == RunStatus.Running).ToList();
        if (running.Count == 1) return running[0];
        throw new InspectionException(ExitCodes.Usage, $"there are {runs.Count} runs in {Where} ({string.Join(", ", ids)}): choose one with --run");
    }

    private string Where => Target switch
    {
        ClusterTarget.Cluster c => $"cluster '{c.ClusterId}'",
        ClusterTarget.RedisCluster r => $"cluster '{r.ClusterId}'",
        ClusterTarget.Embedded e => e.Directory,
        _ => "the cluster",
    };

    /// <summary>What a blob storage failure means for the user, as one line; null for a failure that is a bug.</summary>
    public static InspectionException? Translate(Exception e) => e switch
    {
        InspectionException c => c,
        BlobStorageException b when b.ErrorCode == BlobErrorCodes.ContainerNotFound =>
            new InspectionException(ExitCodes.NotFound, $"blob container '{b.Container}' does not exist (check --container)", e),
        BlobStorageException b => new InspectionException(ExitCodes.Unavailable, $"blob storage: {b.Message}", e),
        IOException => new InspectionException(ExitCodes.Unavailable, $"blob storage: {e.Message}", e),
        _ => null,
    };

    public ValueTask DisposeAsync() => Reader.DisposeAsync();
}
