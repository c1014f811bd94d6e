using Dapo.Torch;
using Dapo.Grains.Checkpoints;
using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Grains.Tests.Infrastructure;

namespace Dapo.Grains.Tests.Cluster;

/// <summary>
/// The learner's rule for a policy version it finds published with other weights (LearnerGrain.PublishPolicyAsync
/// over <see cref="CheckpointStore.PublishPolicyAsync"/>): a learner whose epoch is still the stored one replaces it,
/// since only a learner deposed before completing that step can have left it and no open step refers to it.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class PolicyVersionTests
{
    [Fact]
    public async Task The_current_learner_replaces_a_version_left_by_a_learner_deposed_before_completing_its_step()
    {
        await using var cluster = await DapoTestCluster.StartAsync([SiloRoles.Learner, SiloRoles.Rollout]);
        // What a deposed learner leaves: version 2 published, step 2 never completed, nothing of it checkpointed.
        var orphan = Enumerable.Repeat((byte)0xAB, 100).ToArray();
        var checkpoints = new CheckpointStore(cluster.Blobs, "orphan");
        Assert.Equal(PolicyPublication.Created, await checkpoints.PublishPolicyAsync(2, NativeBytes.CopyOf(orphan), CancellationToken.None));

        var spec = RunResources.SpecJson(GrainRecipes.Tiny(steps: 3, group: 4, batch: 4));
        await cluster.Client.GetGrain<ILearnerGrain>("orphan").StartAsync(spec);
        var done = await cluster.WaitForRunAsync("orphan", i => i.Status != RunStatus.Running, TimeSpan.FromMinutes(3));

        // Step 3 sampled with version 2: the run could only complete on the learner's own weights.
        Assert.Equal(RunStatus.Completed, done.Status);
        var version2 = (await checkpoints.GetPolicyAsync(2, CancellationToken.None))!.ToArray();
        var version3 = (await checkpoints.GetPolicyAsync(3, CancellationToken.None))!.ToArray();
        Assert.NotEqual(orphan, version2);
        Assert.Equal(version3.Length, version2.Length);
        Assert.Contains("replaces it with its own weights", cluster.LogTail(200));
        Assert.Empty(await LedgerAudit.CheckAsync(cluster.Client, "orphan"));
    }
}
