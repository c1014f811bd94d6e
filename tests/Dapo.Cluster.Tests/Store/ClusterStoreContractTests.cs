using Dapo.Cluster.Grains;
using Dapo.Cluster.Store;
using Dapo.Core.Data;
using Dapo.Core.Options;

namespace Dapo.Cluster.Tests.Store;

/// <summary>
/// The cluster store's contract, with the grain transitions on top of it: every backend runs these through a thin
/// subclass that only provides the store.
/// </summary>
public abstract class ClusterStoreContractTests : IAsyncLifetime
{
    protected IClusterStore Store { get; private set; } = null!;

    /// <summary>A store on this test's database; read-only stores see the same data.</summary>
    protected abstract Task<IClusterStore> CreateStoreAsync(bool readOnly = false);

    public async Task InitializeAsync()
    {
        Store = await CreateStoreAsync();
        await Store.MigrateAsync(CancellationToken.None);
    }

    public async Task DisposeAsync() => await Store.DisposeAsync();

    private static readonly CancellationToken None = CancellationToken.None;
    private long _now = 1_700_000_000_000;
    private long Now => _now += 10;

    private static RunContext Run(string id = "run-a", int group = 4, int batch = 3, bool dynamic = true, int rounds = 3,
        GenerationCapBehavior atCap = GenerationCapBehavior.Fail, SurplusGroupBehavior surplus = SurplusGroupBehavior.Discard)
    {
        var options = DapoOptions.Dapo with
        {
            GroupSize = group, PromptBatchSize = batch, MiniBatchesPerStep = 1, DynamicSampling = dynamic, OverSamplingFactor = 2.0,
            MaxGenerationRounds = rounds, AtGenerationCap = atCap, SurplusGroups = surplus,
        };
        var dataset = Enumerable.Range(0, 50).Select(i => new PromptExample($"p{i}", $"{i}+{i}=", (2 * i).ToString(), "test")).ToList();
        return new RunContext(id, options, dataset, i => dataset[i].Problem.Select(c => (int)c).ToArray(), seed: 11);
    }

    private async Task<(RunContext Run, LeaseHandle Lease, StepRow Step)> OpenFirstStepAsync(RunContext? run = null)
    {
        run ??= Run();
        await LearnerLedger.CreateOrGetRunAsync(Store, run, "{}", Now, None);
        var lease = (await Leases.TryAcquireAsync(Store, run.LearnerLease, "learner-1", TimeSpan.FromMinutes(5), Now, None))!;
        await LearnerLedger.RestoreAsync(Store, run, lease, new CheckpointPosition(0, 0, run.InitialCursor), Now, None);
        var step = await LearnerLedger.OpenStepAsync(Store, run, lease, 1, Now, None);
        return (run, lease, step);
    }

    /// <summary>A group's slots: the first <paramref name="correct"/> of them right, the rest wrong.</summary>
    private static List<SlotResult> Slots(int group, int correct, int from = 0, int? count = null) =>
        Enumerable.Range(from, count ?? group)
            .Select(i => new SlotResult(i, [1, 2, 3], [-0.1f, -0.2f, -0.3f], $"response {i}", i < correct ? 1 : -1, 0, i < correct, false))
            .ToList();

    private Task<SubmitOutcome> SubmitAsync(RunContext run, PromptRow prompt, List<SlotResult> slots, string worker = "w1") =>
        PromptGrain.SubmitAsync(Store, run, prompt.PromptId, prompt.PolicyVersion, slots, worker, Now, None);

    private Task<IReadOnlyList<PromptRow>> PromptsAsync(string runId, int step, PromptStatus? status = null) =>
        Store.TransactAsync(s => s.ListPromptsAsync(runId, step, status), None);

    [Fact]
    public async Task Migrating_twice_is_harmless_and_a_newer_schema_is_refused()
    {
        await Store.MigrateAsync(None);
        await Store.TransactAsync(async s => { await s.InsertRunAsync(new RunRow("r", "{}", RunStatus.Running, 1, 0, "{}", 1, null, null, 1, 1)); return 0; }, None);
        await Store.MigrateAsync(None);
        Assert.NotNull(await Store.TransactAsync(s => s.GetRunAsync("r"), None));
    }

