using System.Net;
using System.Net.Sockets;
using Dapo.Grains.Blobs;
using Dapo.Grains.Grains;
using Dapo.Grains.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Runtime.Hosting;

namespace Dapo.Grains.Hosting;

public static class DapoSiloBuilderExtensions
{
    /// <summary>
    /// A Dapo silo: options from the "Silo" and "Blobs" sections (unknown keys are errors; every option is checked
    /// before the silo starts, see <see cref="SiloSettings.Read"/>), Orleans clustering, grain state and reminders
    /// for <see cref="SiloOptions.Storage"/>, endpoints on <see cref="SiloOptions.Address"/>, the grain classes of
    /// the silo's roles, blob storage, and the rollout grains of a rollout silo started with it.
    /// </summary>
    public static ISiloBuilder AddDapo(this ISiloBuilder silo, SiloSettings settings)
    {
        var (options, blobs) = (settings.Silo, settings.Blobs);
        silo.AddDapoGrains(settings);
        silo.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (options.ClusterId, options.ClusterId));
        var (siloPort, gatewayPort) = (options.SiloPort == 0 ? LoopbackPorts.Free() : options.SiloPort, options.GatewayPort == 0 ? LoopbackPorts.Free() : options.GatewayPort);
        silo.ConfigureEndpoints(IPAddress.Parse(options.Address), siloPort, gatewayPort, listenOnAnyHostAddress: false);
        switch (options.Storage)
        {
            case ClusterStorage.Local:
                // One silo: it is its own membership, and primary.
                silo.UseDevelopmentClustering(new IPEndPoint(IPAddress.Parse(options.Address), siloPort));
                var directory = options.GrainStateDirectory.Length > 0 ? options.GrainStateDirectory : Path.Combine(options.RunDirectory, "grains");
                silo.Services.AddGrainStorage(GrainStorage.Name, (_, _) => new FileGrainStorage(directory));
                silo.UseInProcessReminderTable();
                break;
            case ClusterStorage.AzureStorage:
                var connection = blobs.ConnectionString!;
                silo.UseAzureStorageClustering(o => o.TableServiceClient = new Azure.Data.Tables.TableServiceClient(connection));
                silo.AddTableGrainState(connection, blobs.Container);
                silo.UseAzureTableReminderService(o => o.TableServiceClient = new Azure.Data.Tables.TableServiceClient(connection));
                break;
            case ClusterStorage.Redis:
                // Each provider gets its own parsed options: each connects its own multiplexer with them.
                silo.UseRedisClustering(o => o.ConfigurationOptions = settings.Redis.Options());
                silo.AddRedisGrainState(settings.Redis);
                silo.UseRedisReminderService(o => o.ConfigurationOptions = settings.Redis.Options());
                break;
        }
        return silo;
    }

    /// <summary>
    /// Orleans' reminder service on a table this process holds: the embedded silo's own, or <paramref name="shared"/>,
    /// one table for every silo of an in-process test cluster.
    /// </summary>
    internal static ISiloBuilder UseInProcessReminderTable(this ISiloBuilder silo, InProcessReminderTable? shared = null)
    {
        silo.AddReminders();
        silo.Services.AddSingleton<IReminderTable>(shared ?? new InProcessReminderTable());
        return silo;
    }

    /// <summary>
    /// What every Dapo silo has whatever its clustering and storage (a test cluster brings its own): the options,
    /// blob storage, the run catalog and policy cache, the rollout placement, membership and reminder timings, the
    /// grain classes of the silo's roles, and the rollout grains of a rollout silo.
    /// </summary>
    public static ISiloBuilder AddDapoGrains(this ISiloBuilder silo, SiloSettings settings)
    {
        var (options, blobs) = (settings.Silo, settings.Blobs);
        var services = silo.Services;
        services.AddSingleton(Options.Create(options));
        services.AddSingleton(Options.Create(blobs));
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<CoordinationTimer>();
        services.AddMetrics();
        services.AddSingleton<DapoMetrics>();
        services.AddSingleton<IBlobStore>(sp => new TimedBlobStore(BlobStoreFactory.Create(blobs, sp.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>()),
            sp.GetRequiredService<CoordinationTimer>()));
        services.AddSingleton<RunCatalog>();
        services.AddSingleton<PolicySource>();
        services.TryAddSingleton<ITrainingReporter, LoggingTrainingReporter>();
        services.AddPlacementDirector<SiloLocalPlacementStrategy, SiloLocalPlacementDirector>();
        // The strongly consistent directory hands a leaving silo's directory ranges over to the silos that stay. With
        // Orleans' default directory every grain registered in the leaving silo's range is deactivated: scaling in a
        // rollout silo restarted the learner from its last checkpoint and dropped other rollout grains' leases.
#pragma warning disable ORLEANSEXP003 // "for evaluation purposes" in Orleans 10, and the directory Orleans is moving to
        silo.AddDistributedGrainDirectory();
#pragma warning restore ORLEANSEXP003
        silo.Configure<ClusterMembershipOptions>(o =>
        {
            o.ProbeTimeout = options.ProbeTimeout;
            o.NumMissedProbesLimit = options.MissedProbesLimit;
            o.NumVotesForDeathDeclaration = options.VotesForDeath;
        });
        silo.Configure<ReminderOptions>(o =>
        {
            if (options.LearnerReminderPeriod < o.MinimumReminderPeriod) o.MinimumReminderPeriod = options.LearnerReminderPeriod;
        });

        // Roles: a silo hosts only the grain classes of its roles, so Orleans places each grain on a silo of its role.
        var roles = options.ParsedRoles;
        services.PostConfigure<GrainTypeOptions>(o =>
        {
            if (!roles.HasFlag(SiloRoles.Learner))
                foreach (var type in LearnerRoleGrains) o.Classes.Remove(type);
            if (!roles.HasFlag(SiloRoles.Rollout)) o.Classes.Remove(typeof(RolloutGrain));
        });
        if (roles.HasFlag(SiloRoles.Rollout)) services.AddHostedService<RolloutDevices>();
        return silo;
    }

    /// <summary>Grain state in Azure Tables, written in batches (<see cref="TableGrainStorage"/>, <see cref="TableGrainStorage.For"/>).</summary>
    public static ISiloBuilder AddTableGrainState(this ISiloBuilder silo, string connectionString, string container)
    {
        silo.Services.AddGrainStorage(GrainStorage.Name, (sp, _) => TableGrainStorage.For(connectionString, container,
            sp.GetRequiredService<Orleans.Serialization.Serializer>(), sp.GetRequiredService<Microsoft.Extensions.Logging.ILogger<TableGrainStorage>>()));
        return silo;
    }

    /// <summary>
    /// Grain state in Redis with Orleans' provider: a hash per grain under <see cref="RedisSettings.GrainStateKey"/>
    /// (what a reader of history reads too), serialized with the Orleans serializer as in <see cref="AddTableGrainState"/>.
    /// </summary>
    public static ISiloBuilder AddRedisGrainState(this ISiloBuilder silo, RedisSettings redis) =>
        silo.AddRedisGrainStorage(GrainStorage.Name, (OptionsBuilder<Orleans.Persistence.RedisStorageOptions> builder) =>
            builder.Configure<Orleans.Serialization.Serializer, IOptions<ClusterOptions>>((o, serializer, cluster) =>
            {
                o.ConfigurationOptions = redis.Options();
                o.GrainStorageSerializer = new Orleans.Storage.OrleansGrainStorageSerializer(serializer);
                o.GetStorageKey = (stateName, grain) => RedisSettings.GrainStateKey(cluster.Value.ServiceId, stateName, grain);
            }));

    /// <summary>Grain state in this silo's memory (tests and benchmarks), with the Orleans serializer as in <see cref="AddTableGrainState"/>.</summary>
    public static ISiloBuilder AddMemoryGrainState(this ISiloBuilder silo) =>
        silo.AddMemoryGrainStorage(GrainStorage.Name, (OptionsBuilder<MemoryGrainStorageOptions> builder) =>
            builder.Configure<Orleans.Serialization.Serializer>((o, serializer) =>
                o.GrainStorageSerializer = new Orleans.Storage.OrleansGrainStorageSerializer(serializer)));

    /// <summary>The grain classes of the learner role: the run's state and ledger live beside its learner.</summary>
    public static readonly IReadOnlyList<Type> LearnerRoleGrains = [typeof(LearnerGrain), typeof(StepGrain), typeof(PromptGrain), typeof(RunRegistryGrain)];

}

