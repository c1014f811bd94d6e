using Orleans.Runtime;

namespace Dapo.Grains.Grains;

/// <summary>The registry's persistent state: every run the cluster was asked to train, where it is.</summary>
[GenerateSerializer]
public sealed class RunRegistryState
{
    [Id(0)] public Dictionary<string, ActiveRun> Runs { get; set; } = new();
}

/// <summary>Runs of the cluster (see <see cref="IRunRegistryGrain"/>). Written once per step of each run.</summary>
public sealed class RunRegistryGrain([PersistentState("registry", GrainStorage.Name)] IPersistentState<RunRegistryState> state)
    : Grain, IRunRegistryGrain
{
    public async Task AnnounceAsync(ActiveRun run)
    {
        if (state.State.Runs.TryGetValue(run.RunId, out var known) && known.Epoch > run.Epoch) return;
        if (known == run) return;
        state.State.Runs[run.RunId] = run;
        await state.WriteStateAsync();
    }

    public Task<IReadOnlyList<ActiveRun>> ListAsync() =>
        Task.FromResult<IReadOnlyList<ActiveRun>>(state.State.Runs.Values.OrderBy(r => r.RunId, StringComparer.Ordinal).ToList());
}

/// <summary>Names of the providers the grains use.</summary>
public static class GrainStorage
{
    /// <summary>The grain storage of every Dapo grain: a local directory (embedded) or Azure Blobs (cluster).</summary>
    public const string Name = "dapo";
}
