using Azure.Core;
using Azure.Storage.Blobs;

namespace Dapo.Grains.Blobs;

/// <summary>Where blobs live.</summary>
public enum BlobStoreKind
{
    /// <summary>A directory on this machine (<see cref="LocalDirectoryBlobStore"/>): the embedded default.</summary>
    Local,

    /// <summary>Azure Blob Storage or Azurite (<see cref="AzureBlobStore"/>): the cluster.</summary>
    Azure,
}

/// <summary>How <see cref="BlobStoreKind.Azure"/> authorizes its requests.</summary>
public enum BlobCredentialMode
{
    /// <summary>
    /// The credential in <see cref="BlobStorageOptions.ConnectionString"/> authorizes each request: its account key
    /// (SharedKey) or its shared access signature (SAS).
    /// </summary>
    SharedKey,

    /// <summary>
    /// Bearer tokens from Azure.Identity's DefaultAzureCredential (managed identity, workload identity, Azure CLI, …);
    /// the connection string then only locates the service (BlobEndpoint=https://…, no key, no SAS).
    /// </summary>
    DefaultAzureCredential,
}

/// <summary>
/// Blob storage settings, bound from the configuration section <see cref="SectionName"/> and checked at start-up by
/// <see cref="BlobStorageOptionsValidator"/>. Log them only through <see cref="ToString"/>, which redacts the key.
/// </summary>
public sealed class BlobStorageOptions
{
    public const string SectionName = "Blobs";

    public BlobStoreKind Kind { get; set; } = BlobStoreKind.Local;

    /// <summary>Directory of the local store (Kind=Local); it plays the container's part, <see cref="Container"/> is not used.</summary>
    public string? LocalRoot { get; set; }

    /// <summary>
    /// Azure Storage connection string (Kind=Azure), read by Azure.Storage.Blobs: account key, SAS or
    /// UseDevelopmentStorage=true; see <see cref="AzureBlobConnection"/> for the forms.
    /// </summary>
    public string? ConnectionString { get; set; }

    /// <summary>The container (Kind=Azure): 3-63 lowercase letters, digits and single hyphens.</summary>
    public string Container { get; set; } = "dapo";

    public BlobCredentialMode Credential { get; set; } = BlobCredentialMode.SharedKey;

    /// <summary>Retries after the first try of each request (Kind=Azure), with exponential backoff (the SDK's retry policy).</summary>
    public int MaxRetries { get; set; } = 5;

    /// <summary>Backoff before the first retry; it doubles each retry up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(0.5);

    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Time limit of one try (sending the request and reading the response).</summary>
    public TimeSpan NetworkTimeout { get; set; } = TimeSpan.FromSeconds(100);

    /// <summary>Content up to this size goes up in one request; larger content in blocks of <see cref="BlockSizeBytes"/>
    /// (the SDK's InitialTransferSize).</summary>
    public int SingleUploadLimitBytes { get; set; } = AzureBlobTransferOptions.Default.InitialTransferSize;

    /// <summary>Size of each block of an upload and each range of a download (the SDK's MaximumTransferSize).</summary>
    public int BlockSizeBytes { get; set; } = AzureBlobTransferOptions.Default.MaximumTransferSize;

    /// <summary>Blocks or ranges in flight at once (the SDK's MaximumConcurrency). An upload from a stream holds
    /// about this many blocks in memory.</summary>
    public int MaxConcurrency { get; set; } = AzureBlobTransferOptions.Default.MaximumConcurrency;

    /// <summary>Blobs per List Blobs request (at most 5000).</summary>
    public int ListPageSize { get; set; } = AzureBlobTransferOptions.Default.ListPageSize;

    /// <summary>The settings with the connection string redacted: safe to log.</summary>
    public override string ToString() => Kind == BlobStoreKind.Local
        ? $"Kind=Local, LocalRoot={LocalRoot}"
        : $"Kind=Azure, Container={Container}, Credential={Credential}, ConnectionString={ConnectionStrings.Redact(ConnectionString)}, " +
          $"MaxRetries={MaxRetries}, RetryDelay={RetryDelay}, MaxRetryDelay={MaxRetryDelay}, NetworkTimeout={NetworkTimeout}, " +
          $"SingleUploadLimitBytes={SingleUploadLimitBytes}, BlockSizeBytes={BlockSizeBytes}, MaxConcurrency={MaxConcurrency}";

    /// <summary>
    /// The REST API version the client speaks: the newest that Azurite 3.37 (what scripts/setup.sh installs) serves,
    /// so that a stock Azurite takes it; Azure serves it too. The SDK's own default is newer.
    /// </summary>
    public const BlobClientOptions.ServiceVersion ServiceVersion = BlobClientOptions.ServiceVersion.V2026_06_06;

    /// <summary>
    /// The SDK client's options: <see cref="ServiceVersion"/>, and its retry policy (exponential backoff with jitter)
    /// and timeout from these settings.
    /// </summary>
    public BlobClientOptions ToClientOptions()
    {
        var options = new BlobClientOptions(ServiceVersion);
        options.Retry.Mode = RetryMode.Exponential;
        options.Retry.MaxRetries = MaxRetries;
        options.Retry.Delay = RetryDelay;
        options.Retry.MaxDelay = MaxRetryDelay;
        options.Retry.NetworkTimeout = NetworkTimeout;
        options.Diagnostics.ApplicationId = "dapo";
        return options;
    }

    /// <summary>The transfer and listing sizes of <see cref="AzureBlobStore"/>.</summary>
    public AzureBlobTransferOptions ToTransferOptions() => new()
    {
        InitialTransferSize = SingleUploadLimitBytes,
        MaximumTransferSize = BlockSizeBytes,
        MaximumConcurrency = MaxConcurrency,
        ListPageSize = ListPageSize,
    };
}
