using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Grains.Tests.Infrastructure;
using Orleans.Runtime;

namespace Dapo.Grains.Tests.Cluster;

/// <summary>
/// Placement by role on one learner-only silo and two rollout-only silos: the run's grains (learner, steps, prompts,
/// registry) only ever activate on the learner silo, and each rollout grain only on the silo its key names.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class PlacementTests : IAsyncLifetime
{
    private DapoTestCluster _cluster = null!;

    public async Task InitializeAsync() =>
        _cluster = await DapoTestCluster.StartAsync([SiloRoles.Learner, SiloRoles.Rollout, SiloRoles.Rollout]);

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task Learner_role_grains_activate_only_on_the_learner_silo_and_rollout_grains_only_on_their_own_silo()
    {
        var grains = _cluster.Client;
        var learnerSilo = _cluster.Cluster.Silos.Single(s => _cluster.RolesOf(s) == SiloRoles.Learner).SiloAddress;
        var rolloutSilos = _cluster.Cluster.Silos.Where(s => _cluster.RolesOf(s) == SiloRoles.Rollout).Select(s => s.SiloAddress).ToList();
        await _cluster.WriteSpecAsync("placed", GrainRecipes.Tiny(steps: 1, group: 2, batch: 2));

        // Enough activations that a placement ignoring roles would put some on the rollout silos.
        for (var i = 0; i < 12; i++)
        {
            Assert.Null(await grains.GetGrain<ILearnerGrain>($"placed-{i}").GetAsync());
            Assert.Null(await grains.GetGrain<IStepGrain>(GrainKeys.Step("placed", i + 1)).GetAsync());
            Assert.Null(await grains.GetGrain<IPromptGrain>(GrainKeys.Prompt("placed", 1, i)).GetAsync());
        }
        Assert.Empty(await grains.GetGrain<IRunRegistryGrain>(IRunRegistryGrain.Key).ListAsync());

        var activations = await grains.GetGrain<IManagementGrain>(0).GetDetailedGrainStatistics(null, null);
        string[] learnerRole = [nameof(LearnerGrain), nameof(StepGrain), nameof(PromptGrain), nameof(RunRegistryGrain)];
        var ours = activations.Where(a => learnerRole.Any(name => a.GrainType.Contains(name, StringComparison.Ordinal))).ToList();
        Assert.Equal(12 * 3 + 1, ours.Count);
        Assert.All(ours, a => Assert.Equal(learnerSilo, a.SiloAddress));

        // Each rollout silo started its rollout grain (RolloutWorkers 1), on itself.
        var rollouts = activations.Where(a => a.GrainType.Contains(nameof(RolloutGrain), StringComparison.Ordinal)).ToList();
        Assert.Equal(rolloutSilos.Count, rollouts.Count);
        foreach (var silo in rolloutSilos)
        {
            var key = RolloutKeys.Of(silo, 0);
            Assert.Contains(rollouts, a => a.SiloAddress.Equals(silo) && a.GrainId.Key.ToString() == key);
            var info = await grains.GetGrain<IRolloutGrain>(key).GetAsync();
            Assert.Equal(key, info.Key);
            Assert.Equal(silo.ToParsableString(), info.Silo);
        }

        // A rollout grain of the learner silo, or of a silo that is not in the cluster, is refused, not placed elsewhere.
        await Assert.ThrowsAnyAsync<Exception>(() => grains.GetGrain<IRolloutGrain>(RolloutKeys.Of(learnerSilo, 0)).GetAsync());
        var stranger = SiloAddress.New(System.Net.IPAddress.Loopback, 1, 1);
        await Assert.ThrowsAnyAsync<Exception>(() => grains.GetGrain<IRolloutGrain>(RolloutKeys.Of(stranger, 0)).GetAsync());
        var after = await grains.GetGrain<IManagementGrain>(0).GetDetailedGrainStatistics(null, null);
        Assert.Equal(rolloutSilos.Count, after.Count(a => a.GrainType.Contains(nameof(RolloutGrain), StringComparison.Ordinal)));
    }
}
