using Dapo.Cluster.Store;
using Dapo.Core.Sampling;

namespace Dapo.Cluster.Grains;

/// <summary>
/// Checks the step ledger's invariants over a run — what must hold whatever crashed along the way:
/// every accepted group of a trained step has exactly G responses, no slot was written twice, every drawn prompt
/// of a finished step ended Accepted, Filtered or Abandoned with a reason, and each trained step trained on its
/// target of groups (or, at the generation cap with train-on-accepted, on what it had).
/// </summary>
public static class LedgerAudit
{
    /// <summary>Every violation found, as a sentence; empty when the ledger is sound.</summary>
    public static Task<IReadOnlyList<string>> CheckAsync(IClusterStore store, string runId, CancellationToken cancellationToken) =>
        store.TransactAsync<IReadOnlyList<string>>(async s =>
        {
            var problems = new List<string>();
            var run = await s.GetRunAsync(runId);
            if (run is null) return [$"run {runId} does not exist"];
            foreach (var step in await s.ListStepsAsync(runId, int.MaxValue))
            {
                var prompts = await s.ListPromptsAsync(runId, step.Step);
                var accepted = prompts.Where(p => p.Status == PromptStatus.Accepted && p.Reason != PromptGrain.SurplusCarryReason).ToList();
                foreach (var p in prompts)
                {
                    var slots = await s.ListSlotsAsync(runId, p.PromptId);
                    if (slots.Select(x => x.Slot).Distinct().Count() != slots.Count)
                        problems.Add($"step {step.Step}: prompt {p.PromptId} has a slot written twice");
                    if (slots.Count != p.Filled)
                        problems.Add($"step {step.Step}: prompt {p.PromptId} counts {p.Filled} filled slots but has {slots.Count}");
                    if (p.Status is PromptStatus.Accepted or PromptStatus.Filtered && slots.Count != p.GroupSize)
                        problems.Add($"step {step.Step}: {p.Status.ToString().ToLowerInvariant()} prompt {p.PromptId} has {slots.Count} of {p.GroupSize} responses");
                    if (string.IsNullOrWhiteSpace(p.Reason))
                        problems.Add($"step {step.Step}: prompt {p.PromptId} has no reason");
                    if (p.Status == PromptStatus.Sampling && step.Phase is StepPhase.Done or StepPhase.Abandoned)
                        problems.Add($"step {step.Step} is {step.Phase.ToString().ToLowerInvariant()} but prompt {p.PromptId} is still sampling");
                }
                if (step.Phase == StepPhase.Done)
                {
                    var expected = step.StopReason == nameof(StopReason.CapReachedTrainOnAccepted) ? step.Accepted : step.Target;
                    if (accepted.Count != expected)
                        problems.Add($"step {step.Step}: trained on {accepted.Count} accepted groups, its target is {expected}");
                    if (step.Accepted != accepted.Count)
                        problems.Add($"step {step.Step}: the ledger counts {step.Accepted} accepted groups, the grains {accepted.Count}");
                }
            }
            return problems;
        }, cancellationToken);
}
