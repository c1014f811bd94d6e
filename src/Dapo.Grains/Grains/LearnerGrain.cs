using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Dapo.Core.Data;
using Dapo.Core.Metrics;
using Dapo.Core.Rewards;
using Dapo.Core.Sampling;
using Dapo.Grains.Blobs;
using Dapo.Grains.Checkpoints;
using Dapo.Grains.Hosting;
using Dapo.Torch;
using Dapo.Training;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Runtime;
using Orleans.Storage;

namespace Dapo.Grains.Grains;

/// <summary>The learner grain's persistent state: the run and how far it got.</summary>
[GenerateSerializer]
public sealed class LearnerState
{
    [Id(0)] public string SpecJson { get; set; } = "";
    [Id(1)] public RunStatus Status { get; set; }
    [Id(2)] public int Step { get; set; }
    [Id(3)] public int PolicyVersion { get; set; }
    [Id(4)] public int? LatestCheckpoint { get; set; }
    [Id(5)] public string? Error { get; set; }
    /// <summary>Raised on every start of the learner's work: the fencing token of its calls.</summary>
    [Id(6)] public long Epoch { get; set; }
    /// <summary>The dataset cursor after every draw of the completed steps.</summary>
    [Id(7)] public string CursorJson { get; set; } = "";
    /// <summary>Surplus groups of the last completed step, offered to the next.</summary>
    [Id(8)] public List<PromptEntry> Carry { get; set; } = [];
    [Id(9)] public double? StartAccuracy { get; set; }
    [Id(10)] public double? LatestAccuracy { get; set; }
    [Id(11)] public long CreatedAt { get; set; }
    [Id(12)] public long UpdatedAt { get; set; }
}

