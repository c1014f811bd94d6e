using System.CommandLine;
using System.Globalization;
using Dapo.Cluster.Grains;
using Dapo.Cluster.Hosting;
using Dapo.Cluster.Store;
using Dapo.Training;
using Dapo.Core.Data;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Dapo.Silo;

/// <summary>The silo's commands: one handler each.</summary>
internal static class Commands
{
    private static readonly Option<string> Recipe = new("--recipe")
    {
        Description = $"Recipe: {string.Join(", ", DemoRecipe.Names)}", DefaultValueFactory = _ => "dapo",
    };
    private static readonly Option<int?> Steps = new("--steps") { Description = "DAPO steps after the warm-start (default: the recipe's)" };
    private static readonly Option<ulong?> Seed = new("--seed") { Description = "Seed of the run (default: the recipe's)" };
    private static readonly Option<string> InitWeights = new("--init-weights")
    {
        Description = "Start from these policy weights (e.g. a run's blobs/runs/RUN/policy/00000000) instead of the warm-start",
    };
    private static readonly Option<string> Dataset = new("--dataset")
    {
        Description = "JSONL prompts (DAPO-Math-17K or {\"prompt\",\"answer\"}) instead of the synthetic task; needs --init-weights",
    };
    private static readonly Option<string> Override = new("--override")
    {
        Description = "JSON merged into the recipe, e.g. '{\"Steps\": 20, \"Dapo\": {\"LearningRate\": 5e-4}}'",
    };

