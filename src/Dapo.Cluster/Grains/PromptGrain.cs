using Dapo.Cluster.Store;
using Dapo.Core.Data;
using Dapo.Core.Options;
using Dapo.Core.Rewards;
using Dapo.Core.Sampling;

namespace Dapo.Cluster.Grains;

/// <summary>One response as a rollout worker submits it to its prompt grain.</summary>
public sealed record SlotResult(
    int Slot, int[] Tokens, float[] LogProbs, string Text, double Score, double OverlongPenalty, bool Correct, bool Truncated)
{
    public double Reward => Score + OverlongPenalty;
}

/// <summary>What a submission did.</summary>
public enum SubmitOutcome
{
    /// <summary>Slots stored; the group is not complete yet.</summary>
    Stored,
    /// <summary>The group completed and was accepted for training.</summary>
    Accepted,
    /// <summary>The group completed and was filtered (all rewards equal); refills were drawn if the step needs them.</summary>
    Filtered,
    /// <summary>The group completed after its step already had its target: discarded (or carried, per options).</summary>
    Surplus,
    /// <summary>Every slot had been submitted before (a re-delivered work item): nothing changed.</summary>
    Duplicate,
    /// <summary>The grain is no longer sampling (its step closed, or the learner restarted): results dropped.</summary>
    Stale,
}

/// <summary>
/// The prompt grain (key run/prompt): owns its group's sampling state and makes the dynamic-sampling decisions. Each
/// method is one store transaction. Locks are taken in one order everywhere — step, then prompt, then run — so that
/// concurrent grains never deadlock.
/// </summary>
public static class PromptGrain
{
    /// <summary>
    /// Stores the slots (each slot once: a re-submission is a no-op), and when the last slot fills, judges the group:
    /// informative groups are accepted and counted toward the step; uninformative ones are filtered and, while the
    /// step needs groups and the generation cap allows, replaced by refill prompts drawn from the run's cursor.
    /// </summary>
    public static Task<SubmitOutcome> SubmitAsync(IClusterStore store, RunContext run, long promptId, int policyVersion,
        IReadOnlyList<SlotResult> slots, string worker, long now, CancellationToken cancellationToken) =>
        store.TransactAsync(async s =>
        {
            var peek = await s.GetPromptAsync(run.RunId, promptId)
                       ?? throw new InvalidOperationException($"Prompt grain {run.RunId}/{promptId} does not exist.");
            var step = await s.GetStepAsync(run.RunId, peek.Step, forUpdate: true)
                       ?? throw new InvalidOperationException($"Step {run.RunId}/{peek.Step} does not exist.");
            var prompt = (await s.GetPromptAsync(run.RunId, promptId, forUpdate: true))!;
            if (prompt.Status != PromptStatus.Sampling || prompt.PolicyVersion != policyVersion || step.Phase != StepPhase.Sampling)
            {
                await s.CompleteWorkForPromptAsync(run.RunId, promptId);
                return SubmitOutcome.Stale;
            }
            foreach (var slot in slots)
                if (slot.Slot < 0 || slot.Slot >= prompt.GroupSize)
                    throw new ArgumentOutOfRangeException(nameof(slots), slot.Slot, $"Prompt {promptId} has {prompt.GroupSize} slots.");
            var inserted = await s.InsertSlotsIfAbsentAsync(slots.Select(slot => new SlotRow(run.RunId, promptId, slot.Slot, slot.Tokens,
                slot.LogProbs, slot.Text, slot.Score, slot.OverlongPenalty, slot.Reward, slot.Correct, slot.Truncated, policyVersion, worker,
                now)).ToList());
            if (inserted.Count == 0) return SubmitOutcome.Duplicate;
            prompt = prompt with
            {
                Filled = prompt.Filled + inserted.Count,
                History = Log(prompt.History, now, "slots", $"{inserted.Count} from {worker}"),
            };
            if (prompt.Filled < prompt.GroupSize)
            {
                await s.UpdatePromptAsync(prompt);
                return SubmitOutcome.Stored;
            }
            var (outcome, decided, ledger) = await DecideAsync(s, run, prompt, step, now);
            await s.UpdatePromptAsync(decided);
            await s.CompleteWorkForPromptAsync(run.RunId, promptId);
            await s.UpsertStepAsync(await ContinueSamplingAsync(s, run, ledger, now));
            return outcome;
        }, cancellationToken);

