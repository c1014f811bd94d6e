using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Cluster.Blobs;
using Dapo.Cluster.Checkpoints;
using Dapo.Cluster.Grains;
using Dapo.Cluster.Store;
using Dapo.Training;
using Dapo.Core.Metrics;
using Dapo.Core.Rewards;
using Dapo.Core.Sampling;
using Dapo.Torch;
using Microsoft.Extensions.Logging;

namespace Dapo.Cluster.Hosting;

/// <summary>
/// The learner grain's work for one run, while this silo holds the run's learner lease: restore the latest
/// checkpoint (or warm-start and write checkpoint 0), then for each step open it, wait until its prompt grains have
/// the target of accepted groups, train on them, publish the next policy version, checkpoint, record metrics.
/// </summary>
internal sealed partial class LearnerLoop(
    IClusterStore store, IBlobStore blobs, RunResources run, LeaseHandle lease, PolicySource policies, SiloOptions options,
    CoordinationTimer coordination, ITrainingReporter reporter, TimeProvider time, ILogger logger)
{
    private readonly CheckpointStore _checkpoints = new(blobs, run.Context.RunId);
    private string RunId => run.Context.RunId;
    private DemoRecipe Recipe => run.Recipe;
    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>Trains until the run completes or fails; returns how it ended.</summary>
    public async Task<RunStatus> RunAsync(CancellationToken cancellationToken)
    {
        await blobs.EnsureContainerAsync(cancellationToken);
        var (model, optimizer, meta) = await RestoreOrWarmStartAsync(cancellationToken);
        using (model)
        using (optimizer)
        {
            var row = await LearnerLedger.RestoreAsync(store, run.Context, lease,
                new CheckpointPosition(meta.Step, meta.PolicyVersion, meta.Cursor), Now, cancellationToken);
            policies.Publish(RunId, meta.PolicyVersion, model.ExportWeights());
            if (row.Status != RunStatus.Running) return row.Status;
            if (meta.Step > 0) reporter.Message(RunId, $"resumed from the checkpoint of step {meta.Step} (policy version {meta.PolicyVersion})");
            var updater = new PolicyUpdater(model, optimizer, Recipe.Dapo);
            var evaluator = new Evaluator(run.Data.Encoder, RewardFunctions.Get(Recipe.Dapo.RewardFunction), Recipe.Evaluation);
            for (var step = row.Step; step <= Recipe.Steps; step++)
            {
                var status = await TrainStepAsync(step, model, optimizer, updater, evaluator, cancellationToken);
                if (status != RunStatus.Running) return status;
            }
            return RunStatus.Completed;
        }
    }

    private async Task<(PolicyModel, AdamW, CheckpointMeta)> RestoreOrWarmStartAsync(CancellationToken cancellationToken)
    {
        var latest = await _checkpoints.LatestAsync(
            (step, problem) => reporter.Message(RunId, $"skipping the checkpoint of step {step}: {problem}"), cancellationToken);
        if (latest is not null)
        {
            var (restored, restoredOptimizer) = TrainingState.Restore(latest.TrainingState);
            return (restored, restoredOptimizer, latest.Meta);
        }
        var evaluator = new Evaluator(run.Data.Encoder, RewardFunctions.Get(Recipe.Dapo.RewardFunction), Recipe.Evaluation);
        PolicyModel model;
        if (Recipe.InitialWeights is { } initial)
        {
            reporter.Message(RunId, $"no checkpoint: starting from the weights in {initial}");
            model = LoadInitialWeights(initial);
        }
        else
        {
            reporter.Message(RunId, "no checkpoint: supervised warm-start first");
            model = PolicyModel.Create(Recipe.Model);
            await WarmStartAsync(model, evaluator, cancellationToken);
        }
        var start = await Task.Run(() => evaluator.Evaluate(model, run.Data.HeldOut), cancellationToken);
        reporter.Evaluated(RunId, Recipe.InitialWeights is null ? "after warm-start" : "of the initial weights", start);
        var optimizer = PolicyUpdater.CreateOptimizer(model, Recipe.Dapo);
        var meta = new CheckpointMeta(0, 0, run.Context.InitialCursor, Recipe.Dapo.Seed, RunResources.SpecJson(Recipe), time.GetUtcNow());
        await PublishPolicyAsync(_checkpoints, store, lease, RunId, 0, model.ExportWeights(), time, logger, cancellationToken);
        await WriteCheckpointAsync(new Checkpoint(meta, TrainingState.Save(model, optimizer)));
        return (model, optimizer, meta);
    }

    /// <summary>Supervised warm-start on the recipe's worked solutions, reporting progress as it goes.</summary>
    private async Task WarmStartAsync(PolicyModel model, Evaluator evaluator, CancellationToken cancellationToken)
    {
        await PhaseAsync("warm-start", 0, $"up to {Recipe.WarmStart.MaxSteps} steps", cancellationToken);
        var result = await Task.Run(() =>
        {
            using var optimizer = WarmStart.CreateOptimizer(model, Recipe.WarmStart);
            return WarmStart.Run(model, optimizer, run.Data.Supervised, Recipe.WarmStart,
                _ => evaluator.Evaluate(model, run.Data.HeldOut).AverageAtK, p => reporter.WarmStart(RunId, p), cancellationToken);
        }, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        reporter.Message(RunId, result.Describe(Recipe.WarmStart));
        await PhaseAsync("warm-start", 0, $"done: {result.Steps} steps ({result.Stop}), nll {result.Loss:F3}", cancellationToken);
    }

    private PolicyModel LoadInitialWeights(string path)
    {
        var model = PolicyModel.FromWeights(File.ReadAllBytes(path));
        if (model.Config with { Seed = Recipe.Model.Seed } == Recipe.Model) return model;
        model.Dispose();
        throw new InvalidOperationException($"{path} holds weights of another model ({model.Config}), not the recipe's ({Recipe.Model}).");
    }

    private async Task<RunStatus> TrainStepAsync(int step, PolicyModel model, AdamW optimizer, PolicyUpdater updater, Evaluator evaluator,
        CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var (storeBefore, blobsBefore) = (coordination.Store, coordination.Blobs);
        await PhaseAsync("sampling", step, $"waiting for {Recipe.Dapo.PromptBatchSize} informative groups", cancellationToken);
        await LearnerLedger.OpenStepAsync(store, run.Context, lease, step, Now, cancellationToken);
        var ledger = await LearnerLedger.GetStepAsync(store, RunId, step, cancellationToken);
        while (ledger.StopReason is null)
        {
            await Task.Delay(options.PollInterval, time, cancellationToken);
            ledger = await LearnerLedger.GetStepAsync(store, RunId, step, cancellationToken);
        }
        var closed = await LearnerLedger.CloseSamplingAsync(store, run.Context, lease, step, Now, cancellationToken);
        if (closed.Failure is not null)
        {
            await PhaseAsync("failed", step, closed.Failure, CancellationToken.None);
            reporter.RunEnded(RunId, RunStatus.Failed, closed.Failure);
            return RunStatus.Failed;
        }
        var samplingTime = watch.Elapsed;

        await PhaseAsync("training", step, $"{closed.Groups.Count} groups in {Recipe.Dapo.MiniBatchesPerStep} mini-batch(es)", cancellationToken);
        var groups = closed.Groups.Select(g => new TrainingGroup(g.Prompt.PromptTokens,
            g.Slots.Select(s => new TrainingResponse(s.Tokens, s.LogProbs, s.Reward, s.Truncated)).ToArray())).ToArray();
        // Mini-batch progress for the client console (`grain learner`), as the warm-start reports its steps.
        var update = await Task.Run(() => updater.Update(groups, step - 1, (done, total) =>
            PhaseAsync("training", step, $"mini-batch {done}/{total} done ({groups.Length} groups)", cancellationToken).GetAwaiter().GetResult()),
            cancellationToken);
        var trainingTime = watch.Elapsed - samplingTime;

        // Publish the new policy before the step completes: rollout workers of the next step fetch it by version. In
        // this process only once it is in blob storage: a learner deposed meanwhile must not serve its own weights
        // under a version number that is the new learner's.
        var weights = model.ExportWeights();
        await WithBlobRetriesAsync($"policy version {step}",
            ct => PublishPolicyAsync(_checkpoints, store, lease, RunId, step, weights, time, logger, ct));
        policies.Publish(RunId, step, weights);
        var runRow = (await store.TransactAsync(s => s.GetRunAsync(RunId), cancellationToken))!;
        int? checkpoint = null;
        if (step % options.CheckpointEvery == 0 || step == Recipe.Steps)
        {
            await PhaseAsync("checkpointing", step, $"writing the checkpoint of step {step}", cancellationToken);
            var meta = new CheckpointMeta(step, step, Dapo.Core.Data.CursorState.FromJson(runRow.CursorJson), Recipe.Dapo.Seed,
                RunResources.SpecJson(Recipe), time.GetUtcNow());
            await WriteCheckpointAsync(new Checkpoint(meta, TrainingState.Save(model, optimizer)));
            await WithBlobRetriesAsync("pruning old checkpoints", ct => _checkpoints.PruneAsync(options.KeepCheckpoints, step - 1, ct));
            checkpoint = step;
        }
        EvaluationResult? evaluation = null;
        if ((Recipe.EvaluateEvery > 0 && step % Recipe.EvaluateEvery == 0) || step == Recipe.Steps)
        {
            await PhaseAsync("evaluating", step, $"{run.Data.HeldOut.Count} held-out problems", cancellationToken);
            evaluation = await Task.Run(() => evaluator.Evaluate(model, run.Data.HeldOut), cancellationToken);
        }

        var decided = await store.TransactAsync(s => s.ListPromptsAsync(RunId, step), cancellationToken);
        var judged = decided.Where(p => p.Accuracy is not null && p.Status != PromptStatus.Abandoned).ToList();
        var members = await store.TransactAsync(s => s.ListMembersAsync(), cancellationToken);
        var workers = members.Count(m => m.Roles.Contains("rollout", StringComparison.Ordinal) &&
                                         Membership.IsAlive(m, Now, options.MemberTimeout));
        var metrics = StepMetrics.Compute(new StepMetricsInput
        {
            Step = step,
            Responses = closed.Groups.SelectMany(g => g.Slots.Select(s =>
                new ResponseOutcome(s.Score, s.OverlongPenalty, s.Correct, s.Tokens.Length, s.Truncated))).ToArray(),
            Advantages = update.Advantages, Entropies = update.Entropies,
            LogProbs = closed.Groups.SelectMany(g => g.Slots.SelectMany(s => s.LogProbs)).ToArray(),
            GenerationRounds = closed.Step.GenerationRounds, GroupsAccepted = closed.Step.Accepted, GroupsFiltered = closed.Step.Filtered,
            Updates = update.Updates, LearningRate = update.LearningRate,
        });
        var generated = judged.Sum(p => p.MeanLength!.Value * p.Filled);
        var report = new StepReport(RunId, step, Recipe.Steps, metrics,
            judged.Count == 0 ? 0 : judged.Average(p => p.Accuracy!.Value), (generated + update.ScoredTokens) / watch.Elapsed.TotalSeconds,
            watch.Elapsed, samplingTime, trainingTime, coordination.Store - storeBefore, coordination.Blobs - blobsBefore, workers,
            evaluation, checkpoint);
        var json = MetricsJson(report);
        await File.AppendAllTextAsync(Path.Combine(RunDirectory(), "metrics.jsonl"), json + "\n", CancellationToken.None);
        var completed = await LearnerLedger.CompleteStepAsync(store, run.Context, lease, step, step, checkpoint, json, Recipe.Steps, Now,
            CancellationToken.None);
        await PhaseAsync(completed.Status == RunStatus.Completed ? "done" : "step done", step,
            $"last checkpoint: {(completed.LatestCheckpoint is { } c ? $"step {c}" : "none")}", CancellationToken.None);
        reporter.Step(report);
        if (evaluation is not null) reporter.Evaluated(RunId, $"after step {step}", evaluation);
        if (completed.Status == RunStatus.Completed) reporter.RunEnded(RunId, RunStatus.Completed, null);
        return completed.Status;
    }

    /// <summary>Records what the learner is doing, for the client console (not fenced: it is only information).</summary>
    private Task PhaseAsync(string phase, int step, string detail, CancellationToken cancellationToken) =>
        store.TransactAsync(async s =>
        {
            await s.UpsertLearnerAsync(new LearnerRow(RunId, lease.Owner, lease.Epoch, phase, step, detail, Now));
            return 0;
        }, cancellationToken);

    private string RunDirectory()
    {
        var directory = Path.Combine(options.RunDirectory, RunId);
        Directory.CreateDirectory(directory);
        return directory;
    }

    /// <summary>The metrics row: Dapo.Core's step metrics plus timings, throughput, workers and any evaluation.</summary>
    internal static string MetricsJson(StepReport r)
    {
        var row = new JsonObject();
        foreach (var (key, value) in r.Metrics.ToDictionary()) row[key] = value;
        row["step"] = r.Step;
        row["sampled/accuracy"] = r.SampledAccuracy;
        row["timing/step_s"] = r.StepTime.TotalSeconds;
        row["timing/sampling_s"] = r.SamplingTime.TotalSeconds;
        row["timing/training_s"] = r.TrainingTime.TotalSeconds;
        row["timing/store_s"] = r.StoreTime.TotalSeconds;
        row["timing/blob_s"] = r.BlobTime.TotalSeconds;
        row["throughput/tokens_per_s"] = r.TokensPerSecond;
        row["cluster/rollout_workers"] = r.RolloutWorkers;
        if (r.Checkpoint is { } c) row["checkpoint"] = c;
        if (r.Evaluation is { } e)
        {
            row[$"eval/avg@{e.K}"] = e.AverageAtK;
            row[$"eval/pass@{e.K}"] = e.PassAtK;
            row[$"eval/maj@{e.K}"] = e.MajorityAtK;
            row["eval/response_length"] = e.MeanResponseLength;
        }
        row["time"] = DateTimeOffset.UtcNow.ToString("O");
        return row.ToJsonString();
    }

    /// <summary>
    /// Publishes policy version <paramref name="version"/>, create-only (<see cref="CheckpointStore.PublishPolicyAsync"/>).
    /// When another learner published that version first with other weights, the learner lease decides, as it fences
    /// every other write of the learner: a learner that no longer holds it is the stale one and stops here with
    /// <see cref="LeaseLostException"/>, leaving the other's version in place. The holder replaces the version: its
    /// publisher lost the lease before it completed the step, so no step still open refers to that version
    /// (<see cref="LearnerLedger.RestoreAsync"/> abandoned every step after the checkpoint the holder resumed from),
    /// and the holder's weights are the ones the run continues from. Equal weights (a retry of this very
    /// publication, or the same step computed again) are simply published already.
    /// </summary>
    internal static async Task<PolicyPublication> PublishPolicyAsync(CheckpointStore checkpoints, IClusterStore store,
        LeaseHandle lease, string runId, int version, byte[] weights, TimeProvider time, ILogger logger,
        CancellationToken cancellationToken)
    {
        var outcome = await checkpoints.PublishPolicyAsync(version, weights, cancellationToken);
        if (outcome != PolicyPublication.Conflict) return outcome;
        await store.TransactAsync(async s =>
        {
            await Leases.VerifyAsync(s, lease, time.GetUtcNow().ToUnixTimeMilliseconds());
            return 0;
        }, cancellationToken);
        LogPolicyReplaced(logger, runId, version, lease.Owner, lease.Epoch);
        await checkpoints.ReplacePolicyAsync(version, weights, cancellationToken);
        return outcome;
    }

    /// <summary>
    /// Writes a checkpoint, retrying while blob storage is unavailable. The write is not cancelled by shutdown: a
    /// stopping learner finishes its current checkpoint before it gives up its lease.
    /// </summary>
    private Task WriteCheckpointAsync(Checkpoint checkpoint) =>
        WithBlobRetriesAsync($"checkpoint of step {checkpoint.Meta.Step}", ct => _checkpoints.WriteAsync(checkpoint, ct));

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
            catch (IOException e) when (started.Elapsed < options.RetryBudget)
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

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning,
        Message = "Run {Run}: policy version {Version} was published already by a learner that lost the lease before completing its step; " +
                  "{Owner} (lease epoch {Epoch}) replaces it with its own weights")]
    private static partial void LogPolicyReplaced(ILogger logger, string run, int version, string owner, long epoch);
}
