using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using Azure;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Dapo.Grains.Blobs;

/// <summary>
/// One container of Azure Blob Storage (or Azurite) through Azure.Storage.Blobs' <see cref="BlobContainerClient"/>.
/// How it authenticates (account key, SAS, or a token credential), its retries and its timeouts are the client's
/// (<see cref="BlobClientOptions.Retry"/>, set by <see cref="BlobStoreFactory"/> from <see cref="BlobStorageOptions"/>);
/// the sizes of its transfers come from <see cref="AzureBlobTransferOptions"/>.
/// </summary>
/// <remarks>
/// <para>Uploads and downloads go through the SDK's partitioned transfers: content up to
/// <see cref="AzureBlobTransferOptions.InitialTransferSize"/> in one request, larger content in blocks (or ranges) of
/// <see cref="AzureBlobTransferOptions.MaximumTransferSize"/>, <see cref="AzureBlobTransferOptions.MaximumConcurrency"/>
/// of them at once. A stream is read a block at a time, so an upload from a stream holds at most about
/// <see cref="AzureBlobTransferOptions.MaxBufferedBytes"/> of it, whatever its length. The block list is committed
/// only after every block is staged, which makes the new content visible atomically: a failed upload leaves the
/// previous content, and uncommitted blocks are never listed or read. Every request that carries content carries its
/// MD5, which the service checks.</para>
/// <para>A create-only put is the same upload with <c>If-None-Match: *</c> on its last request (Put Blob or Put Block
/// List); the service refuses it when the blob exists (409 BlobAlreadyExists), and that is returned as false. Azurite
/// also refuses a Put Blob when another upload left uncommitted blocks under the name, though there is no blob to
/// read: that is <see cref="BlobErrorCodes.UncommittedBlocks"/>, not false.</para>
/// <para>Every SDK failure is rethrown as <see cref="BlobStorageException"/> naming the operation, container and blob
/// and carrying the service's error code; its message holds the service's message but never the request's URL or
/// headers, so neither an account key nor a SAS signature can reach a log through it.</para>
/// </remarks>
public sealed class AzureBlobStore : IBlobStore
{
    private readonly BlobContainerClient _container;
    private readonly AzureBlobTransferOptions _transfer;
    private readonly ILogger _logger;

    public AzureBlobStore(BlobContainerClient container, AzureBlobTransferOptions? transfer = null,
        ILogger<AzureBlobStore>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(container);
        ContainerName.Validate(container.Name);
        _transfer = transfer ?? AzureBlobTransferOptions.Default;
        if (AzureBlobTransferOptions.Problem(_transfer) is { } problem)
            throw new ArgumentOutOfRangeException(nameof(transfer), problem);
        _container = container;
        _logger = logger ?? NullLogger<AzureBlobStore>.Instance;
        ContainerUri = AzureBlobConnection.WithoutQuery(container.Uri);
    }

    public string Container => _container.Name;

    /// <summary>The container's URL without any SAS query: safe to show.</summary>
    public Uri ContainerUri { get; }

    public string Description => $"Azure Blob Storage container {ContainerUri}";

    public Task EnsureContainerAsync(CancellationToken cancellationToken) =>
        CallAsync("Create Container", null, null, async ct =>
        {
            if (await _container.CreateIfNotExistsAsync(cancellationToken: ct) is not null)
                BlobLog.ContainerEnsured(_logger, Container, Description);
            return true;
        }, cancellationToken);

