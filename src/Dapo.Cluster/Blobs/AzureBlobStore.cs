using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Dapo.Cluster.Blobs;

/// <summary>
/// One container of Azure Blob Storage (or Azurite), spoken to over the Blob REST API on an Azure.Core
/// <see cref="HttpPipeline"/>: its retry policy (exponential backoff on 408, 429, 5xx and network errors) and
/// timeouts come from <see cref="AzureBlobClientOptions"/>. Authorized by SharedKey from a connection string or by
/// a bearer token from an Azure.Identity <see cref="TokenCredential"/>.
/// </summary>
/// <remarks>
/// Uploads up to <see cref="AzureBlobClientOptions.SingleUploadLimitBytes"/> are one Put Blob; larger ones stage
/// blocks with Put Block and commit them with Put Block List, which makes the new content visible atomically:
/// uncommitted blocks are never listed or read. Every upload sends Content-MD5 (per block for block uploads, and
/// the whole blob's MD5 as x-ms-blob-content-md5 at commit), so the service rejects corrupted transfers;
/// <see cref="GetAsync"/> checks the stored MD5 of what it reads back.
/// </remarks>
public sealed class AzureBlobStore : IBlobStore
{
    /// <summary>The OAuth scope of Azure Storage's data plane.</summary>
    public const string StorageScope = "https://storage.azure.com/.default";

    private readonly HttpPipeline _pipeline;
    private readonly Uri _containerUri;
    private readonly AzureBlobClientOptions _options;
    private readonly ILogger _logger;

    /// <summary>SharedKey auth: <paramref name="connection"/> must carry an account name and key.</summary>
    public AzureBlobStore(BlobConnectionString connection, string container, AzureBlobClientOptions? options = null,
        ILogger<AzureBlobStore>? logger = null)
        : this(connection.BlobEndpoint, container, options, logger, SharedKeyPolicy(connection))
    {
    }

    /// <summary>
    /// Token auth (Azure AD / Entra ID): bearer tokens for <see cref="StorageScope"/> from <paramref name="credential"/>,
    /// such as Azure.Identity's DefaultAzureCredential. <paramref name="blobEndpoint"/> must be https.
    /// </summary>
    public AzureBlobStore(Uri blobEndpoint, TokenCredential credential, string container,
        AzureBlobClientOptions? options = null, ILogger<AzureBlobStore>? logger = null)
        : this(blobEndpoint, container, options, logger, TokenPolicy(blobEndpoint, credential))
    {
    }

    private AzureBlobStore(Uri blobEndpoint, string container, AzureBlobClientOptions? options,
        ILogger<AzureBlobStore>? logger, HttpPipelinePolicy authentication)
    {
        ContainerName.Validate(container);
        _options = options ?? new AzureBlobClientOptions();
        if (_options.SingleUploadLimitBytes < 1 || _options.BlockSizeBytes < 1 || _options.ListPageSize is < 1 or > 5000)
            throw new ArgumentOutOfRangeException(nameof(options),
                "SingleUploadLimitBytes and BlockSizeBytes must be positive and ListPageSize between 1 and 5000.");
        Container = container;
        _containerUri = new Uri($"{blobEndpoint.GetLeftPart(UriPartial.Path).TrimEnd('/')}/{container}");
        _logger = logger ?? NullLogger<AzureBlobStore>.Instance;
        // Authentication runs per try, after the retry policy: each try gets a fresh x-ms-date and signature.
        _pipeline = HttpPipelineBuilder.Build(_options, [], [authentication], new ResponseClassifier());
    }

    public string Container { get; }

    /// <summary>The container's URL; it carries no credentials.</summary>
    public Uri ContainerUri => _containerUri;

    public string Description => $"Azure Blob Storage container {_containerUri}";