    [Fact]
    public async Task Opening_a_step_draws_an_over_sampled_round_from_the_cursor()
    {
        var (run, _, step) = await OpenFirstStepAsync();
        // target 3, over-sampling factor 2: ceil(3 * 2) = 6 prompts in the first round.
        Assert.Equal(6, step.Draws);
        Assert.Equal(6, step.InFlight);
        Assert.Equal(1, step.GenerationRounds);
        var prompts = await PromptsAsync(run.RunId, 1);
        Assert.Equal(6, prompts.Count);
        Assert.All(prompts, p => Assert.Equal(PromptStatus.Sampling, p.Status));
        var expected = new DatasetCursor(run.Dataset.Count, run.Seed).Take(6);
        Assert.Equal(expected, prompts.Select(p => p.DatasetIndex));
        Assert.Equal(Enumerable.Range(0, 6).Select(i => (long)i), prompts.Select(p => p.DrawOrdinal));
        Assert.Equal(run.PromptTokens(prompts[0].DatasetIndex), prompts[0].PromptTokens);
        var work = await Store.TransactAsync(s => s.ListWorkAsync(run.RunId, openOnly: true), None);
        Assert.Equal(prompts.Select(p => p.PromptId), work.Select(w => w.PromptId));
    }

    [Fact]
    public async Task Leased_work_is_invisible_to_others_until_its_lease_expires_or_is_released()
    {
        var (run, _, _) = await OpenFirstStepAsync();
        var t = Now;
        var first = await WorkQueue.LeaseAsync(Store, "w1", 4, TimeSpan.FromSeconds(30), t, None);
        var second = await WorkQueue.LeaseAsync(Store, "w2", 10, TimeSpan.FromSeconds(30), t + 1, None);
        Assert.Equal(4, first.Count);
        Assert.Equal(2, second.Count);
        Assert.Empty(first.Select(w => w.Item.ItemId).Intersect(second.Select(w => w.Item.ItemId)));
        Assert.Empty(await WorkQueue.LeaseAsync(Store, "w3", 10, TimeSpan.FromSeconds(30), t + 2, None));
        // w1 dies: after the visibility timeout its items go to another worker.
        var retaken = await WorkQueue.LeaseAsync(Store, "w3", 10, TimeSpan.FromSeconds(30), t + 30_001, None);
        Assert.Equal(first.Select(w => w.Item.ItemId).Order(), retaken.Select(w => w.Item.ItemId).Order());
        Assert.All(retaken, w => Assert.Equal(2, w.Item.Attempts));
        // w2 stops gracefully: its items are free at once.
        Assert.Equal(2, await WorkQueue.ReleaseAsync(Store, "w2", None));
        Assert.Equal(2, (await WorkQueue.LeaseAsync(Store, "w4", 10, TimeSpan.FromSeconds(30), t + 30_002, None)).Count);
    }

    [Fact]
    public async Task A_complete_informative_group_is_accepted_once_and_resubmission_changes_nothing()
    {
        var (run, _, _) = await OpenFirstStepAsync();
        var prompt = (await PromptsAsync(run.RunId, 1))[0];
        Assert.Equal(SubmitOutcome.Stored, await SubmitAsync(run, prompt, Slots(4, 2, 0, 2)));
        Assert.Equal(SubmitOutcome.Duplicate, await SubmitAsync(run, prompt, Slots(4, 2, 0, 2), "w2"));
        Assert.Equal(SubmitOutcome.Accepted, await SubmitAsync(run, prompt, Slots(4, 2, 0, 4)));
        Assert.Equal(SubmitOutcome.Stale, await SubmitAsync(run, prompt, Slots(4, 2)));

        var stored = (await Store.TransactAsync(s => s.GetPromptAsync(run.RunId, prompt.PromptId), None))!;
        Assert.Equal(PromptStatus.Accepted, stored.Status);
        Assert.Equal(4, stored.Filled);
        Assert.Equal(0.5, stored.Accuracy);
        var slots = await Store.TransactAsync(s => s.ListSlotsAsync(run.RunId, prompt.PromptId), None);
        Assert.Equal([0, 1, 2, 3], slots.Select(x => x.Slot));
        Assert.Equal([1, 2, 3], slots[0].Tokens);
        Assert.Equal([-0.1f, -0.2f, -0.3f], slots[0].LogProbs);
        Assert.Equal("w1", slots[0].Worker);
        var step = await LearnerLedger.GetStepAsync(Store, run.RunId, 1, None);
        Assert.Equal((1, 0, 5), (step.Accepted, step.Filtered, step.InFlight));
        Assert.DoesNotContain(await Store.TransactAsync(s => s.ListWorkAsync(run.RunId, true), None), w => w.PromptId == prompt.PromptId);
    }