    private static async Task<(SubmitOutcome, PromptRow, StepRow)> DecideAsync(IStoreSession s, RunContext run, PromptRow prompt,
        StepRow step, long now)
    {
        var slots = await s.ListSlotsAsync(run.RunId, prompt.PromptId);
        var outcomes = slots.Select(x => new ResponseOutcome(x.Score, x.OverlongPenalty, x.Correct, x.Tokens.Length, x.Truncated))
            .ToArray();
        var accuracy = outcomes.Average(o => o.Correct ? 1.0 : 0.0);
        var meanReward = outcomes.Average(o => o.Reward);
        prompt = prompt with
        {
            Accuracy = accuracy, MeanReward = meanReward, MeanLength = outcomes.Average(o => (double)o.Length),
            TruncatedCount = outcomes.Count(o => o.Truncated), DecidedAt = now,
        };
        step = step with { InFlight = step.InFlight - 1 };
        if (run.Sampling.Judge(outcomes) == GroupVerdict.Filtered)
        {
            var why = $"filtered: all {outcomes.Length} responses {(accuracy == 1 ? "correct" : accuracy == 0 ? "wrong" : "equal")}";
            return (SubmitOutcome.Filtered, End(prompt, PromptStatus.Filtered, why, now), step with { Filtered = step.Filtered + 1 });
        }
        if (step.Accepted < step.Target)
            return (SubmitOutcome.Accepted, End(prompt, PromptStatus.Accepted, $"accepted: accuracy {accuracy:0.###}", now),
                step with { Accepted = step.Accepted + 1 });
        // The step already has its target. Carried surplus stays Accepted here and moves to the next step when it opens.
        if (run.Options.SurplusGroups == SurplusGroupBehavior.Carry)
            return (SubmitOutcome.Surplus, End(prompt, PromptStatus.Accepted, SurplusCarryReason, now), step);
        return (SubmitOutcome.Surplus, End(prompt, PromptStatus.Abandoned, "surplus: the step already had its target (discarded)", now),
            step with { Abandoned = step.Abandoned + 1 });
    }

    /// <summary>Reason of an accepted surplus group waiting to be carried into the next step.</summary>
    public const string SurplusCarryReason = "surplus: accepted after the step met its target; to carry";

    /// <summary>
    /// Asks the dynamic-sampling policy what the step does next and does it: draw refills, record why sampling
    /// stopped, or nothing (wait for groups in flight). Returns the updated ledger (not yet saved).
    /// </summary>
    internal static async Task<StepRow> ContinueSamplingAsync(IStoreSession s, RunContext run, StepRow step, long now)
    {
        if (step.Phase != StepPhase.Sampling || step.StopReason is not null) return step;
        var decision = run.Sampling.Decide(new StepCounters(step.Target, step.Accepted, step.InFlight, step.Draws));
        switch (decision.Action)
        {
            case SamplingAction.Refill:
                var runRow = (await s.GetRunAsync(run.RunId, forUpdate: true))!;
                var reason = step.Draws == 0 ? "initial draw" : $"refill after {step.Filtered} filtered";
                return await DrawAsync(s, run, runRow, step, decision.Prompts, reason, now);
            case SamplingAction.Stop:
                return step with { StopReason = decision.Reason.ToString(), SamplingDoneAt = now };
            default:
                return step;
        }
    }

    /// <summary>Draws prompts from the run's cursor into new grains of the step and queues their rollout work.</summary>
    private static async Task<StepRow> DrawAsync(IStoreSession s, RunContext run, RunRow runRow, StepRow step, int count,
        string reason, long now)
    {
        var cursor = DatasetCursor.Resume(CursorState.FromJson(runRow.CursorJson), run.Dataset.Count);
        var nextId = runRow.NextPromptId;
        for (var i = 0; i < count; i++)
        {
            var ordinal = (long)cursor.Epoch * cursor.DatasetSize + cursor.Position;
            var index = cursor.Next();
            var example = run.Dataset[index];
            var promptId = nextId++;
            await s.InsertPromptAsync(new PromptRow(run.RunId, promptId, step.Step, index, ordinal, example.Problem, example.Answer,
                run.PromptTokens(index), step.PolicyVersion, run.Options.GroupSize, 0, PromptStatus.Sampling, reason,
                null, null, null, null, Log("", now, "drawn", $"step {step.Step}, {reason}"), now, null));
            await s.EnqueueWorkAsync(run.RunId, step.Step, promptId, step.PolicyVersion);
        }
        await s.UpdateRunAsync(runRow with { CursorJson = cursor.State.ToJson(), NextPromptId = nextId, UpdatedAt = now });
        var draws = step.Draws + count;
        return step with
        {
            Draws = draws, InFlight = step.InFlight + count,
            GenerationRounds = run.Sampling.GenerationRounds(new StepCounters(step.Target, step.Accepted, step.InFlight + count, draws)),
        };
    }

    internal static PromptRow End(PromptRow prompt, PromptStatus status, string reason, long now) => prompt with
    {
        Status = status, Reason = reason, DecidedAt = now, History = Log(prompt.History, now, status.ToString().ToLowerInvariant(), reason),
    };

    /// <summary>Appends one line to a grain's decision history.</summary>
    internal static string Log(string history, long now, string @event, string detail) =>
        $"{history}{DateTimeOffset.FromUnixTimeMilliseconds(now):O} {@event}: {detail}\n";
}
