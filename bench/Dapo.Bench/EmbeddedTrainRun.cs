using System.Globalization;
using System.Text.Json.Nodes;
using Dapo.Testing;

namespace Dapo.Bench;

/// <summary>
/// `dapo-silo train` run by a benchmark as a user runs it (one embedded silo, grain state in files, blobs in the run
/// directory), and the metrics rows it wrote.
/// </summary>
internal static class EmbeddedTrainRun
{
    /// <summary>
    /// The demo recipe as `train` runs it, without the held-out evaluations between DAPO steps (the last step's
    /// remains): the steps a user's run takes, whose share of filtered groups depends on the warm-start's quality.
    /// </summary>
    public const string NoEvaluations = "{\"EvaluateEvery\":0}";

    /// <summary>
    /// <see cref="NoEvaluations"/> after a short warm-start, for a quick look: a weaker policy, so many more groups
    /// are filtered and refilled per step, and a step has more coordination per unit of engine work.
    /// </summary>
    public const string ShortWarmStart = "{\"WarmStart\":{\"MaxSteps\":200,\"StopAtAccuracy\":null,\"EvaluateEvery\":0},\"EvaluateEvery\":0}";

    /// <summary>
    /// Trains <paramref name="steps"/> DAPO steps in a fresh run directory, after the recipe's warm-start or from
    /// <paramref name="initWeights"/>; the rows of its metrics.jsonl, or null after saying why.
    /// </summary>
    public static List<JsonObject>? Train(int steps, string overrides, string? threads, string? initWeights = null)
    {
        var directory = Directory.CreateTempSubdirectory("dapo-bench-train-").FullName;
        try
        {
            var runDir = Path.Combine(directory, "bench");
            var train = SiloProcess.Start(SiloProcess.SiloDll,
                ["train", "--run-dir", runDir, "--steps", steps.ToString(CultureInfo.InvariantCulture), "--override", overrides,
                 .. initWeights is null ? Array.Empty<string>() : ["--init-weights", initWeights]],
                Environment(threads));
            var code = train.WaitForExitAsync(TimeSpan.FromMinutes(30)).GetAwaiter().GetResult();
            train.DisposeAsync().AsTask().GetAwaiter().GetResult();
            if (code != 0)
            {
                Console.Error.WriteLine($"train failed ({code}):\n{train.Tail()}");
                return null;
            }
            return Read(runDir);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// The same on a cluster on Azure Storage (an Azurite started for it): one `dapo-silo join` silo with both roles
    /// (Orleans clustering, reminders and grain state in Azurite's tables and blobs, checkpoints and policies in its
    /// blobs) and the run created by `start-run`; the rows of the learner's metrics.jsonl once it wrote the last step's.
    /// </summary>
    public static async Task<List<JsonObject>?> TrainOnAzuriteAsync(int steps, string overrides, string? threads)
    {
        var directory = Directory.CreateTempSubdirectory("dapo-bench-azurite-").FullName;
        try
        {
            await using var azurite = await AzuriteProcess.StartNewAsync(tables: true);
            string[] cluster = ["--storage", azurite.ConnectionString, "--cluster-id", "dapo-bench"];
            var environment = Environment(threads);
            await using var silo = SiloProcess.Start(SiloProcess.SiloDll, ["join", "--roles", "learner,rollout", "--run-dir", directory, .. cluster],
                environment, logFile: Path.Combine(directory, "silo.log"));
            await silo.WaitForLineAsync("BLAS:", TimeSpan.FromMinutes(2));
            await using (var start = SiloProcess.Start(SiloProcess.SiloDll,
                             ["start-run", "--run", "bench", "--steps", steps.ToString(CultureInfo.InvariantCulture), "--override", overrides, .. cluster], environment))
            {
                if (await start.WaitForExitAsync(TimeSpan.FromMinutes(2)) != 0)
                {
                    Console.Error.WriteLine($"start-run failed:\n{start.Tail()}\n{silo.Tail()}");
                    return null;
                }
            }
            var metrics = Path.Combine(directory, "bench", "metrics.jsonl");
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(60);
            while (!File.Exists(metrics) || File.ReadLines(metrics).Count(l => l.Length > 0) < steps)
            {
                if (silo.HasExited || DateTime.UtcNow > deadline)
                {
                    Console.Error.WriteLine($"The run did not write {steps} metrics rows ({(silo.HasExited ? "the silo exited" : "timed out")}):\n{silo.Tail()}");
                    return null;
                }
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
            silo.Terminate();
            await silo.WaitForExitAsync(TimeSpan.FromMinutes(1));
            return Read(Path.GetDirectoryName(metrics)!);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>The silo's environment: engine threads as given, else the recipe's.</summary>
    private static Dictionary<string, string> Environment(string? threads) =>
        threads is null ? new Dictionary<string, string>() : new Dictionary<string, string> { ["DAPO_THREADS"] = threads };

    /// <summary>The rows of a run directory's metrics.jsonl.</summary>
    public static List<JsonObject> Read(string runDir) =>
        File.ReadLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
}
