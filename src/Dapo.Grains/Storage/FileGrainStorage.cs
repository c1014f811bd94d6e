using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Orleans.Runtime;
using Orleans.Storage;

namespace Dapo.Grains.Storage;

/// <summary>
/// Grain state in files under one directory: the embedded default (one silo, one machine, no server). Each grain's
/// state is one file, replaced atomically (written beside it, flushed, renamed over it), so a process killed at any
/// instant leaves the old state or the new one; writes that arrive together are flushed together (group commit). The
/// ETag is the content's hash: a write whose ETag is not the stored one is refused with
/// <see cref="InconsistentStateException"/>, as the packaged providers do. Only one silo may use
/// a directory at a time (the ETags are checked in this process). State files are JSON: readers without a silo (tests,
/// the client on a finished run) read them with <see cref="Json"/>.
/// </summary>
public sealed partial class FileGrainStorage(string root) : IGrainStorage
{
    /// <summary>State files are JSON a person can read (enums by name).</summary>
    public static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() } };

    private readonly ConcurrentDictionary<string, object> _locks = new();
    /// <summary>The ETag of each file as this process last read or wrote it (this process owns the directory).</summary>
    private readonly ConcurrentDictionary<string, string?> _etags = new();

    public string Root { get; } = Path.GetFullPath(root);

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var path = PathOf(stateName, grainId);
        lock (LockOf(path))
        {
            if (!File.Exists(path))
            {
                grainState.State = Activator.CreateInstance<T>();
                grainState.ETag = _etags[path] = null;
                grainState.RecordExists = false;
                return Task.CompletedTask;
            }
            var bytes = File.ReadAllBytes(path);
            grainState.State = JsonSerializer.Deserialize<T>(bytes, Json)!;
            grainState.ETag = _etags[path] = ETagOf(bytes);
            grainState.RecordExists = true;
        }
        return Task.CompletedTask;
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var write = new PendingWrite(PathOf(stateName, grainId), JsonSerializer.SerializeToUtf8Bytes(grainState.State, Json),
            grainState.ETag, stateName, grainId);
        _pending.Enqueue(write);
        // The writes and their flush to disk block: on a pool thread, never on the grain's scheduler thread.
        if (Interlocked.CompareExchange(ref _committing, 1, 0) == 0) _ = Task.Run(CommitPending);
        grainState.ETag = await write.Done.Task;
        grainState.RecordExists = true;
    }

    /// <summary>A state file waiting to be written; completes with its new ETag.</summary>
    private sealed record PendingWrite(string Path, byte[] Bytes, string? ETag, string StateName, GrainId GrainId)
    {
        /// <summary>Where the new state is written before it is renamed over <see cref="Path"/>.</summary>
        public string Temporary => Path + ".tmp";

        public TaskCompletionSource<string> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private readonly ConcurrentQueue<PendingWrite> _pending = new();
    private int _committing;

    /// <summary>
    /// Group commit: one committer at a time takes every write waiting and commits them together, while the next ones
    /// queue for the following batch. A batch is flushed to disk with one file-system sync instead of one per file (on
    /// this kind of disk each sync costs about a millisecond and they do not overlap): many prompt grains store their
    /// groups at the same moment.
    /// </summary>
    private void CommitPending()
    {
        while (true)
        {
            var batch = new List<PendingWrite>();
            while (_pending.TryDequeue(out var write)) batch.Add(write);
            if (batch.Count > 0) Commit(batch);
            Volatile.Write(ref _committing, 0);
            if (_pending.IsEmpty || Interlocked.CompareExchange(ref _committing, 1, 0) != 0) return;
        }
    }

    /// <summary>
    /// Writes each file beside its state, flushes them to disk (each file, or the file system once for several), then
    /// renames each over its state: a process or machine that stops at any instant leaves the old state or the new one.
    /// </summary>
    private void Commit(List<PendingWrite> batch)
    {
        var syncOnce = batch.Count > 1 && OperatingSystem.IsLinux();
        var written = new List<PendingWrite>();
        var paths = new HashSet<string>();
        foreach (var write in batch)
        {
            // A second write of one file (two activations of a grain) waits for the next batch, so that it is
            // checked against the first one's ETag.
            if (!paths.Add(write.Path))
            {
                _pending.Enqueue(write);
                continue;
            }
            try
            {
                lock (LockOf(write.Path)) Check(write.Path, write.ETag, write.StateName, write.GrainId);
                Directory.CreateDirectory(Path.GetDirectoryName(write.Path)!);
                using var file = new FileStream(write.Temporary, FileMode.Create, FileAccess.Write, FileShare.None);
                file.Write(write.Bytes);
                if (!syncOnce) file.Flush(flushToDisk: true);
                written.Add(write);
            }
            catch (Exception e)
            {
                write.Done.TrySetException(e);
            }
        }
        try
        {
            if (syncOnce && written.Count > 0) SyncFileSystem(written[0].Temporary);
        }
        catch (Exception e)
        {
            foreach (var write in written) write.Done.TrySetException(e);
            return;
        }
        foreach (var write in written)
        {
            try
            {
                string etag;
                lock (LockOf(write.Path))
                {
                    File.Move(write.Temporary, write.Path, overwrite: true);
                    _etags[write.Path] = etag = ETagOf(write.Bytes);
                }
                write.Done.TrySetResult(etag);
            }
            catch (Exception e)
            {
                write.Done.TrySetException(e);
            }
        }
    }

    /// <summary>Flushes every file of the file system holding <paramref name="path"/> to disk (Linux's syncfs).</summary>
    private static void SyncFileSystem(string path)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        if (SyncFs((int)handle.DangerousGetHandle()) != 0)
            throw new IOException($"Flushing grain state files to disk failed (syncfs: error {Marshal.GetLastPInvokeError()}).");
    }

    [LibraryImport("libc", EntryPoint = "syncfs", SetLastError = true)]
    private static partial int SyncFs(int fd);

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var path = PathOf(stateName, grainId);
        lock (LockOf(path))
        {
            Check(path, grainState.ETag, stateName, grainId);
            File.Delete(path);
            grainState.ETag = _etags[path] = null;
            grainState.RecordExists = false;
            grainState.State = Activator.CreateInstance<T>();
        }
        return Task.CompletedTask;
    }

    /// <summary>Refuses a write based on another version than the stored one.</summary>
    private void Check(string path, string? etag, string stateName, GrainId grainId)
    {
        if (!_etags.TryGetValue(path, out var stored)) stored = File.Exists(path) ? ETagOf(File.ReadAllBytes(path)) : null;
        if (stored != etag)
            throw new InconsistentStateException(
                $"The {stateName} state of {grainId} changed since it was read (stored version {stored ?? "none"}, written from {etag ?? "none"}).",
                stored ?? "", etag ?? "");
    }

    private object LockOf(string path) => _locks.GetOrAdd(path, _ => new object());

    /// <summary>One file per grain: the state's name, the grain type, and the key made safe for a file name.</summary>
    public string PathOf(string stateName, GrainId grainId) =>
        Path.Combine(Root, Safe(stateName), Safe(grainId.Type.ToString()!), Safe(grainId.Key.ToString()!) + ".state");

    private static string Safe(string name)
    {
        var chars = name.ToCharArray();
        for (var i = 0; i < chars.Length; i++)
            if (!(char.IsAsciiLetterOrDigit(chars[i]) || chars[i] is '-' or '_' or '.')) chars[i] = '~';
        // Keys that differ only in replaced characters must not share a file.
        return new string(chars) + (chars.AsSpan().SequenceEqual(name) ? "" : "-" + Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(name)))[..12]);
    }

    private static string ETagOf(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes))[..24];
}
