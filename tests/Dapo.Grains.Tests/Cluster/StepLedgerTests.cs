using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Grains.Tests.Infrastructure;

namespace Dapo.Grains.Tests.Cluster;

/// <summary>Two learner-role silos (no rollout grains): the tests are the rollout workers.</summary>
public sealed class LearnerSilosFixture : IAsyncLifetime
{
    public DapoTestCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync() => Cluster = await DapoTestCluster.StartAsync([SiloRoles.Learner, SiloRoles.Learner]);

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

/// <summary>
/// The step ledger of dynamic sampling, driven by hand: the test opens a step as the learner does, leases its work
/// as a rollout grain does and submits crafted groups to the prompt grains (informative: one response right, one
/// wrong; filtered: both right), so it decides which groups count.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class StepLedgerTests(LearnerSilosFixture fixture) : IClassFixture<LearnerSilosFixture>
{
    private static readonly TimeSpan Visibility = TimeSpan.FromMinutes(1);
    private static readonly bool[] Informative = [true, false];
    private static readonly bool[] Uninformative = [true, true];
    private IGrainFactory Grains => fixture.Cluster.Client;

    /// <summary>Writes a run of G = 2 and <paramref name="target"/> groups a step, and opens its step 1 at policy version 0.</summary>
    private async Task<(string Run, IStepGrain Step, StepLedger Opened)> OpenRunAsync(int target, string dapo, long epoch = 1)
    {
        var run = $"ledger-{Guid.NewGuid():N}"[..20];
        var resources = await fixture.Cluster.WriteSpecAsync(run, GrainRecipes.Tiny(steps: 2, group: 2, batch: target, dapo));
        var step = Grains.GetGrain<IStepGrain>(GrainKeys.Step(run, 1));
        var opened = await step.OpenAsync(new StepOpening(epoch, 0, resources.InitialCursor.ToJson(), []));
        return (run, step, opened);
    }

    private async Task<SubmitOutcome> SubmitAsync(WorkItem work, bool[] correct, int? onlySlot = null)
    {
        var slots = correct.Select((right, slot) => new SlotResult(slot, [10 + slot, 11], [-0.5f, -0.25f], right ? "4" : "5",
            right ? 1 : -1, 0, right, false, "test-worker")).Where(s => onlySlot is null || s.Slot == onlySlot).ToList();
        return await Grains.GetGrain<IPromptGrain>(work.PromptKey).SubmitAsync(work, slots, "test-worker");
    }

    [Fact]
    public async Task A_step_refills_after_filtered_groups_and_stops_when_the_target_is_met()
    {
        var (_, step, opened) = await OpenRunAsync(target: 2, """ "OverSamplingFactor":1.0,"MaxGenerationRounds":2 """);
        Assert.Equal((StepPhase.Sampling, 2, 2, 2, 1), (opened.Phase, opened.Target, opened.Draws, opened.InFlight, opened.GenerationRounds));

        var first = await step.LeaseAsync("w", 10, Visibility);
        Assert.Equal(2, first.Count);
        Assert.Empty(await step.LeaseAsync("other", 10, Visibility));  // both leased to w
        Assert.Equal(SubmitOutcome.Accepted, await SubmitAsync(first[0], Informative));
        Assert.Equal(SubmitOutcome.Filtered, await SubmitAsync(first[1], Uninformative));

        // One filtered group with none in flight: one refill (deficit 1 x factor 1), in the second generation round.
        var afterFilter = (await step.GetAsync())!;
        Assert.Equal((1, 1, 3, 1, 2, null), (afterFilter.Accepted, afterFilter.Filtered, afterFilter.Draws, afterFilter.InFlight,
            afterFilter.GenerationRounds, afterFilter.StopReason));
        var refill = Assert.Single(await step.LeaseAsync("w", 10, Visibility));
        Assert.DoesNotContain(refill.PromptId, first.Select(w => w.PromptId));
        Assert.Equal(SubmitOutcome.Accepted, await SubmitAsync(refill, Informative));

        var ledger = await step.WaitForSamplingEndAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(("TargetMet", 2, 1, 0), (ledger.StopReason, ledger.Accepted, ledger.Filtered, ledger.InFlight));
        Assert.Empty(await step.LeaseAsync("w", 10, Visibility));
        var closed = await step.CloseAsync(1);
        Assert.Null(closed.Failure);
        Assert.Equal(StepPhase.Training, closed.Ledger.Phase);
        Assert.Equal([first[0].PromptId, refill.PromptId], closed.Accepted.Select(p => p.PromptId));
        Assert.Equal(3, closed.Judged.Count);
        Assert.Empty(closed.CarryOut);
        var prompts = await step.ListPromptsAsync();
        Assert.Equal([PromptStatus.Accepted, PromptStatus.Filtered, PromptStatus.Accepted], prompts.Select(p => p.Status));
        Assert.StartsWith("filtered: all 2 responses correct", prompts[1].Reason);
        await step.CompleteAsync(1);
        Assert.Equal(StepPhase.Done, (await step.GetAsync())!.Phase);
    }

    [Fact]
    public async Task An_idle_worker_is_woken_by_a_refill_a_release_or_a_lapsed_lease_and_told_at_once_when_sampling_ended()
    {
        // Far longer than any wake-up here takes: a call that returns before it was woken, not timed out.
        var wait = TimeSpan.FromSeconds(60);
        var (_, step, _) = await OpenRunAsync(target: 2, """ "OverSamplingFactor":1.0,"MaxGenerationRounds":3 """);
        Assert.True(await step.WaitForWorkAsync("other", wait).WaitAsync(TimeSpan.FromSeconds(10)));  // drawn: leasable now
        var first = await step.LeaseAsync("w", 10, TimeSpan.FromSeconds(3));

        // Everything leased to w: "other" waits until w's leases lapse (3 s), not for its whole wait.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(await step.WaitForWorkAsync("other", wait));
        Assert.InRange(clock.Elapsed.TotalSeconds, 1.5, 30);
        var taken = await step.LeaseAsync("other", 10, Visibility);
        Assert.Equal(first.Select(w => w.PromptId), taken.Select(w => w.PromptId));

        // Given back: a waiting worker is woken.
        var woken = step.WaitForWorkAsync("w", wait);
        await Task.Delay(200);
        Assert.False(woken.IsCompleted);
        Assert.Equal(2, await step.ReleaseAsync("other"));
        Assert.True(await woken.WaitAsync(TimeSpan.FromSeconds(10)));

        // A filtered group draws a refill: a waiting worker is woken for it.
        first = await step.LeaseAsync("w", 10, Visibility);
        woken = step.WaitForWorkAsync("other", wait);
        Assert.Equal(SubmitOutcome.Filtered, await SubmitAsync(first[0], Uninformative));
        Assert.True(await woken.WaitAsync(TimeSpan.FromSeconds(10)));
        var refill = Assert.Single(await step.LeaseAsync("other", 10, Visibility));

        // Sampling ends (the target is met): a waiting worker is told so, and asking again answers at once.
        woken = step.WaitForWorkAsync("third", wait);
        Assert.Equal(SubmitOutcome.Accepted, await SubmitAsync(first[1], Informative));
        Assert.Equal(SubmitOutcome.Accepted, await SubmitAsync(refill, Informative));
        Assert.False(await woken.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.False(await step.WaitForWorkAsync("third", wait).WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_worker_waiting_on_a_step_not_yet_opened_or_abandoned_is_woken_by_its_opening()
    {
        var wait = TimeSpan.FromSeconds(60);
        var run = $"opening-{Guid.NewGuid():N}"[..20];
        var resources = await fixture.Cluster.WriteSpecAsync(run, GrainRecipes.Tiny(steps: 2, group: 2, batch: 2, """ "OverSamplingFactor":1.0 """));
        var step = Grains.GetGrain<IStepGrain>(GrainKeys.Step(run, 1));

        // A restarted learner announces its step, then opens it: the opening is what wakes the worker.
        var woken = step.WaitForWorkAsync("w", wait);
        await Task.Delay(200);
        Assert.False(woken.IsCompleted);
        await step.OpenAsync(new StepOpening(1, 0, resources.InitialCursor.ToJson(), []));
        Assert.True(await woken.WaitAsync(TimeSpan.FromSeconds(10)));

        // Abandoned by a learner that restarts from an earlier checkpoint, then opened again by it.
        await step.AbandonAsync(2, "abandoned: the learner restarted");
        woken = step.WaitForWorkAsync("w", wait);
        await Task.Delay(200);
        Assert.False(woken.IsCompleted);
        await step.OpenAsync(new StepOpening(2, 0, resources.InitialCursor.ToJson(), []));
        Assert.True(await woken.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(2, (await step.LeaseAsync("w", 10, Visibility)).Count);
    }

    [Fact]
    public async Task The_registry_wakes_a_waiting_worker_when_a_run_moves_to_its_next_step()
    {
        var registry = Grains.GetGrain<IRunRegistryGrain>(IRunRegistryGrain.Key);
        var run = $"registry-{Guid.NewGuid():N}"[..20];
        await registry.AnnounceAsync(new ActiveRun(run, RunStatus.Running, 1, 0, 1));
        var known = await registry.ListAsync();

        var changed = registry.WaitForChangeAsync(known, TimeSpan.FromSeconds(60));
        await Task.Delay(200);
        Assert.False(changed.IsCompleted);
        await registry.AnnounceAsync(new ActiveRun(run, RunStatus.Running, 2, 1, 1));
        var runs = await changed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(2, runs.Single(r => r.RunId == run).Step);

        // What the caller knows is already out of date: the answer comes at once.
        Assert.Equal(2, (await registry.WaitForChangeAsync(known, TimeSpan.FromSeconds(60)).WaitAsync(TimeSpan.FromSeconds(10))).Single(r => r.RunId == run).Step);
    }

    [Theory]
    [InlineData("TrainOnAccepted", "CapReachedTrainOnAccepted")]
    [InlineData("Fail", "CapReachedFail")]
    public async Task At_the_generation_cap_a_step_trains_on_what_it_accepted_or_fails(string atCap, string stopReason)
    {
        // One round of 2 draws for a target of 2: a filtered group leaves the step short with no budget to refill.
        var (_, step, _) = await OpenRunAsync(target: 2, $$""" "OverSamplingFactor":1.0,"MaxGenerationRounds":1,"AtGenerationCap":"{{atCap}}" """);
        var work = await step.LeaseAsync("w", 10, Visibility);
        Assert.Equal(SubmitOutcome.Accepted, await SubmitAsync(work[0], Informative));
        Assert.Equal(SubmitOutcome.Filtered, await SubmitAsync(work[1], Uninformative));

        var ledger = await step.WaitForSamplingEndAsync(TimeSpan.FromSeconds(30));
        Assert.Equal((stopReason, 1, 1, 2, 1), (ledger.StopReason, ledger.Accepted, ledger.Filtered, ledger.Draws, ledger.GenerationRounds));
        Assert.Empty(await step.LeaseAsync("w", 10, Visibility));
        var closed = await step.CloseAsync(1);
        if (atCap == "Fail")
        {
            Assert.Contains("cap of 1 generation round", closed.Failure);
            Assert.Contains("1 of 2 informative groups", closed.Failure);
        }
        else
        {
            Assert.Null(closed.Failure);
            Assert.Equal([work[0].PromptId], closed.Accepted.Select(p => p.PromptId));
        }
    }

    [Fact]
    public async Task Informative_groups_after_the_target_are_discarded_as_surplus_and_late_filtered_ones_are_stale()
    {
        // Target 1 with factor 3: three groups drawn for one.
        var (run, step, _) = await OpenRunAsync(target: 1, """ "MiniBatchesPerStep":1,"OverSamplingFactor":3.0,"MaxGenerationRounds":1,"SurplusGroups":"Discard" """);
        var work = await step.LeaseAsync("w", 10, Visibility);
        Assert.Equal(3, work.Count);
        Assert.Equal(SubmitOutcome.Accepted, await SubmitAsync(work[0], Informative));
        Assert.Equal("TargetMet", (await step.GetAsync())!.StopReason);

        Assert.Equal(SubmitOutcome.Surplus, await SubmitAsync(work[1], Informative));
        Assert.Equal(SubmitOutcome.Stale, await SubmitAsync(work[2], Uninformative));
        var ledger = (await step.GetAsync())!;
        Assert.Equal((1, 0, 1, 1), (ledger.Accepted, ledger.Filtered, ledger.Abandoned, ledger.InFlight));

        var closed = await step.CloseAsync(1);
        Assert.Equal([work[0].PromptId], closed.Accepted.Select(p => p.PromptId));
        Assert.Empty(closed.CarryOut);
        Assert.Equal(2, closed.Ledger.Abandoned);  // the surplus group and the one still sampling at the close
        // The step's ledger records the outcome (surplus, discarded); the group keeps its own verdict (informative).
        var entry = (await step.ListPromptsAsync()).Single(p => p.PromptId == work[1].PromptId);
        Assert.Equal(PromptStatus.Abandoned, entry.Status);
        Assert.StartsWith("surplus:", entry.Reason);
        var surplus = (await Grains.GetGrain<IPromptGrain>(GrainKeys.Prompt(run, 1, work[1].PromptId)).GetAsync())!;
        Assert.Equal(PromptStatus.Accepted, surplus.Status);
    }

    [Fact]
    public async Task A_carried_surplus_group_counts_toward_the_next_step()
    {
        var (run, step, _) = await OpenRunAsync(target: 1, """ "MiniBatchesPerStep":1,"OverSamplingFactor":2.0,"MaxGenerationRounds":1,"SurplusGroups":"Carry" """);
        var work = await step.LeaseAsync("w", 10, Visibility);
        Assert.Equal(SubmitOutcome.Accepted, await SubmitAsync(work[0], Informative));
        Assert.Equal(SubmitOutcome.Surplus, await SubmitAsync(work[1], Informative));
        var closed = await step.CloseAsync(1);
        Assert.Equal([work[0].PromptId], closed.Accepted.Select(p => p.PromptId));
        var carried = Assert.Single(closed.CarryOut);
        Assert.Equal((1, work[1].PromptId), (carried.Step, carried.PromptId));
        Assert.Equal(PromptStatus.Accepted, (await Grains.GetGrain<IPromptGrain>(work[1].PromptKey).GetAsync())!.Status);
        await step.CompleteAsync(1);

        // Step 2 trains at policy version 1 on the group sampled by version 0 (staleness 1 <= MaxCarryStaleness 1).
        var next = Grains.GetGrain<IStepGrain>(GrainKeys.Step(run, 2));
        var opened = await next.OpenAsync(new StepOpening(1, 1, closed.CursorJson, closed.CarryOut));
        Assert.Equal(("TargetMet", 1, 1, 0), (opened.StopReason, opened.Accepted, opened.SurplusCarried, opened.Draws));
        var closedNext = await next.CloseAsync(1);
        Assert.Equal([(1, work[1].PromptId)], closedNext.Accepted.Select(p => (p.Step, p.PromptId)));
        await next.CompleteAsync(1);
    }

    [Fact]
    public async Task The_same_slots_submitted_twice_count_once()
    {
        var (run, step, _) = await OpenRunAsync(target: 2, """ "OverSamplingFactor":1.0 """);
        var work = await step.LeaseAsync("w", 10, Visibility);

        Assert.Equal(SubmitOutcome.Stored, await SubmitAsync(work[0], Informative, onlySlot: 0));
        Assert.Equal(SubmitOutcome.Duplicate, await SubmitAsync(work[0], Informative, onlySlot: 0));
        Assert.Equal(SubmitOutcome.Accepted, await SubmitAsync(work[0], Informative));  // slot 1 is new: the group completes
        Assert.Equal(SubmitOutcome.Duplicate, await SubmitAsync(work[0], Informative));  // a re-delivered work item

        var ledger = (await step.GetAsync())!;
        Assert.Equal((1, 0, 1, 2), (ledger.Accepted, ledger.Filtered, ledger.InFlight, ledger.Draws));
        var group = (await Grains.GetGrain<IPromptGrain>(GrainKeys.Prompt(run, 1, work[0].PromptId)).GetAsync())!;
        Assert.Equal([0, 1], group.Slots.Select(s => s.Slot));
        Assert.Equal(PromptStatus.Accepted, group.Status);  // its verdict; the step's ledger holds the outcome
    }

    [Fact]
    public async Task A_work_item_of_another_policy_version_is_refused()
    {
        var (run, step, _) = await OpenRunAsync(target: 2, """ "OverSamplingFactor":1.0 """);
        var work = await step.LeaseAsync("w", 10, Visibility);
        Assert.Equal(SubmitOutcome.Stored, await SubmitAsync(work[0], Informative, onlySlot: 0));

        Assert.Equal(SubmitOutcome.Stale, await SubmitAsync(work[0] with { PolicyVersion = work[0].PolicyVersion + 1 }, Informative));
        var group = (await Grains.GetGrain<IPromptGrain>(GrainKeys.Prompt(run, 1, work[0].PromptId)).GetAsync())!;
        Assert.Single(group.Slots);
        Assert.Equal(0, (await step.GetAsync())!.Accepted);

        // A group reported with a policy version the step does not sample with is not counted either.
        Assert.Equal(SubmitOutcome.Stale, await SubmitAsync(work[1] with { PolicyVersion = 7 }, Informative));
        var ledger = (await step.GetAsync())!;
        Assert.Equal((0, 0, 2), (ledger.Accepted, ledger.Filtered, ledger.InFlight));
    }

    [Fact]
    public async Task A_step_reopened_by_a_newer_learner_refuses_the_older_one_and_its_work()
    {
        var (run, step, first) = await OpenRunAsync(target: 2, """ "OverSamplingFactor":1.0 """, epoch: 1);
        var oldWork = await step.LeaseAsync("w", 10, Visibility);
        Assert.Equal(SubmitOutcome.Stored, await SubmitAsync(oldWork[0], Informative, onlySlot: 0));

        var resources = new RunResources(run, GrainRecipes.Tiny(steps: 2, group: 2, batch: 2, """ "OverSamplingFactor":1.0 """));
        var reopened = await step.OpenAsync(new StepOpening(2, 0, resources.InitialCursor.ToJson(), []));
        Assert.Equal((2, 2L, 0, 2), (reopened.Opening, reopened.Epoch, reopened.Accepted, reopened.Draws));
        Assert.Equal(first.Opening + 1, reopened.Opening);

        var stale = new StepOpening(1, 0, resources.InitialCursor.ToJson(), []);
        await Assert.ThrowsAsync<StaleEpochException>(() => step.OpenAsync(stale));
        await Assert.ThrowsAsync<StaleEpochException>(() => step.CloseAsync(1));
        await Assert.ThrowsAsync<StaleEpochException>(() => step.CompleteAsync(1));
        await Assert.ThrowsAsync<StaleEpochException>(() => step.AbandonAsync(1, "stale learner"));

        // The first opening's groups were abandoned: finishing one now counts for nothing.
        Assert.Equal(SubmitOutcome.Stale, await SubmitAsync(oldWork[0], Informative));
        var prompts = await step.ListPromptsAsync();
        Assert.All(prompts.Where(p => p.Opening == 1), p => Assert.Equal(PromptStatus.Abandoned, p.Status));
        var newWork = await step.LeaseAsync("w", 10, Visibility);
        Assert.Equal(2, newWork.Count);
        Assert.DoesNotContain(newWork, w => oldWork.Any(o => o.PromptId == w.PromptId));
        Assert.Equal(0, (await step.GetAsync())!.Accepted);
    }
}
