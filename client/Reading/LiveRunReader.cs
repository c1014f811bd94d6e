using Dapo.Grains;
using Dapo.Grains.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Runtime;

namespace Dapo.Client.Reading;

/// <summary>
/// A running cluster read through an Orleans client: the grains answer with their state through their [ReadOnly]
/// methods (ILearnerGrain.GetAsync, IRunRegistryGrain.ListAsync, IStepGrain.GetAsync/ListPromptsAsync,
/// IPromptGrain.GetAsync, IRolloutGrain.GetAsync), the silos come from IManagementGrain. No other grain method is
/// called. Grains that do not exist are never called: a call would activate one (an always-active learner or rollout
/// grain would then stay in the silo's memory), so a run is asked only when the registry or an active learner names
/// it, and rollout grains only when they are active.
/// </summary>
internal sealed class LiveRunReader : IRunReader
{
    private static readonly GrainType LearnerType = GrainType.Create("learner");
    private static readonly GrainType RolloutType = GrainType.Create("rollout");

    private readonly IHost _host;
    private readonly IClusterClient _client;
    private readonly TimeSpan _callTimeout;

    private LiveRunReader(IHost host, string description, TimeSpan callTimeout)
    {
        _host = host;
        _client = host.Services.GetRequiredService<IClusterClient>();
        Description = description;
        _callTimeout = callTimeout;
    }

    public string Description { get; }

    public bool IsHistory => false;

    /// <summary>
    /// Connects to the embedded silo of <paramref name="silo"/> (localhost clustering on its gateway port) or to the
    /// cluster on Azure Storage, within <see cref="ClientOptions.ConnectTimeout"/>; one line saying why when it cannot.
    /// </summary>
    public static async Task<LiveRunReader> ConnectAsync(ClusterTarget target, EmbeddedSiloFile? silo, ClientOptions options, string description,
        CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        // The client's own output is its tables and JSON: Orleans' logs would only garble them.
        builder.Logging.ClearProviders();
        string where;
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = options.CallTimeout);
            switch (target)
            {
                case ClusterTarget.Embedded when silo is not null:
                    client.UseLocalhostClustering(silo.GatewayPort, serviceId: silo.ClusterId, clusterId: silo.ClusterId);
                    break;
                case ClusterTarget.Cluster cluster:
                    client.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (cluster.ClusterId, cluster.ClusterId));
                    client.UseAzureStorageClustering(o => o.TableServiceClient = new Azure.Data.Tables.TableServiceClient(cluster.ConnectionString));
                    break;
                default:
                    throw new InvalidOperationException($"No silo to connect to for {target}.");
            }
        });
        where = target is ClusterTarget.Cluster c ? $"cluster '{c.ClusterId}'" : $"the silo of {((ClusterTarget.Embedded)target).Directory} (gateway 127.0.0.1:{silo!.GatewayPort})";
        var host = builder.Build();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        try
        {
            await host.StartAsync(timeout.Token);
            return new LiveRunReader(host, description, options.CallTimeout);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            host.Dispose();
            throw new ClientException(ExitCodes.Unavailable, timeout.IsCancellationRequested
                ? $"cannot reach {where}: no gateway answered within {options.ConnectTimeout.TotalSeconds:0.#}s (Client:ConnectTimeout)"
                : $"cannot reach {where}: {FirstLine(e)}", e);
        }
    }

    public Task<IReadOnlyList<string>> ListRunIdsAsync(CancellationToken cancellationToken) =>
        CallAsync<IReadOnlyList<string>>("the run registry", async () =>
        {
            var registered = await _client.GetGrain<IRunRegistryGrain>(IRunRegistryGrain.Key).ListAsync();
            // A learner in its warm-start has not announced its run yet: it is active all the same.
            var learners = await Management.GetActiveGrains(LearnerType);
            return registered.Select(r => r.RunId).Concat(learners.Select(g => g.Key.ToString()!)).Distinct()
                .Order(StringComparer.Ordinal).ToList();
        }, cancellationToken);

    public Task<RunInfo?> GetRunAsync(string runId, CancellationToken cancellationToken) =>
        CallAsync($"the learner of run '{runId}'", () => _client.GetGrain<ILearnerGrain>(runId).GetAsync(), cancellationToken);

    public Task<StepLedger?> GetStepAsync(string runId, int step, CancellationToken cancellationToken) =>
        CallAsync($"step grain {GrainKeys.Step(runId, step)}", () => _client.GetGrain<IStepGrain>(GrainKeys.Step(runId, step)).GetAsync(),
            cancellationToken);

    public Task<IReadOnlyList<PromptEntry>> ListPromptsAsync(string runId, int step, CancellationToken cancellationToken) =>
        CallAsync($"step grain {GrainKeys.Step(runId, step)}",
            () => _client.GetGrain<IStepGrain>(GrainKeys.Step(runId, step)).ListPromptsAsync(), cancellationToken);

    public Task<PromptGroup?> GetPromptAsync(string runId, int step, long promptId, CancellationToken cancellationToken) =>
        CallAsync($"prompt grain {GrainKeys.Prompt(runId, step, promptId)}",
            () => _client.GetGrain<IPromptGrain>(GrainKeys.Prompt(runId, step, promptId)).GetAsync(), cancellationToken);

    public Task<IReadOnlyList<SiloInfo>> ListSilosAsync(CancellationToken cancellationToken) =>
        CallAsync<IReadOnlyList<SiloInfo>>("the membership", async () =>
            (await Management.GetDetailedHosts(onlyActive: false)).Select(m => new SiloInfo(m.SiloAddress.ToParsableString(), m.SiloName ?? "",
                m.HostName ?? "", m.Status.ToString().ToLowerInvariant(), m.ProxyPort, Utc(m.StartTime), Utc(m.IAmAliveTime))).ToList(),
            cancellationToken);

    public Task<IReadOnlyList<RolloutInfo>> ListRolloutsAsync(CancellationToken cancellationToken) =>
        CallAsync<IReadOnlyList<RolloutInfo>>("the rollout grains", async () =>
        {
            var active = await Management.GetActiveGrains(RolloutType);
            var infos = await Task.WhenAll(active.Select(g => _client.GetGrain<IRolloutGrain>(g.Key.ToString()!).GetAsync()));
            return infos.OrderBy(i => i.Key, StringComparer.Ordinal).ToList();
        }, cancellationToken);

    private IManagementGrain Management => _client.GetGrain<IManagementGrain>(0);

    private static DateTimeOffset Utc(DateTime time) => new(DateTime.SpecifyKind(time, DateTimeKind.Utc));

    /// <summary>One grain call (or a few), within Client:CallTimeout; a lost or silent cluster is one clear line.</summary>
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
            throw new ClientException(ExitCodes.Unavailable, $"{what} did not answer within {_callTimeout.TotalSeconds:0.#}s (Client:CallTimeout)", e);
        }
        catch (Exception e) when (e is not ClientException)
        {
            throw new ClientException(ExitCodes.Unavailable, $"reading {what} failed: {FirstLine(e)}", e);
        }
    }

    /// <summary>The root cause in one line (the Azure SDK's outer message lists every retry).</summary>
    private static string FirstLine(Exception e) => e.GetBaseException().Message.Split('\n')[0].Trim();

    public async ValueTask DisposeAsync()
    {
        // Close the gateway connection, but do not let a silo that went away hold the command up.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await _host.StopAsync(timeout.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or SiloUnavailableException or Orleans.Runtime.Messaging.ConnectionFailedException)
        {
        }
        _host.Dispose();
    }
}
