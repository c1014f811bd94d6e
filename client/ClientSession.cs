using Dapo.Grains.Blobs;
using Dapo.Grains.Hosting;
using Dapo.Grains.Inspection;

namespace Dapo.Client;

/// <summary>Opens the <see cref="InspectionSession"/> of a command: its configuration's target, read live or as history.</summary>
internal static class ClientSession
{
    public static async Task<InspectionSession> OpenAsync(ClientConfiguration configuration, CancellationToken cancellationToken)
    {
        var reader = await OpenReaderAsync(configuration, cancellationToken);
        return new InspectionSession(reader, BlobStoreFactory.Create(configuration.Blobs), configuration.Target, configuration.Run,
            ct => OpenReaderAsync(configuration, ct), configuration.Client.ConnectTimeout);
    }

    /// <summary>
    /// The reader of the target: the running silo of an embedded run (its silo.json names its gateway), else the run's
    /// history; the cluster's gateways for a cluster while its membership lists active silos, else its history.
    /// </summary>
    private static async Task<IRunReader> OpenReaderAsync(ClientConfiguration configuration, CancellationToken cancellationToken)
    {
        switch (configuration.Target)
        {
            case ClusterTarget.Cluster or ClusterTarget.RedisCluster:
                var target = configuration.Target;
                var store = IClusterStore.For(target, configuration.Client.ConnectTimeout);
                var where = target is ClusterTarget.Cluster azure
                    ? $"cluster '{azure.ClusterId}' on Azure Storage, blobs in {BlobStoreFactory.Create(configuration.Blobs).Description}"
                    : $"cluster '{((ClusterTarget.RedisCluster)target).ClusterId}' on Redis, blobs in {BlobStoreFactory.Create(configuration.Blobs).Description}";
                // No silo listed active: nobody to ask, the grain state is the history (at once, not after a timeout).
                var active = await store.ActiveSilosAsync(cancellationToken);
                if (active == 0) return await store.HistoryAsync($"{where}: history, no silo running (read-only)", cancellationToken);
                try
                {
                    return await ClusterConnection.ConnectAsync(target, null, configuration.Client, $"{where}: live (read-only)", cancellationToken);
                }
                catch (InspectionException e) when (e.ExitCode == ExitCodes.Unavailable)
                {
                    // Silos killed outright stay "active" in the membership until a live silo declares them dead: with
                    // none answering, what they stored is what there is to show.
                    return await store.HistoryAsync($"{where}: history, {active} silo(s) listed active but none answered ({e.Message}) (read-only)",
                        cancellationToken);
                }
            case ClusterTarget.Embedded embedded:
                var directory = embedded.Directory;
                if (File.Exists(directory))
                    throw new InspectionException(ExitCodes.Usage, $"--run-dir: {directory} is a file, not the directory of a `./dapo.sh train` run");
                if (!Directory.Exists(directory))
                    throw new InspectionException(ExitCodes.NotFound,
                        $"there is no run directory {directory}: start a run with `./dapo.sh train --run-dir {directory}`, or give --run-dir or --storage");
                if (EmbeddedSiloFile.Read(directory) is { } silo)
                {
                    try
                    {
                        return await ClusterConnection.ConnectAsync(embedded, silo, configuration.Client,
                            $"embedded run {directory}: live, silo process {silo.ProcessId} at 127.0.0.1:{silo.GatewayPort} (read-only)", cancellationToken);
                    }
                    catch (InspectionException) when (EmbeddedSiloFile.Read(directory) is null)
                    {
                        // The silo stopped while we connected: what it left is the run's history.
                    }
                }
                if (!Directory.Exists(HistoryRunReader.GrainsDirectory(directory)))
                    throw new InspectionException(ExitCodes.NotFound,
                        $"{directory} holds no grains/ and no running silo: it is not the directory of a `./dapo.sh train` run (or the run has not started yet)");
                return HistoryRunReader.Embedded(embedded);
            default:
                throw new InvalidOperationException($"Unknown target {configuration.Target}.");
        }
    }
}