    /// <summary>`train`: the demo recipe on one machine, every role in this process, embedded store and blobs.</summary>
    public static Command Train()
    {
        var runDir = new Option<string>("--run-dir") { Description = "Directory of the run (store, checkpoints, metrics)", DefaultValueFactory = _ => "runs/demo" };
        var workers = new Option<int>("--rollout-workers") { Description = "Rollout worker loops", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Progress as one JSON object per line" };
        var command = new Command("train", "Train the demo recipe on this machine (embedded store); re-run to resume") { runDir, Recipe, Steps, Seed, InitWeights, Dataset, Override, workers, json };
        command.SetAction(async (result, cancellationToken) =>
        {
            var recipe = BuildRecipe(result);
            if (recipe is null) return 2;
            var outcome = await EmbeddedTraining.RunAsync(result.GetValue(runDir)!, recipe, new ConsoleReporter(result.GetValue(json)),
                result.GetValue(workers), cancellationToken);
            if (outcome.Status is null && outcome.Code != 2)
                Console.WriteLine("Stopped; run the same command again to resume from the latest checkpoint.");
            var (warm, last, k) = outcome.Reporter.HeldOut;
            if (outcome.Reporter.Finished.IsCompleted && outcome.Status == RunStatus.Completed && warm is not null && last is not null)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"Done: held-out avg@{k} {warm:P1} at the start -> {last:P1} after {recipe.Steps} DAPO steps ({(last - warm) * 100:+0.0;-0.0} points)."));
            else if (outcome.Reporter.Finished.IsCompleted && outcome.Status == RunStatus.Failed)
                Console.WriteLine($"The run failed: {outcome.Reporter.Finished.Result.Error}");
            return outcome.Code;
        });
        return command;
    }

    /// <summary>`join`: a cluster member with the given roles, against PostgreSQL and Azure Blob Storage.</summary>
    public static Command Join()
    {
        var roles = new Option<string>("--roles") { Description = "learner, rollout, or learner,rollout", DefaultValueFactory = _ => "learner,rollout" };
        var command = new Command("join", "Run as a cluster member until stopped (SIGTERM returns leased work and releases leases)") { roles };
        AddClusterOptions(command, out var store, out var blobs, out var container);
        var silo = new Option<string>("--silo-id") { Description = "This silo's id (default: host-pid-random)" };
        var runDir = new Option<string>("--run-dir") { Description = "Local directory for metrics files", DefaultValueFactory = _ => "runs" };
        var run = new Option<string>("--run") { Description = "Serve only this run" };
        command.Options.Add(silo);
        command.Options.Add(runDir);
        command.Options.Add(run);
        command.SetAction(async (result, _) =>
        {
            var settings = ClusterSettings(result, store, blobs, container);
            settings["Silo:Roles"] = result.GetValue(roles);
            settings["Silo:RunDirectory"] = result.GetValue(runDir);
            if (result.GetValue(silo) is { } id) settings["Silo:Id"] = id;
            if (result.GetValue(run) is { } only) settings["Silo:Run"] = only;
            using var host = SiloHost.CreateBuilder(settings, quietLogs: false).Build();
            return await SiloHost.RunAsync(host, Task.Delay(Timeout.Infinite));
        });
        return command;
    }

    /// <summary>`start-run`: creates a run in the cluster store; the cluster's learners pick it up.</summary>
    public static Command StartRun()
    {
        var name = new Option<string>("--run") { Description = "Name of the run", Required = true };
        var command = new Command("start-run", "Create a run on the cluster (a learner silo picks it up)") { name, Recipe, Steps, Seed, InitWeights, Dataset, Override };
        AddClusterOptions(command, out var store, out var blobs, out var container);
        command.SetAction(async (result, cancellationToken) =>
        {
            var recipe = BuildRecipe(result);
            if (recipe is null) return 2;
            var settings = ClusterSettings(result, store, blobs, container);
            var options = new ClusterStoreOptions { Kind = settings.GetValueOrDefault("Store:Kind") ?? "postgres", ConnectionString = settings.GetValueOrDefault("Store:ConnectionString") };
            var errors = ClusterStoreOptionsValidator.Validate(options);
            if (errors.Count > 0)
            {
                foreach (var e in errors) Console.Error.WriteLine(e);
                return 2;
            }
            await using var clusterStore = ClusterStores.Create(options, NullLogger.Instance);
            var run = await EnsureRunAsync(clusterStore, result.GetValue(name)!, recipe, clusterStore.Description, cancellationToken);
            if (run is null) return 2;
            Console.WriteLine($"Run '{run.RunId}' is {run.Status.ToString().ToLowerInvariant()} at step {run.Step} on {clusterStore.Description}: {Describe(recipe)}");
            return 0;
        });
        return command;
    }

    private static void AddClusterOptions(Command command, out Option<string> store, out Option<string> blobs, out Option<string> container)
    {
        store = new Option<string>("--store") { Description = "PostgreSQL connection string (or Store:ConnectionString / DAPO_Store__ConnectionString)" };
        blobs = new Option<string>("--blobs") { Description = "Azure Storage connection string (or Blobs:ConnectionString / DAPO_Blobs__ConnectionString)" };
        container = new Option<string>("--container") { Description = "Blob container (default dapo)" };
        command.Options.Add(store);
        command.Options.Add(blobs);
        command.Options.Add(container);
    }

    private static Dictionary<string, string?> ClusterSettings(ParseResult result, Option<string> store, Option<string> blobs, Option<string> container)
    {
        var settings = new Dictionary<string, string?>();
        if (result.GetValue(store) is { } s)
        {
            settings["Store:Kind"] = "postgres";
            settings["Store:ConnectionString"] = s;
        }
        else settings["Store:Kind"] = Environment.GetEnvironmentVariable("DAPO_Store__Kind") ?? "postgres";
        if (result.GetValue(blobs) is { } b)
        {
            settings["Blobs:Kind"] = "Azure";
            settings["Blobs:ConnectionString"] = b;
        }
        else settings["Blobs:Kind"] = Environment.GetEnvironmentVariable("DAPO_Blobs__Kind") ?? "Azure";
        if (result.GetValue(container) is { } c) settings["Blobs:Container"] = c;
        if (!settings.ContainsKey("Store:ConnectionString") && Environment.GetEnvironmentVariable("DAPO_Store__ConnectionString") is { } env)
            settings["Store:ConnectionString"] = env;
        return settings;
    }

    /// <summary>The named recipe with the command's overrides, or null (after printing why) when it is invalid.</summary>
    private static DemoRecipe? BuildRecipe(ParseResult result)
    {
        DemoRecipe recipe;
        try
        {
            recipe = DemoRecipe.Named(result.GetValue(Recipe)!);
        }
        catch (KeyNotFoundException e)
        {
            Console.Error.WriteLine(e.Message);
            return null;
        }
        if (result.GetValue(Override) is { } overrides)
        {
            try
            {
                recipe = recipe.WithOverrides(overrides);
            }
            catch (FormatException e)
            {
                Console.Error.WriteLine($"--override: {e.Message}");
                return null;
            }
        }
        if (result.GetValue(Steps) is { } steps) recipe = recipe with { Steps = steps };
        if (result.GetValue(InitWeights) is { } weights) recipe = recipe with { InitialWeights = Path.GetFullPath(weights) };
        if (result.GetValue(Dataset) is { } dataset) recipe = recipe with { Dataset = Path.GetFullPath(dataset) };
        if (result.GetValue(Seed) is { } seed) recipe = recipe with { Dapo = recipe.Dapo with { Seed = seed } };
        // The dataset first: its own errors (file, line, field) come before what the recipe needs beside it.
        if (recipe.Dataset is { } path && File.Exists(path))
        {
            try
            {
                JsonlDatasetReader.ReadFile(path);
            }
            catch (Exception e) when (e is DatasetFormatException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"--dataset: {e.Message}");
                return null;
            }
        }
        var errors = recipe.Validate();
        foreach (var e in errors) Console.Error.WriteLine($"Invalid recipe: {e}");
        return errors.Count == 0 ? recipe : null;
    }

    /// <summary>Creates the run, or finds it; refuses (changing nothing) a run of that name with another spec.</summary>
    internal static async Task<RunRow?> EnsureRunAsync(IClusterStore store, string runId, DemoRecipe recipe, string where, CancellationToken cancellationToken)
    {
        RunResources resources;
        try
        {
            // Builds the run's data first: a malformed dataset is refused before the store is touched.
            resources = new RunResources(runId, recipe);
        }
        catch (Exception e) when (e is DatasetFormatException or ArgumentException or IOException)
        {
            Console.Error.WriteLine($"Cannot use the run's data: {e.Message}");
            return null;
        }
        await store.MigrateAsync(cancellationToken);
        var spec = RunResources.SpecJson(recipe);
        var run = await LearnerLedger.CreateOrGetRunAsync(store, resources.Context, spec, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), cancellationToken);
        if (run.SpecJson == spec) return run;
        if (run.Status != RunStatus.Running)
        {
            // A finished run is reported whatever it was started with (nothing will run), but not as if it were this one.
            Console.Error.WriteLine($"Note: run '{runId}' in {where} was trained with another recipe or options than these; " +
                                    "delete its directory (or use another run name) to train with these.");
            return run;
        }
        Console.Error.WriteLine($"Run '{runId}' in {where} was started with another recipe or options; nothing was changed. " +
                                "Use the same options to resume it, or another run name/directory for a new run.");
        return null;
    }

    internal static string Describe(DemoRecipe r) => string.Create(CultureInfo.InvariantCulture,
        $"recipe '{r.Name}', model d_model {r.Model.DModel} x {r.Model.Layers} layers, levels {string.Join(",", r.Levels)}, " +
        $"warm-start up to {r.WarmStart.MaxSteps} steps{(r.WarmStart.StopAtAccuracy is { } target ? $" (it stops as soon as held-out accuracy reaches {target:P0})" : "")}, then {r.Steps} DAPO steps (G {r.Dapo.GroupSize}, {r.Dapo.PromptBatchSize} prompts/step)");
}
