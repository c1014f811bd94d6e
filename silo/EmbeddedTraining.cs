using System.Globalization;
using Dapo.Core.Data;
using Dapo.Grains;
using Dapo.Grains.Hosting;
using Dapo.Training;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Dapo.Silo;

/// <summary>How an embedded run ended.</summary>
/// <param name="Code">Process exit code: 0 completed, 1 failed or stopped, 2 rejected before any work.</param>
internal sealed record TrainingOutcome(int Code, RunStatus? Status, ConsoleReporter Reporter);

/// <summary>
/// A run on this machine: one Orleans silo with every role, localhost clustering, grain state in files and blobs in
/// a directory, all under the run's directory. Starts the run, or resumes it from its latest checkpoint. `train` and
/// `experiments` use it.
/// </summary>
internal static class EmbeddedTraining
{
    public static async Task<TrainingOutcome> RunAsync(string directory, DemoRecipe recipe, ConsoleReporter reporter, int rolloutWorkers,
        CancellationToken cancellationToken, IReadOnlyDictionary<string, string?>? web = null)
    {
        directory = Path.GetFullPath(directory);
        var runId = Path.GetFileName(directory.TrimEnd(Path.DirectorySeparatorChar));
        var settings = new Dictionary<string, string?>
        {
            ["Silo:Roles"] = "learner,rollout", ["Silo:Storage"] = "Local", ["Silo:ClusterId"] = "dapo-embedded",
            ["Silo:RunDirectory"] = Path.GetDirectoryName(directory), ["Silo:GrainStateDirectory"] = Path.Combine(directory, "grains"),
            ["Silo:Run"] = runId, ["Silo:RolloutWorkers"] = rolloutWorkers.ToString(CultureInfo.InvariantCulture),
            ["Silo:GatewayPort"] = LoopbackPorts.Free().ToString(CultureInfo.InvariantCulture),
            ["Blobs:Kind"] = "Local", ["Blobs:LocalRoot"] = Path.Combine(directory, "blobs"),
        };
        // The configuration and the run's data are checked before the run's directory exists: a refused run leaves
        // nothing behind.
        foreach (var (key, value) in web ?? new Dictionary<string, string?>()) settings[key] = value;
        var builder = SiloHost.CreateBuilder(settings, quietLogs: true);
        builder.Services.AddSingleton<ITrainingReporter>(reporter);
        try
        {
            var run = new RunResources(runId, recipe);
            if (recipe.ModelDirectory is not null)
            {
                // What the policy is given, as its tokenizer encodes it (the model's own prompts are easy to get wrong).
                var first = run.Data.Train[0].Tokens;
                reporter.Message(runId, $"prompt 1 of {run.Data.Train.Count}, {first.Length} tokens:\n{run.Data.Encoder.Tokenizer.Decode(first, skipSpecialTokens: false)}");
            }
        }
        catch (Exception e) when (e is DatasetFormatException or ArgumentException or IOException)
        {
            Console.Error.WriteLine($"Cannot use the run's data: {e.Message}");
            return new TrainingOutcome(2, null, reporter);
        }
        var isNew = !Directory.Exists(directory);
        if (!DirectoryLock.TryCreate(directory, "the run directory (--run-dir)")) return new TrainingOutcome(2, null, reporter);
        TrainingOutcome outcome;
        using (var held = DirectoryLock.TryTake(directory, LockFile))
        {
            if (held is null)
            {
                var owner = EmbeddedSiloFile.Read(directory) is { } silo ? $" (pid {silo.ProcessId})" : "";
                Console.Error.WriteLine($"Run '{runId}' in {directory} is being trained by another process{owner}; nothing was changed. " +
                                        "Wait for it to finish, or stop it and run this again to resume.");
                return new TrainingOutcome(2, null, reporter);
            }
            outcome = await RunInAsync(builder, directory, runId, recipe, reporter);
        }
        if (outcome.Code == 2 && isNew) Directory.Delete(directory, recursive: true);
        return outcome;
    }

    /// <summary>
    /// The file a process training in a run directory holds locked while it runs: a second embedded silo on the same
    /// grain-state files would take the first's writes for a rival learner's, and each would depose the other.
    /// </summary>
    private const string LockFile = "train.lock";

