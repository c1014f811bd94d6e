using Azure.Storage;

namespace Dapo.Grains.Blobs;

/// <summary>
/// Sizes of <see cref="AzureBlobStore"/>'s transfers, handed to the SDK as <see cref="StorageTransferOptions"/>, and
/// of its listing pages. Retries and timeouts are not here: they belong to the client (<c>BlobClientOptions.Retry</c>).
/// </summary>
public sealed record AzureBlobTransferOptions
{
    public const int MiB = 1 << 20;

    /// <summary>The defaults, which <see cref="BlobStorageOptions"/> starts from.</summary>
    public static AzureBlobTransferOptions Default { get; } = new();

    /// <summary>Content up to this size goes in one request (Put Blob); larger content goes in blocks. Downloads
    /// ask for this much first.</summary>
    public int InitialTransferSize { get; init; } = 8 * MiB;

    /// <summary>
    /// Size of each block of an upload and each range of a download; 8 MiB blocks allow blobs of 390 GiB. (4 MiB
    /// ranges read at a third of the speed from Azurite here, whose cost is per request.)
    /// </summary>
    public int MaximumTransferSize { get; init; } = 8 * MiB;

    /// <summary>Blocks or ranges in flight at once.</summary>
    public int MaximumConcurrency { get; init; } = 4;

    /// <summary>Blobs per List Blobs request (the service caps it at 5000).</summary>
    public int ListPageSize { get; init; } = 5000;

    /// <summary>
    /// About the most of a stream an upload holds in memory at once: the first request's worth while the SDK decides
    /// between one request and blocks, then one buffer per block in flight.
    /// </summary>
    public long MaxBufferedBytes => Math.Max(InitialTransferSize, (long)MaximumConcurrency * MaximumTransferSize);

    /// <summary>The SDK's form of these sizes.</summary>
    public StorageTransferOptions ToStorageTransferOptions() => new()
    {
        InitialTransferSize = InitialTransferSize,
        MaximumTransferSize = MaximumTransferSize,
        MaximumConcurrency = MaximumConcurrency,
    };

    /// <summary>Null when <paramref name="options"/> are usable, else what is wrong with them.</summary>
    internal static string? Problem(AzureBlobTransferOptions options) =>
        options.InitialTransferSize < 1 || options.MaximumTransferSize < 1 || options.MaximumConcurrency < 1
            ? "InitialTransferSize, MaximumTransferSize and MaximumConcurrency must be positive."
            : options.ListPageSize is < 1 or > 5000
                ? "ListPageSize must be between 1 and 5000."
                : null;
}
