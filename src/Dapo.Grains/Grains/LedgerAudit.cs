using Dapo.Core.Sampling;

namespace Dapo.Grains.Grains;

/// <summary>
/// Checks the step ledger's invariants over a run, reading the grains — what must hold whatever crashed along the
/// way: every accepted or filtered group has exactly G responses, no slot was written twice, every drawn prompt of a
/// finished step ended Accepted, Filtered or Abandoned with a reason, a group's own verdict agrees with its step's
/// outcome, and each trained step trained on its target of groups (or, at the generation cap with train-on-accepted,
/// on what it had).
/// </summary>
public static class LedgerAudit
{
    /// <summary>Every violation found, as a sentence; empty when the ledger is sound.</summary>
    public static async Task<IReadOnlyList<string>> CheckAsync(IGrainFactory grains, string runId)
    {
        var problems = new List<string>();
        var run = await grains.GetGrain<ILearnerGrain>(runId).GetAsync();
        if (run is null) return [$"run {runId} does not exist"];
        for (var s = 1; s <= run.Step; s++)
        {
            var stepGrain = grains.GetGrain<IStepGrain>(GrainKeys.Step(runId, s));
            if (await stepGrain.GetAsync() is not { } step) continue;
            var entries = await stepGrain.ListPromptsAsync();
            foreach (var entry in entries.Where(e => e.Step == s))
            {
                var name = $"step {s}: prompt {entry.PromptId}";
                if (string.IsNullOrWhiteSpace(entry.Reason)) problems.Add($"{name} has no reason");
                if (entry.Status == PromptStatus.Sampling && step.Phase is StepPhase.Done or StepPhase.Abandoned)
                    problems.Add($"step {s} is {step.Phase.ToString().ToLowerInvariant()} but prompt {entry.PromptId} is still sampling");
                var group = await grains.GetGrain<IPromptGrain>(GrainKeys.Prompt(runId, s, entry.PromptId)).GetAsync();
                if (group is null)
                {
                    if (entry.Status is PromptStatus.Accepted or PromptStatus.Filtered) problems.Add($"{name} is {Lower(entry.Status)} but has no responses");
                    continue;
                }
                if (group.Slots.Select(x => x.Slot).Distinct().Count() != group.Slots.Count) problems.Add($"{name} has a slot written twice");
                if (entry.Status == PromptStatus.Abandoned && entry.Reason.StartsWith("surplus:", StringComparison.Ordinal) &&
                    group.Status != PromptStatus.Accepted)
                    problems.Add($"{name} is surplus in its step's ledger but its group's verdict is {Lower(group.Status)}");
                if (entry.Status is PromptStatus.Accepted or PromptStatus.Filtered)
                {
                    if (group.Slots.Count != group.GroupSize)
                        problems.Add($"{name}: {Lower(entry.Status)} with {group.Slots.Count} of {group.GroupSize} responses");
                    // The step's ledger records the outcome, the group its own verdict: they agree.
                    if (group.Status != entry.Status)
                        problems.Add($"{name} is {Lower(entry.Status)} in its step's ledger but its group's verdict is {Lower(group.Status)}");
                }
            }
            if (step.Phase == StepPhase.Done)
            {
                var accepted = entries.Count(e => e.Opening == step.Opening && e.Status == PromptStatus.Accepted && !e.CarryOut);
                var expected = step.StopReason == nameof(StopReason.CapReachedTrainOnAccepted) ? step.Accepted : step.Target;
                if (accepted != expected) problems.Add($"step {s}: trained on {accepted} accepted groups, its target is {expected}");
                if (step.Accepted != accepted) problems.Add($"step {s}: the ledger counts {step.Accepted} accepted groups, its prompts {accepted}");
            }
        }
        return problems;
    }

    private static string Lower(PromptStatus status) => status.ToString().ToLowerInvariant();
}