    [Fact]
    public async Task Filtered_groups_are_refilled_until_the_target_is_met()
    {
        var (run, lease, _) = await OpenFirstStepAsync();
        var prompts = await PromptsAsync(run.RunId, 1);
        // Four of the six first-round groups are uninformative (all right or all wrong).
        Assert.Equal(SubmitOutcome.Filtered, await SubmitAsync(run, prompts[0], Slots(4, 4)));
        Assert.Equal(SubmitOutcome.Filtered, await SubmitAsync(run, prompts[1], Slots(4, 0)));
        var step = await LearnerLedger.GetStepAsync(Store, run.RunId, 1, None);
        // Accepted 0 + in flight 4 >= target 3: no refill yet.
        Assert.Equal((6, 4, 2), (step.Draws, step.InFlight, step.Filtered));
        Assert.Equal(SubmitOutcome.Filtered, await SubmitAsync(run, prompts[2], Slots(4, 0)));
        Assert.Equal(SubmitOutcome.Filtered, await SubmitAsync(run, prompts[3], Slots(4, 4)));
        step = await LearnerLedger.GetStepAsync(Store, run.RunId, 1, None);
        // deficit = 3 - 0 - 2 = 1 -> refill ceil(1 * 2) = 2 prompts; draws 8 of at most 3 rounds x 6.
        Assert.Equal((8, 4, 2), (step.Draws, step.InFlight, step.GenerationRounds));
        var refills = (await PromptsAsync(run.RunId, 1)).Skip(6).ToList();
        Assert.Equal(2, refills.Count);
        Assert.All(refills, p => Assert.StartsWith("refill", p.Reason));
        Assert.Equal(new DatasetCursor(run.Dataset.Count, run.Seed).Take(8).Skip(6), refills.Select(p => p.DatasetIndex));

        foreach (var p in new[] { prompts[4], prompts[5], refills[0] }) Assert.Equal(SubmitOutcome.Accepted, await SubmitAsync(run, p, Slots(4, 1)));
        step = await LearnerLedger.GetStepAsync(Store, run.RunId, 1, None);
        Assert.Equal(nameof(Dapo.Core.Sampling.StopReason.TargetMet), step.StopReason);

        var closed = await LearnerLedger.CloseSamplingAsync(Store, run, lease, 1, Now, None);
        Assert.Null(closed.Failure);
        Assert.Equal(3, closed.Groups.Count);
        Assert.All(closed.Groups, g => Assert.Equal(4, g.Slots.Count));
        // The refill still in flight is abandoned with a reason; a late submission of it is stale.
        var last = (await Store.TransactAsync(s => s.GetPromptAsync(run.RunId, refills[1].PromptId), None))!;
        Assert.Equal(PromptStatus.Abandoned, last.Status);
        Assert.Contains("sampling stopped (TargetMet)", last.Reason);
        Assert.Equal(SubmitOutcome.Stale, await SubmitAsync(run, refills[1], Slots(4, 2)));
        Assert.Equal((StepPhase.Training, 3, 4, 1, 0), (closed.Step.Phase, closed.Step.Accepted, closed.Step.Filtered, closed.Step.Abandoned, closed.Step.InFlight));
    }

