using Microsoft.Extensions.Logging;

namespace Dapo.Grains.Blobs;

/// <summary>Structured log events of the blob stores (event ids 4100-4199).</summary>
internal static partial class BlobLog
{
    [LoggerMessage(EventId = 4100, Level = LogLevel.Information, Message = "Blob store: {Description}")]
    public static partial void StoreCreated(ILogger logger, string description);

    [LoggerMessage(EventId = 4101, Level = LogLevel.Debug, Message = "Container {Container} ensured at {Description}")]
    public static partial void ContainerEnsured(ILogger logger, string container, string description);

    [LoggerMessage(EventId = 4102, Level = LogLevel.Warning,
        Message = "{Operation} of blob {BlobName} in {Container} failed: status {Status}, code {ErrorCode}")]
    public static partial void OperationFailed(ILogger logger, Exception exception, string operation, string container,
        string? blobName, int status, string? errorCode);

    [LoggerMessage(EventId = 4103, Level = LogLevel.Debug, Message = "Put blob {BlobName}: {Bytes} bytes")]
    public static partial void Uploaded(ILogger logger, string blobName, long bytes);

    [LoggerMessage(EventId = 4104, Level = LogLevel.Debug,
        Message = "Create-only put of blob {BlobName} in {Container} found it written already; it is left as it is")]
    public static partial void CreateLost(ILogger logger, string blobName, string container);
}