/// <summary>
/// The learner of a run (see <see cref="ILearnerGrain"/>). Its work runs as a loop in the grain, engine work on its
/// own thread; the grain stays active while it trains, and a reminder starts it again on another learner silo when
/// this one dies. Every start raises the epoch in the grain's state (an ETag-checked write, so of two activations
/// racing only one gets it); steps refuse calls of older epochs, policy versions are created once, and the learner's
/// own state writes are ETag-checked: a deposed learner stops at its next call.
/// </summary>
[CollectionAgeLimit(AlwaysActive = true)]
public sealed partial class LearnerGrain(
    [PersistentState("learner", GrainStorage.Name)] IPersistentState<LearnerState> state,
    RunCatalog catalog, IBlobStore blobs, PolicySource policies, IOptions<SiloOptions> options, CoordinationTimer coordination,
    ITrainingReporter reporter, DapoMetrics telemetry, TimeProvider time, ILogger<LearnerGrain> logger) : Grain, ILearnerGrain, IRemindable
{
    private const string KeepRunning = "keep-running";
    private readonly SiloOptions _options = options.Value;
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private EngineThread? _engine;
    /// <summary>A step's checkpoint, taken but not yet written (<see cref="StartCheckpointWrite"/>).</summary>
    private (CheckpointMeta Meta, Task<NativeBytes> State)? _unwritten;
    /// <summary>The checkpoint being written (<see cref="WriteCheckpointInBackgroundAsync"/>).</summary>
    private Task _checkpointing = Task.CompletedTask;
    private RunResources _run = null!;
    private CheckpointStore _checkpoints = null!;
    private volatile string _phase = "idle", _detail = "";

    private string RunId => this.GetPrimaryKeyString();
    /// <summary>This silo as membership names it (the client's `silos` shows the same).</summary>
    private string SiloName => ServiceProvider.GetRequiredService<ILocalSiloDetails>().SiloAddress.ToParsableString();
    private LearnerState S => state.State;
    /// <summary>The last state write (<see cref="WriteStateAsync"/>).</summary>
    private Task _stateWrite = Task.CompletedTask;
    private DemoRecipe Recipe => _run.Recipe;
    /// <summary>The run's steps, from the spec in its state: raised while the run trains (<see cref="StartAsync"/>),
    /// where the recipe of <see cref="_run"/> keeps the ones it was loaded with.</summary>
    private int Steps => RunResources.StepsOf(S.SpecJson) ?? throw new InvalidOperationException($"Run '{RunId}' has no steps in its spec.");
    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // The work starts with StartAsync or the reminder, never with a mere activation: a caller refused for another
        // spec, or a reader, must not set a run going.
        _checkpoints = new CheckpointStore(blobs, RunId);
        return Task.CompletedTask;
    }

    public async Task<RunInfo> StartAsync(string specJson)
    {
        if (!state.RecordExists)
        {
            await blobs.EnsureContainerAsync(CancellationToken.None);
            var stored = await catalog.PublishSpecAsync(RunId, specJson, CancellationToken.None);
            if (stored != specJson)
                return Info() with { SpecJson = stored };  // the run's blobs hold another spec: the caller refuses
            var run = await catalog.GetAsync(RunId);
            state.State = new LearnerState
            {
                SpecJson = specJson, Status = RunStatus.Running, Step = 0, CursorJson = run.InitialCursor.ToJson(), CreatedAt = Now,
                UpdatedAt = Now,
            };
            await WriteStateAsync();
        }
        else if (S.SpecJson != specJson)
        {
            // Another run of this name (the caller refuses, nothing changes), or this one with more steps: it trains on.
            if (RunResources.ExtendedSteps(Info(), specJson) is not { } steps) return Info();
            // A run that has just completed may still be closing its loop (announcing, disposing the model). Raised
            // under it, the loop would either train on or end, leaving the run to the next reminder; waiting for it to
            // end makes a completed run always resume from its last checkpoint. The loop calls no grain that calls back
            // here, so the wait is short.
            if (S.Status == RunStatus.Completed && _loop is { IsCompleted: false } closing) await closing;
            await catalog.ExtendSpecAsync(RunId, specJson, CancellationToken.None);
            S.SpecJson = specJson;
            if (S.Status == RunStatus.Completed) S.Status = RunStatus.Running;
            S.UpdatedAt = Now;
            // Saved now, so a learner that starts again after a crash trains to the new steps; a training loop reads
            // them at its next step.
            await WriteStateAsync();
            LogExtended(logger, RunId, steps);
        }
        if (S.Status == RunStatus.Running)
        {
            await this.RegisterOrUpdateReminder(KeepRunning, _options.LearnerReminderPeriod, _options.LearnerReminderPeriod);
            EnsureRunning();
        }
        return Info();
    }

    public Task<RunInfo?> GetAsync() => Task.FromResult(state.RecordExists ? Info() : null);

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (reminderName != KeepRunning) return;
        if (state.RecordExists && S.Status == RunStatus.Running) EnsureRunning();
        else if (await this.GetReminder(KeepRunning) is { } reminder) await this.UnregisterReminder(reminder);
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        if (_loop is not null) await _loop;
    }

    private RunInfo Info() => new(RunId, S.SpecJson, S.Status, S.Step, S.PolicyVersion, S.LatestCheckpoint, S.Error, S.Epoch, _phase,
        _detail, SiloName, S.StartAccuracy, S.LatestAccuracy, S.UpdatedAt);

    private void EnsureRunning()
    {
        if (_loop is { IsCompleted: false } || _stop.IsCancellationRequested) return;
        _loop = RunAsync(_stop.Token);
    }

    /// <summary>Trains until the run completes or fails, this learner is deposed, or the silo stops.</summary>
    private async Task RunAsync(CancellationToken stop)
    {
        await Task.Yield();
        try
        {
            S.Epoch++;
            await WriteStateAsync();
            LogLeading(logger, SiloName, RunId, S.Epoch);
            _run = await catalog.GetAsync(RunId);
            using var engine = _engine = new EngineThread($"learner {RunId}", coordination);
            if (Environment.GetEnvironmentVariable("DAPO_THREADS") is null) await engine.RunAsync(() => TorchEngine.Threads = Recipe.Threads, stop);
            await blobs.EnsureContainerAsync(stop);
            var (model, optimizer, meta) = await RestoreOrWarmStartAsync(stop);
            try
            {
                await RestoreLedgerAsync(meta);
                using (var weights = await engine.RunAsync(model.ExportWeights, stop)) policies.Publish(RunId, meta.PolicyVersion, weights);
                if (S.Status != RunStatus.Running)
                {
                    Phase(S.Status == RunStatus.Completed ? "done" : "failed", S.Step, S.Error ?? "");
                    return;
                }
                if (meta.Step > 0) reporter.Message(RunId, $"resumed from the checkpoint of step {meta.Step} (policy version {meta.PolicyVersion})");
                var updater = new PolicyUpdater(model, optimizer, Recipe.Dapo, Recipe.MaxTokensPerMicroBatch);
                var evaluator = Evaluator();
                while (S.Status == RunStatus.Running && S.Step <= Steps)
                    await TrainStepAsync(S.Step, model, optimizer, updater, evaluator, stop);
            }
            finally
            {
                // A stopping silo's learner writes the checkpoint it took; a failed or deposed one does not (its run
                // resumes from the checkpoint before, exactly).
                if (stop.IsCancellationRequested) StartCheckpointWrite();
                if (_unwritten is var (_, taken)) _ = taken.ContinueWith(t => t.Result.Dispose(), TaskContinuationOptions.OnlyOnRanToCompletion);
                _unwritten = null;
                try { await _checkpointing; }
                catch (Exception e) { LogCheckpointFailed(logger, RunId, e.Message); }
                await engine.RunAsync(() => { optimizer.Dispose(); model.Dispose(); }, CancellationToken.None);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is StaleEpochException or InconsistentStateException)
        {
            // Another activation of this learner took over (a membership change): it continues the run.
            LogDeposed(logger, SiloName, RunId, e.Message);
            DeactivateOnIdle();
        }
        catch (Exception e)
        {
            LogFailed(logger, e, RunId);
            reporter.Stopped(RunId, $"{e.GetType().Name}: {e.Message}");
            Phase("stopped", S.Step, e.Message);
        }
    }

    private Evaluator Evaluator() => new(_run.Data.Encoder, RewardFunctions.Get(Recipe.Dapo.RewardFunction), Recipe.Evaluation);

    private void Phase(string phase, int step, string detail)
    {
        _phase = phase;
        _detail = step > 0 ? $"step {step}: {detail}" : detail;
    }

    private async Task<(PolicyModel, AdamW, CheckpointMeta)> RestoreOrWarmStartAsync(CancellationToken stop)
    {
        var engine = _engine!;
        var latest = await _checkpoints.LatestAsync((step, problem) => reporter.Message(RunId, $"skipping the checkpoint of step {step}: {problem}"), stop);
        if (latest is not null)
        {
            using (latest)
            {
                var (restored, restoredOptimizer) = await engine.RunAsync(
                    () => TrainingState.Restore(latest.TrainingState, Recipe.Model.Device, Recipe.Model.DeviceIndex), stop);
                return (restored, restoredOptimizer, latest.Meta);
            }
        }
        var evaluator = Evaluator();
        PolicyModel model;
        if (Recipe.InitialWeights is { } initial)
        {
            reporter.Message(RunId, $"no checkpoint: starting from the weights in {initial}");
            model = await engine.RunAsync(() => LoadInitialWeights(initial), stop);
        }
        else if (Recipe.ModelDirectory is { } directory)
        {
            reporter.Message(RunId, $"no checkpoint: starting from the Hugging Face model in {directory}");
            Phase("loading the model", 0, directory);
            model = await engine.RunAsync(() => HuggingFaceModel.Load(directory, Recipe.Model), stop);
        }
        else
        {
            reporter.Message(RunId, "no checkpoint: supervised warm-start first");
            model = await engine.RunAsync(() => PolicyModel.Create(Recipe.Model), stop);
            Phase("warm-start", 0, $"up to {Recipe.WarmStart.MaxSteps} steps");
            var result = await engine.RunAsync(() =>
            {
                using var warmOptimizer = WarmStart.CreateOptimizer(model, Recipe.WarmStart);
                return WarmStart.Run(model, warmOptimizer, _run.Data.Supervised, Recipe.WarmStart,
                    _ => evaluator.Evaluate(model, _run.Data.HeldOut).AverageAtK, p =>
                    {
                        _detail = $"step {p.Step}/{p.MaxSteps}, nll {p.Loss:F3}";
                        reporter.WarmStart(RunId, p);
                    }, stop);
            }, stop);
            stop.ThrowIfCancellationRequested();
            reporter.Message(RunId, result.Describe(Recipe.WarmStart));
        }
        Phase("evaluating", 0, $"{_run.Data.HeldOut.Count} held-out problems, the starting policy");
        var start = await engine.RunAsync(() => evaluator.Evaluate(model, _run.Data.HeldOut), stop);
        reporter.Evaluated(RunId, Recipe.InitialWeights is null && Recipe.ModelDirectory is null ? "after warm-start" : "of the initial weights", start);
        S.StartAccuracy = start.AverageAtK;
        Phase("checkpointing", 0, "the starting policy, as version 0");
        var optimizer = await engine.RunAsync(() => PolicyUpdater.CreateOptimizer(model, Recipe.Dapo), stop);
        var meta = new CheckpointMeta(0, 0, _run.InitialCursor, Recipe.Dapo.Seed, S.SpecJson, time.GetUtcNow());
        using (var weights = await engine.RunAsync(model.ExportWeights, stop)) await PublishPolicyAsync(0, weights);
        await WriteCheckpointAsync(new Checkpoint(meta, await engine.RunAsync(() => TrainingState.Save(model, optimizer), stop)));
        return (model, optimizer, meta);
    }

    private PolicyModel LoadInitialWeights(string path)
    {
        // The recipe's model, on its device, with the file's weights (the recipe's validation checked their shape).
        var model = PolicyModel.Create(Recipe.Model);
        try
        {
            model.ImportWeights(File.ReadAllBytes(path));
            return model;
        }
        catch (TorchException e)
        {
            model.Dispose();
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Rewinds the run to the checkpoint it resumes from: steps after it are abandoned (a step the checkpoint
    /// includes but whose completion was not recorded is completed), the next step is the one after it, and metrics
    /// rows of later steps are dropped, so the steps done again are recorded once.
    /// </summary>
    private async Task RestoreLedgerAsync(CheckpointMeta meta)
    {
        var reason = $"abandoned: the learner restarted from the checkpoint of step {meta.Step}";
        for (var step = Math.Max(1, S.Step); step <= meta.Step; step++)
            await Step(step).CompleteAsync(S.Epoch);
        for (var step = meta.Step + 1; step <= S.Step; step++)
            await Step(step).AbandonAsync(S.Epoch, reason);
        S.Step = meta.Step + 1;
        S.PolicyVersion = meta.PolicyVersion;
        S.CursorJson = meta.Cursor.ToJson();
        S.Carry = meta.Carry?.ToList() ?? [];
        S.LatestCheckpoint = meta.Step;
        if (S.Status == RunStatus.Running && meta.Step >= Steps) S.Status = RunStatus.Completed;
        S.UpdatedAt = Now;
        await WriteStateAsync();
        await MetricsLog.TruncateAsync(MetricsFile(), blobs, RunId, meta.Step);
        await Announce();
    }

    /// <summary>
    /// Writes the grain's state after any write still in flight. The training loop and a call (steps raised) both
    /// write; two writes at once would carry the same ETag, and the second would fail as if another learner had
    /// taken over. A write that fails is its writer's to handle; the one after it is still made.
    /// </summary>
    private Task WriteStateAsync()
    {
        return _stateWrite = AfterAsync(StateWrittenAsync());

        async Task AfterAsync(Task previous)
        {
            await previous;
            await state.WriteStateAsync();
        }
    }

    /// <summary>Ends when the state write in flight, if any, has ended, however it ended (its writer saw a failure).</summary>
    private async Task StateWrittenAsync()
    {
        try { await _stateWrite; }
        catch (Exception) { /* its writer saw it */ }
    }

    private IStepGrain Step(int step) => GrainFactory.GetGrain<IStepGrain>(GrainKeys.Step(RunId, step));

    private Task Announce() => coordination.TimeGrainsAsync(() => GrainFactory.GetGrain<IRunRegistryGrain>(IRunRegistryGrain.Key)
        .AnnounceAsync(new ActiveRun(RunId, S.Status, S.Step, S.PolicyVersion, S.Epoch)));

    private async Task TrainStepAsync(int step, PolicyModel model, AdamW optimizer, PolicyUpdater updater, Evaluator evaluator,
        CancellationToken stop)
    {
        var engine = _engine!;
        var watch = Stopwatch.StartNew();
        var (grainsBefore, blobsBefore, idleBefore) = (coordination.Grains, coordination.Blobs, coordination.EngineIdle);
        Phase("sampling", step, $"waiting for {Recipe.Dapo.PromptBatchSize} informative groups");
        var stepGrain = Step(step);
        var ledger = await coordination.TimeGrainsAsync(() => stepGrain.OpenAsync(new StepOpening(S.Epoch, S.PolicyVersion, S.CursorJson, S.Carry)));
        await Announce();
        StartCheckpointWrite();  // the previous step's, now that rollouts of this one can start
        while (ledger.StopReason is null && ledger.Phase == StepPhase.Sampling)
        {
            stop.ThrowIfCancellationRequested();
            ledger = await stepGrain.WaitForSamplingEndAsync(TimeSpan.FromSeconds(5));
        }
        var closed = await coordination.TimeGrainsAsync(() => stepGrain.CloseAsync(S.Epoch));
        if (closed.Failure is not null)
        {
            S.Status = RunStatus.Failed;
            S.Error = $"step {step}: {closed.Failure}";
            S.UpdatedAt = Now;
            await WriteStateAsync();
            await Announce();
            Phase("failed", step, closed.Failure);
            reporter.RunEnded(RunId, RunStatus.Failed, closed.Failure);
            return;
        }
        var samplingTime = watch.Elapsed;

        Phase("training", step, $"{closed.Accepted.Count} groups in {Recipe.Dapo.MiniBatchesPerStep} mini-batch(es)" +
            (Recipe.Dapo.PpoEpochs > 1 ? $", {Recipe.Dapo.PpoEpochs} epochs" : ""));
        var fetched = await coordination.TimeGrainsAsync(() => Task.WhenAll(closed.Accepted.Select(p =>
            GrainFactory.GetGrain<IPromptGrain>(GrainKeys.Prompt(RunId, p.Step, p.PromptId)).GetAsync())));
        var groups = fetched.Select((g, i) => g ?? throw new InvalidOperationException(
            $"Accepted prompt {RunId}/{closed.Accepted[i].Step}/{closed.Accepted[i].PromptId} has no stored group.")).ToList();
        var training = groups.Select(g => new TrainingGroup(_run.Data.Train[g.Work.DatasetIndex].Tokens,
            g.Slots.Select(s => new TrainingResponse(s.Tokens, s.LogProbs, s.Reward, s.Truncated)).ToArray())).ToArray();
        var update = await engine.RunAsync(() => updater.Update(training, step - 1, (done, total) =>
            _detail = $"step {step}: mini-batch {done}/{total} done ({training.Length} groups)"), stop);
        var trainingTime = watch.Elapsed - samplingTime;

        // Publish the new policy before the step completes: rollout grains of the next step fetch it by version. In
        // this process only once it is in blob storage: a learner deposed meanwhile must not serve its own weights
        // under a version number that is the new learner's.
        using var weights = await engine.RunAsync(model.ExportWeights, stop);
        await WithBlobRetriesAsync($"policy version {step}", _ => PublishPolicyAsync(step, weights));
        policies.Publish(RunId, step, weights);

        EvaluationResult? evaluation = null;
        if ((Recipe.EvaluateEvery > 0 && step % Recipe.EvaluateEvery == 0) || step == Steps)
        {
            Phase("evaluating", step, $"{_run.Data.HeldOut.Count} held-out problems");
            evaluation = await engine.RunAsync(() => evaluator.Evaluate(model, _run.Data.HeldOut), stop);
            S.LatestAccuracy = evaluation.AverageAtK;
        }
        var checkpoint = step % _options.CheckpointEvery == 0 || step == Steps ? step : (int?)null;

        var metrics = StepMetrics.Compute(new StepMetricsInput
        {
            Step = step,
            Responses = groups.SelectMany(g => g.Slots.Select(s =>
                new ResponseOutcome(s.Score, s.OverlongPenalty, s.Correct, s.Tokens.Length, s.Truncated))).ToArray(),
            CorrectResponsesByGroup = groups.Select(g => g.Slots.Where(s => s.Correct).Select(s => s.Tokens).ToArray()).ToArray(),
            Advantages = update.Advantages, Entropies = update.Entropies,
            LogProbs = groups.SelectMany(g => g.Slots.SelectMany(s => s.LogProbs)).ToArray(),
            GenerationRounds = closed.Ledger.GenerationRounds, GroupsAccepted = closed.Ledger.Accepted, GroupsFiltered = closed.Ledger.Filtered,
            Updates = update.Updates, LearningRate = update.LearningRate,
        });
        var generated = closed.Judged.Sum(p => p.MeanLength!.Value * p.Responses);
        var workers = groups.SelectMany(g => g.Slots.Select(s => s.Worker)).Distinct().Count();
        var report = new StepReport(RunId, step, Steps, metrics,
            closed.Judged.Count == 0 ? 0 : closed.Judged.Average(p => p.Accuracy!.Value),
            closed.Judged.Count == 0 ? 0 : closed.Judged.Sum(p => (p.TruncatedShare ?? 0) * p.Responses) / closed.Judged.Sum(p => p.Responses),
            (generated + update.ScoredTokens) / watch.Elapsed.TotalSeconds,
            watch.Elapsed, samplingTime, trainingTime, coordination.Grains - grainsBefore, coordination.Blobs - blobsBefore, coordination.EngineIdle - idleBefore, workers,
            evaluation, checkpoint);
        // The metrics row before the checkpoint: every step a checkpoint includes has its row.
        await MetricsLog.AppendAsync(MetricsFile(), blobs, RunId, step, MetricsJson(report));
        if (checkpoint is not null)
        {
            await _checkpointing;  // one checkpoint at a time, in step order
            var meta = new CheckpointMeta(step, step, CursorState.FromJson(closed.CursorJson), Recipe.Dapo.Seed, S.SpecJson, time.GetUtcNow())
            {
                Carry = closed.CarryOut,
            };
            // Taken on the engine thread before the next step's training (the thread works in order): this step's state.
            _unwritten = (meta, engine.RunAsync(() => TrainingState.Save(model, optimizer), CancellationToken.None));
        }

        await coordination.TimeGrainsAsync(() => stepGrain.CompleteAsync(S.Epoch));
        telemetry.StepCompleted(RunId, watch.Elapsed, update.ScoredTokens, closed.Ledger.Accepted, closed.Ledger.Filtered);
        S.Step = step + 1;
        S.PolicyVersion = step;
        S.CursorJson = closed.CursorJson;
        S.Carry = closed.CarryOut.ToList();
        if (step >= Steps)
        {
            StartCheckpointWrite();
            await _checkpointing;  // a completed run has its last checkpoint
            if (Recipe.ModelDirectory is { } directory)
            {
                // ... and a model given in Hugging Face format is given back in it.
                Phase("exporting", step, $"the trained policy to blob {HuggingFaceModel.ExportPrefix(RunId)}");
                var files = await HuggingFaceModel.ExportAsync(engine, model, directory, blobs, RunId, stop);
                reporter.Message(RunId, $"the trained policy in Hugging Face format: blobs {HuggingFaceModel.ExportPrefix(RunId)}{{{string.Join(", ", files)}}}");
            }
            // Unless its steps were raised while it waited (StartAsync): then it trains on.
            if (step >= Steps) S.Status = RunStatus.Completed;
        }
        S.UpdatedAt = Now;
        await WriteStateAsync();
        if (S.Status == RunStatus.Completed) await Announce();
        Phase(S.Status == RunStatus.Completed ? "done" : "step done", step,
            $"last checkpoint: {(S.LatestCheckpoint is { } c ? $"step {c}" : "none")}");
        reporter.Step(report);
        if (evaluation is not null) reporter.Evaluated(RunId, $"after step {step}", evaluation);
        if (S.Status == RunStatus.Completed) reporter.RunEnded(RunId, RunStatus.Completed, null);
    }

    private string MetricsFile() => Path.Combine(_options.RunDirectory, RunId, "metrics.jsonl");

    /// <summary>The metrics row: Dapo.Core's step metrics plus timings, throughput, workers and any evaluation.</summary>
    internal static string MetricsJson(StepReport r)
    {
        var row = new JsonObject();
        foreach (var (key, value) in r.Metrics.ToDictionary()) row[key] = value;
        row["step"] = r.Step;
        row["sampled/accuracy"] = r.SampledAccuracy;
        row["sampled/truncated_share"] = r.SampledTruncatedShare;
        row["timing/step_s"] = r.StepTime.TotalSeconds;
        row["timing/sampling_s"] = r.SamplingTime.TotalSeconds;
        row["timing/training_s"] = r.TrainingTime.TotalSeconds;
        row["timing/grains_s"] = r.GrainTime.TotalSeconds;
        row["timing/blob_s"] = r.BlobTime.TotalSeconds;
        row["timing/outside_engine_s"] = r.OutsideEngineTime.TotalSeconds;
        row["throughput/tokens_per_s"] = r.TokensPerSecond;
        row["cluster/rollout_workers"] = r.RolloutWorkers;
        if (r.Checkpoint is { } c) row["checkpoint"] = c;
        if (r.Evaluation is { } e)
        {
            row[$"eval/avg@{e.K}"] = e.AverageAtK;
            row[$"eval/pass@{e.K}"] = e.PassAtK;
            row[$"eval/maj@{e.K}"] = e.MajorityAtK;
            row["eval/response_length"] = e.MeanResponseLength;
            row["eval/truncated_share"] = e.TruncatedShare;
            // Per source (the synthetic tasks' levels, "L3" …): where a change gains or loses accuracy.
            foreach (var (source, accuracy) in e.AverageAtKBySource) row[$"eval/avg@{e.K}/{source}"] = accuracy;
        }
        row["time"] = DateTimeOffset.UtcNow.ToString("O");
        return row.ToJsonString();
    }

    /// <summary>
    /// Publishes policy version <paramref name="version"/>, create-only (<see cref="CheckpointStore.PublishPolicyAsync"/>).
    /// When another learner published that version first with other weights, the learner's state decides: a learner
    /// whose epoch is no longer the stored one is the stale one and stops here, leaving the other's version in place.
    /// The current learner replaces the version: its publisher was deposed before it completed the step, so no step
    /// still open refers to it, and the current learner's weights are the ones the run continues from.
    /// </summary>
    private async Task PublishPolicyAsync(int version, NativeBytes weights)
    {
        var outcome = await _checkpoints.PublishPolicyAsync(version, weights, CancellationToken.None);
        if (outcome != PolicyPublication.Conflict) return;
        var epoch = S.Epoch;
        await StateWrittenAsync();
        await state.ReadStateAsync();
        if (S.Epoch != epoch) throw new StaleEpochException($"Run {RunId}: learner epoch {epoch} was superseded by epoch {S.Epoch}.");
        LogPolicyReplaced(logger, RunId, version, SiloName, epoch);
        await _checkpoints.ReplacePolicyAsync(version, weights, CancellationToken.None);
    }

    /// <summary>
    /// Starts writing the checkpoint taken at the end of the last step, if any. It is written while the next step
    /// samples, off the steps' path, and after that step's opening, whose state writes it would otherwise slow down
    /// (one disk, or one storage account).
    /// </summary>
    private void StartCheckpointWrite()
    {
        if (_unwritten is not var (meta, trainingState)) return;
        _unwritten = null;
        _checkpointing = WriteCheckpointInBackgroundAsync(meta, trainingState);
    }

    /// <summary>
    /// Writes a checkpoint and prunes old ones. A crash before the write ends resumes from the checkpoint before, and
    /// the steps after it are done again exactly, as after a crash anywhere in a step. The learner's state names the
    /// checkpoint once it is complete.
    /// </summary>
    private async Task WriteCheckpointInBackgroundAsync(CheckpointMeta meta, Task<NativeBytes> trainingState)
    {
        await WriteCheckpointAsync(new Checkpoint(meta, await trainingState));
        await WithBlobRetriesAsync("pruning old checkpoints", ct => _checkpoints.PruneAsync(_options.KeepCheckpoints, meta.Step - 1, ct));
        S.LatestCheckpoint = meta.Step;
    }

    /// <summary>
    /// Writes a checkpoint, retrying while blob storage is unavailable, and frees its state. The write is not
    /// cancelled by shutdown: a stopping learner finishes its current checkpoint.
    /// </summary>
    private async Task WriteCheckpointAsync(Checkpoint checkpoint)
    {
        using (checkpoint) await WithBlobRetriesAsync($"checkpoint of step {checkpoint.Meta.Step}", ct => _checkpoints.WriteAsync(checkpoint, ct));
    }

    private async Task WithBlobRetriesAsync(string what, Func<CancellationToken, Task> write)
    {
        var started = Stopwatch.StartNew();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await write(CancellationToken.None);
                if (attempt > 1) LogBlobRecovered(logger, RunId, what, attempt);
                return;
            }
            catch (IOException e) when (started.Elapsed < _options.RetryBudget)
            {
                var delay = TimeSpan.FromMilliseconds(Math.Min(5000, 250 * Math.Pow(2, attempt - 1)));
                LogBlobFailed(logger, RunId, what, attempt, delay.TotalSeconds, e.Message);
                await Task.Delay(delay, time);
            }
        }
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Warning, Message = "Run {Run}: writing the {What} failed (attempt {Attempt}), retrying in {Delay:F1}s: {Error}")]
    private static partial void LogBlobFailed(ILogger logger, string run, string what, int attempt, double delay, string error);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "Run {Run}: wrote the {What} on attempt {Attempt}")]
    private static partial void LogBlobRecovered(ILogger logger, string run, string what, int attempt);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Warning, Message = "Run {Run}: the last checkpoint was not written: {Error}")]
    private static partial void LogCheckpointFailed(ILogger logger, string run, string error);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning,
        Message = "Run {Run}: policy version {Version} was published already by a learner deposed before completing its step; " +
                  "{Silo} (epoch {Epoch}) replaces it with its own weights")]
    private static partial void LogPolicyReplaced(ILogger logger, string run, int version, string silo, long epoch);

    [LoggerMessage(EventId = 6001, Level = LogLevel.Information, Message = "Silo {Silo} leads run {Run} (epoch {Epoch})")]
    private static partial void LogLeading(ILogger logger, string silo, string run, long epoch);

    [LoggerMessage(EventId = 6006, Level = LogLevel.Information, Message = "Run {Run}: steps raised to {Steps}; it trains on")]
    private static partial void LogExtended(ILogger logger, string run, int steps);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Warning, Message = "Silo {Silo} no longer leads run {Run}: {Reason}")]
    private static partial void LogDeposed(ILogger logger, string silo, string run, string reason);

    [LoggerMessage(EventId = 6005, Level = LogLevel.Error, Message = "Run {Run}: the learner stopped")]
    private static partial void LogFailed(ILogger logger, Exception exception, string run);
}