    public Task PutAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) =>
        UploadAsync("Put Blob", name, content, createOnly: false, cancellationToken);

    public Task PutAsync(string name, Stream content, CancellationToken cancellationToken) =>
        UploadAsync("Put Blob", name, content, createOnly: false, cancellationToken);

    public Task<bool> TryCreateAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) =>
        UploadAsync("Create Blob", name, content, createOnly: true, cancellationToken);

    public Task<bool> TryCreateAsync(string name, Stream content, CancellationToken cancellationToken) =>
        UploadAsync("Create Blob", name, content, createOnly: true, cancellationToken);

    /// <summary>
    /// Reads the blob's size first, then downloads it in parallel ranges into one array of that size; the ranges ask
    /// for the version whose size was read (If-Match), so a blob replaced in between is read again, never mixed.
    /// </summary>
    public Task<byte[]?> GetAsync(string name, CancellationToken cancellationToken)
    {
        BlobName.Validate(name);
        var blob = _container.GetBlobClient(name);
        return CallAsync<byte[]?>("Get Blob", name, null, async ct =>
        {
            while (true)
            {
                BlobProperties properties;
                try
                {
                    properties = await blob.GetPropertiesAsync(cancellationToken: ct);
                }
                catch (RequestFailedException e) when (IsBlobNotFound(e))
                {
                    return null;
                }
                if (properties.ContentLength > Array.MaxLength)
                    throw Logged(new BlobStorageException(
                        $"Get Blob of blob '{name}' in container '{Container}': {properties.ContentLength} bytes do not fit in one array; read it with OpenReadAsync.",
                        "Get Blob", Container, name, 200, null));
                var content = new byte[properties.ContentLength];
                try
                {
                    await blob.DownloadToAsync(new MemoryStream(content), new BlobDownloadToOptions
                    {
                        TransferOptions = _transfer.ToStorageTransferOptions(),
                        Conditions = new BlobRequestConditions { IfMatch = properties.ETag },
                    }, ct);
                    return content;
                }
                catch (RequestFailedException e) when (IsBlobNotFound(e))
                {
                    return null; // deleted since its size was read
                }
                catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCodes.ConditionNotMet)
                {
                    // replaced since its size was read: read the new version
                }
            }
        }, cancellationToken);
    }

    /// <summary>
    /// The SDK's read stream, which downloads <see cref="AzureBlobTransferOptions.MaximumTransferSize"/> at a time
    /// as the caller reads. It reads the version that was there when it opened: if the blob is replaced meanwhile, a
    /// later read fails with <see cref="BlobErrorCodes.ConditionNotMet"/> (as a <see cref="BlobStorageException"/>).
    /// </summary>
    public Task<Stream?> OpenReadAsync(string name, CancellationToken cancellationToken)
    {
        BlobName.Validate(name);
        var blob = _container.GetBlobClient(name);
        return CallAsync<Stream?>("Get Blob", name, null, async ct =>
        {
            try
            {
                var stream = await blob.OpenReadAsync(
                    new BlobOpenReadOptions(allowModifications: false) { BufferSize = _transfer.MaximumTransferSize }, ct);
                return new ReadStream(this, name, stream);
            }
            catch (RequestFailedException e) when (IsBlobNotFound(e))
            {
                return null;
            }
        }, cancellationToken);
    }

    public Task<BlobInfo?> GetInfoAsync(string name, CancellationToken cancellationToken)
    {
        BlobName.Validate(name);
        var blob = _container.GetBlobClient(name);
        return CallAsync<BlobInfo?>("Get Blob Properties", name, null, async ct =>
        {
            try
            {
                BlobProperties properties = await blob.GetPropertiesAsync(cancellationToken: ct);
                return new BlobInfo(name, properties.ContentLength, properties.LastModified);
            }
            catch (RequestFailedException e) when (IsBlobNotFound(e))
            {
                return null;
            }
        }, cancellationToken);
    }

    public async IAsyncEnumerable<BlobInfo> ListAsync(string prefix,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        BlobName.ValidatePrefix(prefix);
        var pages = _container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix.Length == 0 ? null : prefix }, cancellationToken)
            .AsPages(pageSizeHint: _transfer.ListPageSize)
            .GetAsyncEnumerator(cancellationToken);
        await using (pages)
        {
            while (await CallAsync("List Blobs", null, null, _ => pages.MoveNextAsync().AsTask(), cancellationToken))
            {
                foreach (var blob in pages.Current.Values)
                    yield return new BlobInfo(blob.Name, blob.Properties.ContentLength ?? 0,
                        blob.Properties.LastModified ?? DateTimeOffset.MinValue);
            }
        }
    }

    public Task<bool> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        BlobName.Validate(name);
        var blob = _container.GetBlobClient(name);
        return CallAsync("Delete Blob", name, null, async ct =>
        {
            try
            {
                // Snapshots too, or a blob that has any cannot be deleted.
                await blob.DeleteAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: ct);
                return true;
            }
            catch (RequestFailedException e) when (IsBlobNotFound(e))
            {
                // Also when a retry follows a first try whose response was lost: the blob is gone either way.
                return false;
            }
        }, cancellationToken);
    }

    private Task<bool> UploadAsync(string operation, string name, ReadOnlyMemory<byte> content, bool createOnly,
        CancellationToken cancellationToken)
    {
        BlobName.Validate(name);
        return UploadAsync(operation, name, null, content.Length,
            (blob, options, ct) => blob.UploadAsync(BinaryData.FromBytes(content), options, ct), createOnly, cancellationToken);
    }

    private Task<bool> UploadAsync(string operation, string name, Stream content, bool createOnly,
        CancellationToken cancellationToken)
    {
        BlobName.Validate(name);
        ArgumentNullException.ThrowIfNull(content);
        var source = new SourceStream(content);
        return UploadAsync(operation, name, source, null,
            (blob, options, ct) => blob.UploadAsync(source, options, ct), createOnly, cancellationToken);
    }

    private async Task<bool> UploadAsync(string operation, string name, SourceStream? source, long? length,
        Func<BlobClient, BlobUploadOptions, CancellationToken, Task> upload, bool createOnly,
        CancellationToken cancellationToken)
    {
        var blob = _container.GetBlobClient(name);
        var options = new BlobUploadOptions
        {
            TransferOptions = _transfer.ToStorageTransferOptions(),
            HttpHeaders = new BlobHttpHeaders { ContentType = "application/octet-stream" },
            // Content-MD5 on every request that carries content (each block, or the one Put Blob): the service
            // refuses a body that arrives different from what was sent, so a corrupted transfer never becomes a blob.
            TransferValidation = new UploadTransferValidationOptions { ChecksumAlgorithm = StorageChecksumAlgorithm.MD5 },
            // The SDK puts the condition on the request that makes the content visible: Put Blob or Put Block List.
            Conditions = createOnly ? new BlobRequestConditions { IfNoneMatch = ETag.All } : null,
        };
        var created = await CallAsync(operation, name, source, async ct =>
        {
            try
            {
                await upload(blob, options, ct);
                return true;
            }
            catch (RequestFailedException e) when (createOnly && IsTaken(e))
            {
                if (await ExistsAsync(blob, ct))
                    return false;
                throw Logged(new BlobStorageException(
                    $"{operation} of blob '{name}' in container '{Container}' was refused, but no such blob can be read: another " +
                    "upload of it has staged blocks without committing them (still running, or failed; the service drops them " +
                    "after a week). A plain put replaces them.",
                    operation, Container, name, e.Status, BlobErrorCodes.UncommittedBlocks));
            }
        }, cancellationToken);
        if (created)
            BlobLog.Uploaded(_logger, name, length ?? source!.ContentLength);
        else
            BlobLog.CreateLost(_logger, name, Container);
        return created;
    }

    /// <summary>
    /// Runs one SDK call (which retries by itself) and rethrows its failures as <see cref="BlobStorageException"/>:
    /// service errors with their status and code, and no response after the retries as
    /// <see cref="BlobErrorCodes.Unreachable"/>. Cancellation by <paramref name="cancellationToken"/> and failures of
    /// the caller's <paramref name="source"/> stream propagate as they are.
    /// </summary>
    private async Task<T> CallAsync<T>(string operation, string? name, SourceStream? source,
        Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        try
        {
            return await call(cancellationToken);
        }
        catch (Exception) when (source?.Failure is { } failure)
        {
            failure.Throw();
            throw; // not reached
        }
        catch (Exception e) when (Translate(operation, name, e, cancellationToken) is { } translated)
        {
            throw Logged(translated);
        }
    }

    /// <summary>The <see cref="BlobStorageException"/> for an SDK failure, or null for one to let through as it is.</summary>
    private BlobStorageException? Translate(string operation, string? name, Exception e, CancellationToken cancellationToken)
    {
        if (e is BlobStorageException || cancellationToken.IsCancellationRequested)
            return null;
        var what = name is null ? $"container '{Container}'" : $"blob '{name}' in container '{Container}'";
        // A partitioned transfer may fail in several requests at once; one service error speaks for them all.
        var failures = e is AggregateException aggregate ? aggregate.Flatten().InnerExceptions : [e];
        if (failures.OfType<RequestFailedException>().FirstOrDefault(f => f.Status != 0) is { } service)
            return ServiceFailure(operation, name, what, service);
        if (failures.All(f => f is RequestFailedException or IOException or OperationCanceledException))
        {
            // No response at all, in every try the client's retry policy made (one exception per try).
            var last = failures[^1];
            return new BlobStorageException(
                $"{operation} of {what} failed: Azure Blob Storage at {ContainerUri.GetLeftPart(UriPartial.Authority)} " +
                $"gave no response in {failures.Count} {(failures.Count == 1 ? "try" : "tries")} ({last.Message}). " +
                "Check that the storage is up and reachable; the operation can be retried.",
                operation, Container, name, 0, BlobErrorCodes.Unreachable, last);
        }
        return null;
    }

    private BlobStorageException ServiceFailure(string operation, string? name, string what, RequestFailedException e)
    {
        var code = e.ErrorCode;
        var hint = code switch
        {
            BlobErrorCodes.ContainerNotFound => " Call EnsureContainerAsync first (it creates the container).",
            BlobErrorCodes.InvalidBlockList =>
                " Another upload of this blob committed while this one was staging blocks; the blob holds that upload's content.",
            "AuthenticationFailed" or "AuthorizationFailure" or "AuthorizationPermissionMismatch" or
                "AuthorizationResourceTypeMismatch" =>
                " Check the account key, the SAS (its permissions and expiry) or the identity's role on the storage account.",
            _ => "",
        };
        // Only the service's own message (the first line of the SDK's, which goes on with headers and content).
        var serviceMessage = e.Message.Split('\n', 2)[0].Trim();
        var requestId = e.GetRawResponse()?.Headers.RequestId;
        return new BlobStorageException(
            $"{operation} of {what} failed: {e.Status} {code ?? "(no error code)"} ({serviceMessage})." + hint +
            (requestId is null ? "" : $" Request id {requestId}."),
            operation, Container, name, e.Status, code);
    }

    private BlobStorageException Logged(BlobStorageException e)
    {
        BlobLog.OperationFailed(_logger, e, e.Operation, e.Container, e.BlobName, e.Status, e.ErrorCode);
        return e;
    }

    /// <summary>Whether a committed blob is there (uncommitted blocks are not a blob).</summary>
    private static async Task<bool> ExistsAsync(BlobClient blob, CancellationToken cancellationToken)
    {
        try
        {
            await blob.GetPropertiesAsync(cancellationToken: cancellationToken);
            return true;
        }
        catch (RequestFailedException e) when (IsBlobNotFound(e))
        {
            return false;
        }
    }

    // Only BlobNotFound means "no such blob"; a 404 for a missing container is a configuration error.
    private static bool IsBlobNotFound(RequestFailedException e) => e.Status == 404 && e.ErrorCode == BlobErrorCodes.BlobNotFound;

    /// <summary>A create-only upload found the name taken: refused by its condition, or (for a block upload that
    /// lost the race to commit) its staged blocks were discarded by the winner's commit.</summary>
    private static bool IsTaken(RequestFailedException e) =>
        e.ErrorCode is BlobErrorCodes.BlobAlreadyExists or BlobErrorCodes.ConditionNotMet or BlobErrorCodes.InvalidBlockList;

    /// <summary>
    /// The caller's content stream, as the SDK reads it: counts what was read and remembers a failure of the stream
    /// itself, so that it reaches the caller unchanged instead of passing for a storage error. A seekable stream
    /// stays seekable (weights in memory, a file): the SDK then knows its length, sends small content in one Put
    /// Blob as it does bytes, and seeks back to retry a block instead of buffering it.
    /// </summary>
    private sealed class SourceStream(Stream inner) : ForwardReadStream
    {
        public ExceptionDispatchInfo? Failure { get; private set; }

        /// <summary>Bytes read, retries included.</summary>
        public long BytesRead { get; private set; }

        /// <summary>The content's length: the stream's when it is seekable, else what was read.</summary>
        public long ContentLength => inner.CanSeek ? inner.Length : BytesRead;

        // Otherwise read forward once, as the interface promises: the SDK buffers each block it sends.
        public override bool CanSeek => inner.CanSeek;
        public override long Length => inner.CanSeek ? inner.Length : throw new NotSupportedException();

        public override long Position
        {
            get => inner.CanSeek ? inner.Position : BytesRead;
            set => Seek(value, SeekOrigin.Begin);
        }

        public override long Seek(long offset, SeekOrigin origin) => inner.CanSeek ? inner.Seek(offset, origin) : throw new NotSupportedException();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                var read = await inner.ReadAsync(buffer, cancellationToken);
                BytesRead += read;
                return read;
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested || e is not OperationCanceledException)
            {
                Failure ??= ExceptionDispatchInfo.Capture(e);
                throw;
            }
        }
    }

    /// <summary>The SDK's read stream, with its failures rethrown as <see cref="BlobStorageException"/> like every other call's.</summary>
    private sealed class ReadStream(AzureBlobStore store, string name, Stream inner) : ForwardReadStream
    {
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            new(store.CallAsync("Get Blob", name, null, ct => inner.ReadAsync(buffer, ct).AsTask(), cancellationToken));

        protected override void Dispose(bool disposing)
        {
            if (disposing)
                inner.Dispose();
            base.Dispose(disposing);
        }

        public override ValueTask DisposeAsync()
        {
            GC.SuppressFinalize(this);
            return inner.DisposeAsync();
        }
    }

    /// <summary>A stream read forward only, whose reads all come down to <see cref="Stream.ReadAsync(Memory{byte}, CancellationToken)"/>.</summary>
    private abstract class ForwardReadStream : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;

        public abstract override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) =>
            ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
