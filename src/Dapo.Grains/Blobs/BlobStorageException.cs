using System.Net;

namespace Dapo.Grains.Blobs;

/// <summary>Error codes this project checks for; the service's own codes are passed through as they come.</summary>
public static class BlobErrorCodes
{
    public const string ContainerNotFound = "ContainerNotFound";
    public const string BlobNotFound = "BlobNotFound";
    public const string ContainerAlreadyExists = "ContainerAlreadyExists";

    /// <summary>A create-only put (If-None-Match: *) found the blob written already.</summary>
    public const string BlobAlreadyExists = "BlobAlreadyExists";

    /// <summary>
    /// A create-only put was refused although no blob of that name can be read: another upload of the name staged
    /// blocks and has not committed them, because it is still running or because it failed or died (the service drops
    /// such blocks after a week). A create-only put cannot tell which; <see cref="IBlobStore.PutAsync(string, ReadOnlyMemory{byte}, CancellationToken)"/>
    /// replaces them.
    /// </summary>
    public const string UncommittedBlocks = "UncommittedBlocks";

    /// <summary>A conditional request's condition (If-Match, If-None-Match) did not hold: the blob changed or exists.</summary>
    public const string ConditionNotMet = "ConditionNotMet";

    /// <summary>
    /// Put Block List named blocks the service no longer has: another upload of the same blob committed first, and
    /// a commit discards every other staged block of the blob. The blob holds the other upload's whole content.
    /// </summary>
    public const string InvalidBlockList = "InvalidBlockList";

    /// <summary>No response: connection refused or reset, DNS failure, timeout, after the retries.</summary>
    public const string Unreachable = "Unreachable";
}

/// <summary>
/// A blob operation failed in the storage service or could not reach it. It names the operation, the container and
/// blob, the HTTP status and the service's error code; it never contains an account key or signature.
/// </summary>
public sealed class BlobStorageException : IOException
{
    public BlobStorageException(string message, string operation, string container, string? blobName, int status,
        string? errorCode, Exception? innerException = null)
        : base(message, innerException)
    {
        Operation = operation;
        Container = container;
        BlobName = blobName;
        Status = status;
        ErrorCode = errorCode;
    }

    /// <summary>The operation: "Put Blob", "Create Blob" (create-only), "Get Blob", "List Blobs", "Create Container", ….</summary>
    public string Operation { get; }

    public string Container { get; }

    /// <summary>The blob the operation was about, or null for container operations.</summary>
    public string? BlobName { get; }

    /// <summary>HTTP status, or 0 when no response came (see <see cref="BlobErrorCodes.Unreachable"/>).</summary>
    public int Status { get; }

    /// <summary>The service's error code (x-ms-error-code), or one of <see cref="BlobErrorCodes"/>'s own.</summary>
    public string? ErrorCode { get; }

    /// <summary>
    /// True when trying the same operation later may succeed: no response, timeouts, throttling and server errors.
    /// The SDK client has already retried these; a caller such as the checkpoint writer can retry the whole write.
    /// </summary>
    public bool IsTransient =>
        Status is 0 or (int)HttpStatusCode.RequestTimeout or (int)HttpStatusCode.TooManyRequests or >= 500;
}
