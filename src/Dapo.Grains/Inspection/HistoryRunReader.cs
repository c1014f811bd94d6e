using Dapo.Grains;
using Dapo.Grains.Grains;
using Dapo.Grains.Storage;
using Orleans;
using Orleans.Runtime;

namespace Dapo.Grains.Inspection;

/// <summary>
/// The history of an embedded run whose silo is not running (finished, stopped or killed): the grain state files
/// the silo's <see cref="FileGrainStorage"/> wrote under <c>RUN_DIR/grains</c>, read with that same storage, which
/// only reads them. Rollout grains and silos keep no state: there are none in history.
/// </summary>
public sealed class HistoryRunReader(ClusterTarget.Embedded target) : IRunReader
{
    // Orleans' grain type names of the grain classes (class name, lower case, without "Grain"), as the silo stores them.
    private static readonly GrainType Learner = GrainType.Create("learner");
    private static readonly GrainType Step = GrainType.Create("step");
    private static readonly GrainType Prompt = GrainType.Create("prompt");
    private static readonly GrainType Registry = GrainType.Create("runregistry");

    private readonly FileGrainStorage _storage = new(GrainsDirectory(target.Directory));

    public static string GrainsDirectory(string runDirectory) => Path.Combine(runDirectory, "grains");

    public string Description => $"embedded run {target.Directory}: history, no silo running (read-only)";

    public bool IsHistory => true;

    public async Task<IReadOnlyList<string>> ListRunIdsAsync(CancellationToken cancellationToken)
    {
        var registry = await ReadAsync<RunRegistryState>("registry", Registry, IRunRegistryGrain.Key);
        var ids = registry?.Runs.Keys.ToList() ?? [];
        // A run stopped before its learner announced it (during the warm-start) is known by its learner only.
        if (!ids.Contains(target.RunId) && await ReadAsync<LearnerState>("learner", Learner, target.RunId) is not null) ids.Add(target.RunId);
        return ids.Order(StringComparer.Ordinal).ToList();
    }

    public async Task<RunInfo?> GetRunAsync(string runId, CancellationToken cancellationToken)
    {
        if (await ReadAsync<LearnerState>("learner", Learner, runId) is not { } s) return null;
        // The phase lives in the learner's memory only: what a stopped learner was doing is its status.
        var phase = s.Status switch { RunStatus.Completed => "done", RunStatus.Failed => "failed", _ => "stopped" };
        return new RunInfo(runId, s.SpecJson, s.Status, s.Step, s.PolicyVersion, s.LatestCheckpoint, s.Error, s.Epoch, phase,
            s.Status == RunStatus.Running ? "no silo is running this run: `./dapo.sh train` with the same options resumes it" : "", "",
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
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
        {
            throw new InspectionException(ExitCodes.Unavailable, $"cannot read the {stateName} state of {key} in {_storage.Root}: {e.Message}", e);
        }
        return state.RecordExists ? state.State : null;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
