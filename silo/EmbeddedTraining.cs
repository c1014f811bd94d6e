using System.Globalization;
using Dapo.Cluster.Hosting;
using Dapo.Cluster.Store;
using Dapo.Training;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Dapo.Silo;

/// <summary>How an embedded run ended.</summary>
/// <param name="Code">Process exit code: 0 completed, 1 failed or stopped, 2 rejected before any work.</param>
internal sealed record TrainingOutcome(int Code, RunStatus? Status, ConsoleReporter Reporter);

/// <summary>
/// A run on this machine with every role in one process: the embedded store (a SQLite file) and local blob storage
/// in the run's directory. Starts it, or resumes it from its latest checkpoint. `train` and `experiments` use it.
/// </summary>
internal static class EmbeddedTraining
{
    public static async Task<TrainingOutcome> RunAsync(string directory, DemoRecipe recipe, ConsoleReporter reporter, int rolloutWorkers,
        CancellationToken cancellationToken)
    {
        directory = Path.GetFullPath(directory);
        var runId = Path.GetFileName(directory.TrimEnd(Path.DirectorySeparatorChar));
        var settings = new Dictionary<string, string?>
        {
            ["Silo:Roles"] = "learner,rollout", ["Silo:RunDirectory"] = Path.GetDirectoryName(directory), ["Silo:Run"] = runId,
            ["Silo:RolloutWorkers"] = rolloutWorkers.ToString(CultureInfo.InvariantCulture),
            ["Store:Kind"] = "sqlite", ["Store:SqlitePath"] = Path.Combine(directory, "cluster.db"),
            ["Blobs:Kind"] = "Local", ["Blobs:LocalRoot"] = Path.Combine(directory, "blobs"),
        };
        // The configuration is read before the run's directory exists: a malformed one leaves nothing behind.
        var builder = SiloHost.CreateBuilder(settings, quietLogs: true);
        builder.Services.AddSingleton<ITrainingReporter>(reporter);
        var isNew = !Directory.Exists(directory);
        Directory.CreateDirectory(directory);
        var outcome = await RunInAsync(builder, directory, runId, recipe, reporter, cancellationToken);
        // A run refused before any work leaves nothing behind.
        if (outcome.Code == 2 && isNew) Directory.Delete(directory, recursive: true);
        return outcome;
    }

    private static async Task<TrainingOutcome> RunInAsync(HostApplicationBuilder builder, string directory, string runId, DemoRecipe recipe,
        ConsoleReporter reporter, CancellationToken cancellationToken)
    {
        // The recipe's thread count (its results were measured with it) unless the user chose one.
        if (Environment.GetEnvironmentVariable("DAPO_THREADS") is null) Dapo.Torch.TorchEngine.Threads = recipe.Threads;
        using var host = builder.Build();
        // Blob storage before the run: a reader (dapo-client) that sees the run finds its container too.
        await host.Services.GetRequiredService<Dapo.Cluster.Blobs.IBlobStore>().EnsureContainerAsync(cancellationToken);
        var existing = await Commands.EnsureRunAsync(host.Services.GetRequiredService<IClusterStore>(), runId, recipe, directory, cancellationToken);
        if (existing is null) return new TrainingOutcome(2, null, reporter);
        if (existing.Status != RunStatus.Running)
        {
            reporter.Message(runId, $"Run '{runId}' in {directory} is already {existing.Status.ToString().ToLowerInvariant()}" +
                                    (existing.Error is null ? "." : $": {existing.Error}"));
            return new TrainingOutcome(existing.Status == RunStatus.Completed ? 0 : 1, existing.Status, reporter);
        }
        reporter.Message(runId, Dapo.Torch.TorchEngine.Describe());
        reporter.Message(runId, existing.Step > 0
            ? $"Resuming run '{runId}' in {directory} (store at step {existing.Step}, latest checkpoint " +
              $"{existing.LatestCheckpoint?.ToString(CultureInfo.InvariantCulture) ?? "none"})"
            : $"Training run '{runId}' in {directory}: {Commands.Describe(recipe)}");
        var code = await SiloHost.RunAsync(host, reporter.Finished);
        if (!reporter.Finished.IsCompleted) return new TrainingOutcome(code == 0 ? 1 : code, null, reporter);
        var (status, _) = reporter.Finished.Result;
        return new TrainingOutcome(status == RunStatus.Completed ? code : 1, status, reporter);
    }
}
