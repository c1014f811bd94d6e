using System.Collections.Concurrent;
using Dapo.Grains.Blobs;
using Dapo.Grains.Checkpoints;

namespace Dapo.Grains.Hosting;

/// <summary>
/// Policy weights by (run, version) for rollout workers. A learner in the same process publishes them here, so the
/// embedded run shares weights in memory; other silos fetch them from blob storage (<c>runs/{run}/policy/{v}</c>),
/// where the learner puts every version before the step that uses it opens.
/// </summary>
public sealed class PolicySource(IBlobStore blobs)
{
    private readonly ConcurrentDictionary<(string Run, int Version), byte[]> _weights = new();

    /// <summary>Makes weights available in this process and drops versions two or more behind.</summary>
    public void Publish(string runId, int version, byte[] weights)
    {
        _weights[(runId, version)] = weights;
        foreach (var key in _weights.Keys.Where(k => k.Run == runId && k.Version < version - 1)) _weights.TryRemove(key, out _);
    }

    public async Task<byte[]> GetAsync(string runId, int version, CancellationToken cancellationToken)
    {
        if (_weights.TryGetValue((runId, version), out var cached)) return cached;
        var weights = await new CheckpointStore(blobs, runId).GetPolicyAsync(version, cancellationToken)
                      ?? throw new InvalidOperationException($"Policy version {version} of run {runId} is not in blob storage.");
        Publish(runId, version, weights);
        return weights;
    }
}
