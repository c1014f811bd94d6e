using System.Text;
using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Grains.Tests.Infrastructure;

namespace Dapo.Grains.Tests.Cluster;

/// <summary>
/// A run's steps raised (<see cref="RunResources.ExtendedSteps"/>, LearnerGrain.StartAsync): the same run trains on to
/// them, whether it had completed or is still training; any other change of spec is refused and changes nothing.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class RunExtensionTests
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(3);

    private static string Spec(int steps, string dapo = "") => RunResources.SpecJson(GrainRecipes.Tiny(steps, group: 4, batch: 4, dapo));

    /// <summary>A run of <paramref name="spec"/> that has done all its steps (or failed).</summary>
    private static RunInfo Run(string spec, RunStatus status = RunStatus.Completed) =>
        new("r", spec, status, RunResources.StepsOf(spec)!.Value + 1, 0, null, null, 1, "done", "", "", null, null, 0);

    [Fact]
    public void Only_more_steps_with_nothing_else_changed_extend_a_run()
    {
        Assert.Equal(5, RunResources.ExtendedSteps(Run(Spec(3)), Spec(5)));
        Assert.Null(RunResources.ExtendedSteps(Run(Spec(3)), Spec(3)));
        Assert.Null(RunResources.ExtendedSteps(Run(Spec(5)), Spec(3)));
        Assert.Null(RunResources.ExtendedSteps(Run(Spec(3)), Spec(5, "\"Seed\":7")));
        Assert.Null(RunResources.ExtendedSteps(Run(Spec(3)), "not json"));
        Assert.Null(RunResources.ExtendedSteps(Run(Spec(3)), "{\"Steps\":5}"));
        Assert.Null(RunResources.ExtendedSteps(Run(Spec(3), RunStatus.Failed), Spec(5)));
    }

    private static Task<RunInfo> WaitForEndAsync(DapoTestCluster cluster, string run) =>
        cluster.WaitForRunAsync(run, i => i.Status != RunStatus.Running, RunTimeout);

    private static async Task AssertStepsDoneAsync(DapoTestCluster cluster, string run, int steps)
    {
        Assert.Empty(await LedgerAudit.CheckAsync(cluster.Client, run));
        for (var s = 1; s <= steps; s++)
            Assert.Equal(StepPhase.Done, (await cluster.Client.GetGrain<IStepGrain>(GrainKeys.Step(run, s)).GetAsync())!.Phase);
        Assert.Null(await cluster.Client.GetGrain<IStepGrain>(GrainKeys.Step(run, steps + 1)).GetAsync());
    }

    [Fact]
    public async Task A_completed_run_given_more_steps_trains_on_to_them_from_its_last_checkpoint()
    {
        await using var cluster = await DapoTestCluster.StartAsync([SiloRoles.Learner, SiloRoles.Rollout]);
        var learner = cluster.Client.GetGrain<ILearnerGrain>("longer");
        await learner.StartAsync(Spec(2));
        var first = await WaitForEndAsync(cluster, "longer");
        Assert.Equal((RunStatus.Completed, 3, 2), (first.Status, first.Step, first.LatestCheckpoint));

        var extended = await learner.StartAsync(Spec(4));
        Assert.Equal((RunStatus.Running, Spec(4)), (extended.Status, extended.SpecJson));
        var done = await WaitForEndAsync(cluster, "longer");
        Assert.True(done.Status == RunStatus.Completed, $"ended {done.Status}: {done.Error}\n{cluster.LogTail()}");
        Assert.Equal((5, 4, 4), (done.Step, done.PolicyVersion, done.LatestCheckpoint));
        await AssertStepsDoneAsync(cluster, "longer", 4);
        Assert.Contains("resumed from the checkpoint of step 2", cluster.LogTail(400));
        // Every silo that builds the run from now on builds it with its new steps.
        Assert.Equal(Spec(4), Encoding.UTF8.GetString((await cluster.Blobs.GetAsync(RunResources.SpecBlob("longer"), CancellationToken.None))!));

        // Fewer steps, or anything else changed, is another run: refused, nothing changes.
        foreach (var other in new[] { Spec(3), Spec(6, "\"Seed\":7") })
        {
            var refused = await learner.StartAsync(other);
            Assert.Equal((RunStatus.Completed, Spec(4), 5), (refused.Status, refused.SpecJson, refused.Step));
        }
        Assert.Equal(Spec(4), Encoding.UTF8.GetString((await cluster.Blobs.GetAsync(RunResources.SpecBlob("longer"), CancellationToken.None))!));
    }

    [Fact]
    public async Task A_run_given_more_steps_while_it_trains_goes_on_to_them_without_stopping()
    {
        await using var cluster = await DapoTestCluster.StartAsync([SiloRoles.Learner, SiloRoles.Rollout]);
        var learner = cluster.Client.GetGrain<ILearnerGrain>("raised");
        await learner.StartAsync(Spec(2));
        // The learner is warm-starting: its loop runs and writes the state, so the new steps ride on its next write.
        var raised = await learner.StartAsync(Spec(5));
        Assert.Equal((RunStatus.Running, Spec(5)), (raised.Status, raised.SpecJson));
        // Stored at once: a learner started again after a crash now would train to the new steps.
        Assert.Equal(Spec(5), (await cluster.StoredLearnerStateAsync("raised"))!.SpecJson);
        var done = await WaitForEndAsync(cluster, "raised");
        Assert.True(done.Status == RunStatus.Completed, $"ended {done.Status}: {done.Error}\n{cluster.LogTail()}");
        Assert.Equal((6, 5, Spec(5)), (done.Step, done.LatestCheckpoint, done.SpecJson));
        await AssertStepsDoneAsync(cluster, "raised", 5);
        Assert.DoesNotContain("no longer leads", cluster.LogTail(400));
        Assert.DoesNotContain("resumed from the checkpoint", cluster.LogTail(400));
    }
}