    [Fact]
    public async Task Reaching_the_generation_cap_fails_the_run_with_a_clear_message()
    {
        var (run, lease, _) = await OpenFirstStepAsync(Run(rounds: 1));
        foreach (var p in await PromptsAsync(run.RunId, 1)) await SubmitAsync(run, p, Slots(4, 0));
        var step = await LearnerLedger.GetStepAsync(Store, run.RunId, 1, None);
        Assert.Equal("CapReachedFail", step.StopReason);
        var closed = await LearnerLedger.CloseSamplingAsync(Store, run, lease, 1, Now, None);
        Assert.Contains("reached its cap of 1 generation round(s)", closed.Failure);
        var row = (await Store.TransactAsync(s => s.GetRunAsync(run.RunId), None))!;
        Assert.Equal(RunStatus.Failed, row.Status);
        Assert.Contains("step 1:", row.Error);
    }

    [Fact]
    public async Task At_the_cap_train_on_accepted_keeps_the_groups_it_has()
    {
        var (run, lease, _) = await OpenFirstStepAsync(Run(rounds: 1, atCap: GenerationCapBehavior.TrainOnAccepted));
        var prompts = await PromptsAsync(run.RunId, 1);
        await SubmitAsync(run, prompts[0], Slots(4, 2));
        foreach (var p in prompts.Skip(1)) await SubmitAsync(run, p, Slots(4, 4));
        var closed = await LearnerLedger.CloseSamplingAsync(Store, run, lease, 1, Now, None);
        Assert.Null(closed.Failure);
        Assert.Equal("CapReachedTrainOnAccepted", closed.Step.StopReason);
        Assert.Single(closed.Groups);
    }

    [Fact]
    public async Task Surplus_groups_are_discarded_or_carried_into_the_next_step()
    {
        foreach (var behaviour in new[] { SurplusGroupBehavior.Discard, SurplusGroupBehavior.Carry })
        {
            var (run, lease, _) = await OpenFirstStepAsync(Run(id: $"run-{behaviour}", surplus: behaviour));
            var prompts = await PromptsAsync(run.RunId, 1);
            for (var i = 0; i < 4; i++) await SubmitAsync(run, prompts[i], Slots(4, 2));
            var surplus = (await Store.TransactAsync(s => s.GetPromptAsync(run.RunId, prompts[3].PromptId), None))!;
            var closed = await LearnerLedger.CloseSamplingAsync(Store, run, lease, 1, Now, None);
            Assert.Equal(3, closed.Groups.Count);
            Assert.DoesNotContain(closed.Groups, g => g.Prompt.PromptId == surplus.PromptId);
            await LearnerLedger.CompleteStepAsync(Store, run, lease, 1, 1, null, "{}", 10, Now, None);
            var next = await LearnerLedger.OpenStepAsync(Store, run, lease, 2, Now, None);
            var after = (await Store.TransactAsync(s => s.GetPromptAsync(run.RunId, surplus.PromptId), None))!;
            if (behaviour == SurplusGroupBehavior.Discard)
            {
                Assert.Equal(PromptStatus.Abandoned, surplus.Status);
                Assert.Contains("surplus", surplus.Reason);
                Assert.Equal(0, next.Accepted);
            }
            else
            {
                Assert.Equal((2, PromptStatus.Accepted), (after.Step, after.Status));
                Assert.Equal((1, 1), (next.Accepted, next.SurplusCarried));
                // One group carried: the first round needs ceil((3 - 1) * 2) = 4 draws.
                Assert.Equal(4, next.Draws);
            }
        }
    }

