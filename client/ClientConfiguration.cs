using System.CommandLine;
using System.Data.Common;
using Dapo.Grains.Blobs;
using Dapo.Grains.Hosting;
using Dapo.Grains.Store;
using Microsoft.Extensions.Configuration;
using Npgsql;

namespace Dapo.Client;

/// <summary>
/// Where the client looks and how: every setting it reads, resolved in one place. Sources, later ones winning:
/// the client's defaults below, appsettings.json next to the program and in the working directory, environment
/// variables prefixed DAPO_ (DAPO_Store__ConnectionString, as for the silo), then the command line. The sections are
/// the silo's own (Store, Blobs, Silo), bound with unknown keys as errors, so one appsettings.json serves both.
/// </summary>
internal sealed record ClientConfiguration(
    ClusterStoreOptions Store, BlobStorageOptions? Blobs, string? Run, string? EmbeddedRunDirectory, TimeSpan MemberTimeout,
    TimeSpan LearnerLeaseTtl)
{
    /// <summary>The run directory used when neither --run-dir nor --store nor Store:* configuration names a store.</summary>
    public const string DefaultRunDirectory = "runs/demo";

    /// <summary>
    /// The client's own defaults, weaker than any other source. A console must answer quickly, so it gives up on an
    /// unreachable store or blob storage after a couple of seconds, where a silo rides out a restart.
    /// </summary>
    private static readonly Dictionary<string, string?> ClientDefaults = new()
    {
        ["Store:RetryBudget"] = "00:00:01",
        ["Blobs:MaxRetries"] = "1",
        ["Blobs:RetryDelay"] = "00:00:00.200",
        ["Blobs:NetworkTimeout"] = "00:00:05",
    };

    /// <summary>Seconds an Npgsql connection attempt may take when the connection string does not say (its default is 15).</summary>
    private const int ConnectTimeoutSeconds = 5;

    /// <summary>Resolves the configuration of one command from its parse result; throws <see cref="ClientException"/> on a conflict.</summary>
    public static ClientConfiguration Resolve(ParseResult result)
    {
        var runDir = result.GetValue(GlobalOptions.RunDir);
        var store = result.GetValue(GlobalOptions.Store);
        var blobs = result.GetValue(GlobalOptions.Blobs);
        var container = result.GetValue(GlobalOptions.Container);
        if (runDir is not null && store is not null)
            throw new ClientException(ExitCodes.Usage, "give either --run-dir (an embedded run) or --store (a cluster), not both");
        if (runDir is not null && (blobs is not null || container is not null))
            throw new ClientException(ExitCodes.Usage, "--blobs and --container are for a cluster (--store); an embedded run keeps its blobs in RUN_DIR/blobs");

        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(ClientDefaults)
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddJsonFile(Path.Combine(Environment.CurrentDirectory, "appsettings.json"), optional: true)
            .AddEnvironmentVariables("DAPO_")
            .Build();

        // An embedded run's store and blobs lie in its directory, as `./dapo.sh train` puts them.
        var commandLine = new Dictionary<string, string?>();
        string? embedded = null;
        var configuredStore = configuration["Store:SqlitePath"] is not null || configuration["Store:ConnectionString"] is not null;
        if (runDir is null && store is null && !configuredStore) runDir = DefaultRunDirectory;
        if (runDir is not null)
        {
            embedded = Path.GetFullPath(runDir);
            commandLine["Store:Kind"] = "sqlite";
            commandLine["Store:SqlitePath"] = Path.Combine(embedded, "cluster.db");
            commandLine["Store:ConnectionString"] = null;
            commandLine["Blobs:Kind"] = nameof(BlobStoreKind.Local);
            commandLine["Blobs:LocalRoot"] = Path.Combine(embedded, "blobs");
        }
        if (store is not null)
        {
            commandLine["Store:Kind"] = "postgres";
            commandLine["Store:ConnectionString"] = store;
        }
        if (blobs is not null)
        {
            commandLine["Blobs:Kind"] = nameof(BlobStoreKind.Azure);
            commandLine["Blobs:ConnectionString"] = blobs;
        }
        if (container is not null) commandLine["Blobs:Container"] = container;
        var merged = new ConfigurationBuilder().AddConfiguration(configuration).AddInMemoryCollection(commandLine).Build();

        var storeOptions = Bind<ClusterStoreOptions>(merged, "Store");
        // A store named by a connection string alone is PostgreSQL (Store:Kind defaults to sqlite for the silo).
        if (store is null && runDir is null && merged["Store:Kind"] is null && merged["Store:ConnectionString"] is not null)
            storeOptions.Kind = "postgres";
        storeOptions.ReadOnly = true;  // the client never writes: the database itself refuses
        if (storeOptions.Kind == "postgres" && storeOptions.ConnectionString is { } connection)
            storeOptions.ConnectionString = WithConnectTimeout(connection);
        var storeErrors = ClusterStoreOptionsValidator.Validate(storeOptions);
        if (storeErrors.Count > 0) throw new ClientException(ExitCodes.Usage, string.Join(" ", storeErrors));

        var blobOptions = Bind<BlobStorageOptions>(merged, BlobStorageOptions.SectionName);
        // Blobs named by a connection string alone are Azure (the silo's `join` assumes the same).
        if (merged["Blobs:Kind"] is null && !string.IsNullOrWhiteSpace(blobOptions.ConnectionString)) blobOptions.Kind = BlobStoreKind.Azure;
        var blobsConfigured = blobOptions.Kind == BlobStoreKind.Local
            ? !string.IsNullOrWhiteSpace(blobOptions.LocalRoot)
            : !string.IsNullOrWhiteSpace(blobOptions.ConnectionString);
        if (blobsConfigured)
        {
            var blobErrors = BlobStorageOptionsValidator.Failures(blobOptions).ToList();
            if (blobErrors.Count > 0) throw new ClientException(ExitCodes.Usage, string.Join(" ", blobErrors));
        }

        var silo = Bind<SiloOptions>(merged, "Silo");
        var run = result.GetValue(GlobalOptions.Run);
        if (run is not null && string.IsNullOrWhiteSpace(run)) throw new ClientException(ExitCodes.Usage, "--run is empty: name a run (`dapo-client status` lists them)");
        return new ClientConfiguration(storeOptions, blobsConfigured ? blobOptions : null, run, embedded, silo.MemberTimeout, silo.LearnerLeaseTtl);
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
            throw new ClientException(ExitCodes.Usage, $"configuration section {section}: {e.Message}");
        }
        return options;
    }

    private static string WithConnectTimeout(string connectionString)
    {
        try
        {
            var given = new DbConnectionStringBuilder { ConnectionString = connectionString };
            if (given.ContainsKey("Timeout") || given.ContainsKey("Connect Timeout") || given.ContainsKey("Connection Timeout"))
                return connectionString;
            return new NpgsqlConnectionStringBuilder(connectionString) { Timeout = ConnectTimeoutSeconds }.ConnectionString;
        }
        catch (ArgumentException)
        {
            return connectionString;  // the validator names what is malformed
        }
    }
}
