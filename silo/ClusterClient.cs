using System.CommandLine;
using Dapo.Grains.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Hosting;

namespace Dapo.Silo;

/// <summary>
/// The options that name a cluster: on Azure Storage (one connection string), or on Redis with its blobs in Azure
/// Storage or a shared directory; and the cluster's id.
/// </summary>
internal sealed class ClusterOptions
{
    private readonly Option<string> _storage = new("--storage")
    {
        Description = "Azure Storage connection string: membership, reminders, grain state and blobs (or Blobs:ConnectionString / DAPO_Blobs__ConnectionString); with --redis, the blobs only",
    };
    private readonly Option<string> _redis = new("--redis")
    {
        Description = "Redis configuration (host:port[,password=...]): membership, reminders and grain state in Redis (or Redis:ConnectionString / DAPO_Redis__ConnectionString with Silo:Storage=Redis)",
    };
    private readonly Option<string> _blobDir = new("--blob-dir")
    {
        Description = "A directory every silo shares, for blobs (policy versions, checkpoints, metrics) instead of Azure Blob Storage",
    };
    private readonly Option<string> _container = new("--container") { Description = "Blob container (default dapo; on Azure, grain state goes to the table CONTAINERgrains)" };
    private readonly Option<string> _clusterId = new("--cluster-id") { Description = "Orleans cluster id (default dapo)" };

    /// <summary>
    /// What a cluster command assumes when neither its options nor the configuration say otherwise: a cluster on
    /// Azure Storage. Weaker than appsettings.json and DAPO_ variables (a pod's environment can name Redis).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string?> Defaults = new Dictionary<string, string?>
    {
        ["Silo:Storage"] = "AzureStorage", ["Blobs:Kind"] = "Azure",
    };

    public static ClusterOptions Add(Command command)
    {
        var options = new ClusterOptions();
        foreach (var option in new Option[] { options._storage, options._redis, options._blobDir, options._container, options._clusterId })
            command.Options.Add(option);
        command.Validators.Add(result =>
        {
            if (result.GetValue(options._storage) is not null && result.GetValue(options._blobDir) is not null)
                result.AddError("--storage and --blob-dir both name the blob storage: give one (--blob-dir is for a cluster on --redis).");
        });
        return options;
    }

    /// <summary>The settings these options give; the environment (DAPO_...) and appsettings fill in the rest.</summary>
    public Dictionary<string, string?> Settings(ParseResult result)
    {
        var settings = new Dictionary<string, string?>();
        if (result.GetValue(_storage) is { } storage) (settings["Blobs:Kind"], settings["Blobs:ConnectionString"], settings["Silo:Storage"]) = ("Azure", storage, "AzureStorage");
        if (result.GetValue(_blobDir) is { } directory) (settings["Blobs:Kind"], settings["Blobs:LocalRoot"]) = ("Local", Path.GetFullPath(directory));
        if (result.GetValue(_redis) is { } redis) (settings["Silo:Storage"], settings["Redis:ConnectionString"]) = ("Redis", redis);
        if (result.GetValue(_container) is { } container) settings["Blobs:Container"] = container;
        if (result.GetValue(_clusterId) is { } id) settings["Silo:ClusterId"] = id;
        return settings;
    }
}

/// <summary>An Orleans client of a cluster on Azure Storage or Redis (start-run).</summary>
internal sealed class ClusterClient(IHost host) : IAsyncDisposable
{
    public IGrainFactory Grains => host.Services.GetRequiredService<IClusterClient>();

    /// <summary>Connects within Silo:StartupTimeout; null (after one line saying why) when the cluster cannot be reached.</summary>
    public static async Task<ClusterClient?> ConnectAsync(SiloSettings settings, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Critical);
        var target = Dapo.Grains.Inspection.ClusterTarget.Of(settings) ?? throw new InvalidOperationException("start-run needs a cluster (--storage or --redis).");
        builder.UseOrleansClient(client => client.UseClusterOf(target));
        var host = builder.Build();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(settings.Silo.StartupTimeout);
        try
        {
            await host.StartAsync(timeout.Token);
            return new ClusterClient(host);
        }
        catch (Exception e)
        {
            Console.Error.WriteLine(timeout.IsCancellationRequested
                ? $"dapo-silo: no silo of cluster '{settings.Silo.ClusterId}' answered within {settings.Silo.StartupTimeout.TotalSeconds:0}s (Silo:StartupTimeout): start a learner silo with `join --roles learner` first"
                : $"dapo-silo: cannot reach cluster '{settings.Silo.ClusterId}': {e.Message.Split('\n')[0]}");
            host.Dispose();
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await host.StopAsync(CancellationToken.None);
        host.Dispose();
    }
}
