using System.Globalization;
using System.Text.Json.Nodes;

namespace Dapo.Bench;

/// <summary>
/// Where a training step's time goes in a demo run on the embedded silo (grain state in files, blobs in a directory),
/// or with <c>--azurite</c> on a one-silo cluster on Azure Storage (Azurite):
/// the share of step time outside engine compute — wall time during which neither the learner's nor a rollout grain's
/// engine thread computed (timing/outside_engine_s: grain calls, state writes, blob I/O, waiting for work) — and, as
/// its parts, the time spent in grain calls on a step's path (the learner's, and the rollout grains' submissions) and
/// in blob storage. Runs `dapo-silo train` (or reads a finished run's metrics.jsonl with --run-dir) and sums the
/// per-step timings the learner records. The baseline is the store-based runtime this replaced: 6.0 % of step time.
/// </summary>
internal static class CoordinationBenchmark
{
    public static int Command(string[] args)
    {
        string? runDir = null;
        var steps = 40;
        bool quick = false, azurite = false;
        string? threads = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--run-dir" when i + 1 < args.Length: runDir = args[++i]; break;
                case "--steps" when i + 1 < args.Length && int.TryParse(args[i + 1], out steps): i++; break;
                case "--quick": steps = 15; quick = true; break;
                case "--threads" when i + 1 < args.Length: threads = args[++i]; break;
                case "--azurite": azurite = true; break;
                default:
                    Console.Error.WriteLine($"unknown option {args[i]}; known: --run-dir DIR, --steps N, --threads N, --quick, --azurite");
                    return 2;
            }
        }
        List<JsonObject>? rows;
        if (runDir is null)
        {
            Console.WriteLine($"coordination benchmark: the demo recipe for {steps} steps after {(quick ? "a short warm-start" : "its warm-start")} " +
                              (azurite
                                  ? "(one `join` silo with both roles on Azure Storage: an Azurite on this machine"
                                  : "(embedded silo, grain state in files") +
                              $", checkpoint every step), engine threads: {threads ?? "the recipe's, as `train` runs it"}");
            var overrides = quick ? EmbeddedTrainRun.ShortWarmStart : EmbeddedTrainRun.NoEvaluations;
            rows = azurite
                ? EmbeddedTrainRun.TrainOnAzuriteAsync(steps, overrides, threads).GetAwaiter().GetResult()
                : EmbeddedTrainRun.Train(steps, overrides, threads);
            if (rows is null) return 1;
        }
        else rows = EmbeddedTrainRun.Read(runDir);
        double Sum(string key) => rows.Sum(r => r[key]!.GetValue<double>());
        var step = Sum("timing/step_s");
        var (grains, blobs, sampling, training) = (Sum("timing/grains_s"), Sum("timing/blob_s"), Sum("timing/sampling_s"), Sum("timing/training_s"));
        var outside = Sum("timing/outside_engine_s");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {rows.Count} steps, {step:F1} s: grain calls {grains:F2} s ({grains / step:P1}), blob storage {blobs:F2} s ({blobs / step:P1}), " +
            $"sampling {sampling:F1} s ({sampling / step:P1}), training {training:F1} s ({training / step:P1})"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  outside engine compute: {outside:F2} s = {outside / step:P1} of step time (target < {(azurite ? "5 % on Azurite" : "3 % embedded")}; " +
            $"the store-based runtime: 6.0 %)"));
        return 0;
    }
}
