using Azure.Storage.Blobs;
using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Grains.Tests.Infrastructure;
using Dapo.Testing;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.Storage;
using Orleans.TestingHost;

namespace Dapo.Grains.Tests.Storage;

/// <summary>
/// The grain storage contract on Orleans' Azure blob grain storage against Azurite, configured as a cluster silo
/// configures it (provider <see cref="GrainStorage.Name"/>, container "{Blobs:Container}-grains") and taken from a
/// running silo, so the provider is initialised by the silo's lifecycle as in production.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class AzureBlobGrainStorageTests(AzuriteFixture azurite) : GrainStorageContractTests
{
    private InProcessTestCluster? _silo;

    protected override async Task<IGrainStorage> CreateStorageAsync()
    {
        var container = $"{azurite.NewContainerName("dapo")}-grains";
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((_, silo) => silo.AddAzureBlobGrainState(new BlobServiceClient(azurite.ConnectionString), container));
        _silo = builder.Build();
        await _silo.DeployAsync();
        return _silo.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>(GrainStorage.Name);
    }

    public override async Task DisposeAsync()
    {
        if (_silo is not null) await _silo.DisposeAsync();
    }
}
