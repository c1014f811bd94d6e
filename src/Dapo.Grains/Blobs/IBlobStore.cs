namespace Dapo.Grains.Blobs;

/// <summary>
/// A flat namespace of immutable-once-written blobs in one container: policy weights
/// (<c>runs/{run}/policy/{version}</c>) and checkpoints (<c>runs/{run}/checkpoints/{step}/…</c>).
/// Two implementations pass the same contract tests: <see cref="LocalDirectoryBlobStore"/> (embedded default) and
/// <see cref="AzureBlobStore"/> (Azure Blob Storage through Azure.Storage.Blobs, Azurite locally).
/// </summary>
/// <remarks>
/// <para>Names are checked by <see cref="BlobName.Validate"/>: '/'-separated segments of letters, digits, '-', '_'
/// and '.', no empty, '.' or '..' segments, no segment starting or ending with '.'. An invalid name throws
/// <see cref="ArgumentException"/> before any I/O.</para>
/// <para>A put is atomic: readers and listings see either the previous content or the new content, never a part.
/// When a put fails (storage error, cancellation, or the source stream throws) the previous content remains and
/// nothing new is listed. This is what lets a checkpoint write its data first and its manifest last.
/// Concurrent puts of one name never mix: the blob ends up holding one whole version. The local store lets the last
/// writer win; on Azure a large (block) upload can instead lose to another one that commits first and fail with
/// <see cref="BlobErrorCodes.InvalidBlockList"/>. Give concurrent writers different names, or use
/// <see cref="TryCreateAsync(string, ReadOnlyMemory{byte}, CancellationToken)"/> when a name must be written once.</para>
/// <para>A create-only put (<see cref="TryCreateAsync(string, ReadOnlyMemory{byte}, CancellationToken)"/>) never
/// replaces a blob: it returns false when the name exists and leaves that blob as it is. Of concurrent creators of
/// one name exactly one gets true, and the blob holds that creator's whole content. A lost create is an expected
/// outcome (someone else wrote the name first), not an error. It is as atomic as a put. On Azure, a failed put of
/// block size can leave staged blocks that hold the name against create-only puts though nothing can be read; those
/// then fail with <see cref="BlobErrorCodes.UncommittedBlocks"/> until a plain put of the name.</para>
/// <para>A missing blob is an expected outcome, not an error: <see cref="GetAsync"/>, <see cref="OpenReadAsync"/>
/// and <see cref="GetInfoAsync"/> return null and <see cref="DeleteAsync"/> returns false. A missing container is a
/// configuration error: every operation but <see cref="EnsureContainerAsync"/> then throws
/// <see cref="BlobStorageException"/> with <see cref="BlobErrorCodes.ContainerNotFound"/>.</para>
/// <para>Storage failures surface as <see cref="IOException"/>: a <see cref="BlobStorageException"/> (an
/// IOException) for service errors and unreachable storage, after the client's retries; plain IOExceptions from
/// the local file system. Exceptions thrown by a caller's source stream propagate unchanged.</para>
/// <para>With the local store a name cannot also be a folder of other names (<c>a/b</c> and <c>a/b/c</c>);
/// Azure allows both. Use names that never do this.</para>
/// </remarks>
public interface IBlobStore
{
    /// <summary>What this store writes to, safe to log (no keys).</summary>
    string Description { get; }

    /// <summary>Creates the container (the root directory for the local store) if it does not exist.</summary>
    Task EnsureContainerAsync(CancellationToken cancellationToken);

    /// <summary>Writes <paramref name="content"/> to <paramref name="name"/>, replacing any previous content atomically.</summary>
    Task PutAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken);

    /// <summary>
    /// Writes everything <paramref name="content"/> yields (read to its end, not rewound) to <paramref name="name"/>,
    /// replacing any previous content atomically. Large streams are uploaded in blocks without being held whole.
    /// </summary>
    Task PutAsync(string name, Stream content, CancellationToken cancellationToken);

    /// <summary>
    /// Writes <paramref name="content"/> to <paramref name="name"/> only if no blob of that name exists (Azure's
    /// <c>If-None-Match: *</c>): true when this call created it, false when the name was taken, in which case
    /// nothing was written and the existing blob keeps its content.
    /// </summary>
    /// <remarks>
    /// False can also mean that this very call wrote the blob on a first try whose response was lost, and the store's
    /// retry then found it. A caller that must tell the two apart compares the stored content with its own, as
    /// <see cref="Checkpoints.CheckpointStore.PublishPolicyAsync"/> does.
    /// </remarks>
    Task<bool> TryCreateAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken);

    /// <summary>
    /// <see cref="TryCreateAsync(string, ReadOnlyMemory{byte}, CancellationToken)"/> from a stream, read to its end as
    /// <see cref="PutAsync(string, Stream, CancellationToken)"/> reads it; what was read is discarded when the name
    /// turns out to be taken.
    /// </summary>
    Task<bool> TryCreateAsync(string name, Stream content, CancellationToken cancellationToken);

    /// <summary>The whole content of <paramref name="name"/>, or null when there is no such blob.</summary>
    Task<byte[]?> GetAsync(string name, CancellationToken cancellationToken);

    /// <summary>A stream over the content of <paramref name="name"/> (the caller disposes it), or null when there is no such blob.</summary>
    Task<Stream?> OpenReadAsync(string name, CancellationToken cancellationToken);

    /// <summary>Size and last-modified time of <paramref name="name"/>, or null when there is no such blob.</summary>
    Task<BlobInfo?> GetInfoAsync(string name, CancellationToken cancellationToken);

    /// <summary>
    /// Every blob whose name starts with <paramref name="prefix"/> (plain string prefix, so <c>runs/r1/check</c>
    /// matches <c>runs/r1/checkpoints/…</c>; empty lists all), in ordinal order of names. Paged under the hood.
    /// </summary>
    IAsyncEnumerable<BlobInfo> ListAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>Deletes <paramref name="name"/>; true when it existed, false when there was nothing to delete.</summary>
    Task<bool> DeleteAsync(string name, CancellationToken cancellationToken);
}

/// <summary>One blob as listed: its full name, its size in bytes and when it was last written (UTC).</summary>
public sealed record BlobInfo(string Name, long Size, DateTimeOffset LastModified);
