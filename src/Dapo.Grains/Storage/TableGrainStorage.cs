using System.Collections.Concurrent;
using Azure;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;
using Orleans.Storage;

namespace Dapo.Grains.Storage;

/// <summary>
/// Grain state in one Azure table (Azure Storage or Azurite), one entity per grain, for cluster silos. Writes that
/// arrive together for grains of one partition are committed as one entity-group transaction (group commit): when a
/// rollout grain stores a batch, its 64 prompt grains write at the same moment, and one request instead of 64 is what
/// keeps the emulator (and the account's request rate) off the step's path. Each write still succeeds or fails on its
/// own ETag: a stale one is refused with <see cref="InconsistentStateException"/> and the rest of its batch goes
/// through.
/// </summary>
/// <remarks>
/// <para>Keys: the partition is the state's name, the grain type and the grain's key up to its last '/' (a step's
/// prompts share one: "prompt|prompt|run/7"); the row is the rest of the key. Both are escaped for the table's key
/// rules.</para>
/// <para>The state is the Orleans serializer's bytes in properties of at most 64 KiB. A state over
/// <see cref="InlineLimit"/> (a real model's long responses) is written to a new blob first and the entity names it.
/// The grain's ETag carries the name of the blob its version names, so the write that replaces that version deletes
/// exactly that blob once committed; a refused write deletes its own. A process that dies between the blob and the
/// entity leaves an unused blob, never an entity naming a missing one.</para>
/// </remarks>
public sealed partial class TableGrainStorage(TableClient table, BlobContainerClient overflow, IGrainStorageSerializer serializer,
    ILogger<TableGrainStorage> logger) : IGrainStorage
{
    /// <summary>Azure Tables' limits: 64 KiB per binary property, 1 MiB per entity, 100 entities and 4 MiB per transaction.</summary>
    private const int PropertyLimit = 64 * 1024;
    public const int InlineLimit = 12 * PropertyLimit;
    private const int BatchEntities = 100;
    private const int BatchBytes = 3 * 1024 * 1024;

    private const string DataProperty = "Data";
    private const string BlobProperty = "Blob";

    private readonly ConcurrentDictionary<string, Partition> _partitions = new();
    private Task? _created;

    /// <summary>
    /// The grain state of a cluster whose blobs are in <paramref name="container"/>: the table named after it (letters
    /// and digits of "{container}grains"), states too large for an entity in the blob container "{container}-grains",
    /// serialized with the Orleans serializer of our [GenerateSerializer] state classes.
    /// </summary>
    public static TableGrainStorage For(string connectionString, string container, Orleans.Serialization.Serializer serializer,
        ILogger<TableGrainStorage> logger, Azure.Data.Tables.TableClientOptions? options = null) => new(
        new TableServiceClient(connectionString, options ?? new TableClientOptions()).GetTableClient(TableNameFor($"{container}grains")),
        new BlobServiceClient(connectionString).GetBlobContainerClient($"{container}-grains"),
        new OrleansGrainStorageSerializer(serializer), logger);

    /// <summary>The table's name for a blob container's: table names are letters and digits only.</summary>
    public static string TableNameFor(string container)
    {
        var name = new string(container.Where(char.IsAsciiLetterOrDigit).ToArray());
        return char.IsAsciiLetter(name.FirstOrDefault()) ? name : "t" + name;
    }

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        // Reads create nothing (a reader of history only reads): before the first write there is no table, and no state.
        var (partition, row) = KeysOf(stateName, grainId);
        NullableResponse<TableEntity>? found = null;
        try
        {
            found = await table.GetEntityIfExistsAsync<TableEntity>(partition, row);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
        }
        if (found is not { HasValue: true, Value: { } entity })
        {
            grainState.State = Activator.CreateInstance<T>();
            grainState.ETag = null;
            grainState.RecordExists = false;
            return;
        }
        var blob = entity.GetString(BlobProperty);
        var data = blob is null ? DataOf(entity) : (await overflow.GetBlobClient(blob).DownloadContentAsync()).Value.Content.ToArray();
        grainState.State = serializer.Deserialize<T>(new BinaryData(data));
        grainState.ETag = ETagOf(entity.ETag.ToString(), blob);
        grainState.RecordExists = true;
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        await EnsureCreatedAsync();
        var (partition, row) = KeysOf(stateName, grainId);
        var (version, replacedBlob) = Parse(grainState.ETag);
        var data = serializer.Serialize(grainState.State).ToArray();
        var entity = new TableEntity(partition, row);
        string? blob = null;
        if (data.Length > InlineLimit)
        {
            // Unique per write: a deposed activation's write can never replace the blob the stored entity names.
            blob = $"{partition}/{row}/{Guid.NewGuid():N}";
            await overflow.GetBlobClient(blob).UploadAsync(new BinaryData(data));
            entity[BlobProperty] = blob;
        }
        else
        {
            for (var (offset, i) = (0, 0); offset < data.Length || i == 0; offset += PropertyLimit, i++)
                entity[$"{DataProperty}{i}"] = data.AsSpan(offset, Math.Min(PropertyLimit, data.Length - offset)).ToArray();
        }

        var write = new PendingWrite(entity, version, stateName, grainId, data.Length);
        Partition queue;
        bool commit;
        while (true)
        {
            queue = _partitions.GetOrAdd(partition, key => new Partition(key));
            lock (queue)
            {
                if (queue.Retired) continue;  // its committer just finished and dropped it: take the next one
                queue.Waiting.Add(write);
                commit = !queue.Committing;
                queue.Committing = true;
            }
            break;
        }
        if (commit) _ = Task.Run(() => CommitAsync(queue));
        try
        {
            grainState.ETag = ETagOf(await write.Done.Task, blob);
            grainState.RecordExists = true;
        }
        catch when (blob is not null)
        {
            await DeleteQuietlyAsync(blob);
            throw;
        }
        if (replacedBlob is not null) await DeleteQuietlyAsync(replacedBlob);
    }

    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        await EnsureCreatedAsync();
        var (partition, row) = KeysOf(stateName, grainId);
        var (version, replacedBlob) = Parse(grainState.ETag);
        try
        {
            if (version is not null) await table.DeleteEntityAsync(partition, row, new ETag(version));
            else if ((await table.GetEntityIfExistsAsync<TableEntity>(partition, row)).HasValue)
                throw Inconsistent(stateName, grainId, "a stored state", "none");
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
            throw Inconsistent(stateName, grainId, e.Status == 404 ? "none" : "another version", grainState.ETag);
        }
        if (replacedBlob is not null) await DeleteQuietlyAsync(replacedBlob);
        grainState.ETag = null;
        grainState.RecordExists = false;
        grainState.State = Activator.CreateInstance<T>();
    }

    /// <summary>The writes waiting for one partition, and whether a commit for it is running. A partition with
    /// nothing waiting is retired and dropped (a step's prompts are one partition: a long run opens thousands).</summary>
    private sealed class Partition(string key)
    {
        public string Key { get; } = key;
        public readonly List<PendingWrite> Waiting = [];
        public bool Committing;
        public bool Retired;
    }

    /// <summary>Partitions held now: those with writes waiting or being committed.</summary>
    internal int PartitionsHeld => _partitions.Count;

    /// <summary>An entity waiting to be written; completes with its new ETag.</summary>
    private sealed record PendingWrite(TableEntity Entity, string? ETag, string StateName, GrainId GrainId, int Bytes)
    {
        public TaskCompletionSource<string> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>A new state is inserted (refused if one exists); a read one is replaced if still at its ETag.</summary>
        public TableTransactionAction Action => ETag is null
            ? new TableTransactionAction(TableTransactionActionType.Add, Entity)
            : new TableTransactionAction(TableTransactionActionType.UpdateReplace, Entity, new ETag(ETag));
    }

    /// <summary>
    /// One committer per partition takes what is waiting (up to a transaction's limits) and commits it, while the
    /// writes that arrive meanwhile wait for the next round: the first write goes alone and at once, the ones that
    /// arrive during its round trip go together.
    /// </summary>
    private async Task CommitAsync(Partition queue)
    {
        while (true)
        {
            List<PendingWrite> batch;
            lock (queue)
            {
                if (queue.Waiting.Count == 0)
                {
                    queue.Committing = false;
                    queue.Retired = true;
                    _partitions.TryRemove(new KeyValuePair<string, Partition>(queue.Key, queue));
                    return;
                }
                batch = TakeBatch(queue.Waiting);
            }
            await CommitAsync(batch);
        }
    }

    /// <summary>The next batch: in arrival order, within a transaction's limits, one write per entity.</summary>
    private static List<PendingWrite> TakeBatch(List<PendingWrite> waiting)
    {
        var (batch, rows, bytes) = (new List<PendingWrite>(), new HashSet<string>(), 0);
        foreach (var write in waiting)
        {
            if (batch.Count == BatchEntities) break;
            if (batch.Count > 0 && bytes + write.Bytes > BatchBytes) break;
            // A second write of one entity (two activations of a grain) waits, to be checked against the first's ETag.
            if (!rows.Add(write.Entity.RowKey)) continue;
            batch.Add(write);
            bytes += write.Bytes;
        }
        foreach (var write in batch) waiting.Remove(write);
        return batch;
    }

    /// <summary>
    /// Commits a batch. A transaction is all or nothing: when one write in it is refused (its ETag is stale, or its
    /// entity exists), that write fails and the rest are committed again without it.
    /// </summary>
    private async Task CommitAsync(List<PendingWrite> batch)
    {
        while (batch.Count > 0)
        {
            try
            {
                if (batch.Count == 1)
                {
                    batch[0].Done.TrySetResult(await CommitOneAsync(batch[0]));
                }
                else
                {
                    var responses = (await table.SubmitTransactionAsync(batch.Select(w => w.Action))).Value;
                    for (var i = 0; i < batch.Count; i++) batch[i].Done.TrySetResult(responses[i].Headers.ETag!.Value.ToString());
                }
                return;
            }
            catch (TableTransactionFailedException e) when (e.FailedTransactionActionIndex is { } index && IsRefusal(e.Status))
            {
                batch[index].Done.TrySetException(Refused(batch[index], e));
                batch.RemoveAt(index);
            }
            catch (RequestFailedException e) when (batch.Count == 1 && IsRefusal(e.Status))
            {
                batch[0].Done.TrySetException(Refused(batch[0], e));
                return;
            }
            catch (Exception e)
            {
                LogCommitFailed(logger, batch.Count, e.Message);
                foreach (var write in batch) write.Done.TrySetException(e);
                return;
            }
        }
    }

    private async Task<string> CommitOneAsync(PendingWrite write) => write.ETag is null
        ? (await table.AddEntityAsync(write.Entity)).Headers.ETag!.Value.ToString()
        : (await table.UpdateEntityAsync(write.Entity, new ETag(write.ETag), TableUpdateMode.Replace)).Headers.ETag!.Value.ToString();

    /// <summary>An insert of an existing entity (409), an update of a changed one (412) or of a deleted one (404).</summary>
    private static bool IsRefusal(int status) => status is 404 or 409 or 412;

    private static InconsistentStateException Refused(PendingWrite write, RequestFailedException e) =>
        Inconsistent(write.StateName, write.GrainId, e.Status == 409 ? "a stored state" : e.Status == 404 ? "none" : "another version", write.ETag);

    private static InconsistentStateException Inconsistent(string stateName, GrainId grainId, string stored, string? etag) =>
        new($"The {stateName} state of {grainId} changed since it was read (stored: {stored}; written from {etag ?? "none"}).", stored, etag ?? "");

    /// <summary>The grain's ETag: the entity's, and the blob its state is in (after a '|', which entity ETags never hold).</summary>
    private static string ETagOf(string entityETag, string? blob) => blob is null ? entityETag : $"{entityETag}|{blob}";

    private static (string? EntityETag, string? Blob) Parse(string? etag) => etag?.IndexOf('|') switch
    {
        null => (null, null),
        < 0 => (etag, null),
        var split => (etag[..split.Value], etag[(split.Value + 1)..]),
    };

    /// <summary>Best effort: a blob no version names is only unused space.</summary>
    private async Task DeleteQuietlyAsync(string blob)
    {
        try { await overflow.GetBlobClient(blob).DeleteIfExistsAsync(); }
        catch (RequestFailedException e) { LogCleanupFailed(logger, blob, e.Message); }
    }

    /// <summary>Creates the table and the blob container once; a failed attempt is tried again by the next call.</summary>
    private Task EnsureCreatedAsync()
    {
        var created = Volatile.Read(ref _created);
        if (created is { IsFaulted: false, IsCanceled: false }) return created;
        var attempt = CreateAsync();
        Interlocked.CompareExchange(ref _created, attempt, created);
        return Volatile.Read(ref _created)!;
    }

    private async Task CreateAsync()
    {
        await table.CreateIfNotExistsAsync();
        await overflow.CreateIfNotExistsAsync();
    }

    private static byte[] DataOf(TableEntity entity)
    {
        var parts = new List<byte[]>();
        for (var i = 0; entity.GetBinary($"{DataProperty}{i}") is { } part; i++) parts.Add(part);
        return parts.SelectMany(p => p).ToArray();
    }

    /// <summary>The entity's keys: partition by the state, type and key up to its last '/', row by the rest.</summary>
    public static (string Partition, string Row) KeysOf(string stateName, GrainId grainId)
    {
        var key = grainId.Key.ToString()!;
        var split = key.LastIndexOf('/');
        var (group, own) = split < 0 ? ("", key) : (key[..split], key[(split + 1)..]);
        return ($"{Escape(stateName)}|{Escape(grainId.Type.ToString()!)}|{Escape(group)}", Escape(own));
    }

    /// <summary>Keys may not hold '/', '\', '#', '?' or control characters: escaped as in a URI ('|' too, our separator).</summary>
    private static string Escape(string part) => Uri.EscapeDataString(part);

    [LoggerMessage(EventId = 5101, Level = LogLevel.Warning, Message = "Writing {Count} grain states to the table failed: {Error}")]
    private static partial void LogCommitFailed(ILogger logger, int count, string error);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Warning, Message = "Deleting the unused grain state blob {Blob} failed (it stays, unused): {Error}")]
    private static partial void LogCleanupFailed(ILogger logger, string blob, string error);
}
