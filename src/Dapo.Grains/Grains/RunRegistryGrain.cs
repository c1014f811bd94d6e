using Orleans.Runtime;

namespace Dapo.Grains.Grains;

/// <summary>The registry's persistent state: every run the cluster was asked to train, where it is.</summary>
[GenerateSerializer]
public sealed class RunRegistryState
{
    [Id(0)] public Dictionary<string, ActiveRun> Runs { get; set; } = new();
}

/// <summary>Runs of the cluster (see <see cref="IRunRegistryGrain"/>). Written once per step of each run.</summary>
public sealed class RunRegistryGrain([PersistentState("registry", GrainStorage.Name)] IPersistentState<RunRegistryState> state,
    TimeProvider time) : Grain, IRunRegistryGrain
{
    /// <summary>Completed (and replaced) at each change: what waiting rollout grains wait for.</summary>
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task AnnounceAsync(ActiveRun run)
    {
        if (state.State.Runs.TryGetValue(run.RunId, out var known) && known.Epoch > run.Epoch) return;
        if (known == run) return;
        state.State.Runs[run.RunId] = run;
        await state.WriteStateAsync();
        var changed = _changed;
        _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    public Task<IReadOnlyList<ActiveRun>> ListAsync() => Task.FromResult(List());

    public async Task<IReadOnlyList<ActiveRun>> WaitForChangeAsync(IReadOnlyList<ActiveRun> known, TimeSpan maxWait)
    {
        if (List().SequenceEqual(known)) await Task.WhenAny(_changed.Task, Task.Delay(maxWait, time));
        return List();
    }

    private IReadOnlyList<ActiveRun> List() => state.State.Runs.Values.OrderBy(r => r.RunId, StringComparer.Ordinal).ToList();
}

/// <summary>Names of the providers the grains use.</summary>
public static class GrainStorage
{
    /// <summary>The grain storage of every Dapo grain: a local directory (embedded) or an Azure table (cluster).</summary>
    public const string Name = "dapo";
}