/// <summary>Free TCP ports on the loopback interface.</summary>
public static class LoopbackPorts
{
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>
/// Where an embedded silo (`train`) can be reached while it runs: <c>silo.json</c> in the run's directory, written
/// when the silo has started and deleted when it stops. A client that finds none reads the run's history instead.
/// </summary>
public sealed record EmbeddedSiloFile(string ClusterId, int GatewayPort, int ProcessId)
{
    public const string Name = "silo.json";

    public static string PathIn(string runDirectory) => Path.Combine(runDirectory, Name);

    public void Write(string runDirectory) =>
        File.WriteAllText(PathIn(runDirectory), System.Text.Json.JsonSerializer.Serialize(this));

    /// <summary>The file of a silo that is still running, or null.</summary>
    public static EmbeddedSiloFile? Read(string runDirectory)
    {
        var path = PathIn(runDirectory);
        if (!File.Exists(path)) return null;
        try
        {
            var file = System.Text.Json.JsonSerializer.Deserialize<EmbeddedSiloFile>(File.ReadAllText(path));
            if (file is null) return null;
            // A silo killed without its shutdown left its file: its process is gone.
            try { using var process = System.Diagnostics.Process.GetProcessById(file.ProcessId); return process.HasExited ? null : file; }
            catch (ArgumentException) { return null; }
        }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException)
        {
            return null;
        }
    }
}

