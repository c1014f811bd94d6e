using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Orleans.Runtime;
using Orleans.Storage;

namespace Dapo.Grains.Storage;

/// <summary>
/// Grain state in files under one directory: the embedded default (one silo, one machine, no server). Each grain's
/// state is one file, replaced atomically (written beside it, flushed, renamed over it), so a process killed at any
/// instant leaves the old state or the new one. The ETag is the content's hash: a write whose ETag is not the stored
/// one is refused with <see cref="InconsistentStateException"/>, as the packaged providers do. Only one silo may use
/// a directory at a time (the ETags are checked in this process). State files are JSON: readers without a silo (tests,
/// the client on a finished run) read them with <see cref="Json"/>.
/// </summary>
public sealed class FileGrainStorage(string root) : IGrainStorage
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

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var path = PathOf(stateName, grainId);
        var bytes = JsonSerializer.SerializeToUtf8Bytes(grainState.State, Json);
        // The write and its flush to disk block: on a pool thread, never on the grain's scheduler thread.
        return Task.Run(() =>
        {
            lock (LockOf(path))
            {
                Check(path, grainState.ETag, stateName, grainId);
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                var temporary = path + ".tmp";
                using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
                {
                    file.Write(bytes);
                    file.Flush(flushToDisk: true);
                }
                File.Move(temporary, path, overwrite: true);
                grainState.ETag = _etags[path] = ETagOf(bytes);
                grainState.RecordExists = true;
            }
        });
    }

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
