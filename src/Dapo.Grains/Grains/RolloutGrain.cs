using System.Diagnostics;
using Dapo.Grains.Hosting;
using Dapo.Torch;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Runtime;

namespace Dapo.Grains.Grains;

/// <summary>
/// A rollout device (see <see cref="IRolloutGrain"/>), placed on the silo its key names
/// (<see cref="SiloLocalPlacement"/>) and active as long as that silo runs. Its loop: find the step a run samples,
/// lease groups, sample them on the engine thread with the policy version the work names, submit each group to
/// its prompt grain. Deactivating (the silo stops), it gives its leases back.
/// </summary>
[SiloLocalPlacement]
[CollectionAgeLimit(AlwaysActive = true)]
public sealed partial class RolloutGrain(
    RunCatalog catalog, PolicySource policies, IOptions<SiloOptions> options, CoordinationTimer coordination, DapoMetrics telemetry, TimeProvider time,
    Microsoft.Extensions.Hosting.IHostApplicationLifetime lifetime, ILogger<RolloutGrain> logger) : Grain, IRolloutGrain
{
    private readonly SiloOptions _options = options.Value;
    // The silo being asked to stop (SIGTERM) stops the work at once, before Orleans deactivates the grain (which
    // then gives the leases back): groups still being sampled go back to the step instead of being finished.
    private readonly CancellationTokenSource _stop = CancellationTokenSource.CreateLinkedTokenSource(lifetime.ApplicationStopping);
    private EngineThread? _engine;
    private Task? _loop;
    private PolicyModel? _model;
    private (string Run, int Version) _loaded = ("", -1);
    /// <summary>The step whose groups this grain holds leased and not yet submitted, if any.</summary>
    private (string Run, int Step)? _holding;
    private RolloutInfo _info = null!;

    private string Key => this.GetPrimaryKeyString();
    private string SiloName => ServiceProvider.GetRequiredService<ILocalSiloDetails>().SiloAddress.ToParsableString();

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _info = new RolloutInfo(Key, SiloName, null, null, 0, 0, 0, time.GetUtcNow().ToUnixTimeMilliseconds());
        return Task.CompletedTask;
    }

    public Task StartAsync()
    {
        if (_loop is null)
        {
            _engine = new EngineThread($"rollout {Key}", coordination);
            _loop = LoopAsync(_stop.Token);
            LogStarted(logger, Key);
        }
        return Task.CompletedTask;
    }

    public Task<RolloutInfo> GetAsync() => Task.FromResult(_info);

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        if (_loop is not null) await _loop;
        // A graceful stop: leased groups go back to their steps for other rollout grains right away.
        if (_holding is var (run, step))
        {
            try
            {
                var returned = await GrainFactory.GetGrain<IStepGrain>(GrainKeys.Step(run, step)).ReleaseAsync(Key);
                if (returned > 0) LogReleased(logger, Key, returned, run, step);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogReleaseFailed(logger, Key, run, step, e.Message);
            }
        }
        if (_engine is not null)
        {
            // Read on the engine thread: after a batch the stop did not wait for, which may have created the model.
            await _engine.RunAsync(() => _model?.Dispose(), CancellationToken.None);
            _engine.Dispose();
        }
    }

    private async Task LoopAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                // Inside the try: until this silo has the cluster manifest of a learner silo (it started first, or
                // just joined), resolving the registry's interface throws, and the loop must retry, not die.
                var registry = GrainFactory.GetGrain<IRunRegistryGrain>(IRunRegistryGrain.Key);
                var runs = await registry.ListAsync();
                var worked = false;
                var idle = new List<IStepGrain>();
                foreach (var run in runs.Where(r => r.Status == RunStatus.Running && (_options.Run.Length == 0 || r.RunId == _options.Run)))
                {
                    if (_loaded.Run == run.RunId) telemetry.PolicyLag(Key, run.RunId, run.PolicyVersion - _loaded.Version);
                    var step = GrainFactory.GetGrain<IStepGrain>(GrainKeys.Step(run.RunId, run.Step));
                    var work = await step.LeaseAsync(Key, _options.RolloutBatch, _options.WorkVisibility);
                    if (work.Count == 0)
                    {
                        idle.Add(step);
                        continue;
                    }
                    _holding = (run.RunId, run.Step);
                    _info = _info with { RunId = run.RunId, PolicyVersion = run.PolicyVersion };
                    await SampleAndSubmitAsync(work, stop);
                    _holding = null;
                    worked = true;
                    break;
                }
                if (!worked) await WaitForWorkAsync(registry, runs, idle, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The cluster is changing (a silo died, storage restarts): log, wait, try again. Leases lapse by themselves.
                LogLoopFailed(logger, Key, e.GetType().Name, e.Message);
                try { await Task.Delay(TimeSpan.FromSeconds(1), time, stop); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    /// <summary>Longest an idle grain waits in one call before it looks again (well under Orleans' call timeout).</summary>
    private static readonly TimeSpan IdleWait = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Idle, the grain waits to be woken rather than polling (which would take CPU from the engine while the learner
    /// trains): by a step that samples, once it has groups to lease; by the registry, once a step opens or a run
    /// starts or ends. A step that is not sampling answers at once, and the registry is what to wait for then.
    /// </summary>
    private async Task WaitForWorkAsync(IRunRegistryGrain registry, IReadOnlyList<ActiveRun> runs, List<IStepGrain> steps,
        CancellationToken stop)
    {
        var changed = registry.WaitForChangeAsync(runs, IdleWait);
        var waits = steps.Select(s => s.WaitForWorkAsync(Key, IdleWait)).ToList();
        var pending = new List<Task>(waits) { changed };
        while (true)
        {
            var done = await Task.WhenAny(pending).WaitAsync(stop);
            if (done == changed || await (Task<bool>)done) break;
            pending.Remove(done);
        }
        // The calls not awaited end by themselves within IdleWait; their failures are the next round's to see.
        foreach (var call in pending) _ = call.ContinueWith(t => t.Exception, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously);
    }

    private async Task SampleAndSubmitAsync(IReadOnlyList<WorkItem> work, CancellationToken stop)
    {
        _info = _info with { InHand = work.Count, UpdatedAt = time.GetUtcNow().ToUnixTimeMilliseconds() };
        foreach (var batch in work.GroupBy(w => (w.RunId, w.PolicyVersion)))
        {
            var items = batch.ToList();
            var run = await catalog.GetAsync(batch.Key.RunId);
            var weights = batch.Key == _loaded ? null : await FetchPolicyAsync(batch.Key.RunId, batch.Key.PolicyVersion, stop);
            var rolloutPrompts = items.Select(w => run.Prompt(w.DatasetIndex, w.DrawOrdinal)).ToList();
            // The prompt grains activate (each reads its state from storage) while the engine generates: storing the
            // groups afterwards is then one write each on the batch's path.
            var prompts = items.Select(w => GrainFactory.GetGrain<IPromptGrain>(w.PromptKey)).ToList();
            var activated = Task.WhenAll(prompts.Select(p => p.GetAsync()));
            var groups = await _engine!.RunAsync(() =>
            {
                if (weights is not null)
                {
                    // Disposed here, not by the grain: a graceful stop stops waiting for this work before it ends.
                    using (weights)
                    {
                        _model ??= PolicyModel.Create(run.Recipe.Model);
                        _model.ImportWeights(weights);
                    }
                }
                return run.Generator.Generate(_model!, rolloutPrompts, run.Rollout);
            }, stop).WaitAsync(stop);  // a graceful stop does not wait for the batch: its leases go back at once (OnDeactivateAsync)
            _loaded = batch.Key;
            // Every group is stored at once (each prompt grain writes its own state), then the judged ones are reported
            // to the step in one call, in draw order: the step decides in the same order however the writes
            // interleave, so a run is reproducible.
            stop.ThrowIfCancellationRequested();
            var slots = groups.Select(g => g.Slots.Select(s => new SlotResult(s.Slot, s.Tokens, s.LogProbs, s.Text, s.Score, s.OverlongPenalty,
                s.Correct, s.Truncated, Key)).ToList()).ToList();
            var tokens = slots.Sum(g => g.Sum(s => (long)s.Tokens.Length));
            telemetry.Sampled(batch.Key.RunId, tokens);
            var stored = await coordination.TimeGrainsAsync(async () =>
            {
                await activated;
                return await Task.WhenAll(items.Select((w, i) => prompts[i].StoreAsync(w, slots[i], Key)));
            });
            // A graceful stop: the groups not reported yet go back to the step (OnDeactivateAsync) for others.
            stop.ThrowIfCancellationRequested();
            var reports = stored.Where(s => s.Report is not null).Select(s => s.Report!).ToList();  // one lease: one step
            if (reports.Count > 0)
                await coordination.TimeGrainsAsync(() => GrainFactory.GetGrain<IStepGrain>(GrainKeys.Step(batch.Key.RunId, items[0].Step)).ReportAsync(reports));
            _info = _info with
            {
                RunId = batch.Key.RunId, PolicyVersion = batch.Key.PolicyVersion, GroupsSubmitted = _info.GroupsSubmitted + items.Count,
                TokensGenerated = _info.TokensGenerated + tokens, UpdatedAt = time.GetUtcNow().ToUnixTimeMilliseconds(),
            };
            LogSubmitted(logger, Key, items.Count, batch.Key.RunId, batch.Key.PolicyVersion);
        }
        _info = _info with { InHand = 0 };
    }

    /// <summary>The weights of a policy version, waiting out a blob storage outage for up to the retry budget.</summary>
    private async Task<NativeBytes> FetchPolicyAsync(string runId, int version, CancellationToken stop)
    {
        var started = Stopwatch.StartNew();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await policies.GetAsync(runId, version, stop);
            }
            catch (IOException e) when (started.Elapsed < _options.RetryBudget)
            {
                var delay = TimeSpan.FromMilliseconds(Math.Min(5000, 250 * Math.Pow(2, attempt - 1)));
                LogPolicyFetchFailed(logger, runId, version, attempt, delay.TotalSeconds, e.Message);
                await Task.Delay(delay, time, stop);
            }
        }
    }

    [LoggerMessage(EventId = 2000, Level = LogLevel.Information, Message = "Rollout grain {Key} started")]
    private static partial void LogStarted(ILogger logger, string key);

    [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "Rollout grain {Key} submitted {Groups} group(s) of run {Run} at policy version {Version}")]
    private static partial void LogSubmitted(ILogger logger, string key, int groups, string run, int version);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "Rollout grain {Key} returned {Items} leased group(s) of run {Run} step {Step} on shutdown")]
    private static partial void LogReleased(ILogger logger, string key, int items, string run, int step);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "Fetching policy version {Version} of run {Run} failed (attempt {Attempt}), retrying in {Delay:F1}s: {Error}")]
    private static partial void LogPolicyFetchFailed(ILogger logger, string run, int version, int attempt, double delay, string error);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Warning, Message = "Rollout grain {Key}: {Type}: {Error}; trying again")]
    private static partial void LogLoopFailed(ILogger logger, string key, string type, string error);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Warning, Message = "Rollout grain {Key} could not return its leases of run {Run} step {Step}: {Error}")]
    private static partial void LogReleaseFailed(ILogger logger, string key, string run, int step, string error);
}
