using Dapo.Grains.Blobs;
using Dapo.Grains.Checkpoints;
using Dapo.Torch;

namespace Dapo.Grains.Hosting;

/// <summary>
/// Policy weights by (run, version) for rollout workers. A learner in the same process publishes them here, so the
/// embedded run shares weights in memory; other silos fetch them from blob storage (<c>runs/{run}/policy/{v}</c>),
/// where the learner puts every version before the step that uses it opens.
/// </summary>
public sealed class PolicySource(IBlobStore blobs)
{
    private readonly Dictionary<(string Run, int Version), NativeBytes> _weights = [];
    private readonly Lock _lock = new();

    /// <summary>Makes weights available in this process (taking a view of them: the caller keeps its own) and drops
    /// the run's older versions: a real model's weights are gigabytes, and a late reader of an old version fetches it
    /// from blob storage.</summary>
    public void Publish(string runId, int version, NativeBytes weights)
    {
        var view = weights.Share();
        lock (_lock)
        {
            if (_weights.Remove((runId, version), out var replaced)) replaced.Dispose();
            _weights[(runId, version)] = view;
            foreach (var key in _weights.Keys.Where(k => k.Run == runId && k.Version < version).ToList())
                if (_weights.Remove(key, out var old)) old.Dispose();  // freed once no reader holds a view of it
        }
    }

    /// <summary>The weights of <paramref name="version"/>: a view the caller disposes.</summary>
    public async Task<NativeBytes> GetAsync(string runId, int version, CancellationToken cancellationToken)
    {
        lock (_lock)
            if (_weights.TryGetValue((runId, version), out var cached)) return cached.Share();
        using var weights = await new CheckpointStore(blobs, runId).GetPolicyAsync(version, cancellationToken)
                            ?? throw new InvalidOperationException($"Policy version {version} of run {runId} is not in blob storage.");
        Publish(runId, version, weights);
        return weights.Share();
    }
}
