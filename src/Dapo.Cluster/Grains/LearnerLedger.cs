using Dapo.Cluster.Store;
using Dapo.Core.Data;
using Dapo.Core.Sampling;

namespace Dapo.Cluster.Grains;

/// <summary>An accepted group as the learner trains on it: the prompt grain and its G slots.</summary>
public sealed record AcceptedGroup(PromptRow Prompt, IReadOnlyList<SlotRow> Slots);

/// <summary>Sampling of a step is over: the groups to train on, or why the step cannot train.</summary>
public sealed record ClosedStep(StepRow Step, IReadOnlyList<AcceptedGroup> Groups, string? Failure);

/// <summary>Where a checkpoint left the run: restoring it rewinds the run's ledger to that point.</summary>
/// <param name="Step">The last step the checkpoint includes (0: the initial policy).</param>
public sealed record CheckpointPosition(int Step, int PolicyVersion, CursorState Cursor);

/// <summary>
/// The learner grain's transitions on the step ledger. Every one first checks that the caller still holds the
/// run's learner lease (the fencing epoch), so a deposed learner cannot change the run.
/// </summary>
public static class LearnerLedger
{
    /// <summary>Creates the run, or returns the existing one when its spec matches (a re-run of `train`).</summary>
    public static Task<RunRow> CreateOrGetRunAsync(IClusterStore store, RunContext run, string specJson, long now,
        CancellationToken cancellationToken) =>
        store.TransactAsync(async s =>
        {
            var existing = await s.GetRunAsync(run.RunId);
            if (existing is not null) return existing;
            var row = new RunRow(run.RunId, specJson, RunStatus.Running, 0, 0, run.InitialCursor.ToJson(), 1, null, null, now, now);
            await s.InsertRunAsync(row);
            return row;
        }, cancellationToken);

    /// <summary>
    /// Rewinds the run to a checkpoint (a learner starting or taking over): the step after it is next, the cursor
    /// and policy version are the checkpoint's, and everything of later steps still sampling or waiting is
    /// abandoned, with its reason, so that no result of a newer policy is trained on.
    /// </summary>
    public static Task<RunRow> RestoreAsync(IClusterStore store, RunContext run, LeaseHandle lease, CheckpointPosition checkpoint,
        long now, CancellationToken cancellationToken) =>
        store.TransactAsync(async s =>
        {
            await Leases.VerifyAsync(s, lease, now, forUpdate: true);
            var reason = $"abandoned: the learner restarted from the checkpoint of step {checkpoint.Step}";
            var steps = await s.ListStepsAsync(run.RunId, int.MaxValue);
            // A step trained and checkpointed just before a crash, whose completion was not recorded yet.
            foreach (var step in steps.Where(x => x.Step <= checkpoint.Step && x.Phase == StepPhase.Training))
                await s.UpsertStepAsync(step with { Phase = StepPhase.Done, ClosedAt = now });
            foreach (var step in steps.Where(x => x.Step > checkpoint.Step && x.Phase != StepPhase.Abandoned))
            {
                var locked = (await s.GetStepAsync(run.RunId, step.Step, forUpdate: true))!;
                var open = (await s.ListPromptsAsync(run.RunId, step.Step))
                    .Where(p => p.Status is PromptStatus.Sampling or PromptStatus.Accepted).ToList();
                foreach (var p in open)
                {
                    await s.UpdatePromptAsync(PromptGrain.End(p, PromptStatus.Abandoned, reason, now));
                    await s.CompleteWorkForPromptAsync(run.RunId, p.PromptId);
                }
                await s.UpsertStepAsync(locked with
                {
                    Phase = StepPhase.Abandoned, Abandoned = locked.Abandoned + open.Count, InFlight = 0, ClosedAt = now,
                });
            }
            var row = (await s.GetRunAsync(run.RunId, forUpdate: true))!;
            row = row with
            {
                Step = checkpoint.Step + 1, PolicyVersion = checkpoint.PolicyVersion, CursorJson = checkpoint.Cursor.ToJson(),
                LatestCheckpoint = checkpoint.Step, UpdatedAt = now,
            };
            await s.UpdateRunAsync(row);
            return row;
        }, cancellationToken);

