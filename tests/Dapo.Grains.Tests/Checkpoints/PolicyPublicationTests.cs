using Dapo.Grains.Blobs;
using Dapo.Grains.Checkpoints;
using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Grains.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace Dapo.Grains.Tests.Checkpoints;

/// <summary>
/// A learner publishing a policy version that another learner published first (<see cref="LearnerLoop.PublishPolicyAsync"/>):
/// the learner lease decides whose version stands.
/// </summary>
public sealed class PolicyPublicationTests : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly string Lease = LeaseNames.Learner("r");
    private readonly string _directory = Directory.CreateTempSubdirectory("dapo-publish-").FullName;
    private IClusterStore _store = null!;
    private CheckpointStore _checkpoints = null!;

    private static long Now => TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds();

    public async Task InitializeAsync()
    {
        _store = ClusterStores.Create(new ClusterStoreOptions { Kind = "sqlite", SqlitePath = Path.Combine(_directory, "cluster.db") });
        await _store.MigrateAsync(None);
        var blobs = new LocalDirectoryBlobStore(Path.Combine(_directory, "blobs"));
        await blobs.EnsureContainerAsync(None);
        _checkpoints = new CheckpointStore(blobs, "r");
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private Task<PolicyPublication> PublishAsync(LeaseHandle lease, int version, byte[] weights) =>
        LearnerLoop.PublishPolicyAsync(_checkpoints, _store, lease, "r", version, weights, TimeProvider.System,
            NullLogger.Instance, None);

    [Fact]
    public async Task The_lease_holder_publishes_and_a_retry_of_the_same_weights_is_already_published()
    {
        var lease = (await Leases.TryAcquireAsync(_store, Lease, "learner-1", TimeSpan.FromMinutes(1), Now, None))!;
        Assert.Equal(PolicyPublication.Created, await PublishAsync(lease, 5, [1, 2, 3]));
        Assert.Equal(PolicyPublication.AlreadyPublished, await PublishAsync(lease, 5, [1, 2, 3]));
        Assert.Equal([1, 2, 3], await _checkpoints.GetPolicyAsync(5, None));
    }

    [Fact]
    public async Task A_deposed_learner_stops_and_leaves_the_new_learners_version_in_place()
    {
        // learner-1's lease lapsed (its silo stalled); learner-2 took over and published version 5 first.
        var stale = (await Leases.TryAcquireAsync(_store, Lease, "learner-1", TimeSpan.FromSeconds(5), Now - 60_000, None))!;
        var current = (await Leases.TryAcquireAsync(_store, Lease, "learner-2", TimeSpan.FromMinutes(1), Now, None))!;
        Assert.Equal(PolicyPublication.Created, await PublishAsync(current, 5, [2, 2]));

        await Assert.ThrowsAsync<LeaseLostException>(() => PublishAsync(stale, 5, [1, 1]));
        Assert.Equal([2, 2], await _checkpoints.GetPolicyAsync(5, None));
    }

    [Fact]
    public async Task The_lease_holder_replaces_a_version_left_by_a_learner_that_lost_the_lease_before_completing_its_step()
    {
        // learner-1 published version 5 and died before completing step 5; learner-2 resumed from the checkpoint of
        // step 4, trained step 5 again on other groups and publishes other weights.
        var dead = (await Leases.TryAcquireAsync(_store, Lease, "learner-1", TimeSpan.FromSeconds(5), Now - 60_000, None))!;
        Assert.Equal(PolicyPublication.Created, await PublishAsync(dead, 5, [1, 1]));
        var current = (await Leases.TryAcquireAsync(_store, Lease, "learner-2", TimeSpan.FromMinutes(1), Now, None))!;

        Assert.Equal(PolicyPublication.Conflict, await PublishAsync(current, 5, [2, 2]));
        Assert.Equal([2, 2], await _checkpoints.GetPolicyAsync(5, None));
        // And the dead learner, should it come back, can no longer replace it.
        await Assert.ThrowsAsync<LeaseLostException>(() => PublishAsync(dead, 5, [1, 1]));
        Assert.Equal([2, 2], await _checkpoints.GetPolicyAsync(5, None));
    }
}
