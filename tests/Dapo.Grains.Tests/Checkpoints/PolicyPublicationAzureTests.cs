using Dapo.Torch;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Specialized;
using Dapo.Grains.Checkpoints;
using Dapo.Grains.Tests.Infrastructure;
using Dapo.Testing;

namespace Dapo.Grains.Tests.Checkpoints;

/// <summary>
/// A policy publication that died half-way on Azure: its staged blocks hold the name against create-only puts, so
/// <see cref="CheckpointStore.PublishPolicyAsync"/> answers Conflict and leaves the decision to the learner (which
/// replaces the version when its epoch is current, see LearnerGrain.PublishPolicyAsync).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class PolicyPublicationAzureTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Blocks_left_by_a_dead_publication_are_a_conflict_that_a_replacement_clears()
    {
        var blobs = azurite.CreateStore();
        await blobs.EnsureContainerAsync(None);
        var checkpoints = new CheckpointStore(blobs, "r");
        // A learner staged a block of version 5 and died before committing it.
        await new BlobServiceClient(azurite.ConnectionString).GetBlobContainerClient(blobs.Container)
            .GetBlockBlobClient(checkpoints.PolicyName(5))
            .StageBlockAsync(Convert.ToBase64String(new byte[16]), new MemoryStream(new byte[1000]), cancellationToken: None);

        Assert.Equal(PolicyPublication.Conflict, await checkpoints.PublishPolicyAsync(5, NativeBytes.CopyOf([7, 7, 7]), None));
        Assert.Null(await checkpoints.GetPolicyAsync(5, None));

        await checkpoints.ReplacePolicyAsync(5, NativeBytes.CopyOf([7, 7, 7]), None);
        Assert.Equal([7, 7, 7], (await checkpoints.GetPolicyAsync(5, None))!.ToArray());
        // A retry of the same publication now recognises its own weights.
        Assert.Equal(PolicyPublication.AlreadyPublished, await checkpoints.PublishPolicyAsync(5, NativeBytes.CopyOf([7, 7, 7]), None));
    }
}
