using System.CommandLine;
using Dapo.Grains.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Hosting;

namespace Dapo.Silo;

/// <summary>The options that name a cluster on Azure Storage: one connection string and the cluster's id.</summary>
internal sealed class ClusterOptions
{
    private readonly Option<string> _storage = new("--storage")
    {
        Description = "Azure Storage connection string: membership, reminders, grain state and blobs (or Blobs:ConnectionString / DAPO_Blobs__ConnectionString)",
    };
    private readonly Option<string> _container = new("--container") { Description = "Blob container (default dapo; grain state goes to the table CONTAINERgrains)" };
    private readonly Option<string> _clusterId = new("--cluster-id") { Description = "Orleans cluster id (default dapo)" };

    public static ClusterOptions Add(Command command)
    {
        var options = new ClusterOptions();
        command.Options.Add(options._storage);
        command.Options.Add(options._container);
        command.Options.Add(options._clusterId);
        return options;
    }

    /// <summary>The settings these options give; the environment (DAPO_...) and appsettings fill in the rest.</summary>
    public Dictionary<string, string?> Settings(ParseResult result)
    {
        var settings = new Dictionary<string, string?> { ["Silo:Storage"] = "AzureStorage", ["Blobs:Kind"] = "Azure" };
        if (result.GetValue(_storage) is { } storage) settings["Blobs:ConnectionString"] = storage;
        if (result.GetValue(_container) is { } container) settings["Blobs:Container"] = container;
        if (result.GetValue(_clusterId) is { } id) settings["Silo:ClusterId"] = id;
        return settings;
    }
}

/// <summary>An Orleans client of a cluster on Azure Storage (start-run).</summary>
internal sealed class ClusterClient(IHost host) : IAsyncDisposable
{
    public IGrainFactory Grains => host.Services.GetRequiredService<IClusterClient>();

    /// <summary>Connects within Silo:StartupTimeout; null (after one line saying why) when the cluster cannot be reached.</summary>
    public static async Task<ClusterClient?> ConnectAsync(SiloSettings settings, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Critical);
        var connection = settings.Blobs.ConnectionString!;
        builder.UseOrleansClient(client =>
        {
            client.Configure<Orleans.Configuration.ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (settings.Silo.ClusterId, settings.Silo.ClusterId));
            client.UseAzureStorageClustering(o => o.TableServiceClient = new Azure.Data.Tables.TableServiceClient(connection));
        });
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
