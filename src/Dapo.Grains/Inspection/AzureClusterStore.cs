using Azure;
using Azure.Data.Tables;
using Dapo.Grains.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Serialization;

namespace Dapo.Grains.Inspection;

/// <summary>
/// What a cluster on Azure Storage keeps in its tables, read without a silo: whether Orleans' membership table lists
/// any silo as active (else there is no one to ask, and the grain state is the run's history), and that history.
/// Reads only: no table is created, nothing is written.
/// </summary>
public sealed class AzureClusterStore(ClusterTarget.Cluster target, TimeSpan timeout) : IClusterStore
{
    /// <summary>Orleans' membership table (AzureStorageClusteringOptions.TableName's default): one row per silo
    /// incarnation, partitioned by cluster id, with the silo's status by name.</summary>
    public const string MembershipTable = "OrleansSiloInstances";

    /// <summary>How many silos of the cluster the membership table lists as active; 0 when it has none (or no table).</summary>
    public async Task<int> ActiveSilosAsync(CancellationToken cancellationToken)
    {
        var table = Tables().GetTableClient(MembershipTable);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            var active = 0;
            await foreach (var row in table.QueryAsync<TableEntity>(e => e.PartitionKey == target.ClusterId, select: ["Status"],
                               cancellationToken: limit.Token))
                if (row.GetString("Status") == "Active") active++;
            return active;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return 0;  // no silo ever joined a cluster on this account
        }
        catch (Exception e) when (e is RequestFailedException or AggregateException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw new InspectionException(ExitCodes.Unavailable, limit.IsCancellationRequested
                ? $"cannot reach cluster '{target.ClusterId}': its membership table did not answer within {timeout.TotalSeconds:0.#}s (Client:ConnectTimeout)"
                : $"cannot reach cluster '{target.ClusterId}': its membership table did not answer: {Reason(e)}", e);
        }
    }

    /// <summary>The history reader over the cluster's grain state table (the silos' <see cref="TableGrainStorage"/>).</summary>
    public async Task<HistoryRunReader> HistoryAsync(string description, CancellationToken cancellationToken)
    {
        var name = TableGrainStorage.TableNameFor($"{target.Container}grains");
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        var exists = false;
        try
        {
            await foreach (var _ in Tables().QueryAsync(t => t.Name == name, cancellationToken: limit.Token)) exists = true;
        }
        catch (Exception e) when (e is RequestFailedException or AggregateException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw new InspectionException(ExitCodes.Unavailable, $"cannot read the grain state of cluster '{target.ClusterId}' (table {name}): {Reason(e)}", e);
        }
        if (!exists)
            throw new InspectionException(ExitCodes.NotFound, $"cluster '{target.ClusterId}' has no silo running and no grain state (no table {name}): " +
                                                              $"no run was started with blob container '{target.Container}'");
        var services = IClusterStore.Serializers();
        var storage = TableGrainStorage.For(target.ConnectionString, target.Container, services.GetRequiredService<Serializer>(),
            NullLogger<TableGrainStorage>.Instance, Options(timeout));
        return new HistoryRunReader(storage, $"table {name}", description, null,
            "silos joining the cluster resume it (`dapo-silo join`)", services);
    }

    /// <summary>The cause in one line: the last try's error, not the SDK's "Retry failed after 2 tries" around it.</summary>
    private static string Reason(Exception e) =>
        (e is AggregateException { InnerExceptions.Count: > 0 } all ? all.InnerExceptions[^1] : e).Message.Split('\n')[0].Trim();

    private TableServiceClient Tables() => new(target.ConnectionString, Options(timeout));

    /// <summary>One retry, each try within the timeout: a console that waits minutes on a dead endpoint helps no one.</summary>
    private static TableClientOptions Options(TimeSpan timeout)
    {
        var options = new TableClientOptions();
        options.Retry.MaxRetries = 1;
        options.Retry.NetworkTimeout = timeout;
        return options;
    }
}