    /// <summary>
    /// Opens step <paramref name="step"/> at the run's policy version: carries surplus groups of the previous step
    /// when configured, then draws the first prompts.
    /// </summary>
    public static Task<StepRow> OpenStepAsync(IClusterStore store, RunContext run, LeaseHandle lease, int step, long now,
        CancellationToken cancellationToken) =>
        store.TransactAsync(async s =>
        {
            await Leases.VerifyAsync(s, lease, now, forUpdate: true);
            var runRow = (await s.GetRunAsync(run.RunId))!;
            if (runRow.Step != step)
                throw new InvalidOperationException($"Run {run.RunId} is at step {runRow.Step}, not {step}.");
            var ledger = new StepRow(run.RunId, step, runRow.PolicyVersion, StepPhase.Sampling, run.Options.PromptBatchSize, 0, 0, 0,
                0, 0, 0, 0, null, now, null, null);
            foreach (var p in await s.ListPromptsAsync(run.RunId, step - 1, PromptStatus.Accepted))
            {
                if (p.Reason != PromptGrain.SurplusCarryReason) continue;
                var carry = ledger.Accepted < ledger.Target &&
                            SurplusCarry.CanCarry(run.Options, p.PolicyVersion, runRow.PolicyVersion);
                var moved = carry
                    ? p with { Step = step, Reason = $"carried from step {step - 1}", History = PromptGrain.Log(p.History, now, "carried", $"to step {step}") }
                    : PromptGrain.End(p, PromptStatus.Abandoned, "surplus: too stale to carry (discarded)", now);
                await s.UpdatePromptAsync(moved);
                if (carry) ledger = ledger with { Accepted = ledger.Accepted + 1, SurplusCarried = ledger.SurplusCarried + 1 };
            }
            ledger = await PromptGrain.ContinueSamplingAsync(s, run, ledger, now);
            await s.UpsertStepAsync(ledger);
            return ledger;
        }, cancellationToken);

    /// <summary>The step's ledger as it is now (the learner polls it until sampling stops).</summary>
    public static Task<StepRow> GetStepAsync(IClusterStore store, string runId, int step, CancellationToken cancellationToken) =>
        store.TransactAsync(async s => await s.GetStepAsync(runId, step)
                                       ?? throw new InvalidOperationException($"Step {runId}/{step} does not exist."), cancellationToken);

    /// <summary>
    /// Ends sampling of a step whose sampling stopped: grains still sampling are abandoned (their results are no
    /// longer needed), and the accepted groups are returned with their slots, in decision order.
    /// </summary>
    public static Task<ClosedStep> CloseSamplingAsync(IClusterStore store, RunContext run, LeaseHandle lease, int step, long now,
        CancellationToken cancellationToken) =>
        store.TransactAsync(async s =>
        {
            await Leases.VerifyAsync(s, lease, now, forUpdate: true);
            var ledger = (await s.GetStepAsync(run.RunId, step, forUpdate: true))!;
            if (ledger.StopReason is null) throw new InvalidOperationException($"Step {step} is still sampling.");
            var open = await s.ListPromptsAsync(run.RunId, step, PromptStatus.Sampling);
            foreach (var p in open)
            {
                await s.UpdatePromptAsync(PromptGrain.End(p, PromptStatus.Abandoned, $"abandoned: sampling stopped ({ledger.StopReason})", now));
                await s.CompleteWorkForPromptAsync(run.RunId, p.PromptId);
            }
            ledger = ledger with
            {
                Phase = StepPhase.Training, InFlight = 0, Abandoned = ledger.Abandoned + open.Count, SamplingDoneAt = ledger.SamplingDoneAt ?? now,
            };
            await s.UpsertStepAsync(ledger);
            string? failure = null;
            if (ledger.StopReason == nameof(StopReason.CapReachedFail))
            {
                failure = run.Sampling.CapReachedMessage(new StepCounters(ledger.Target, ledger.Accepted, 0, ledger.Draws));
                var runRow = (await s.GetRunAsync(run.RunId, forUpdate: true))!;
                await s.UpdateRunAsync(runRow with { Status = RunStatus.Failed, Error = $"step {step}: {failure}", UpdatedAt = now });
            }
            var groups = new List<AcceptedGroup>();
            foreach (var p in (await s.ListPromptsAsync(run.RunId, step, PromptStatus.Accepted))
                     .Where(p => p.Reason != PromptGrain.SurplusCarryReason).OrderBy(p => p.DecidedAt).ThenBy(p => p.PromptId))
                groups.Add(new AcceptedGroup(p, await s.ListSlotsAsync(run.RunId, p.PromptId)));
            return new ClosedStep(ledger, groups, failure);
        }, cancellationToken);

    /// <summary>
    /// Records a trained step: its metrics, the new policy version, the latest checkpoint, and moves the run to the
    /// next step (or completes it).
    /// </summary>
    public static Task<RunRow> CompleteStepAsync(IClusterStore store, RunContext run, LeaseHandle lease, int step,
        int newPolicyVersion, int? checkpointStep, string metricsJson, int totalSteps, long now, CancellationToken cancellationToken) =>
        store.TransactAsync(async s =>
        {
            await Leases.VerifyAsync(s, lease, now, forUpdate: true);
            var ledger = (await s.GetStepAsync(run.RunId, step, forUpdate: true))!;
            await s.UpsertStepAsync(ledger with { Phase = StepPhase.Done, ClosedAt = now });
            await s.UpsertMetricsAsync(new MetricsRow(run.RunId, step, metricsJson, now));
            var row = (await s.GetRunAsync(run.RunId, forUpdate: true))!;
            row = row with
            {
                Step = step + 1, PolicyVersion = newPolicyVersion, LatestCheckpoint = checkpointStep ?? row.LatestCheckpoint,
                Status = step >= totalSteps ? RunStatus.Completed : row.Status, UpdatedAt = now,
            };
            await s.UpdateRunAsync(row);
            return row;
        }, cancellationToken);
}
