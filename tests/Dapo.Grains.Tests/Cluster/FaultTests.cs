using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Grains.Tests.Infrastructure;
using Orleans.TestingHost;

namespace Dapo.Grains.Tests.Cluster;

/// <summary>
/// Real training of a tiny recipe on a cluster whose silos are killed or added while a step samples; every run must
/// complete with a sound ledger (<see cref="LedgerAudit"/>: nothing lost, nothing counted twice) and every step trained
/// on exactly its target of groups.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class FaultTests
{
    private const int Steps = 6, Target = 4;
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(3);
    private static readonly SiloRoles[] TwoLearnersTwoRollouts = [SiloRoles.Learner, SiloRoles.Learner, SiloRoles.Rollout, SiloRoles.Rollout];

    private static async Task StartRunAsync(DapoTestCluster cluster, string run, int steps = Steps, string dapo = "")
    {
        var spec = RunResources.SpecJson(GrainRecipes.Tiny(steps, group: 4, batch: Target, dapo));
        var info = await cluster.Client.GetGrain<ILearnerGrain>(run).StartAsync(spec);
        Assert.Equal((RunStatus.Running, spec), (info.Status, info.SpecJson));
    }

    /// <summary>
    /// Waits until the run samples a step after its first (policy version 1 or later in use, steps left to do). A step
    /// samples for a fraction of a second here, so the trigger polls often.
    /// </summary>
    private static Task<RunInfo> WaitForLaterStepSamplingAsync(DapoTestCluster cluster, string run) =>
        cluster.WaitForRunAsync(run, i => i.Step >= 2 && i.Step < Steps && i.Phase == "sampling", TimeSpan.FromMinutes(2),
            TimeSpan.FromMilliseconds(10));

    private static async Task<RunInfo> WaitForCompletionAsync(DapoTestCluster cluster, string run)
    {
        var info = await cluster.WaitForRunAsync(run, i => i.Status != RunStatus.Running, RunTimeout);
        Assert.True(info.Status == RunStatus.Completed, $"run {run} ended {info.Status}: {info.Error}\n{cluster.LogTail()}");
        return info;
    }

    /// <summary>The audit finds nothing, and every step trained on exactly its target of accepted groups.</summary>
    private static async Task AssertSoundAsync(DapoTestCluster cluster, string run, int steps = Steps)
    {
        Assert.Empty(await LedgerAudit.CheckAsync(cluster.Client, run));
        for (var s = 1; s <= steps; s++)
        {
            var step = cluster.Client.GetGrain<IStepGrain>(GrainKeys.Step(run, s));
            var ledger = (await step.GetAsync())!;
            Assert.Equal(StepPhase.Done, ledger.Phase);
            Assert.Equal(Target, ledger.Accepted);
            var accepted = (await step.ListPromptsAsync()).Count(p => p.Opening == ledger.Opening && p.Status == PromptStatus.Accepted && !p.CarryOut);
            Assert.Equal(Target, accepted);
        }
    }

    [Fact]
    public async Task A_run_completes_when_a_rollout_silo_is_killed_while_a_step_samples()
    {
        await using var cluster = await DapoTestCluster.StartAsync(TwoLearnersTwoRollouts);
        await StartRunAsync(cluster, "rollout-kill");
        var victim = cluster.Cluster.Silos.Last(s => cluster.RolesOf(s) == SiloRoles.Rollout);
        var victimGrain = cluster.Client.GetGrain<IRolloutGrain>(RolloutKeys.Of(victim.SiloAddress, 0));
        // Kill it while it holds leased work of a later step: its groups come back only when their leases lapse.
        await Eventually.WaitAsync(async () => (Run: (await cluster.Client.GetGrain<ILearnerGrain>("rollout-kill").GetAsync())!, Rollout: await victimGrain.GetAsync()),
            x => x.Run.Step >= 2 && x.Run.Step < Steps && x.Run.Phase == "sampling" && x.Rollout.InHand > 0, TimeSpan.FromMinutes(2),
            x => $"run at step {x.Run.Step} {x.Run.Phase}, victim holds {x.Rollout.InHand}", cluster, TimeSpan.FromMilliseconds(10));

        await cluster.Cluster.KillSiloAsync(victim);

        var done = await WaitForCompletionAsync(cluster, "rollout-kill");
        Assert.Equal(1, done.Epoch);  // the learner never moved
        await AssertSoundAsync(cluster, "rollout-kill");
    }

    [Fact]
    public async Task The_learner_comes_back_on_the_other_learner_silo_from_its_checkpoint_when_its_silo_is_killed()
    {
        await using var cluster = await DapoTestCluster.StartAsync(TwoLearnersTwoRollouts);
        await StartRunAsync(cluster, "learner-kill");
        var before = await WaitForLaterStepSamplingAsync(cluster, "learner-kill");
        var victim = cluster.Cluster.Silos.Single(s => s.SiloAddress.ToParsableString() == before.Silo);
        var survivor = cluster.Cluster.Silos.Single(s => cluster.RolesOf(s) == SiloRoles.Learner && s != victim);

        await cluster.Cluster.KillSiloAsync(victim);

        // Nothing but the learner's reminder starts it again: reading the run activates the grain without starting it.
        var resumed = await cluster.WaitForRunAsync("learner-kill", i => i.Epoch > before.Epoch, TimeSpan.FromMinutes(1));
        Assert.Equal(survivor.SiloAddress.ToParsableString(), resumed.Silo);
        var done = await WaitForCompletionAsync(cluster, "learner-kill");
        Assert.Equal(survivor.SiloAddress.ToParsableString(), done.Silo);
        Assert.Equal(Steps, done.LatestCheckpoint);
        await AssertSoundAsync(cluster, "learner-kill");
        // The steps after the kill were opened by the new learner (the epoch each step records is its opener's).
        var last = (await cluster.Client.GetGrain<IStepGrain>(GrainKeys.Step("learner-kill", Steps)).GetAsync())!;
        Assert.Equal(done.Epoch, last.Epoch);
    }

    [Fact]
    public async Task A_rollout_silo_added_while_a_step_samples_takes_work_within_seconds()
    {
        // Enough steps that the run outlasts the newcomer's start: the tiny recipe's steps take 0.1-0.3 s on 2 cores,
        // and a new silo needs over a second before it can read the run registry (8 steps were often over first). Over so
        // many steps the weak tiny policy would now and then reach the generation cap and train on fewer groups than
        // the target (the demo recipe's TrainOnAccepted), which AssertSoundAsync rightly refuses: more rounds here.
        const int steps = 40;
        await using var cluster = await DapoTestCluster.StartAsync([SiloRoles.Learner, SiloRoles.Rollout]);
        await StartRunAsync(cluster, "added", steps, "\"MaxGenerationRounds\":32");
        await cluster.WaitForRunAsync("added", i => i.Step >= 2 && i.Phase == "sampling", TimeSpan.FromMinutes(2), TimeSpan.FromMilliseconds(10));

        var added = await cluster.StartSiloAsync(SiloRoles.Rollout);

        var newcomer = cluster.Client.GetGrain<IRolloutGrain>(RolloutKeys.Of(added.SiloAddress, 0));
        var info = await Eventually.WaitAsync(newcomer.GetAsync, i => i.GroupsSubmitted > 0, TimeSpan.FromSeconds(30),
            i => $"the added silo's rollout grain submitted {i.GroupsSubmitted} groups", cluster);
        Assert.Equal("added", info.RunId);
        Assert.Equal(added.SiloAddress.ToParsableString(), info.Silo);
        var run = (await cluster.Client.GetGrain<ILearnerGrain>("added").GetAsync())!;
        Assert.Equal(RunStatus.Running, run.Status);  // it took work of the running run, not after it

        await WaitForCompletionAsync(cluster, "added");
        await AssertSoundAsync(cluster, "added", steps);
    }
}
