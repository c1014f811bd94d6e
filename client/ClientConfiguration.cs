using System.CommandLine;
using Dapo.Grains.Blobs;
using Dapo.Grains.Hosting;
using Microsoft.Extensions.Configuration;

using Dapo.Grains.Inspection;

namespace Dapo.Client;

/// <summary>The client's own settings (section "Client"): how long it waits for a cluster before it gives up.</summary>
internal sealed class ClientOptions
{
    /// <summary>Connecting to a gateway (and reading the membership table to find one).</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>One grain call: a silo that stops answering fails the command after this long.</summary>
    public TimeSpan CallTimeout { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// Where the client looks and how: every setting it reads, resolved in one place. Sources, later ones winning: the
/// client's defaults, appsettings.json next to the program and in the working directory, environment variables
/// prefixed DAPO_ (DAPO_Blobs__ConnectionString, as for the silo), then the command line. The sections are the
/// silo's own (Blobs, Silo) plus Client, bound with unknown keys as errors, so one appsettings.json serves both.
/// </summary>
internal sealed record ClientConfiguration(ClusterTarget Target, BlobStorageOptions Blobs, string? Run, ClientOptions Client)
{
    /// <summary>The run directory used when neither --run-dir nor --storage nor Blobs:ConnectionString names a cluster.</summary>
    public const string DefaultRunDirectory = "runs/demo";

    /// <summary>
    /// The client's own defaults, weaker than any other source. A console must answer quickly, so it gives up on
    /// unreachable blob storage after a few seconds, where a silo rides out a restart.
    /// </summary>
    private static readonly Dictionary<string, string?> ClientDefaults = new()
    {
        ["Blobs:MaxRetries"] = "1",
        ["Blobs:RetryDelay"] = "00:00:00.200",
        ["Blobs:NetworkTimeout"] = "00:00:05",
    };

    /// <summary>Resolves the configuration of one command from its parse result; throws <see cref="InspectionException"/> on a conflict.</summary>
    public static ClientConfiguration Resolve(ParseResult result)
    {
        var runDir = result.GetValue(GlobalOptions.RunDir);
        var storage = result.GetValue(GlobalOptions.Storage);
        var redis = result.GetValue(GlobalOptions.Redis);
        var blobDir = result.GetValue(GlobalOptions.BlobDir);
        var container = result.GetValue(GlobalOptions.Container);
        var clusterId = result.GetValue(GlobalOptions.ClusterId);
        if (runDir is not null && (storage ?? redis) is not null)
            throw new InspectionException(ExitCodes.Usage, "give either --run-dir (an embedded run) or --storage / --redis (a cluster), not both");
        if (runDir is not null && (container ?? clusterId ?? blobDir) is not null)
            throw new InspectionException(ExitCodes.Usage,
                "--container, --cluster-id and --blob-dir are for a cluster (--storage, --redis); an embedded run keeps its blobs in RUN_DIR/blobs");
        if (storage is not null && blobDir is not null)
            throw new InspectionException(ExitCodes.Usage, "--storage and --blob-dir both name the blob storage: give the one the cluster's silos use");

        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(ClientDefaults)
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddJsonFile(Path.Combine(Environment.CurrentDirectory, "appsettings.json"), optional: true)
            .AddEnvironmentVariables("DAPO_")
            .Build();
        var commandLine = new Dictionary<string, string?>();
        if (storage is not null) commandLine["Blobs:ConnectionString"] = storage;
        if (container is not null) commandLine["Blobs:Container"] = container;
        if (clusterId is not null) commandLine["Silo:ClusterId"] = clusterId;
        if (redis is not null) (commandLine["Silo:Storage"], commandLine["Redis:ConnectionString"]) = ("Redis", redis);
        if (blobDir is not null) (commandLine["Blobs:Kind"], commandLine["Blobs:LocalRoot"]) = ("Local", Path.GetFullPath(blobDir));
        var merged = new ConfigurationBuilder().AddConfiguration(configuration).AddInMemoryCollection(commandLine).Build();

        var blobs = Bind<BlobStorageOptions>(merged, BlobStorageOptions.SectionName);
        var silo = Bind<SiloOptions>(merged, "Silo");
        var redisSettings = Bind<RedisSettings>(merged, RedisSettings.SectionName);
        var client = Bind<ClientOptions>(merged, "Client");
        if (client.ConnectTimeout <= TimeSpan.Zero || client.CallTimeout <= TimeSpan.Zero)
            throw new InspectionException(ExitCodes.Usage, "Client:ConnectTimeout and Client:CallTimeout must be positive, e.g. 00:00:10");

        ClusterTarget target;
        // A cluster on Redis is named by Silo:Storage=Redis (--redis), one on Azure Storage by its connection string;
        // without either (and with --run-dir) it is an embedded run.
        if (runDir is null && silo.Storage == ClusterStorage.Redis)
        {
            if (redisSettings.Validate() is { } problem) throw new InspectionException(ExitCodes.Usage, problem);
            if (blobDir is null && !string.IsNullOrWhiteSpace(blobs.ConnectionString)) blobs.Kind = BlobStoreKind.Azure;
            else if (blobs.Kind != BlobStoreKind.Local || string.IsNullOrWhiteSpace(blobs.LocalRoot))
                throw new InspectionException(ExitCodes.Usage,
                    "a cluster on Redis keeps its blobs in Azure Storage (--storage) or a directory its silos share (--blob-dir): give the one they use");
            target = new ClusterTarget.RedisCluster(redisSettings.ConnectionString!, silo.ClusterId);
        }
        else if (runDir is null && !string.IsNullOrWhiteSpace(blobs.ConnectionString))
        {
            blobs.Kind = BlobStoreKind.Azure;
            target = new ClusterTarget.Cluster(blobs.ConnectionString!, blobs.Container, silo.ClusterId);
        }
        else
        {
            var embedded = new ClusterTarget.Embedded(Path.GetFullPath(runDir ?? DefaultRunDirectory));
            blobs.Kind = BlobStoreKind.Local;
            blobs.LocalRoot = Path.Combine(embedded.Directory, "blobs");
            blobs.ConnectionString = null;
            target = embedded;
        }
        var blobErrors = BlobStorageOptionsValidator.Failures(blobs).ToList();
        if (blobErrors.Count > 0) throw new InspectionException(ExitCodes.Usage, string.Join(" ", blobErrors));

        var run = result.GetValue(GlobalOptions.Run);
        if (run is not null && string.IsNullOrWhiteSpace(run)) throw new InspectionException(ExitCodes.Usage, "--run is empty: name a run (`dapo-client status` lists them)");
        return new ClientConfiguration(target, blobs, run, client);
    }

    private static T Bind<T>(IConfiguration configuration, string section) where T : new()
    {
        var options = new T();
        try
        {
            configuration.GetSection(section).Bind(options, b => b.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            throw new InspectionException(ExitCodes.Usage, $"configuration section {section}: {e.Message}");
        }
        return options;
    }
}
