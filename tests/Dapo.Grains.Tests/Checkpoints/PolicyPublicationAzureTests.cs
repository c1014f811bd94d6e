using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Specialized;
using Dapo.Grains.Blobs;
using Dapo.Grains.Checkpoints;
using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Grains.Store;
using Dapo.Grains.Tests.Infrastructure;
using Dapo.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Dapo.Grains.Tests.Checkpoints;

/// <summary>A policy publication that died half-way on Azure: its staged blocks hold the name against create-only puts.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class PolicyPublicationAzureTests(AzuriteFixture azurite) : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;
    private readonly string _directory = Directory.CreateTempSubdirectory("dapo-publish-").FullName;
    private IClusterStore _store = null!;

    public async Task InitializeAsync()
    {
        _store = ClusterStores.Create(new ClusterStoreOptions { Kind = "sqlite", SqlitePath = Path.Combine(_directory, "cluster.db") });
        await _store.MigrateAsync(None);
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task The_lease_holder_replaces_the_blocks_a_dead_learners_publication_left_behind()
    {
        var blobs = azurite.CreateStore();
        await blobs.EnsureContainerAsync(None);
        var checkpoints = new CheckpointStore(blobs, "r");
        // A learner staged a block of version 5 and died before committing it.
        await new BlobServiceClient(azurite.ConnectionString).GetBlobContainerClient(blobs.Container)
            .GetBlockBlobClient(checkpoints.PolicyName(5))
            .StageBlockAsync(Convert.ToBase64String(new byte[16]), new MemoryStream(new byte[1000]), cancellationToken: None);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var lease = (await Leases.TryAcquireAsync(_store, LeaseNames.Learner("r"), "learner-2", TimeSpan.FromMinutes(1), now, None))!;

        var outcome = await LearnerLoop.PublishPolicyAsync(checkpoints, _store, lease, "r", 5, [7, 7, 7], TimeProvider.System,
            NullLogger.Instance, None);

        Assert.Equal(PolicyPublication.Conflict, outcome);
        Assert.Equal([7, 7, 7], await checkpoints.GetPolicyAsync(5, None));
    }
}