/// <summary>
/// Starts this rollout silo's rollout grains once the silo runs (they are placed on it by their keys), and starts them
/// again every few seconds: Orleans may deactivate a grain (a directory partition lost with a dead silo), and a
/// rollout grain that is not running takes no work. Starting a running grain does nothing.
/// </summary>
internal sealed partial class RolloutDevices(IGrainFactory grains, Orleans.Runtime.ILocalSiloDetails silo, IOptions<SiloOptions> options,
    Microsoft.Extensions.Logging.ILogger<RolloutDevices> logger) : BackgroundService
{
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            for (var device = 0; device < options.Value.RolloutWorkers; device++)
            {
                try
                {
                    await grains.GetGrain<IRolloutGrain>(RolloutKeys.Of(silo.SiloAddress, device)).StartAsync().WaitAsync(stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogStartFailed(logger, device, e.Message);
                }
            }
            try { await Task.Delay(Every, stoppingToken); }
            catch (OperationCanceledException) { return; }
        }
    }

    [Microsoft.Extensions.Logging.LoggerMessage(EventId = 2006, Level = Microsoft.Extensions.Logging.LogLevel.Warning,
        Message = "Rollout grain {Device} of this silo could not be started: {Error}; trying again")]
    private static partial void LogStartFailed(Microsoft.Extensions.Logging.ILogger logger, int device, string error);
}

/// <summary>A silo's settings, read and checked before anything starts.</summary>
public sealed record SiloSettings(SiloOptions Silo, BlobStorageOptions Blobs, RedisSettings Redis)
{
    /// <summary>
    /// Binds the "Silo", "Blobs" and "Redis" sections (unknown keys are errors) and checks them; throws
    /// <see cref="OptionsValidationException"/> listing every problem, one line each, naming the setting.
    /// </summary>
    public static SiloSettings Read(IConfiguration configuration)
    {
        var silo = new SiloOptions();
        var blobs = new BlobStorageOptions();
        var redis = new RedisSettings();
        var failures = new List<string>();
        try
        {
            configuration.GetSection("Silo").Bind(silo, b => b.ErrorOnUnknownConfiguration = true);
            configuration.GetSection(BlobStorageOptions.SectionName).Bind(blobs, b => b.ErrorOnUnknownConfiguration = true);
            configuration.GetSection(RedisSettings.SectionName).Bind(redis, b => b.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            failures.Add(e.InnerException?.Message is { } inner ? $"{e.Message.TrimEnd('.')}: {inner}" : e.Message);
        }
        if (failures.Count == 0)
        {
            failures.AddRange(SiloOptionsValidator.Validate(silo));
            var blobResult = new BlobStorageOptionsValidator().Validate(null, blobs);
            if (blobResult.Failed) failures.AddRange(blobResult.Failures);
            if (silo.Storage == ClusterStorage.AzureStorage && (blobs.Kind != BlobStoreKind.Azure || string.IsNullOrWhiteSpace(blobs.ConnectionString)))
                failures.Add("Silo:Storage is AzureStorage: give the storage account's connection string (--storage, Blobs:ConnectionString or DAPO_Blobs__ConnectionString).");
            if (silo.Storage == ClusterStorage.Redis)
            {
                if (redis.Validate() is { } redisError) failures.Add(redisError);
                if (blobs.Kind == BlobStoreKind.Azure ? string.IsNullOrWhiteSpace(blobs.ConnectionString) : string.IsNullOrWhiteSpace(blobs.LocalRoot))
                    failures.Add("Silo:Storage is Redis: blobs (policy versions, checkpoints, metrics) go to Azure Storage (--storage, Blobs:ConnectionString) " +
                                 "or to a directory every silo shares (--blob-dir, Blobs:Kind=Local with Blobs:LocalRoot).");
            }
        }
        if (failures.Count > 0) throw new OptionsValidationException("Silo", typeof(SiloOptions), failures);
        return new SiloSettings(silo, blobs, redis);
    }
}
