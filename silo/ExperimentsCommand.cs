using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Training.Experiments;
using Dapo.Training;
using Dapo.Core.Rewards;
using Dapo.Torch;

namespace Dapo.Silo;

/// <summary>
/// `experiments`: the paper's ablation on our scale. One supervised warm-start, shared by every run; then each rung
/// of <see cref="AblationLadder"/> (naive GRPO up to full DAPO) with every seed, each an embedded run of its own
/// directory; then the report (table, plots, summary). Re-running skips what is done: the warm-start and completed
/// runs are kept, an interrupted run resumes from its checkpoint.
/// </summary>
internal static class ExperimentsCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Results directory", DefaultValueFactory = _ => "results" };
        var seeds = new Option<string>("--seeds") { Description = "Comma-separated seeds", DefaultValueFactory = _ => "42,43,44" };
        var rungs = new Option<string>("--recipes") { Description = "Comma-separated rungs (default: the six of the paper's ladder; dapo-no-* rungs, full DAPO less one component, run when named)" };
        var steps = new Option<int?>("--steps") { Description = "DAPO steps per run (default: the recipe's)" };
        var evaluate = new Option<int?>("--eval-every") { Description = "Held-out evaluation every N steps (default: the recipe's)" };
        var overrides = new Option<string>("--override") { Description = "JSON merged into the base recipe (applies to every rung)" };
        var dataset = new Option<string>("--dataset") { Description = "JSONL prompts (DAPO-Math-17K format) for a --model run" };
        var parallel = new Option<int>("--parallel")
        {
            Description = "Runs at a time (default: one per core; each keeps one core busy)", DefaultValueFactory = _ => Environment.ProcessorCount,
        };
        var command = new Command("experiments", "Run the ablation suite (naive GRPO -> DAPO) and write results, plots and a table")
        {
            output, seeds, rungs, steps, evaluate, overrides, Commands.TaskOption, Commands.Model, dataset, parallel,
        };
        command.SetAction(async (result, cancellationToken) =>
        {
            DemoRecipe baseRecipe;
            try
            {
                baseRecipe = DemoRecipe.ForTask(result.GetValue(Commands.TaskOption)!);
                // A model's runs start from its weights; the demo's share one warm-start.
                if (result.GetValue(Commands.Model) is { } model) baseRecipe = Commands.ModelRecipe(model, "dapo");
                if (result.GetValue(dataset) is { } path) baseRecipe = baseRecipe with { Dataset = Path.GetFullPath(path) };
                if (result.GetValue(overrides) is { } json) baseRecipe = baseRecipe.WithOverrides(json);
            }
            catch (Exception e) when (e is FormatException or IOException or InvalidDataException or UnauthorizedAccessException or KeyNotFoundException)
            {
                Console.Error.WriteLine(e switch { FormatException => $"--override: {e.Message}", KeyNotFoundException => $"--task: {e.Message}", _ => $"--model: {e.Message}" });
                return 2;
            }
            if (baseRecipe.Dataset is not null && baseRecipe.ModelDirectory is null)
            {
                Console.Error.WriteLine("--dataset: the experiments' shared warm-start needs the synthetic task's worked solutions; a dataset needs --model.");
                return 2;
            }
            if (result.GetValue(steps) is { } n) baseRecipe = baseRecipe with { Steps = n };
            if (result.GetValue(evaluate) is { } e2) baseRecipe = baseRecipe with { EvaluateEvery = e2 };
            var seedList = new List<ulong>();
            foreach (var text in result.GetValue(seeds)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var seed))
                {
                    Console.Error.WriteLine($"--seeds: '{text}' is not a seed (a non-negative integer).");
                    return 2;
                }
                if (seedList.Contains(seed))
                {
                    Console.Error.WriteLine($"--seeds: {seed} is given twice; each seed is one run of each recipe.");
                    return 2;
                }
                seedList.Add(seed);
            }
            if (seedList.Count == 0)
            {
                Console.Error.WriteLine("--seeds: no seed given; give one or more, comma-separated (e.g. 42,43,44).");
                return 2;
            }
            var ladder = AblationLadder.Build(baseRecipe);
            if (result.GetValue(rungs) is { } names)
            {
                // The leave-one-out rungs run only when named.
                IReadOnlyList<AblationRecipe> known = [.. ladder, .. AblationLadder.LeaveOneOut(baseRecipe)];
                var wanted = names.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
                var unknown = wanted.Where(w => known.All(r => r.Key != w)).ToList();
                if (unknown.Count > 0 || wanted.Count == 0)
                {
                    Console.Error.WriteLine($"--recipes: {(wanted.Count == 0 ? "no recipe given" : $"unknown '{unknown[0]}'")}; known: {string.Join(", ", known.Select(r => r.Key))}.");
                    return 2;
                }
                ladder = known.Where(r => wanted.Contains(r.Key)).ToList();
            }
            foreach (var error in ladder.SelectMany(r => r.Recipe.Validate()).Distinct())
            {
                Console.Error.WriteLine($"Invalid recipe: {error}");
                return 2;
            }
            if (!Commands.DeviceIsHere(baseRecipe)) return 2;
            if (result.GetValue(parallel) < 1)
            {
                Console.Error.WriteLine($"--parallel: {result.GetValue(parallel)} runs at a time; give 1 or more.");
                return 2;
            }
            return await RunAsync(Path.GetFullPath(result.GetValue(output)!), baseRecipe, ladder, seedList, result.GetValue(parallel), cancellationToken);
        });
        return command;
    }

    private static async Task<int> RunAsync(string directory, DemoRecipe baseRecipe, IReadOnlyList<AblationRecipe> ladder,
        IReadOnlyList<ulong> seeds, int parallel, CancellationToken cancellationToken)
    {
        // The data first: a recipe whose problems do not fit the model is refused before anything is written.
        DemoData? data = null;
        if (baseRecipe.ModelDirectory is null)
        {
            try
            {
                data = DemoData.Create(baseRecipe);
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"Cannot use the recipe's data: {e.Message}");
                return 2;
            }
        }
        if (!DirectoryLock.TryCreate(directory, "the results directory (--out)")) return 2;
        // Two commands on one directory would both train its warm-start, and write it over each other.
        using var held = DirectoryLock.TryTake(directory, LockFile);
        if (held is null)
        {
            Console.Error.WriteLine($"experiments: {directory} is in use by another experiments command; nothing was changed. " +
                                    "Wait for it to finish, or stop it and run this again to go on where it stopped.");
            return 2;
        }
        var total = Stopwatch.StartNew();
        Console.WriteLine($"experiments: {ladder.Count} recipe(s) x {seeds.Count} seed(s), {baseRecipe.Steps} steps each, {parallel} at a time, into {directory}");
        string? weights = null;
        var warmAccuracy = double.NaN;
        if (data is not null)
        {
            if (await WarmStartAsync(directory, baseRecipe, data, cancellationToken) is not { } warm) return 2;
            (weights, warmAccuracy) = warm;
        }
        // Every run keeps one core busy (the recipe's engine thread), so runs go side by side up to --parallel.
        var jobs = ladder.SelectMany(rung => seeds.Select(seed => (Rung: rung, Seed: seed))).ToList();
        var outcomes = new ExperimentRun?[jobs.Count];
        using var slots = new SemaphoreSlim(parallel);
        var failed = 0;
        await Task.WhenAll(jobs.Select(async (job, i) =>
        {
            await slots.WaitAsync(cancellationToken);
            try
            {
                if (Volatile.Read(ref failed) != 0) return;
                var name = $"{job.Rung.Key}-seed{job.Seed}";
                var label = $"[{i + 1}/{jobs.Count} {name}]";
                var runDirectory = Path.Combine(directory, "runs", name);
                var recipe = job.Rung.Recipe with { Dapo = job.Rung.Recipe.Dapo with { Seed = job.Seed }, InitialWeights = weights ?? job.Rung.Recipe.InitialWeights };
                var watch = Stopwatch.StartNew();
                var reporter = new ConsoleReporter(json: false, prefix: label + " ", stepEvery: 25);
                var outcome = await EmbeddedTraining.RunAsync(runDirectory, recipe, reporter, rolloutWorkers: 1, cancellationToken);
                if (outcome.Code != 0)
                {
                    Console.Error.WriteLine($"experiments: run {name} did not complete (exit {outcome.Code}); re-run to resume it.");
                    Interlocked.CompareExchange(ref failed, outcome.Code, 0);
                    return;
                }
                outcomes[i] = ExperimentRun.Load(job.Rung, job.Seed, Path.Combine(runDirectory, "metrics.jsonl"));
                // A model's runs all start from its weights: a run's evaluation of them is the report's start.
                if (double.IsNaN(warmAccuracy) && outcome.Reporter.HeldOut.AfterWarmStart is { } start) warmAccuracy = start;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{label} done in {watch.Elapsed.TotalMinutes:F1} min, total {total.Elapsed.TotalMinutes:F1} min"));
            }
            finally
            {
                slots.Release();
            }
        }));
        if (failed != 0) return failed;
        var runs = outcomes.Select(r => r!).ToList();
        var summary = ExperimentReport.Write(Path.Combine(directory, "report"), runs, warmAccuracy, baseRecipe.Evaluation.SamplesPerProblem);
        Console.WriteLine();
        Console.Write(ExperimentReport.Table(summary));
        Console.WriteLine($"experiments: {total.Elapsed.TotalMinutes:F1} min; report in {Path.Combine(directory, "report")}: {string.Join(", ", summary.Files)}");
        return 0;
    }

    /// <summary>The file an experiments command holds locked in its results directory while it runs.</summary>
    private const string LockFile = "experiments.lock";

    /// <summary>The shared warm-start: trained once, its weights and held-out accuracy kept in the results directory
    /// with what it was trained on; null (after saying why) when the directory's warm-start is another recipe's.</summary>
    private static async Task<(string Weights, double Accuracy)?> WarmStartAsync(string directory, DemoRecipe recipe, DemoData data,
        CancellationToken cancellationToken)
    {
        var weights = Path.Combine(directory, "warm-start.weights");
        var info = Path.Combine(directory, "warm-start.json");
        var trainedOn = WarmStartRecipe(recipe, data);
        if (File.Exists(weights) && File.Exists(info))
        {
            WarmStartInfo? saved = null;
            var problem = "it holds no record";
            try
            {
                saved = JsonSerializer.Deserialize<WarmStartInfo>(File.ReadAllText(info));
                // Every warm-start trains; a record without steps (an empty object) is no record of one.
                if (saved is { Steps: <= 0 }) (saved, problem) = (null, "it records no warm-start steps");
            }
            catch (JsonException e)
            {
                problem = e.Message;
            }
            if (saved is null)
            {
                Console.Error.WriteLine($"warm-start: {info} cannot be read ({problem}); delete warm-start.* in {directory} to train a new one " +
                                        "(its finished runs started from the old one).");
                return null;
            }
            // Written before warm-starts recorded their recipe: reused as it is.
            var before = saved.Recipe is null ? null : WithoutDevice(saved.Recipe);
            var now = WithoutDevice(trainedOn);
            if (before is not null && !JsonNode.DeepEquals(before, now))
            {
                var differs = now.Where(kv => !JsonNode.DeepEquals(kv.Value, before[kv.Key])).Select(kv => kv.Key);
                Console.Error.WriteLine($"warm-start: {weights} was trained for another recipe (it differs in {string.Join(", ", differs)}); " +
                                        "give another --out, or delete warm-start.* there to train a new one (its finished runs started from the old one).");
                return null;
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"warm-start: reusing {weights} (held-out avg@k {saved.Accuracy:P1})"));
            return (weights, saved.Accuracy);
        }
        if (Environment.GetEnvironmentVariable("DAPO_THREADS") is null) TorchEngine.Threads = recipe.Threads;
        var evaluator = new Evaluator(data.Encoder, RewardFunctions.Get(recipe.Dapo.RewardFunction), recipe.Evaluation);
        using var model = PolicyModel.Create(recipe.Model);
        var watch = Stopwatch.StartNew();
        var result = await Task.Run(() =>
        {
            using var optimizer = WarmStart.CreateOptimizer(model, recipe.WarmStart);
            return WarmStart.Run(model, optimizer, data.Supervised, recipe.WarmStart, _ => evaluator.Evaluate(model, data.HeldOut).AverageAtK,
                p =>
                {
                    if (p.HeldOutAccuracy is { } a)
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"warm-start step {p.Step,4}: nll {p.Loss:F3}, held-out {a:P1}"));
                }, cancellationToken);
        }, cancellationToken);
        var accuracy = evaluator.Evaluate(model, data.HeldOut).AverageAtK;
        // Each file whole or not at all (written aside, then moved in), the record last: a warm-start interrupted while
        // it is saved is trained again, never reused half written.
        File.Delete(info);
        using (var exported = model.ExportWeights())
        await using (var file = File.Create(weights + ".partial"))
        await using (var content = exported.OpenRead())
            await content.CopyToAsync(file, cancellationToken);
        File.Move(weights + ".partial", weights, overwrite: true);
        await File.WriteAllTextAsync(info + ".partial", JsonSerializer.Serialize(new WarmStartInfo(result.Steps, accuracy, watch.Elapsed.TotalSeconds, trainedOn)), cancellationToken);
        File.Move(info + ".partial", info, overwrite: true);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"warm-start: {result.Steps} steps ({result.Stop}) in {watch.Elapsed.TotalSeconds:F0}s, held-out avg@k {accuracy:P1}"));
        return (weights, accuracy);
    }

    /// <summary>What a warm-start depends on: the task, its problems, the prompt, the model and the supervised settings,
    /// and the data itself (<see cref="DemoData.Fingerprint"/>: a task's generator may change under the same recipe).</summary>
    private static string WarmStartRecipe(DemoRecipe r, DemoData data) => JsonSerializer.Serialize(new
    {
        r.Task, r.Levels, r.TrainProblemsPerLevel, r.HeldOutProblemsPerLevel, r.DataSeed, r.PromptTemplate, r.Model, r.WarmStart,
        Data = data.Fingerprint(),
    });

    /// <summary>A warm-start's recipe without where its model ran: weights trained on the CPU serve a GPU run alike, and
    /// warm-starts written before the device was saved by name (<c>"Device": 0</c>) stay usable.</summary>
    private static JsonObject WithoutDevice(string recipe)
    {
        var node = JsonNode.Parse(recipe)!.AsObject();
        if (node["Model"] is JsonObject model)
        {
            model.Remove(nameof(ModelConfig.Device));
            model.Remove(nameof(ModelConfig.DeviceIndex));
        }
        return node;
    }

    private sealed record WarmStartInfo(int Steps, double Accuracy, double Seconds, string? Recipe = null);
}
