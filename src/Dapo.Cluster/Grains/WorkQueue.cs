using Dapo.Cluster.Store;

namespace Dapo.Cluster.Grains;

/// <summary>A leased piece of rollout work with the prompt grain it serves.</summary>
public sealed record LeasedWork(WorkItemRow Item, PromptRow Prompt);

/// <summary>
/// The rollout work queue: stateless workers lease items with a visibility timeout. A worker that dies loses
/// nothing: its leases expire and another worker takes the items; a late submission of the same slots is a no-op.
/// </summary>
public static class WorkQueue
{
    /// <summary>Leases up to <paramref name="max"/> open items whose grains are still sampling.</summary>
    public static Task<IReadOnlyList<LeasedWork>> LeaseAsync(IClusterStore store, string worker, int max, TimeSpan visibility,
        long now, CancellationToken cancellationToken) =>
        store.TransactAsync<IReadOnlyList<LeasedWork>>(async s =>
        {
            var leased = new List<LeasedWork>();
            foreach (var item in await s.LeaseWorkAsync(worker, max, now, now + (long)visibility.TotalMilliseconds))
            {
                var prompt = await s.GetPromptAsync(item.RunId, item.PromptId);
                if (prompt is null || prompt.Status != PromptStatus.Sampling || prompt.PolicyVersion != item.PolicyVersion)
                    await s.CompleteWorkAsync(item.ItemId);  // its grain ended meanwhile: nothing to do
                else
                    leased.Add(new LeasedWork(item, prompt));
            }
            return leased;
        }, cancellationToken);

    /// <summary>Returns a worker's unfinished leases (graceful shutdown): others can take them at once.</summary>
    public static Task<int> ReleaseAsync(IClusterStore store, string worker, CancellationToken cancellationToken) =>
        store.TransactAsync(s => s.ReleaseWorkAsync(worker), cancellationToken);
}
