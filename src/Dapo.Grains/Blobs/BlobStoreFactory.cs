using Azure.Core;
using Azure.Core.Pipeline;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Dapo.Grains.Blobs;

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
        TokenCredential? credential = null) => Create(options, loggerFactory, credential, transport: null);

    /// <summary><see cref="Create(BlobStorageOptions, ILoggerFactory?, TokenCredential?)"/> with the client's HTTP
    /// transport replaced, for tests that answer requests themselves.</summary>
    internal static IBlobStore Create(BlobStorageOptions options, ILoggerFactory? loggerFactory, TokenCredential? credential,
        HttpPipelineTransport? transport)
    {
        var failures = BlobStorageOptionsValidator.Failures(options).ToList();
        if (failures.Count > 0)
            throw new OptionsValidationException(Options.DefaultName, typeof(BlobStorageOptions), failures);
        loggerFactory ??= NullLoggerFactory.Instance;

        IBlobStore store = options.Kind switch
        {
            BlobStoreKind.Local => new LocalDirectoryBlobStore(options.LocalRoot!,
                loggerFactory.CreateLogger<LocalDirectoryBlobStore>()),
            BlobStoreKind.Azure => new AzureBlobStore(
                AzureBlobConnection.CreateServiceClient(options, ClientOptions(options, transport), credential)
                    .GetBlobContainerClient(options.Container),
                options.ToTransferOptions(), loggerFactory.CreateLogger<AzureBlobStore>()),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Kind, "Unknown blob store kind."),
        };
        BlobLog.StoreCreated(loggerFactory.CreateLogger(typeof(BlobStoreFactory)), store.Description);
        return store;
    }

    private static Azure.Storage.Blobs.BlobClientOptions ClientOptions(BlobStorageOptions options, HttpPipelineTransport? transport)
    {
        var clientOptions = options.ToClientOptions();
        if (transport is not null)
            clientOptions.Transport = transport;
        return clientOptions;
    }
}
