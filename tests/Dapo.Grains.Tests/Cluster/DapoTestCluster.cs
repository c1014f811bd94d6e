using System.Collections.Concurrent;
using System.Text;
using Dapo.Grains.Blobs;
using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Grains.Storage;
using Dapo.Training;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Hosting;
using Orleans.Metadata;
using Orleans.Runtime.Hosting;
using Orleans.TestingHost;
using SiloOptions = Dapo.Grains.Hosting.SiloOptions;

namespace Dapo.Grains.Tests.Cluster;

/// <summary>
/// An <see cref="InProcessTestCluster"/> of Dapo silos, each with its own roles. Every silo is configured with the
/// pieces of <see cref="DapoSiloBuilderExtensions.AddDapo"/> except membership and endpoints, which the test cluster
/// provides (in-process membership, in-memory transport, loopback addresses): AddDapo's Local storage is one silo
/// (development clustering on its own endpoint), its AzureStorage needs Azure Tables. What all silos share, as a real
/// cluster shares its storage: one <see cref="FileGrainStorage"/> (grain state "dapo"; one instance, so its ETag
/// checks hold across silos), one blob directory, one reminder table (<see cref="InProcessReminderTable"/>).
/// </summary>
public sealed class DapoTestCluster : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, SiloRoles> _roles = new();
    private readonly Action<SiloOptions> _configure;
    private readonly FileGrainStorage _grainStorage;
    private readonly InProcessReminderTable _reminders = new();
    private readonly BlobStorageOptions _blobOptions;
    private readonly FileLoggerProvider _log;
    private int _silosStarted;

    private DapoTestCluster(IReadOnlyList<SiloRoles> silos, Action<SiloOptions> configure)
    {
        _configure = configure;
        Directory = System.IO.Directory.CreateTempSubdirectory("dapo-grains-cluster-").FullName;
        _grainStorage = new FileGrainStorage(Path.Combine(Directory, "grains"));
        _blobOptions = new BlobStorageOptions { Kind = BlobStoreKind.Local, LocalRoot = Path.Combine(Directory, "blobs") };
        Blobs = BlobStoreFactory.Create(_blobOptions);
        _log = new FileLoggerProvider(Path.Combine(Directory, "silos.log"));
        foreach (var roles in silos) _roles[$"Silo_{_silosStarted++}"] = roles;
        var builder = new InProcessTestClusterBuilder((short)silos.Count);
        builder.Options.GatewayPerSilo = true;  // the client keeps a gateway when a silo is killed
        builder.ConfigureSilo(ConfigureSilo);
        // Orleans' client re-reads the grain types every minute by default: a first read taken before the gateway
        // knew every silo would leave the client without the learner's or rollout's grain class for that minute.
        builder.ConfigureClient(client => client.RefreshEvery(ClientClustering.RefreshPeriod));
        Cluster = builder.Build();
    }

    public InProcessTestCluster Cluster { get; }

    public IClusterClient Client => Cluster.Client;

    /// <summary>The cluster's temporary directory: grains/, blobs/, runs/, silos.log.</summary>
    public string Directory { get; }

    /// <summary>The blob storage every silo uses.</summary>
    public IBlobStore Blobs { get; }

    /// <summary>Starts a cluster with one silo per entry of <paramref name="silos"/>, in order (Silo_0, Silo_1, ...).</summary>
    public static async Task<DapoTestCluster> StartAsync(IReadOnlyList<SiloRoles> silos, Action<SiloOptions>? configure = null)
    {
        var cluster = new DapoTestCluster(silos, configure ?? (_ => { }));
        try
        {
            await cluster.Blobs.EnsureContainerAsync(CancellationToken.None);
            await cluster.Cluster.DeployAsync();
            await cluster.WaitForClientManifestAsync(silos);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Waits until the client's gateway has told it which grain classes the cluster hosts: until then the client
    /// cannot even make a reference to a grain whose class only other silos host ("Could not find an implementation").
    /// </summary>
    private async Task WaitForClientManifestAsync(IReadOnlyList<SiloRoles> silos)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            try
            {
                if (silos.Any(r => r.HasFlag(SiloRoles.Learner))) Client.GetGrain<ILearnerGrain>("manifest-probe");
                if (silos.Any(r => r.HasFlag(SiloRoles.Rollout))) Client.GetGrain<IRolloutGrain>("manifest-probe");
                return;
            }
            catch (ArgumentException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    /// <summary>Starts one more silo of <paramref name="roles"/>; it joins the running cluster.</summary>
    public Task<InProcessSiloHandle> StartSiloAsync(SiloRoles roles)
    {
        _roles[$"Silo_{_silosStarted++}"] = roles;
        return Cluster.StartAdditionalSiloAsync();
    }

    public SiloRoles RolesOf(InProcessSiloHandle silo) => _roles[silo.Name];

    /// <summary>Writes a run's spec as the learner does (create-only), so that step grains can be driven directly.</summary>
    public async Task<RunResources> WriteSpecAsync(string runId, DemoRecipe recipe)
    {
        var spec = RunResources.SpecJson(recipe);
        Assert.True(await Blobs.TryCreateAsync(RunResources.SpecBlob(runId), Encoding.UTF8.GetBytes(spec), CancellationToken.None));
        return new RunResources(runId, recipe);
    }

    /// <summary>The learner state of <paramref name="run"/> as stored: what a learner started after a crash reads.</summary>
    public async Task<LearnerState?> StoredLearnerStateAsync(string run)
    {
        var stored = new GrainState<LearnerState>();
        await _grainStorage.ReadStateAsync("learner", Client.GetGrain<ILearnerGrain>(run).GetGrainId(), stored);
        return stored.RecordExists ? stored.State : null;
    }

    /// <summary>Waits until the learner of <paramref name="run"/> reports a state that is <paramref name="done"/>; a
    /// failure says where the run was.</summary>
    public Task<RunInfo> WaitForRunAsync(string run, Func<RunInfo, bool> done, TimeSpan timeout, TimeSpan? poll = null) =>
        Eventually.WaitAsync(async () => (await Client.GetGrain<ILearnerGrain>(run).GetAsync())!, done, timeout,
            i => $"run {run} is {i.Status} at step {i.Step}, {i.Phase} ({i.PhaseDetail}), epoch {i.Epoch} on {i.Silo}; error: {i.Error}", this, poll);

    /// <summary>What each live rollout silo's rollout grain is doing (for failure messages).</summary>
    public async Task<string> DescribeRolloutsAsync()
    {
        var lines = new List<string>();
        foreach (var silo in Cluster.GetActiveSilos().Where(s => RolesOf(s).HasFlag(SiloRoles.Rollout)))
        {
            try { lines.Add((await Client.GetGrain<IRolloutGrain>(RolloutKeys.Of(silo.SiloAddress, 0)).GetAsync()).ToString()); }
            catch (Exception e) { lines.Add($"{silo.Name}: {e.GetType().Name}: {e.Message}"); }
        }
        return string.Join('\n', lines);
    }

    /// <summary>The silo log so far (for failure messages).</summary>
    public string LogTail(int lines = 60)
    {
        _log.Flush();
        var all = File.Exists(_log.Path) ? File.ReadAllLines(_log.Path) : [];
        return string.Join('\n', all.TakeLast(lines));
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Cluster.StopAllSilosAsync();
        }
        finally
        {
            await Cluster.DisposeAsync();
            _log.Dispose();
            // DAPO_KEEP_TEST_CLUSTERS=1 keeps the directory (grain state, blobs, silos.log) for a post-mortem.
            if (Environment.GetEnvironmentVariable("DAPO_KEEP_TEST_CLUSTERS") != "1")
                try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
        }
    }

    private void ConfigureSilo(InProcessTestSiloSpecificOptions silo, ISiloBuilder builder)
    {
        if (!_roles.TryGetValue(silo.SiloName, out var roles))
            throw new InvalidOperationException($"No roles were given for silo {silo.SiloName}.");
        var options = new SiloOptions
        {
            Roles = roles.ToString().ToLowerInvariant().Replace(" ", ""),
            RunDirectory = Path.Combine(Directory, "runs"),
            // Short timings: silos declared dead within seconds, a dead learner back within seconds, leases of a dead
            // rollout grain offered again soon.
            ProbeTimeout = TimeSpan.FromSeconds(1), MissedProbesLimit = 2, VotesForDeath = 1,
            LearnerReminderPeriod = TimeSpan.FromSeconds(2), WorkVisibility = TimeSpan.FromSeconds(3),
            RolloutWorkers = 1, RolloutBatch = 1, RetryBudget = TimeSpan.FromSeconds(30),
        };
        _configure(options);
        var errors = SiloOptionsValidator.Validate(options);
        if (errors.Count > 0) throw new OptionsValidationException("Silo", typeof(SiloOptions), errors);

        var services = builder.Services;
        services.AddLogging(l => l.AddProvider(_log).SetMinimumLevel(LogLevel.Information)
            .AddFilter("Orleans", LogLevel.Warning).AddFilter("Microsoft", LogLevel.Warning));
        // Everything of AddDapo but its clustering, endpoints and storage, which the test cluster brings.
        builder.AddDapoGrains(new SiloSettings(options, _blobOptions, new RedisSettings()));
        services.AddGrainStorage(GrainStorage.Name, (_, _) => _grainStorage);
        builder.UseInProcessReminderTable(_reminders);
    }
}

/// <summary>Polls a condition until it holds or a deadline passes.</summary>
internal static class Eventually
{
    /// <param name="poll">Time between reads: short for a fault trigger that must hit a window of a fraction of a second.</param>
    public static async Task<T> WaitAsync<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan timeout, Func<T, string> describe,
        DapoTestCluster? cluster = null, TimeSpan? poll = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var value = await read();
            if (done(value)) return value;
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"Not reached within {timeout.TotalSeconds:0} s: {describe(value)}" +
                            (cluster is null ? "" : $"\n{await cluster.DescribeRolloutsAsync()}\nsilo log (last lines):\n{cluster.LogTail()}"));
            await Task.Delay(poll ?? TimeSpan.FromMilliseconds(100));
        }
    }
}

/// <summary>Log lines of every silo of a test cluster, in one file.</summary>
internal sealed class FileLoggerProvider(string path) : ILoggerProvider
{
    private readonly StreamWriter _writer = new(path, append: true) { AutoFlush = false };

    public string Path { get; } = path;

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Flush()
    {
        lock (_writer) _writer.Flush();
    }

    public void Dispose()
    {
        lock (_writer) _writer.Dispose();
    }

    private void Write(string line)
    {
        lock (_writer)
        {
            try { _writer.WriteLine(line); }
            catch (ObjectDisposedException) { }  // a killed silo's threads may still log after the cluster is gone
        }
    }

    private sealed class Logger(FileLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var shortCategory = category[(category.LastIndexOf('.') + 1)..];
            provider.Write($"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel.ToString()[..4]} {shortCategory}: {formatter(state, exception)}" +
                           (exception is null ? "" : $" | {exception.GetType().Name}: {exception.Message}"));
        }
    }
}