    [Fact]
    public async Task Concurrent_submitters_fill_each_slot_exactly_once()
    {
        var (run, lease, _) = await OpenFirstStepAsync(Run(batch: 6, dynamic: false));
        var prompts = await PromptsAsync(run.RunId, 1);
        // Four workers race over every prompt with overlapping slot ranges.
        var tasks = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            foreach (var p in prompts)
                await SubmitAsync(run, p, Slots(4, 2, from: w % 2 == 0 ? 0 : 2, count: w % 2 == 0 ? 4 : 2), $"w{w}");
        })).ToArray();
        await Task.WhenAll(tasks);
        var step = await LearnerLedger.GetStepAsync(Store, run.RunId, 1, None);
        Assert.Equal((6, 0, 0), (step.Accepted, step.InFlight, step.Filtered));
        foreach (var p in prompts)
        {
            var slots = await Store.TransactAsync(s => s.ListSlotsAsync(run.RunId, p.PromptId), None);
            Assert.Equal([0, 1, 2, 3], slots.Select(x => x.Slot));
        }
        Assert.Equal(6, (await LearnerLedger.CloseSamplingAsync(Store, run, lease, 1, Now, None)).Groups.Count);
    }

    [Fact]
    public async Task A_new_lease_holder_fences_out_the_old_one()
    {
        var run = Run();
        await LearnerLedger.CreateOrGetRunAsync(Store, run, "{}", Now, None);
        var t = Now;
        var first = (await Leases.TryAcquireAsync(Store, run.LearnerLease, "silo-1", TimeSpan.FromSeconds(5), t, None))!;
        Assert.Null(await Leases.TryAcquireAsync(Store, run.LearnerLease, "silo-2", TimeSpan.FromSeconds(5), t + 1, None));
        await Leases.RenewAsync(Store, first, TimeSpan.FromSeconds(5), t + 4_000, None);
        Assert.Null(await Leases.TryAcquireAsync(Store, run.LearnerLease, "silo-2", TimeSpan.FromSeconds(5), t + 8_000, None));
        var second = (await Leases.TryAcquireAsync(Store, run.LearnerLease, "silo-2", TimeSpan.FromSeconds(5), t + 9_001, None))!;
        Assert.Equal(first.Epoch + 1, second.Epoch);
        await Assert.ThrowsAsync<LeaseLostException>(() => Leases.RenewAsync(Store, first, TimeSpan.FromSeconds(5), t + 9_002, None));
        await Assert.ThrowsAsync<LeaseLostException>(() =>
            LearnerLedger.RestoreAsync(Store, run, first, new CheckpointPosition(0, 0, run.InitialCursor), t + 9_003, None));
        await Leases.ReleaseAsync(Store, second, None);
        Assert.NotNull(await Leases.TryAcquireAsync(Store, run.LearnerLease, "silo-3", TimeSpan.FromSeconds(5), t + 9_004, None));
    }

    [Fact]
    public async Task A_holder_renewing_late_keeps_its_lease_when_nobody_took_it()
    {
        var run = Run();
        await LearnerLedger.CreateOrGetRunAsync(Store, run, "{}", Now, None);
        var t = Now;
        var lease = (await Leases.TryAcquireAsync(Store, run.LearnerLease, "silo-1", TimeSpan.FromSeconds(5), t, None))!;
        // Renewed 3 s after it lapsed (a loaded machine): nobody took it, so it is still this holder's, same epoch.
        await Leases.RenewAsync(Store, lease, TimeSpan.FromSeconds(5), t + 8_000, None);
        Assert.Null(await Leases.TryAcquireAsync(Store, run.LearnerLease, "silo-2", TimeSpan.FromSeconds(5), t + 12_000, None));
        var row = (await Store.TransactAsync(s => s.GetLeaseAsync(run.LearnerLease), None))!;
        Assert.Equal(("silo-1", lease.Epoch, t + 13_000), (row.Owner, row.Epoch, row.ExpiresAt));
    }

    [Fact]
    public async Task Restoring_a_checkpoint_abandons_later_work_and_rewinds_the_cursor()
    {
        var (run, lease, _) = await OpenFirstStepAsync();
        var prompts = await PromptsAsync(run.RunId, 1);
        for (var i = 0; i < 3; i++) await SubmitAsync(run, prompts[i], Slots(4, 1));
        await LearnerLedger.CloseSamplingAsync(Store, run, lease, 1, Now, None);
        var checkpointCursor = CursorState.FromJson((await Store.TransactAsync(s => s.GetRunAsync(run.RunId), None))!.CursorJson);
        await LearnerLedger.CompleteStepAsync(Store, run, lease, 1, 1, 1, "{\"loss\":1}", 10, Now, None);
        await LearnerLedger.OpenStepAsync(Store, run, lease, 2, Now, None);
        var step2 = await PromptsAsync(run.RunId, 2);
        await SubmitAsync(run, step2[0], Slots(4, 2));

        // The learner dies; its successor restores the checkpoint of step 1.
        var successor = (await Leases.TryAcquireAsync(Store, run.LearnerLease, "learner-2", TimeSpan.FromMinutes(5), Now + 600_000, None))!;
        var row = await LearnerLedger.RestoreAsync(Store, run, successor, new CheckpointPosition(1, 1, checkpointCursor), Now + 600_000, None);
        Assert.Equal((2, 1, 1), (row.Step, row.PolicyVersion, row.LatestCheckpoint));
        Assert.Equal(checkpointCursor, CursorState.FromJson(row.CursorJson));
        Assert.All(await PromptsAsync(run.RunId, 2), p =>
        {
            Assert.Equal(PromptStatus.Abandoned, p.Status);
            Assert.Contains("restarted from the checkpoint of step 1", p.Reason);
        });
        Assert.Empty(await Store.TransactAsync(s => s.ListWorkAsync(run.RunId, openOnly: true), None));
        var reopened = await LearnerLedger.OpenStepAsync(Store, run, successor, 2, Now + 600_000, None);
        var redrawn = (await PromptsAsync(run.RunId, 2, PromptStatus.Sampling)).ToList();
        // The same dataset prompts, in the same order, with the same draw ordinals: the resumed run samples them again.
        Assert.Equal(step2.Select(p => (p.DatasetIndex, p.DrawOrdinal)), redrawn.Select(p => (p.DatasetIndex, p.DrawOrdinal)));
        Assert.Equal(0, reopened.Accepted);
        Assert.Single(await Store.TransactAsync(s => s.ListMetricsAsync(run.RunId, 0), None));
    }

    [Fact]
    public async Task A_read_only_store_reads_everything_and_the_database_refuses_its_writes()
    {
        var (run, lease, _) = await OpenFirstStepAsync();
        await Store.TransactAsync(async s =>
        {
            await s.UpsertLearnerAsync(new LearnerRow(run.RunId, "learner-1", lease.Epoch, "sampling", 1, "3 of 3 groups", Now));
            return 0;
        }, None);
        await using var reader = await CreateStoreAsync(readOnly: true);
        await reader.VerifySchemaAsync(None);
        Assert.Equal(6, (await reader.TransactAsync(s => s.ListPromptsAsync(run.RunId, 1), None)).Count);
        var learner = (await reader.TransactAsync(s => s.GetLearnerAsync(run.RunId), None))!;
        Assert.Equal(("learner-1", "sampling", "3 of 3 groups"), (learner.SiloId, learner.Phase, learner.Detail));
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => reader.TransactAsync(async s =>
        {
            await s.UpsertMetricsAsync(new MetricsRow(run.RunId, 1, "{}", 1));
            return 0;
        }, None));
        Assert.Empty(await Store.TransactAsync(s => s.ListMetricsAsync(run.RunId, 0), None));
    }

    [Fact]
    public async Task Members_register_heartbeat_and_leave()
    {
        var t = Now;
        await Membership.RegisterAsync(Store, new MemberRow("silo-1", "host", 42, "rollout", MemberStatus.Active, t, t, 0), None);
        await Membership.HeartbeatAsync(Store, "silo-1", t + 1000, 3, None);
        var member = (await Store.TransactAsync(s => s.GetMemberAsync("silo-1"), None))!;
        Assert.Equal((t + 1000, 3), (member.HeartbeatAt, member.WorkInHand));
        Assert.True(Membership.IsAlive(member, t + 2000, TimeSpan.FromSeconds(5)));
        Assert.False(Membership.IsAlive(member, t + 7000, TimeSpan.FromSeconds(5)));
        await Membership.LeaveAsync(Store, "silo-1", t + 2000, None);
        Assert.Equal(MemberStatus.Left, (await Store.TransactAsync(s => s.ListMembersAsync(), None)).Single().Status);
    }
}
