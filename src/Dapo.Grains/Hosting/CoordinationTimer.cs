using System.Diagnostics;
using Dapo.Grains.Blobs;

namespace Dapo.Grains.Hosting;

/// <summary>Time this process spends waiting on grain calls (with their state writes) and on blob storage: the
/// coordination cost, outside engine compute.</summary>
public sealed class CoordinationTimer
{
    private long _grainTicks, _blobTicks;
    private readonly Lock _engineLock = new();
    private int _enginesBusy;
    private long _engineIdleTicks, _idleSince = Stopwatch.GetTimestamp();

    /// <summary>
    /// Wall time during which no engine thread of this process computed: what a step spends outside engine compute
    /// (grain calls, state writes, blob I/O, waiting for work, bookkeeping), whoever waited on it.
    /// </summary>
    public TimeSpan EngineIdle
    {
        get
        {
            lock (_engineLock)
                return Stopwatch.GetElapsedTime(0, _engineIdleTicks + (_enginesBusy == 0 ? Stopwatch.GetTimestamp() - _idleSince : 0));
        }
    }

    /// <summary>An engine thread starts a piece of work.</summary>
    public void EngineStarted()
    {
        lock (_engineLock)
            if (_enginesBusy++ == 0) _engineIdleTicks += Stopwatch.GetTimestamp() - _idleSince;
    }

    /// <summary>An engine thread finished a piece of work.</summary>
    public void EngineStopped()
    {
        lock (_engineLock)
            if (--_enginesBusy == 0) _idleSince = Stopwatch.GetTimestamp();
    }

    public TimeSpan Grains => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _grainTicks));
    public TimeSpan Blobs => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _blobTicks));

    public async Task<T> TimeGrainsAsync<T>(Func<Task<T>> call)
    {
        var start = Stopwatch.GetTimestamp();
        try { return await call(); }
        finally { Interlocked.Add(ref _grainTicks, Stopwatch.GetTimestamp() - start); }
    }

    public async Task TimeGrainsAsync(Func<Task> call) => await TimeGrainsAsync(async () => { await call(); return 0; });

    public async Task<T> TimeBlobsAsync<T>(Func<Task<T>> call)
    {
        var start = Stopwatch.GetTimestamp();
        try { return await call(); }
        finally { Interlocked.Add(ref _blobTicks, Stopwatch.GetTimestamp() - start); }
    }
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
