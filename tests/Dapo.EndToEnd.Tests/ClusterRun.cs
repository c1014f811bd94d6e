using Dapo.Grains;
using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Grains.Inspection;
using Dapo.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace Dapo.EndToEnd.Tests;

/// <summary>The storage a test cluster runs on: Azure Storage (Azurite), or Redis with blobs in a directory the silos share.</summary>
internal sealed record TestStorage(ClusterStorage Kind, string ConnectionString)
{
    public static TestStorage Azure(string connectionString) => new(ClusterStorage.AzureStorage, connectionString);

    public static TestStorage Redis(string configuration) => new(ClusterStorage.Redis, configuration);
}

/// <summary>
/// One run on a real cluster on Azure Storage (Azurite) or Redis: a blob container (or directory) and an Orleans
/// cluster id of its own, every
/// silo a separate `dapo-silo join` process on 127.0.0.1 with its own log file, the run created by a `start-run`
/// process, and an Orleans client of the cluster in the test process that watches the run through the grains'
/// read-only methods.
/// </summary>
internal sealed class ClusterRun : IAsyncDisposable
{
    private static int _runs;
    private readonly List<SiloProcess> _silos = [];
    private readonly Dictionary<string, int> _ports = [];
    private IHost? _client;

    private ClusterRun(TestStorage storage, string container, IReadOnlyDictionary<string, string>? environment)
    {
        Storage = storage;
        Container = container;
        ClusterId = $"c{Interlocked.Increment(ref _runs)}-{Guid.NewGuid():N}"[..20];
        Directory = System.IO.Directory.CreateTempSubdirectory("dapo-cluster-").FullName;
        Environment = new Dictionary<string, string>
        {
            // The learner starts again on another learner silo within seconds of its silo's death.
            ["DAPO_Silo__LearnerReminderPeriod"] = "00:00:05",
            // A killed rollout silo's groups are offered again within seconds.
            ["DAPO_Silo__WorkVisibility"] = "00:00:05",
            // Small batches: the work of a step spreads over the rollout silos, and a silo holds leases often.
            ["DAPO_Silo__RolloutBatch"] = "2",
            // Silos join while others warm-start and sample on the same 2 cores: joining can take longer than the
            // default's 15 seconds there (a rollout silo once gave up after 15 s while two others were busy).
            ["DAPO_Silo__StartupTimeout"] = "00:01:00",
        };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) Environment[key] = value;
    }

    public TestStorage Storage { get; }

    /// <summary>The Azure Storage connection string or the Redis configuration.</summary>
    public string ConnectionString => Storage.ConnectionString;

    public string Container { get; }
    public string ClusterId { get; }
    public string RunId { get; } = "cluster-run";

    /// <summary>Every silo's log file and run directory.</summary>
    public string Directory { get; }

    /// <summary>Environment variables of every silo (DAPO_Section__Key settings).</summary>
    public Dictionary<string, string> Environment { get; }

    public static ClusterRun Create(TestStorage storage, string container, IReadOnlyDictionary<string, string>? environment = null) =>
        new(storage, container, environment);

    /// <summary>The options of every silo, start-run and client command that name this cluster.</summary>
    public string[] ClusterArguments => Storage.Kind == ClusterStorage.Redis
        ? ["--redis", ConnectionString, "--blob-dir", BlobDirectory, "--cluster-id", ClusterId]
        : ["--storage", ConnectionString, "--container", Container, "--cluster-id", ClusterId];

    /// <summary>The directory the silos of a cluster on Redis share for blobs.</summary>
    public string BlobDirectory => Path.Combine(Directory, "blobs");

    /// <summary>The cluster as the client and the dashboard name it.</summary>
    public ClusterTarget Target => Storage.Kind == ClusterStorage.Redis
        ? new ClusterTarget.RedisCluster(ConnectionString, ClusterId)
        : new ClusterTarget.Cluster(ConnectionString, Container, ClusterId);

    /// <summary>Starts a silo `name` with <paramref name="roles"/> (`join`) on a silo port of its own; does not wait.</summary>
    public SiloProcess Join(string name, string roles, IReadOnlyDictionary<string, string>? environment = null)
    {
        var port = FreePort.Next();
        _ports[name] = port;
        var merged = new Dictionary<string, string>(Environment);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) merged[key] = value;
        var silo = SiloProcess.Start(SiloProcess.SiloDll,
            ["join", "--roles", roles, "--run-dir", Path.Combine(Directory, name), "--silo-port", port.ToString(), .. ClusterArguments],
            merged, logFile: Path.Combine(Directory, $"{name}.log"));
        _silos.Add(silo);
        return silo;
    }

    /// <summary>Starts a silo and waits until it has joined the cluster (it logs its engine once started).</summary>
    public async Task<SiloProcess> JoinAsync(string name, string roles)
    {
        var silo = Join(name, roles);
        await silo.WaitForLineAsync("BLAS:", TimeSpan.FromMinutes(1));
        return silo;
    }

    /// <summary>Creates and starts the run with `start-run` (as an operator would); fails with its output unless it exits 0.</summary>
    public async Task StartRunAsync(string recipeOverrides)
    {
        var (code, output) = await RunCommandAsync(["start-run", "--run", RunId, "--override", recipeOverrides, .. ClusterArguments]);
        if (code != 0) throw new InvalidOperationException($"start-run failed ({code}):\n{output}\n{SiloOutput()}");
    }

    /// <summary>Runs a dapo-silo command to its end with the cluster's environment; its exit code and output.</summary>
    public async Task<(int Code, string Output)> RunCommandAsync(IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var merged = new Dictionary<string, string>(Environment);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) merged[key] = value;
        await using var process = SiloProcess.Start(SiloProcess.SiloDll, arguments, merged);
        var code = await process.WaitForExitAsync(TimeSpan.FromMinutes(1));
        return (code, process.Output);
    }

    /// <summary>An Orleans client of the cluster, connected on first use.</summary>
    public async Task<IGrainFactory> GrainsAsync()
    {
        _client ??= await ConnectAsync(Target);
        return _client.Services.GetRequiredService<IClusterClient>();
    }

    /// <summary>A started Orleans client host of <paramref name="target"/> (within a minute); stop and dispose it after use.</summary>
    public static async Task<IHost> ConnectAsync(ClusterTarget target)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Critical);
        builder.UseOrleansClient(client =>
        {
            // Learn of silos that join (their gateways and grain types), and forget dead ones, within a second or two.
            client.UseClusterOf(target).RefreshEvery(TimeSpan.FromSeconds(1));
        });
        var host = builder.Build();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await host.StartAsync(timeout.Token);
        return host;
    }

    public async Task<RunInfo?> RunAsync() => await (await GrainsAsync()).GetGrain<ILearnerGrain>(RunId).GetAsync();

    /// <summary>
    /// Waits until the run satisfies <paramref name="condition"/>. Calls that fail while the cluster changes (a silo
    /// died, storage restarts) are retried until the deadline.
    /// </summary>
    public async Task<RunInfo> WaitForAsync(Func<RunInfo, bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        Exception? last = null;
        RunInfo? run = null;
        while (true)
        {
            try
            {
                run = await RunAsync().WaitAsync(TimeSpan.FromSeconds(20));
            }
            catch (Exception e)
            {
                last = e;  // retried until the deadline; the last error goes into the timeout's message
            }
            if (run is not null && condition(run)) return run;
            if (run?.Status == RunStatus.Failed) throw new InvalidOperationException($"The run failed while waiting for {what}: {run.Error}\n{SiloOutput()}");
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Not {what} within {timeout}: run at step {run?.Step}, {run?.Status}, {run?.Phase} {run?.PhaseDetail}; " +
                                           $"last error: {last?.Message}\n{SiloOutput()}");
            await Task.Delay(250);
        }
    }

    public Task<RunInfo> WaitForStepAsync(int step, TimeSpan timeout) => WaitForAsync(r => r.Step >= step, timeout, $"at step {step}");

    public Task<RunInfo> WaitForCompletionAsync(TimeSpan timeout) => WaitForAsync(r => r.Status == RunStatus.Completed, timeout, "completed");

    /// <summary>The silo port of silo <paramref name="name"/>.</summary>
    public int PortOf(string name) => _ports[name];

    /// <summary>Whether a silo address or identity (a rollout grain's key, a learner's silo) names silo <paramref name="name"/>.</summary>
    public bool Names(string? address, string name) =>
        address is not null && (address.Contains($"127.0.0.1:{PortOf(name)}@", StringComparison.Ordinal) ||
                                address.Contains($"127.0.0.1:{PortOf(name)}:", StringComparison.Ordinal));

    /// <summary>The first rollout grain of silo <paramref name="name"/> as it is now (null when the silo is not an active
    /// member, or not yet known to this client).</summary>
    public async Task<RolloutInfo?> RolloutAsync(string name)
    {
        var grains = await GrainsAsync();
        var hosts = await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
        var silo = hosts.Keys.FirstOrDefault(s => s.Endpoint.Port == PortOf(name));
        if (silo is null) return null;
        try
        {
            return await grains.GetGrain<IRolloutGrain>(RolloutKeys.Of(silo, 0)).GetAsync();
        }
        catch (ArgumentException)
        {
            // This client has not yet learned the new silo's grain types (its cluster manifest lags a joining silo).
            return null;
        }
    }

    /// <summary>Waits until the rollout grain of one of silos <paramref name="names"/> holds leased groups it has not
    /// submitted; returns that silo's name and what its grain said. Fails at once when the run ends first.</summary>
    /// <remarks>A grain holds work only while it samples and stores a batch, a fraction of a step on a fast machine, so
    /// the grains are asked back to back, each resolved once, and the run's state only every half second.</remarks>
    public async Task<(string Name, RolloutInfo Info)> WaitUntilHoldingAsync(TimeSpan timeout, params string[] names)
    {
        var deadline = DateTime.UtcNow + timeout;
        var grains = await GrainsAsync();
        var rollouts = names.ToDictionary(n => n, _ => (IRolloutGrain?)null);
        var last = names.ToDictionary(n => n, _ => (RolloutInfo?)null);
        var polls = 0;
        var lookedAtRun = DateTime.MinValue;
        while (true)
        {
            foreach (var name in names)
            {
                if (rollouts[name] is null && await RolloutAsync(name).WaitAsync(TimeSpan.FromSeconds(20)) is { } found)
                    rollouts[name] = grains.GetGrain<IRolloutGrain>(found.Key);
                if (rollouts[name] is not { } rollout) continue;
                last[name] = await rollout.GetAsync().WaitAsync(TimeSpan.FromSeconds(20));
                polls++;
                if (last[name] is { InHand: > 0 } holding) return (name, holding);
            }
            if (DateTime.UtcNow - lookedAtRun < TimeSpan.FromSeconds(0.5)) continue;
            lookedAtRun = DateTime.UtcNow;
            var run = await RunAsync();
            if (run?.Status is RunStatus.Completed or RunStatus.Failed || DateTime.UtcNow > deadline)
                throw new TimeoutException($"none of {string.Join(", ", names)} was seen holding leased work in {polls} looks (run: {run?.Status} at step {run?.Step}); " +
                                           $"their rollout grains: {string.Join("; ", last.Select(r => $"{r.Key}: {r.Value}"))}\n{SiloOutput()}");
        }
    }

    /// <summary>Waits until a response of a recent step was sampled by a rollout grain of silo <paramref name="name"/>; returns how long it took.</summary>
    public async Task<TimeSpan> WaitForWorkByAsync(string name, TimeSpan timeout)
    {
        var started = DateTime.UtcNow;
        var grains = await GrainsAsync();
        while (true)
        {
            var run = await RunAsync();
            for (var step = Math.Max(1, (run?.Step ?? 1) - 1); step <= (run?.Step ?? 0); step++)
                foreach (var prompt in await grains.GetGrain<IStepGrain>(GrainKeys.Step(RunId, step)).ListPromptsAsync())
                    if (await grains.GetGrain<IPromptGrain>(GrainKeys.Prompt(RunId, prompt.Step, prompt.PromptId)).GetAsync() is { } group &&
                        group.Slots.Any(s => Names(s.Worker, name)))
                        return DateTime.UtcNow - started;
            if (DateTime.UtcNow - started > timeout) throw new TimeoutException($"{name} got no work within {timeout}.\n{SiloOutput()}");
            await Task.Delay(200);
        }
    }

    /// <summary>The ledger's invariants over the run (<see cref="LedgerAudit"/>), read through the cluster's grains: empty when sound.</summary>
    public async Task<IReadOnlyList<string>> AuditAsync() => await LedgerAudit.CheckAsync(await GrainsAsync(), RunId);

    public string SiloOutput() => string.Join("\n", _silos.Select(s => $"--- {s.LogFile} (pid {s.Id}, exited {s.HasExited}):\n{s.Tail(25)}"));

    public async ValueTask DisposeAsync()
    {
        if (_client is not null)
        {
            try { await _client.StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10)); }
            catch (Exception) { /* the cluster may be gone already: the client is dropped either way */ }
            _client.Dispose();
        }
        foreach (var silo in _silos) await silo.DisposeAsync();
        // DAPO_KEEP_TEST_LOGS=1 keeps every silo's log for a look after the tests.
        if (System.Environment.GetEnvironmentVariable("DAPO_KEEP_TEST_LOGS") != "1") System.IO.Directory.Delete(Directory, recursive: true);
    }
}
