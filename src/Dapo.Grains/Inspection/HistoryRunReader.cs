using Dapo.Grains;
using Dapo.Grains.Grains;
using Dapo.Grains.Storage;
using Orleans;
using Orleans.Runtime;
using Orleans.Storage;

namespace Dapo.Grains.Inspection;

/// <summary>
/// The history of a run no silo serves (finished, stopped or killed): the grain state the silos stored, read with the
/// silos' own storage provider, which only reads it. An embedded run's is the files of its
/// <see cref="FileGrainStorage"/> under <c>RUN_DIR/grains</c>; a cluster's is its Azure table
/// (<see cref="TableGrainStorage"/>). Rollout grains and silos keep no state: there are none in history.
/// </summary>
public sealed class HistoryRunReader : IRunReader
{
    // Orleans' grain type names of the grain classes (class name, lower case, without "Grain"), as the silo stores them.
    private static readonly GrainType Learner = GrainType.Create("learner");
    private static readonly GrainType Step = GrainType.Create("step");
    private static readonly GrainType Prompt = GrainType.Create("prompt");
    private static readonly GrainType Registry = GrainType.Create("runregistry");

    private readonly IGrainStorage _storage;
    private readonly string _where;
    private readonly string? _embeddedRun;
    private readonly string _resume;
    private readonly IAsyncDisposable? _owned;

    /// <param name="storage">The silos' grain storage provider, used for reads only.</param>
    /// <param name="where">Where that storage is, for error messages.</param>
    /// <param name="description">The first line of every view.</param>
    /// <param name="embeddedRun">The run of an embedded directory: it is listed even before it announced itself.</param>
    /// <param name="resume">How a user resumes a run that no silo is running.</param>
    /// <param name="owned">Disposed with the reader (the services behind <paramref name="storage"/>).</param>
    public HistoryRunReader(IGrainStorage storage, string where, string description, string? embeddedRun, string resume, IAsyncDisposable? owned = null)
    {
        (_storage, _where, Description, _embeddedRun, _resume, _owned) = (storage, where, description, embeddedRun, resume, owned);
    }

    /// <summary>The history an embedded run's silo left in <c>RUN_DIR/grains</c>.</summary>
    public static HistoryRunReader Embedded(ClusterTarget.Embedded target) =>
        new(new FileGrainStorage(GrainsDirectory(target.Directory)), GrainsDirectory(target.Directory),
            $"embedded run {target.Directory}: history, no silo running (read-only)", target.RunId,
            "`./dapo.sh train` with the same options resumes it");

    public static string GrainsDirectory(string runDirectory) => Path.Combine(runDirectory, "grains");

    public string Description { get; }

    public bool IsHistory => true;

    public async Task<IReadOnlyList<string>> ListRunIdsAsync(CancellationToken cancellationToken)
    {
        var registry = await ReadAsync<RunRegistryState>("registry", Registry, IRunRegistryGrain.Key);
        var ids = registry?.Runs.Keys.ToList() ?? [];
        // A run stopped before its learner announced it (during the warm-start) is known by its learner only.
        if (_embeddedRun is { } run && !ids.Contains(run) && await ReadAsync<LearnerState>("learner", Learner, run) is not null) ids.Add(run);
        return ids.Order(StringComparer.Ordinal).ToList();
    }

    public async Task<RunInfo?> GetRunAsync(string runId, CancellationToken cancellationToken)
    {
        if (await ReadAsync<LearnerState>("learner", Learner, runId) is not { } s) return null;
        // The phase lives in the learner's memory only: what a stopped learner was doing is its status.
        var phase = s.Status switch { RunStatus.Completed => "done", RunStatus.Failed => "failed", _ => "stopped" };
        return new RunInfo(runId, s.SpecJson, s.Status, s.Step, s.PolicyVersion, s.LatestCheckpoint, s.Error, s.Epoch, phase,
            s.Status == RunStatus.Running ? $"no silo is running this run: {_resume}" : "", "",
            s.StartAccuracy, s.LatestAccuracy, s.UpdatedAt);
    }

    public async Task<StepLedger?> GetStepAsync(string runId, int step, CancellationToken cancellationToken) =>
        (await ReadAsync<StepState>("step", Step, GrainKeys.Step(runId, step)))?.Ledger;

    public async Task<IReadOnlyList<PromptEntry>> ListPromptsAsync(string runId, int step, CancellationToken cancellationToken) =>
        (await ReadAsync<StepState>("step", Step, GrainKeys.Step(runId, step)))?.Prompts ?? [];

    public async Task<PromptGroup?> GetPromptAsync(string runId, int step, long promptId, CancellationToken cancellationToken) =>
        (await ReadAsync<PromptState>("prompt", Prompt, GrainKeys.Prompt(runId, step, promptId)))?.Group;

    public Task<IReadOnlyList<SiloInfo>> ListSilosAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<SiloInfo>>([]);

    public Task<IReadOnlyList<RolloutInfo>> ListRolloutsAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<RolloutInfo>>([]);

    /// <summary>A grain's stored state, or null when it never wrote any.</summary>
    private async Task<T?> ReadAsync<T>(string stateName, GrainType type, string key) where T : class, new()
    {
        var state = new GrainState<T>();
        try
        {
            await _storage.ReadStateAsync(stateName, GrainId.Create(type, key), state);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new InspectionException(ExitCodes.Unavailable, $"cannot read the {stateName} state of {key} in {_where}: {e.Message.Split('\n')[0]}", e);
        }
        return state.RecordExists ? state.State : null;
    }

    public ValueTask DisposeAsync() => _owned?.DisposeAsync() ?? ValueTask.CompletedTask;
}
