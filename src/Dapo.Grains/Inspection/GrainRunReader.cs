using Dapo.Grains;
using Dapo.Grains.Hosting;
using Orleans.Runtime;

namespace Dapo.Grains.Inspection;

/// <summary>
/// A running cluster read through its grains (an Orleans client's, or a silo's own): the grains answer with their state through their [ReadOnly]
/// methods (ILearnerGrain.GetAsync, IRunRegistryGrain.ListAsync, IStepGrain.GetAsync/ListPromptsAsync,
/// IPromptGrain.GetAsync, IRolloutGrain.GetAsync), the silos come from IManagementGrain. No other grain method is
/// called. Grains that do not exist are never called: a call would activate one (an always-active learner or rollout
/// grain would then stay in the silo's memory), so a run is asked only when the registry or an active learner names
/// it, and rollout grains only when they are active.
/// </summary>
public sealed class GrainRunReader : IRunReader
{
    private static readonly GrainType LearnerType = GrainType.Create("learner");
    private static readonly GrainType RolloutType = GrainType.Create("rollout");

    private readonly IGrainFactory _grains;
    private readonly TimeSpan _callTimeout;
    private readonly IAsyncDisposable? _connection;

    /// <param name="grains">The cluster's grains: an Orleans client's, or a silo's own.</param>
    /// <param name="description">What is read, in one line, safe to print.</param>
    /// <param name="callTimeout">One grain call's limit: a silo that stops answering fails the read after this long.</param>
    /// <param name="connection">Disposed with the reader: the client connection it reads through, if it owns one.</param>
    public GrainRunReader(IGrainFactory grains, string description, TimeSpan callTimeout, IAsyncDisposable? connection = null)
    {
        _grains = grains;
        Description = description;
        _callTimeout = callTimeout;
        _connection = connection;
    }

    public string Description { get; }

    public bool IsHistory => false;

    public Task<IReadOnlyList<string>> ListRunIdsAsync(CancellationToken cancellationToken) =>
        CallAsync<IReadOnlyList<string>>("the run registry", async () =>
        {
            var registered = await _grains.GetGrain<IRunRegistryGrain>(IRunRegistryGrain.Key).ListAsync();
            // A learner in its warm-start has not announced its run yet: it is active all the same.
            var learners = await Management.GetActiveGrains(LearnerType);
            return registered.Select(r => r.RunId).Concat(learners.Select(g => g.Key.ToString()!)).Distinct()
                .Order(StringComparer.Ordinal).ToList();
        }, cancellationToken);

    public Task<RunInfo?> GetRunAsync(string runId, CancellationToken cancellationToken) =>
        CallAsync($"the learner of run '{runId}'", () => _grains.GetGrain<ILearnerGrain>(runId).GetAsync(), cancellationToken);

    public Task<StepLedger?> GetStepAsync(string runId, int step, CancellationToken cancellationToken) =>
        CallAsync($"step grain {GrainKeys.Step(runId, step)}", () => _grains.GetGrain<IStepGrain>(GrainKeys.Step(runId, step)).GetAsync(),
            cancellationToken);

    public Task<IReadOnlyList<PromptEntry>> ListPromptsAsync(string runId, int step, CancellationToken cancellationToken) =>
        CallAsync($"step grain {GrainKeys.Step(runId, step)}",
            () => _grains.GetGrain<IStepGrain>(GrainKeys.Step(runId, step)).ListPromptsAsync(), cancellationToken);

    public Task<PromptGroup?> GetPromptAsync(string runId, int step, long promptId, CancellationToken cancellationToken) =>
        CallAsync($"prompt grain {GrainKeys.Prompt(runId, step, promptId)}",
            () => _grains.GetGrain<IPromptGrain>(GrainKeys.Prompt(runId, step, promptId)).GetAsync(), cancellationToken);

    public Task<IReadOnlyList<SiloInfo>> ListSilosAsync(CancellationToken cancellationToken) =>
        CallAsync<IReadOnlyList<SiloInfo>>("the membership", async () =>
            (await Management.GetDetailedHosts(onlyActive: false)).Select(m => new SiloInfo(m.SiloAddress.ToParsableString(), m.SiloName ?? "",
                m.HostName ?? "", m.Status.ToString().ToLowerInvariant(), m.ProxyPort, Utc(m.StartTime), Utc(m.IAmAliveTime))).ToList(),
            cancellationToken);

    public Task<IReadOnlyList<RolloutInfo>> ListRolloutsAsync(CancellationToken cancellationToken) =>
        CallAsync<IReadOnlyList<RolloutInfo>>("the rollout grains", async () =>
        {
            var active = await Management.GetActiveGrains(RolloutType);
            var infos = await Task.WhenAll(active.Select(g => _grains.GetGrain<IRolloutGrain>(g.Key.ToString()!).GetAsync()));
            return infos.OrderBy(i => i.Key, StringComparer.Ordinal).ToList();
        }, cancellationToken);

    private IManagementGrain Management => _grains.GetGrain<IManagementGrain>(0);

    private static DateTimeOffset Utc(DateTime time) => new(DateTime.SpecifyKind(time, DateTimeKind.Utc));

    /// <summary>One grain call (or a few), within the call timeout; a lost or silent cluster is one clear line.</summary>
    private async Task<T> CallAsync<T>(string what, Func<Task<T>> call, CancellationToken cancellationToken)
    {
        try
        {
            return await call().WaitAsync(_callTimeout, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (TimeoutException e)
        {
            throw new InspectionException(ExitCodes.Unavailable, $"{what} did not answer within {_callTimeout.TotalSeconds:0.#}s (Client:CallTimeout)", e);
        }
        catch (Exception e) when (e is not InspectionException)
        {
            throw new InspectionException(ExitCodes.Unavailable, $"reading {what} failed: {FirstLine(e)}", e);
        }
    }

    /// <summary>The root cause in one line (the Azure SDK's outer message lists every retry).</summary>
    private static string FirstLine(Exception e) => e.GetBaseException().Message.Split('\n')[0].Trim();

    public ValueTask DisposeAsync() => _connection?.DisposeAsync() ?? ValueTask.CompletedTask;
}