    public async Task EnsureContainerAsync(CancellationToken cancellationToken)
    {
        const string operation = "Create Container";
        using var message = CreateMessage(RequestMethod.Put, null);
        message.Request.Uri.AppendQuery("restype", "container");
        message.Request.Content = RequestContent.Create(ReadOnlyMemory<byte>.Empty);
        await SendAsync(message, operation, null, cancellationToken);
        var response = message.Response;
        if (response.Status == 201)
        {
            BlobLog.ContainerEnsured(_logger, Container, Description);
            return;
        }
        if (response.Status == 409 && ErrorCodeOf(response) == BlobErrorCodes.ContainerAlreadyExists)
            return;
        throw Failure(operation, null, response);
    }

    public async Task PutAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        BlobName.Validate(name);
        if (content.Length <= _options.SingleUploadLimitBytes)
        {
            await PutBlobAsync(name, content, cancellationToken);
            return;
        }
        using var upload = new BlockUpload(name);
        for (var offset = 0; offset < content.Length; offset += _options.BlockSizeBytes)
        {
            var block = content.Slice(offset, Math.Min(_options.BlockSizeBytes, content.Length - offset));
            await PutBlockAsync(upload, block, cancellationToken);
        }
        await PutBlockListAsync(upload, cancellationToken);
    }

    public async Task PutAsync(string name, Stream content, CancellationToken cancellationToken)
    {
        BlobName.Validate(name);
        ArgumentNullException.ThrowIfNull(content);
        // Read one byte past the single-upload limit to learn whether the stream fits in one Put Blob.
        var head = new byte[_options.SingleUploadLimitBytes + 1];
        var headLength = await content.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, cancellationToken);
        if (headLength <= _options.SingleUploadLimitBytes)
        {
            await PutBlobAsync(name, head.AsMemory(0, headLength), cancellationToken);
            return;
        }
        using var upload = new BlockUpload(name);
        var block = new byte[_options.BlockSizeBytes];
        var headOffset = 0;
        while (true)
        {
            // Fill a block from what is left of the head, then from the stream.
            var filled = Math.Min(block.Length, headLength - headOffset);
            head.AsSpan(headOffset, filled).CopyTo(block);
            headOffset += filled;
            if (filled < block.Length)
                filled += await content.ReadAtLeastAsync(block.AsMemory(filled), block.Length - filled,
                    throwOnEndOfStream: false, cancellationToken);
            if (filled == 0)
                break;
            await PutBlockAsync(upload, block.AsMemory(0, filled), cancellationToken);
            if (filled < block.Length)
                break;
        }
        await PutBlockListAsync(upload, cancellationToken);
    }

    public async Task<byte[]?> GetAsync(string name, CancellationToken cancellationToken)
    {
        const string operation = "Get Blob";
        BlobName.Validate(name);
        using var message = CreateMessage(RequestMethod.Get, name);
        await SendAsync(message, operation, name, cancellationToken);
        var response = message.Response;
        if (IsBlobNotFound(response))
            return null;
        if (response.Status != 200)
            throw Failure(operation, name, response);
        var bytes = response.Content.ToArray();
        // The service returns the stored MD5 when it has one (always after our uploads); check what arrived.
        if (response.Headers.TryGetValue("Content-MD5", out var md5)
            && md5 != Convert.ToBase64String(MD5.HashData(bytes)))
        {
            throw Logged(new BlobStorageException(
                $"{operation} '{name}' in container '{Container}': the content read back does not match its stored MD5; read it again.",
                operation, Container, name, response.Status, BlobErrorCodes.Md5Mismatch));
        }
        return bytes;
    }

    public async Task<Stream?> OpenReadAsync(string name, CancellationToken cancellationToken)
    {
        const string operation = "Get Blob";
        BlobName.Validate(name);
        using var message = CreateMessage(RequestMethod.Get, name);
        message.BufferResponse = false; // stream the body instead of holding it whole
        await SendAsync(message, operation, name, cancellationToken);
        var response = message.Response;
        if (response.Status != 200 && response.ContentStream is { } errorBody)
        {
            // Error bodies are small: buffer them so the error code and message can be read.
            var buffer = new MemoryStream();
            await errorBody.CopyToAsync(buffer, cancellationToken);
            buffer.Position = 0;
            response.ContentStream = buffer;
        }
        if (IsBlobNotFound(response))
            return null;
        if (response.Status != 200)
            throw Failure(operation, name, response);
        return message.ExtractResponseContent() ?? Stream.Null;
    }

    public async Task<BlobInfo?> GetInfoAsync(string name, CancellationToken cancellationToken)
    {
        const string operation = "Get Blob Properties";
        BlobName.Validate(name);
        using var message = CreateMessage(RequestMethod.Head, name);
        await SendAsync(message, operation, name, cancellationToken);
        var response = message.Response;
        if (IsBlobNotFound(response))
            return null;
        if (response.Status != 200)
            throw Failure(operation, name, response);
        return new BlobInfo(name,
            long.Parse(RequiredHeader(response, "Content-Length", operation, name), CultureInfo.InvariantCulture),
            AzureBlobXml.ParseHttpDate(RequiredHeader(response, "Last-Modified", operation, name)));
    }

    public async IAsyncEnumerable<BlobInfo> ListAsync(string prefix,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        const string operation = "List Blobs";
        BlobName.ValidatePrefix(prefix);
        string? marker = null;
        do
        {
            AzureBlobXml.ListPage page;
            using (var message = CreateMessage(RequestMethod.Get, null))
            {
                message.Request.Uri.AppendQuery("restype", "container");
                message.Request.Uri.AppendQuery("comp", "list");
                if (prefix.Length > 0)
                    message.Request.Uri.AppendQuery("prefix", prefix);
                if (marker is not null)
                    message.Request.Uri.AppendQuery("marker", marker);
                message.Request.Uri.AppendQuery("maxresults", _options.ListPageSize.ToString(CultureInfo.InvariantCulture));
                await SendAsync(message, operation, null, cancellationToken);
                if (message.Response.Status != 200)
                    throw Failure(operation, null, message.Response);
                page = AzureBlobXml.ParseListPage(message.Response.ContentStream!);
            }
            foreach (var blob in page.Blobs)
                yield return blob;
            marker = page.NextMarker;
        } while (marker is not null);
    }

    public async Task<bool> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        const string operation = "Delete Blob";
        BlobName.Validate(name);
        using var message = CreateMessage(RequestMethod.Delete, name);
        // Also delete snapshots, or a blob that has any cannot be deleted.
        message.Request.Headers.SetValue("x-ms-delete-snapshots", "include");
        await SendAsync(message, operation, name, cancellationToken);
        var response = message.Response;
        if (response.Status == 202)
            return true;
        // 404 also when a retry follows a first try whose response was lost: the blob is gone either way.
        if (IsBlobNotFound(response))
            return false;
        throw Failure(operation, name, response);
    }

    private async Task PutBlobAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        const string operation = "Put Blob";
        using var message = CreateMessage(RequestMethod.Put, name);
        message.Request.Headers.SetValue("x-ms-blob-type", "BlockBlob");
        message.Request.Headers.SetValue("Content-Type", "application/octet-stream");
        message.Request.Headers.SetValue("Content-MD5", Convert.ToBase64String(MD5.HashData(content.Span)));
        message.Request.Content = RequestContent.Create(content);
        await SendAsync(message, operation, name, cancellationToken);
        if (message.Response.Status != 201)
            throw Failure(operation, name, message.Response);
    }

    private async Task PutBlockAsync(BlockUpload upload, ReadOnlyMemory<byte> block, CancellationToken cancellationToken)
    {
        const string operation = "Put Block";
        var blockId = upload.NextBlockId();
        using var message = CreateMessage(RequestMethod.Put, upload.Name);
        message.Request.Uri.AppendQuery("comp", "block");
        message.Request.Uri.AppendQuery("blockid", blockId);
        message.Request.Headers.SetValue("Content-MD5", Convert.ToBase64String(MD5.HashData(block.Span)));
        message.Request.Content = RequestContent.Create(block);
        await SendAsync(message, operation, upload.Name, cancellationToken);
        if (message.Response.Status != 201)
            throw Failure(operation, upload.Name, message.Response);
        upload.Add(blockId, block.Span);
    }

    private async Task PutBlockListAsync(BlockUpload upload, CancellationToken cancellationToken)
    {
        const string operation = "Put Block List";
        var body = AzureBlobXml.BlockList(upload.BlockIds);
        using var message = CreateMessage(RequestMethod.Put, upload.Name);
        message.Request.Uri.AppendQuery("comp", "blocklist");
        message.Request.Headers.SetValue("Content-Type", "application/xml");
        message.Request.Headers.SetValue("x-ms-blob-content-type", "application/octet-stream");
        message.Request.Headers.SetValue("x-ms-blob-content-md5", upload.ContentMd5());
        message.Request.Content = RequestContent.Create(body);
        await SendAsync(message, operation, upload.Name, cancellationToken);
        if (message.Response.Status != 201)
            throw Failure(operation, upload.Name, message.Response);
        BlobLog.BlocksCommitted(_logger, upload.Name, upload.Bytes, upload.BlockIds.Count);
    }

    private HttpMessage CreateMessage(RequestMethod method, string? blobName)
    {
        var message = _pipeline.CreateMessage();
        var request = message.Request;
        request.Method = method;
        request.Uri.Reset(_containerUri);
        // Valid blob names need no escaping (BlobName allows only unreserved characters and '/').
        if (blobName is not null)
            request.Uri.AppendPath("/" + blobName, escape: false);
        request.Headers.SetValue("x-ms-version", AzureBlobClientOptions.ServiceVersion);
        return message;
    }

    /// <summary>
    /// Sends through the pipeline (which retries); when no response comes even after the retries, throws a
    /// <see cref="BlobStorageException"/> with status 0 and <see cref="BlobErrorCodes.Unreachable"/>. Cancellation
    /// by <paramref name="cancellationToken"/> propagates as it is.
    /// </summary>
    private async Task SendAsync(HttpMessage message, string operation, string? name, CancellationToken cancellationToken)
    {
        try
        {
            await _pipeline.SendAsync(message, cancellationToken);
        }
        catch (Exception e) when (e is RequestFailedException or AggregateException or IOException
                                      or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            // Azure.Core's RetryPolicy throws the last error, or an AggregateException of all tries' errors.
            var last = e is AggregateException aggregate ? aggregate.InnerExceptions[^1] : e;
            var what = name is null ? $"container '{Container}'" : $"blob '{name}' in container '{Container}'";
            throw Logged(new BlobStorageException(
                $"{operation} of {what} failed: Azure Blob Storage at {_containerUri.GetLeftPart(UriPartial.Authority)} " +
                $"gave no response in {_options.Retry.MaxRetries + 1} tries ({last.Message}). " +
                "Check that the storage is up and reachable; the operation can be retried.",
                operation, Container, name, 0, BlobErrorCodes.Unreachable, e));
        }
    }

    private BlobStorageException Failure(string operation, string? name, Response response)
    {
        var (code, serviceMessage) = AzureBlobXml.ParseError(response.Content.ToMemory().Span);
        code = ErrorCodeOf(response) ?? code;
        var what = name is null ? $"container '{Container}'" : $"blob '{name}' in container '{Container}'";
        var hint = code switch
        {
            BlobErrorCodes.ContainerNotFound => " Call EnsureContainerAsync first (it creates the container).",
            BlobErrorCodes.InvalidBlockList =>
                " Another upload of this blob committed while this one was staging blocks; the blob holds that upload's content.",
            "AuthenticationFailed" or "AuthorizationFailure" or "AuthorizationPermissionMismatch" =>
                " Check the account key or the identity's role on the storage account.",
            _ => "",
        };
        return Logged(new BlobStorageException(
            $"{operation} of {what} failed: {response.Status} {code ?? response.ReasonPhrase}" +
            (serviceMessage is null ? "." : $" ({serviceMessage}).") + hint,
            operation, Container, name, response.Status, code));
    }

    private BlobStorageException Logged(BlobStorageException e)
    {
        BlobLog.OperationFailed(_logger, e, e.Operation, e.Container, e.BlobName, e.Status, e.ErrorCode);
        return e;
    }

    private string RequiredHeader(Response response, string header, string operation, string name) =>
        response.Headers.TryGetValue(header, out var value)
            ? value
            : throw Logged(new BlobStorageException($"{operation} of blob '{name}' returned no {header} header.",
                operation, Container, name, response.Status, null));

    private static string? ErrorCodeOf(Response response) =>
        response.Headers.TryGetValue("x-ms-error-code", out var code) ? code : null;

    // Only BlobNotFound means "no such blob"; a 404 for a missing container is a configuration error.
    private static bool IsBlobNotFound(Response response) =>
        response.Status == 404 && ErrorCodeOf(response) is BlobErrorCodes.BlobNotFound or null
        && !IsContainerNotFound(response);

    private static bool IsContainerNotFound(Response response)
    {
        if (ErrorCodeOf(response) == BlobErrorCodes.ContainerNotFound)
            return true;
        var (code, _) = AzureBlobXml.ParseError(response.Content.ToMemory().Span);
        return code == BlobErrorCodes.ContainerNotFound;
    }

    private static HttpPipelinePolicy SharedKeyPolicy(BlobConnectionString connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (connection.AccountName is null || connection.AccountKey is null)
            throw new ArgumentException(
                "SharedKey auth needs a connection string with AccountName and AccountKey; for token auth pass a TokenCredential instead.",
                nameof(connection));
        return new SharedKeyAuthenticationPolicy(connection.AccountName, connection.AccountKey);
    }

    private static HttpPipelinePolicy TokenPolicy(Uri blobEndpoint, TokenCredential credential)
    {
        ArgumentNullException.ThrowIfNull(blobEndpoint);
        ArgumentNullException.ThrowIfNull(credential);
        if (blobEndpoint.Scheme != Uri.UriSchemeHttps)
            throw new ArgumentException(
                $"Token auth sends bearer tokens and needs an https blob endpoint; {blobEndpoint.GetLeftPart(UriPartial.Authority)} is not. Use https or SharedKey auth.",
                nameof(blobEndpoint));
        return new BearerTokenAuthenticationPolicy(credential, StorageScope);
    }

    /// <summary>The blocks staged so far for one upload, and the running MD5 of their content.</summary>
    private sealed class BlockUpload(string name) : IDisposable
    {
        // A fresh prefix per upload keeps two concurrent uploads of one blob from committing each other's blocks;
        // the ids of one blob must all have the same length, which "{guid:N}-{index:D6}" gives.
        private readonly string _uploadId = Guid.NewGuid().ToString("N");
        private readonly IncrementalHash _md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        private readonly List<string> _blockIds = [];

        public string Name { get; } = name;

        public long Bytes { get; private set; }

        public IReadOnlyList<string> BlockIds => _blockIds;

        public string NextBlockId() =>
            Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes($"{_uploadId}-{_blockIds.Count:D6}"));

        public void Add(string blockId, ReadOnlySpan<byte> content)
        {
            _blockIds.Add(blockId);
            _md5.AppendData(content);
            Bytes += content.Length;
        }

        public string ContentMd5() => Convert.ToBase64String(_md5.GetCurrentHash());

        public void Dispose() => _md5.Dispose();
    }
}