/// <summary>
/// A run's metrics: one JSON row per completed step, in the run directory's metrics.jsonl (what `train` users and
/// the experiments read) and in blob storage (<c>runs/{run}/metrics/{step}.json</c>, what a client reads with no
/// silo running).
/// </summary>
public static class MetricsLog
{
    public static string BlobName(string runId, int step) => $"runs/{runId}/metrics/{step:D8}.json";

    public static async Task AppendAsync(string file, IBlobStore blobs, string runId, int step, string json)
    {
        await blobs.PutAsync(BlobName(runId, step), Encoding.UTF8.GetBytes(json), CancellationToken.None);
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        await File.AppendAllTextAsync(file, json + "\n", CancellationToken.None);
    }

    /// <summary>Drops the rows of steps after <paramref name="lastStep"/> (steps that will be done again).</summary>
    public static async Task TruncateAsync(string file, IBlobStore blobs, string runId, int lastStep)
    {
        if (File.Exists(file))
        {
            var lines = await File.ReadAllLinesAsync(file);
            var kept = lines.Where(l => l.Length > 0 && StepOf(l) <= lastStep).ToList();
            if (kept.Count != lines.Count(l => l.Length > 0))
            {
                await File.WriteAllLinesAsync(file + ".tmp", kept);
                File.Move(file + ".tmp", file, overwrite: true);
            }
        }
        var doomed = new List<string>();
        await foreach (var blob in blobs.ListAsync($"runs/{runId}/metrics/", CancellationToken.None))
            if (int.TryParse(Path.GetFileNameWithoutExtension(blob.Name), out var step) && step > lastStep) doomed.Add(blob.Name);
        foreach (var name in doomed) await blobs.DeleteAsync(name, CancellationToken.None);
    }

    private static int StepOf(string line) => JsonNode.Parse(line)?["step"]?.GetValue<int>() ?? int.MaxValue;
}
