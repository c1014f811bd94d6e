using Dapo.Grains.Hosting;
using Dapo.Grains.Inspection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Runtime;

namespace Dapo.Client;

/// <summary>The Orleans client of dapo-client: connects to a cluster and reads it through its grains.</summary>
internal static class ClusterConnection
{
    /// <summary>
    /// Connects to the embedded silo of <paramref name="silo"/> (localhost clustering on its gateway port) or to the
    /// cluster on Azure Storage, within <see cref="ClientOptions.ConnectTimeout"/>; one line saying why when it cannot.
    /// </summary>
    public static async Task<GrainRunReader> ConnectAsync(ClusterTarget target, EmbeddedSiloFile? silo, ClientOptions options, string description,
        CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        // The client's own output is its tables and JSON: Orleans' logs would only garble them.
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = options.CallTimeout);
            switch (target)
            {
                case ClusterTarget.Embedded when silo is not null:
                    client.UseLocalhostClustering(silo.GatewayPort, serviceId: silo.ClusterId, clusterId: silo.ClusterId);
                    break;
                case ClusterTarget.Embedded:
                    throw new InvalidOperationException($"No silo to connect to for {target}.");
                default:
                    client.UseClusterOf(target);
                    break;
            }
        });
        var where = target switch
        {
            ClusterTarget.Cluster c => $"cluster '{c.ClusterId}'",
            ClusterTarget.RedisCluster r => $"cluster '{r.ClusterId}'",
            _ => $"the silo of {((ClusterTarget.Embedded)target).Directory} (gateway 127.0.0.1:{silo!.GatewayPort})",
        };
        var host = builder.Build();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        try
        {
            await host.StartAsync(timeout.Token);
            return new GrainRunReader(host.Services.GetRequiredService<IClusterClient>(), description, options.CallTimeout, new Connection(host));
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            host.Dispose();
            throw new InspectionException(ExitCodes.Unavailable, timeout.IsCancellationRequested
                ? $"cannot reach {where}: no gateway answered within {options.ConnectTimeout.TotalSeconds:0.#}s (Client:ConnectTimeout)"
                : $"cannot reach {where}: {e.GetBaseException().Message.Split('\n')[0].Trim()}", e);
        }
    }

    /// <summary>The client's host, stopped with the reader.</summary>
    private sealed class Connection(IHost host) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            // Close the gateway connection, but do not let a silo that went away hold the command up.
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try
            {
                await host.StopAsync(timeout.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SiloUnavailableException or Orleans.Runtime.Messaging.ConnectionFailedException)
            {
            }
            host.Dispose();
        }
    }
}
