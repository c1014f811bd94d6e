using Azure.Core;

namespace Dapo.Cluster.Blobs;

/// <summary>
/// Settings of <see cref="AzureBlobStore"/>'s HTTP pipeline (Azure.Core's retries, timeouts, transport) and its
/// upload and listing sizes.
/// </summary>
public sealed class AzureBlobClientOptions : ClientOptions
{
    /// <summary>The REST API version sent as x-ms-version; 2017-11-09 or later is needed for token auth.</summary>
    public const string ServiceVersion = "2021-08-06";

    public const int MiB = 1 << 20;

    public AzureBlobClientOptions()
    {
        // Exponential backoff with jitter: 0.5 s, 1 s, 2 s, 4 s, 8 s (capped at 10 s), about 15 s of outage ridden out.
        Retry.Mode = RetryMode.Exponential;
        Retry.MaxRetries = 5;
        Retry.Delay = TimeSpan.FromSeconds(0.5);
        Retry.MaxDelay = TimeSpan.FromSeconds(10);
        Retry.NetworkTimeout = TimeSpan.FromSeconds(100);
        Diagnostics.ApplicationId = "dapo";
    }

    /// <summary>Content up to this size goes in one Put Blob; larger content in blocks (Put Block, Put Block List).</summary>
    public int SingleUploadLimitBytes { get; set; } = 4 * MiB;

    /// <summary>Size of each Put Block (the last one may be smaller). 4 MiB blocks allow blobs of up to 195 GiB.</summary>
    public int BlockSizeBytes { get; set; } = 4 * MiB;

    /// <summary>maxresults of each List Blobs page (the service caps it at 5000).</summary>
    public int ListPageSize { get; set; } = 5000;
}
