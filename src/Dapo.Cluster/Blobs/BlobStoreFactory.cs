extern alias AzureIdentity;

using Azure.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Dapo.Cluster.Blobs;

/// <summary>Makes the <see cref="IBlobStore"/> that <see cref="BlobStorageOptions"/> describe.</summary>
public static class BlobStoreFactory
{
    /// <summary>
    /// Validates <paramref name="options"/> (throwing <see cref="OptionsValidationException"/> with every problem) and
    /// creates the store. It does not touch the storage: call <see cref="IBlobStore.EnsureContainerAsync"/> next.
    /// </summary>
    /// <param name="credential">Token source for <see cref="BlobCredentialMode.DefaultAzureCredential"/>; defaults to
    /// a new Azure.Identity DefaultAzureCredential.</param>
    public static IBlobStore Create(BlobStorageOptions options, ILoggerFactory? loggerFactory = null,
        TokenCredential? credential = null)
    {
        var failures = BlobStorageOptionsValidator.Failures(options).ToList();
        if (failures.Count > 0)
            throw new OptionsValidationException(Options.DefaultName, typeof(BlobStorageOptions), failures);
        loggerFactory ??= NullLoggerFactory.Instance;

        IBlobStore store = options.Kind switch
        {
            BlobStoreKind.Local => new LocalDirectoryBlobStore(options.LocalRoot!,
                loggerFactory.CreateLogger<LocalDirectoryBlobStore>()),
            BlobStoreKind.Azure when options.Credential == BlobCredentialMode.SharedKey => new AzureBlobStore(
                BlobConnectionString.Parse(options.ConnectionString!), options.Container, options.ToClientOptions(),
                loggerFactory.CreateLogger<AzureBlobStore>()),
            BlobStoreKind.Azure => new AzureBlobStore(
                BlobConnectionString.Parse(options.ConnectionString!).BlobEndpoint,
                credential ?? CreateDefaultAzureCredential(), options.Container, options.ToClientOptions(),
                loggerFactory.CreateLogger<AzureBlobStore>()),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Kind, "Unknown blob store kind."),
        };
        BlobLog.StoreCreated(loggerFactory.CreateLogger(typeof(BlobStoreFactory)), store.Description);
        return store;
    }

    /// <summary>Azure.Identity's DefaultAzureCredential (environment, workload identity, managed identity, Azure CLI, …).</summary>
    public static TokenCredential CreateDefaultAzureCredential() => new AzureIdentity::Azure.Identity.DefaultAzureCredential();
}
