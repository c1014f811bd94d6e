using System.Net;

namespace Dapo.Cluster.Blobs;

/// <summary>Error codes this project checks for; the service's own codes are passed through as they come.</summary>
public static class BlobErrorCodes
{
    public const string ContainerNotFound = "ContainerNotFound";
    public const string BlobNotFound = "BlobNotFound";
    public const string ContainerAlreadyExists = "ContainerAlreadyExists";

    /// <summary>
    /// Put Block List named blocks the service no longer has: another upload of the same blob committed first, and
    /// a commit discards every other staged block of the blob. The blob holds the other upload's whole content.
    /// </summary>
    public const string InvalidBlockList = "InvalidBlockList";

    /// <summary>No response: connection refused or reset, DNS failure, timeout, after the retries.</summary>
    public const string Unreachable = "Unreachable";

    /// <summary>The content read back does not match the MD5 the service stored for it.</summary>
    public const string Md5Mismatch = "Md5Mismatch";
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

    /// <summary>The operation, as the REST API names it ("Put Blob", "Put Block List", "List Blobs", …).</summary>
    public string Operation { get; }

    public string Container { get; }

    /// <summary>The blob the operation was about, or null for container operations.</summary>
    public string? BlobName { get; }

    /// <summary>HTTP status, or 0 when no response came (see <see cref="BlobErrorCodes.Unreachable"/>).</summary>
    public int Status { get; }

    /// <summary>The x-ms-error-code of the response (or the Code of its XML body), when there was one.</summary>
    public string? ErrorCode { get; }

    /// <summary>
    /// True when trying the same operation later may succeed: no response, timeouts, throttling and server errors.
    /// The store has already retried these; a caller such as the checkpoint writer can retry the whole write.
    /// </summary>
    public bool IsTransient =>
        Status is 0 or (int)HttpStatusCode.RequestTimeout or (int)HttpStatusCode.TooManyRequests or >= 500
        || ErrorCode == BlobErrorCodes.Md5Mismatch;
}
