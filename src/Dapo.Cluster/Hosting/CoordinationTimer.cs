using System.Diagnostics;
using Dapo.Cluster.Blobs;
using Dapo.Cluster.Store;

namespace Dapo.Cluster.Hosting;

/// <summary>Time this process spends waiting on the cluster store and on blob storage (the coordination cost).</summary>
public sealed class CoordinationTimer
{
    private long _storeTicks, _blobTicks;

    public TimeSpan Store => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _storeTicks));
    public TimeSpan Blobs => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _blobTicks));

    internal async Task<T> TimeStoreAsync<T>(Func<Task<T>> call)
    {
        var start = Stopwatch.GetTimestamp();
        try { return await call(); }
        finally { Interlocked.Add(ref _storeTicks, Stopwatch.GetTimestamp() - start); }
    }

    internal async Task<T> TimeBlobsAsync<T>(Func<Task<T>> call)
    {
        var start = Stopwatch.GetTimestamp();
        try { return await call(); }
        finally { Interlocked.Add(ref _blobTicks, Stopwatch.GetTimestamp() - start); }
    }
}

/// <summary>A store that adds the time of every transaction to a <see cref="CoordinationTimer"/>.</summary>
internal sealed class TimedClusterStore(IClusterStore inner, CoordinationTimer timer) : IClusterStore
{
    public string Description => inner.Description;
    public Task MigrateAsync(CancellationToken cancellationToken) => inner.MigrateAsync(cancellationToken);
    public Task VerifySchemaAsync(CancellationToken cancellationToken) => inner.VerifySchemaAsync(cancellationToken);
    public Task<T> TransactAsync<T>(Func<IStoreSession, Task<T>> work, CancellationToken cancellationToken) =>
        timer.TimeStoreAsync(() => inner.TransactAsync(work, cancellationToken));
    public ValueTask DisposeAsync() => inner.DisposeAsync();
}

/// <summary>A blob store that adds the time of every call to a <see cref="CoordinationTimer"/>.</summary>
internal sealed class TimedBlobStore(IBlobStore inner, CoordinationTimer timer) : IBlobStore
{
    public string Description => inner.Description;
    public Task EnsureContainerAsync(CancellationToken ct) => timer.TimeBlobsAsync(async () => { await inner.EnsureContainerAsync(ct); return 0; });
    public Task PutAsync(string name, ReadOnlyMemory<byte> content, CancellationToken ct) =>
        timer.TimeBlobsAsync(async () => { await inner.PutAsync(name, content, ct); return 0; });
    public Task PutAsync(string name, Stream content, CancellationToken ct) =>
        timer.TimeBlobsAsync(async () => { await inner.PutAsync(name, content, ct); return 0; });
    public Task<bool> TryCreateAsync(string name, ReadOnlyMemory<byte> content, CancellationToken ct) =>
        timer.TimeBlobsAsync(() => inner.TryCreateAsync(name, content, ct));
    public Task<bool> TryCreateAsync(string name, Stream content, CancellationToken ct) =>
        timer.TimeBlobsAsync(() => inner.TryCreateAsync(name, content, ct));
    public Task<byte[]?> GetAsync(string name, CancellationToken ct) => timer.TimeBlobsAsync(() => inner.GetAsync(name, ct));
    public Task<Stream?> OpenReadAsync(string name, CancellationToken ct) => timer.TimeBlobsAsync(() => inner.OpenReadAsync(name, ct));
    public Task<BlobInfo?> GetInfoAsync(string name, CancellationToken ct) => timer.TimeBlobsAsync(() => inner.GetInfoAsync(name, ct));
    public IAsyncEnumerable<BlobInfo> ListAsync(string prefix, CancellationToken ct) => inner.ListAsync(prefix, ct);
    public Task<bool> DeleteAsync(string name, CancellationToken ct) => timer.TimeBlobsAsync(() => inner.DeleteAsync(name, ct));
}
