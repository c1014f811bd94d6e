using Dapo.Cluster.Grains;
using Dapo.Cluster.Store;
using Dapo.Training;
using Dapo.Torch;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Dapo.Cluster.Hosting;

/// <summary>
/// The rollout role: stateless worker loops that lease work items, sample each prompt's group from the policy
/// version the item names, score it, and submit it to the prompt grain. On shutdown they give their leases back.
/// </summary>
public sealed partial class RolloutService(
    IClusterStore store, RunCatalog catalog, PolicySource policies, SiloIdentity silo, IOptions<SiloOptions> options,
    TimeProvider time, ILogger<RolloutService> logger) : BackgroundService
{
    private readonly SiloOptions _options = options.Value;
    private int _inHand;

    /// <summary>Prompt groups leased and not yet submitted, for the membership heartbeat.</summary>
    public int WorkInHand => Volatile.Read(ref _inHand);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var workers = Enumerable.Range(0, _options.RolloutWorkers).Select(i => WorkerLoopAsync($"{silo.Id}/w{i}", stoppingToken));
        try
        {
            await Task.WhenAll(workers);
        }
        finally
        {
            // Graceful shutdown: unfinished leases go back to the queue for other workers right away.
            for (var i = 0; i < _options.RolloutWorkers; i++)
            {
                var returned = await WorkQueue.ReleaseAsync(store, $"{silo.Id}/w{i}", CancellationToken.None);
                if (returned > 0) LogReleased(logger, $"{silo.Id}/w{i}", returned);
            }
        }
    }

    private async Task WorkerLoopAsync(string worker, CancellationToken stoppingToken)
    {
        await Task.Yield();
        PolicyModel? model = null;
        (string Run, int Version) loaded = ("", -1);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var now = time.GetUtcNow().ToUnixTimeMilliseconds();
                var work = await WorkQueue.LeaseAsync(store, worker, _options.RolloutBatch, _options.WorkVisibility, now, stoppingToken);
                if (!string.IsNullOrEmpty(_options.Run)) work = work.Where(w => w.Item.RunId == _options.Run).ToList();
                if (work.Count == 0)
                {
                    await Task.Delay(_options.PollInterval, time, stoppingToken);
                    continue;
                }
                Interlocked.Add(ref _inHand, work.Count);
                try
                {
                    foreach (var batch in work.GroupBy(w => (w.Item.RunId, w.Item.PolicyVersion)))
                    {
                        var run = await catalog.GetAsync(batch.Key.RunId, stoppingToken);
                        if (loaded != batch.Key)
                        {
                            var weights = await FetchPolicyAsync(batch.Key.RunId, batch.Key.PolicyVersion, stoppingToken);
                            model ??= PolicyModel.Create(run.Recipe.Model);
                            model.ImportWeights(weights);
                            loaded = batch.Key;
                        }
                        await SampleAndSubmitAsync(run, model!, batch.ToList(), worker, stoppingToken);
                    }
                }
                finally
                {
                    Interlocked.Add(ref _inHand, -work.Count);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            model?.Dispose();
        }
    }

    /// <summary>The weights of a policy version, waiting out a blob storage outage for up to the retry budget.</summary>
    private async Task<byte[]> FetchPolicyAsync(string runId, int version, CancellationToken cancellationToken)
    {
        var started = time.GetUtcNow();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await policies.GetAsync(runId, version, cancellationToken);
            }
            catch (IOException e) when (time.GetUtcNow() - started < _options.RetryBudget)
            {
                var delay = TimeSpan.FromMilliseconds(Math.Min(5000, 250 * Math.Pow(2, attempt - 1)));
                LogPolicyFetchFailed(logger, runId, version, attempt, delay.TotalSeconds, e.Message);
                await Task.Delay(delay, time, cancellationToken);
            }
        }
    }

    private async Task SampleAndSubmitAsync(RunResources run, PolicyModel model, IReadOnlyList<LeasedWork> work, string worker,
        CancellationToken cancellationToken)
    {
        // The draw ordinal keys each group's randomness: a re-run of the item (or of the whole step after a restart)
        // samples the same responses, whatever else is in the batch.
        var prompts = work.Select(w => new RolloutPrompt(w.Prompt.DrawOrdinal.ToString(System.Globalization.CultureInfo.InvariantCulture),
            w.Prompt.PromptTokens, w.Prompt.GroundTruth)).ToList();
        var groups = run.Generator.Generate(model, prompts, run.Rollout);
        for (var i = 0; i < work.Count; i++)
        {
            var slots = groups[i].Slots.Select(s => new SlotResult(s.Slot, s.Tokens, s.LogProbs, s.Text, s.Score, s.OverlongPenalty,
                s.Correct, s.Truncated)).ToList();
            var now = time.GetUtcNow().ToUnixTimeMilliseconds();
            await PromptGrain.SubmitAsync(store, run.Context, work[i].Prompt.PromptId, work[i].Item.PolicyVersion, slots, worker, now,
                cancellationToken);
        }
        LogSubmitted(logger, worker, work.Count, work[0].Item.RunId, work[0].Item.PolicyVersion);
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "Worker {Worker} submitted {Groups} group(s) of run {Run} at policy version {Version}")]
    private static partial void LogSubmitted(ILogger logger, string worker, int groups, string run, int version);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "Fetching policy version {Version} of run {Run} failed (attempt {Attempt}), retrying in {Delay:F1}s: {Error}")]
    private static partial void LogPolicyFetchFailed(ILogger logger, string run, int version, int attempt, double delay, string error);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "Worker {Worker} returned {Items} leased item(s) on shutdown")]
    private static partial void LogReleased(ILogger logger, string worker, int items);
}
