using Dapo.Cluster.Blobs;
using Dapo.Cluster.Grains;
using Dapo.Cluster.Store;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Dapo.Cluster.Hosting;

/// <summary>
/// The learner role: for each running run, compete for its learner lease. The holder trains (a
/// <see cref="LearnerLoop"/>), renewing the lease as it goes; the others stand by and take over when the lease
/// lapses, resuming from the latest checkpoint. On shutdown the holder finishes its current checkpoint write and
/// releases the lease, so a standby takes over at once.
/// </summary>
public sealed partial class LearnerService(
    IClusterStore store, IBlobStore blobs, RunCatalog catalog, PolicySource policies, SiloIdentity silo, IOptions<SiloOptions> options,
    CoordinationTimer coordination, ITrainingReporter reporter, TimeProvider time, ILogger<LearnerService> logger) : BackgroundService
{
    private readonly SiloOptions _options = options.Value;
    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var standbyLogged = new HashSet<string>();
        while (!stoppingToken.IsCancellationRequested)
        {
            var runs = await store.TransactAsync(s => s.ListRunsAsync(), stoppingToken);
            var served = false;
            foreach (var run in runs.Where(r => r.Status == RunStatus.Running && (_options.Run.Length == 0 || r.RunId == _options.Run)))
            {
                var lease = await Leases.TryAcquireAsync(store, LeaseNames.Learner(run.RunId), silo.Id, _options.LearnerLeaseTtl, Now, stoppingToken);
                if (lease is null)
                {
                    if (standbyLogged.Add(run.RunId)) LogStandby(logger, silo.Id, run.RunId);
                    continue;
                }
                standbyLogged.Remove(run.RunId);
                served = true;
                await ServeAsync(run.RunId, lease, stoppingToken);
                break;
            }
            if (!served) await DelayAsync(_options.LearnerLeaseTtl / 4, stoppingToken);
        }
    }

    private async Task ServeAsync(string runId, LeaseHandle lease, CancellationToken stoppingToken)
    {
        LogLeading(logger, silo.Id, runId, lease.Epoch);
        using var leadership = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var renewal = RenewAsync(lease, leadership);
        var lost = false;
        try
        {
            var resources = await catalog.GetAsync(runId, leadership.Token);
            var loop = new LearnerLoop(store, blobs, resources, lease, policies, _options, coordination, reporter, time, logger);
            var status = await loop.RunAsync(leadership.Token);
            LogRunEnded(logger, silo.Id, runId, status);
        }
        catch (OperationCanceledException) when (leadership.IsCancellationRequested)
        {
            lost = !stoppingToken.IsCancellationRequested;
        }
        catch (LeaseLostException e)
        {
            lost = true;
            LogLeaseLost(logger, silo.Id, runId, e.Message);
        }
        finally
        {
            await leadership.CancelAsync();
            await renewal;
            if (!lost) await Leases.ReleaseAsync(store, lease, CancellationToken.None);
        }
    }

    /// <summary>Renews the lease every third of its lifetime; when it is lost, cancels the learner's work.</summary>
    private async Task RenewAsync(LeaseHandle lease, CancellationTokenSource leadership)
    {
        try
        {
            while (!leadership.IsCancellationRequested)
            {
                await Task.Delay(_options.LearnerLeaseTtl / 3, time, leadership.Token);
                await Leases.RenewAsync(store, lease, _options.LearnerLeaseTtl, Now, leadership.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (LeaseLostException e)
        {
            LogLeaseLost(logger, silo.Id, lease.Name, e.Message);
            await leadership.CancelAsync();
        }
    }

    private async Task DelayAsync(TimeSpan delay, CancellationToken token)
    {
        try
        {
            await Task.Delay(delay, time, token);
        }
        catch (OperationCanceledException)
        {
        }
    }

    [LoggerMessage(EventId = 6001, Level = LogLevel.Information, Message = "Silo {Silo} leads run {Run} (lease epoch {Epoch})")]
    private static partial void LogLeading(ILogger logger, string silo, string run, long epoch);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Information, Message = "Silo {Silo} stands by for run {Run}: another silo holds its learner lease")]
    private static partial void LogStandby(ILogger logger, string silo, string run);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Warning, Message = "Silo {Silo} lost the learner lease of {Run}: {Reason}")]
    private static partial void LogLeaseLost(ILogger logger, string silo, string run, string reason);

    [LoggerMessage(EventId = 6004, Level = LogLevel.Information, Message = "Silo {Silo}: run {Run} ended {Status}")]
    private static partial void LogRunEnded(ILogger logger, string silo, string run, RunStatus status);
}