    private static async Task<TrainingOutcome> RunInAsync(IHostApplicationBuilder builder, string directory, string runId, DemoRecipe recipe,
        ConsoleReporter reporter)
    {
        // The recipe's thread count (its results were measured with it) unless the user chose one.
        if (Environment.GetEnvironmentVariable("DAPO_THREADS") is null) Dapo.Torch.TorchEngine.Threads = recipe.Threads;
        using var host = SiloHost.Build(builder);
        if (await SiloHost.StartAsync(host) is { } failed) return new TrainingOutcome(failed, null, reporter);
        var silo = host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<SiloOptions>>().Value;
        // For dapo-client: this silo's gateway, while it runs.
        new EmbeddedSiloFile(silo.ClusterId, silo.GatewayPort, Environment.ProcessId).Write(directory);
        try
        {
            var spec = RunResources.SpecJson(recipe);
            var learner = host.Services.GetRequiredService<IGrainFactory>().GetGrain<ILearnerGrain>(runId);
            var existing = await learner.GetAsync();
            if (existing is not null)
                reporter.Resume(existing.StartAccuracy, existing.LatestAccuracy, recipe.Evaluation.SamplesPerProblem);
            // The same run with more steps trains further, from its last checkpoint, as if it had been started with them.
            var extendedTo = existing is null ? null : RunResources.ExtendedSteps(existing, spec);
            if (existing is not null && existing.SpecJson != spec && extendedTo is null)
            {
                if (existing.Status == RunStatus.Running)
                {
                    Console.Error.WriteLine($"Run '{runId}' in {directory} was started with another recipe or options; nothing was changed. " +
                                            "Use the same options to resume it (more --steps to train it further), or another run name/directory for a new run.");
                    return new TrainingOutcome(2, null, reporter);
                }
                // A finished run is reported whatever it was started with (nothing will run), but not as if it were this one.
                Console.Error.WriteLine($"Note: run '{runId}' in {directory} was trained with another recipe or options than these; " +
                                        "delete its directory (or use another run name) to train with these. More --steps, and nothing else changed, train it further.");
            }
            if (existing is { Status: not RunStatus.Running } && extendedTo is null)
            {
                reporter.Message(runId, $"Run '{runId}' in {directory} is already {existing.Status.ToString().ToLowerInvariant()}" +
                                        (existing.Error is null ? "." : $": {existing.Error}"));
                return new TrainingOutcome(existing.Status == RunStatus.Completed ? 0 : 1, existing.Status, reporter);
            }
            reporter.Message(runId, Dapo.Torch.TorchEngine.Describe());
            reporter.Message(runId, existing is { Step: > 0 }
                ? $"{(extendedTo is null ? "Resuming" : $"Training further, to {extendedTo} steps,")} run '{runId}' in {directory} " +
                  $"(at step {existing.Step}, latest checkpoint {existing.LatestCheckpoint?.ToString(CultureInfo.InvariantCulture) ?? "none"})"
                : $"Training run '{runId}' in {directory}: {Commands.Describe(recipe)}");
            await learner.StartAsync(spec);
            using var quiet = new CancellationTokenSource();
            var progress = ReportProgressWhileQuietAsync(host.Services.GetRequiredService<IGrainFactory>(), runId, reporter, quiet.Token);
            var code = await SiloHost.RunAsync(host, reporter.Ended, started: true);
            await quiet.CancelAsync();
            await progress;
            if (!reporter.Finished.IsCompleted) return new TrainingOutcome(code == 0 ? 1 : code, null, reporter);
            var (status, _) = reporter.Finished.Result;
            return new TrainingOutcome(status == RunStatus.Completed ? code : 1, status, reporter);
        }
        finally
        {
            File.Delete(EmbeddedSiloFile.PathIn(directory));
            await host.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>
    /// A real model's step takes minutes on a CPU and prints one line at its end: when nothing was printed for
    /// <see cref="ConsoleReporter.ProgressAfter"/>, say where the run is (the learner's phase; while sampling, the step's ledger).
    /// </summary>
    private static async Task ReportProgressWhileQuietAsync(IGrainFactory grains, string runId, ConsoleReporter reporter, CancellationToken stop)
    {
        if (reporter.ProgressAfter <= TimeSpan.Zero) return;
        using var timer = new PeriodicTimer(TimeSpan.FromTicks(Math.Min(TimeSpan.TicksPerSecond, reporter.ProgressAfter.Ticks)));
        var (phase, since) = ("", System.Diagnostics.Stopwatch.StartNew());
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                if (reporter.Ended.IsCompleted) return;  // the silo stops next: its grains are no longer there to ask
                var run = await grains.GetGrain<ILearnerGrain>(runId).GetAsync();
                if (run is not { Status: RunStatus.Running }) continue;
                if ($"{run.Step} {run.Phase}" != phase) (phase, since) = ($"{run.Step} {run.Phase}", System.Diagnostics.Stopwatch.StartNew());
                if (reporter.Quiet < reporter.ProgressAfter) continue;
                var where = (run.PhaseDetail.Length > 0 ? $"{run.Phase} ({run.PhaseDetail})" : run.Phase) +
                            $", {ConsoleReporter.Duration(since.Elapsed)} so far";
                if (run.Phase == "sampling" && await grains.GetGrain<IStepGrain>(GrainKeys.Step(runId, run.Step)).GetAsync() is { } ledger)
                    where += string.Create(CultureInfo.InvariantCulture,
                        $": accepted {ledger.Accepted}/{ledger.Target}, filtered {ledger.Filtered}, {ledger.InFlight} group(s) in flight, round {ledger.GenerationRounds}");
                reporter.Progress(runId, where);
            }
        }
        catch (Exception) when (stop.IsCancellationRequested || reporter.Ended.IsCompleted)
        {
            // The run ended (or the silo is stopping) during a question: nothing left to report.
        }
        catch (Exception e)
        {
            // Progress lines are a courtesy: the run goes on without them, and says why they stopped.
            reporter.Message(runId, $"progress lines stopped: {e.GetType().Name}: {e.Message}");
        }
    }
}
