using Azure.Storage.Blobs;
using Dapo.Grains.Blobs;

namespace Dapo.Testing;

/// <summary>
/// One Azurite for the whole test run, shared by every test class in <see cref="AzuriteCollection"/>: mark a class
/// <c>[Collection(AzuriteCollection.Name)]</c> and take an <see cref="AzuriteFixture"/> in its constructor. Give each
/// test its own container (<see cref="NewContainerName"/>) so tests never see each other's blobs. Do not stop this
/// Azurite; a test that needs an outage starts its own <see cref="AzuriteProcess"/>. Its table service runs too, for
/// Orleans clusters on Azure Storage (membership and reminders); the connection string names both endpoints.
/// </summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    private AzuriteProcess? _azurite;
    private int _containers;

    public AzuriteProcess Azurite => _azurite ?? throw new InvalidOperationException("Azurite has not started.");

    /// <summary>SharedKey connection string for Azurite's well-known account on this run's ports (blob and table).</summary>
    public string ConnectionString => Azurite.ConnectionString;

    public Uri BlobEndpoint => Azurite.BlobEndpoint;

    /// <summary>A container name not used before in this run, e.g. "blobs-3-5f2c…".</summary>
    public string NewContainerName(string prefix = "test")
    {
        var name = $"{prefix}-{Interlocked.Increment(ref _containers)}-{Guid.NewGuid():N}";
        return (name.Length > 63 ? name[..63] : name).TrimEnd('-');
    }

    /// <summary>
    /// An <see cref="AzureBlobStore"/> on a new container of this Azurite (the container is not created yet), with the
    /// SDK client's default options unless <paramref name="clientOptions"/> are given.
    /// </summary>
    public AzureBlobStore CreateStore(AzureBlobTransferOptions? transfer = null, BlobClientOptions? clientOptions = null,
        string? container = null) =>
        new(new BlobServiceClient(ConnectionString, clientOptions ?? new BlobClientOptions())
            .GetBlobContainerClient(container ?? NewContainerName()), transfer);

    public async Task InitializeAsync() => _azurite = await AzuriteProcess.StartNewAsync(tables: true);

    public async Task DisposeAsync()
    {
        if (_azurite is not null)
            await _azurite.DisposeAsync();
    }
}
