using System.CommandLine;
using System.Globalization;
using Dapo.Grains;
using Dapo.Grains.Hosting;
using Dapo.Training;
using Dapo.Core.Data;
using Microsoft.Extensions.Configuration;

namespace Dapo.Silo;

/// <summary>The silo's commands: one handler each.</summary>
internal static class Commands
{
    private static readonly Option<string> Recipe = new("--recipe")
    {
        Description = $"Recipe: {string.Join(", ", DemoRecipe.Names)}", DefaultValueFactory = _ => "dapo",
    };
    /// <summary>The synthetic task family of the recipe.</summary>
    internal static readonly Option<string> TaskOption = new("--task")
    {
        Description = $"Synthetic task: {string.Join(", ", Dapo.Core.Data.Synthetic.SyntheticTasks.Names)} (math: short solutions; chain: solutions that grow with the level; chain-mixed: the same problems, one or two operations a line; sum: digits added in any order, many right solutions)", DefaultValueFactory = _ => "math",
    };
    private static readonly Option<int?> Steps = new("--steps") { Description = "DAPO steps after the warm-start (default: the recipe's)" };
    private static readonly Option<ulong?> Seed = new("--seed") { Description = "Seed of the run (default: the recipe's)" };
    private static readonly Option<string> InitWeights = new("--init-weights")
    {
        Description = "Start from these policy weights (e.g. a run's blobs/runs/RUN/policy/00000000) instead of the warm-start",
    };
    private static readonly Option<string> Dataset = new("--dataset")
    {
        Description = "JSONL prompts (DAPO-Math-17K or {\"prompt\",\"answer\"}) instead of the synthetic task; needs --model or --init-weights",
    };
    private static readonly Option<int> Dashboard = new("--dashboard")
    {
        Description = "Serve the Dapo page and the Orleans Dashboard at http://127.0.0.1:PORT/ (default 8080, 0: a free one)",
        Arity = ArgumentArity.ZeroOrOne, DefaultValueFactory = _ => 8080,
    };

    private static readonly Option<string> DashboardAddress = new("--dashboard-address")
    {
        Description = "The dashboard's address instead of 127.0.0.1; another one needs Dashboard:Token in configuration (DAPO_Dashboard__Token)",
    };

    /// <summary>Whether the option is on the command line: an option with a default has a result either way.</summary>
    private static readonly Option<int?> HttpPort = new("--http-port")
    {
        Description = "Serve /healthz and /metrics (Prometheus text format) on this port (Http:Port; on 127.0.0.1 unless Http:Address says otherwise)",
    };

    private static bool Given(System.CommandLine.Parsing.OptionResult? option) => option is { Implicit: false };

    private static void RequireDashboardForAddress(System.CommandLine.Parsing.CommandResult r)
    {
        if (r.GetResult(DashboardAddress) is not null && !Given(r.GetResult(Dashboard))) r.AddError("--dashboard-address needs --dashboard.");
    }

    /// <summary>--dashboard, --dashboard-address and --http-port as configuration keys; those given only.</summary>
    private static Dictionary<string, string?> WebSettings(ParseResult result)
    {
        var settings = new Dictionary<string, string?>();
        if (result.GetValue(HttpPort) is { } port) settings["Http:Port"] = port.ToString(CultureInfo.InvariantCulture);
        if (!Given(result.GetResult(Dashboard))) return settings;  // --dashboard-address alone is refused by the parser
        settings["Dashboard:Port"] = result.GetValue(Dashboard).ToString(CultureInfo.InvariantCulture);
        if (result.GetValue(DashboardAddress) is { } address) settings["Dashboard:Address"] = address;
        return settings;
    }

    internal static readonly Option<string> Model = new("--model")
    {
        Description = "A Hugging Face Qwen2-architecture model directory (Qwen2, Qwen2.5) to train (its weights, tokenizer and chat " +
                      "template; the paper's DAPO options); the trained policy is written back in its format when the run completes",
    };
    private static readonly Option<string> Override = new("--override")
    {
        Description = "JSON merged into the recipe, e.g. '{\"Steps\": 20, \"Dapo\": {\"LearningRate\": 5e-4}}'",
    };

    /// <summary>`train`: the demo recipe on one machine: one silo with every role, grain state and blobs in the run directory.</summary>
    public static Command Train()
    {
        var runDir = new Option<string>("--run-dir") { Description = "Directory of the run (grain state, blobs, checkpoints, metrics)", DefaultValueFactory = _ => "runs/demo" };
        var workers = new Option<int>("--rollout-workers") { Description = "Rollout grains (each with its own copy of the policy)", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Progress as one JSON object per line" };
        var progressAfter = new Option<double>("--progress-after")
        {
            Description = "After this many seconds without output, a line saying where the step is (0: never)", DefaultValueFactory = _ => 30,
        };
        progressAfter.Validators.Add(r =>
        {
            // Not a number at all is the parser's error to give: reading it here throws.
            if (r.Tokens is [var token] && !double.TryParse(token.Value, out _)) return;
            if (r.GetValueOrDefault<double>() is < 0 or double.NaN) r.AddError("--progress-after must be 0 or more seconds.");
        });

        var command = new Command("train", "Train the demo recipe on this machine (one embedded silo); re-run to resume")
        {
            runDir, Recipe, TaskOption, Model, Steps, Seed, InitWeights, Dataset, Override, workers, json, progressAfter, Dashboard, DashboardAddress, HttpPort,
        };
        command.Validators.Add(RequireDashboardForAddress);
        command.SetAction(async (result, cancellationToken) =>
        {
            var recipe = BuildRecipe(result);
            if (recipe is null || !DeviceIsHere(recipe)) return 2;
            var outcome = await EmbeddedTraining.RunAsync(result.GetValue(runDir)!, recipe, new ConsoleReporter(result.GetValue(json), progressAfter: TimeSpan.FromSeconds(result.GetValue(progressAfter))),
                result.GetValue(workers), cancellationToken, WebSettings(result));
            if (outcome.Status is null && outcome.Code != 2)
                Console.WriteLine("Stopped; run the same command again to resume from the latest checkpoint.");
            var (warm, last, k) = outcome.Reporter.HeldOut;
            if (outcome.Reporter.Finished.IsCompleted && outcome.Status == RunStatus.Completed && warm is not null && last is not null)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"Done: held-out avg@{k} {warm:P1} at the start -> {last:P1} after {recipe.Steps} DAPO steps ({(last - warm) * 100:+0.0;-0.0} points)."));
                if (recipe.ModelDirectory is not null)
                {
                    var directory = Path.GetFullPath(result.GetValue(runDir)!);
                    var export = Path.Combine(directory, "blobs", Dapo.Grains.Checkpoints.HuggingFaceModel.ExportPrefix(Path.GetFileName(directory.TrimEnd('/'))));
                    Console.WriteLine($"The trained policy, in the model's Hugging Face format: {export}");
                }
            }
            else if (outcome.Reporter.Finished.IsCompleted && outcome.Status == RunStatus.Failed)
                Console.WriteLine($"The run failed: {outcome.Reporter.Finished.Result.Error}");
            return outcome.Code;
        });
        return command;
    }

    /// <summary>`join`: a silo of a cluster on Azure Storage or Redis, with the given roles, until stopped.</summary>
    public static Command Join()
    {
        var roles = new Option<string>("--roles") { Description = "learner, rollout, or learner,rollout", DefaultValueFactory = _ => "learner,rollout" };
        var command = new Command("join", "Run a silo of the cluster until stopped (SIGTERM: rollout grains give their leases back)") { roles };
        var cluster = ClusterOptions.Add(command);
        var runDir = new Option<string>("--run-dir") { Description = "Local directory for metrics files", DefaultValueFactory = _ => "runs" };
        var run = new Option<string>("--run") { Description = "This silo's rollout grains serve only this run" };
        var address = new Option<string>("--address") { Description = "Address to listen on and advertise (default 127.0.0.1; a cluster across machines needs the machine's address)" };
        var siloPort = new Option<int?>("--silo-port") { Description = "Silo-to-silo port (default: a free one)" };
        var gatewayPort = new Option<int?>("--gateway-port") { Description = "Client gateway port (default: a free one)" };
        var workers = new Option<int?>("--rollout-workers") { Description = "Rollout grains (devices) of this silo (default 1)" };
        foreach (var option in new Option[] { runDir, run, address, siloPort, gatewayPort, workers, Dashboard, DashboardAddress, HttpPort }) command.Options.Add(option);
        command.Validators.Add(RequireDashboardForAddress);
        command.SetAction(async (result, _) =>
        {
            var settings = cluster.Settings(result);
            settings["Silo:Roles"] = result.GetValue(roles);
            settings["Silo:RunDirectory"] = result.GetValue(runDir);
            if (result.GetValue(run) is { } only) settings["Silo:Run"] = only;
            if (result.GetValue(address) is { } a) settings["Silo:Address"] = a;
            if (result.GetValue(siloPort) is { } sp) settings["Silo:SiloPort"] = sp.ToString(CultureInfo.InvariantCulture);
            if (result.GetValue(gatewayPort) is { } gp) settings["Silo:GatewayPort"] = gp.ToString(CultureInfo.InvariantCulture);
            if (result.GetValue(workers) is { } w) settings["Silo:RolloutWorkers"] = w.ToString(CultureInfo.InvariantCulture);
            foreach (var (key, value) in WebSettings(result)) settings[key] = value;
            using var host = SiloHost.Build(SiloHost.CreateBuilder(settings, quietLogs: false, ClusterOptions.Defaults));
            return await SiloHost.RunAsync(host, Task.Delay(Timeout.Infinite));
        });
        return command;
    }

    /// <summary>`start-run`: an Orleans client of the cluster asks the run's learner grain to start it.</summary>
    public static Command StartRun()
    {
        var name = new Option<string>("--run") { Description = "Name of the run", Required = true };
        var command = new Command("start-run", "Start a run on the cluster (its learner grain activates on a learner silo)") { name, Recipe, TaskOption, Model, Steps, Seed, InitWeights, Dataset, Override };
        var cluster = ClusterOptions.Add(command);
        command.SetAction(async (result, cancellationToken) =>
        {
            var recipe = BuildRecipe(result);
            if (recipe is null) return 2;
            var runId = result.GetValue(name)!;
            try
            {
                // The run's data first: a malformed dataset is refused before the cluster is touched.
                _ = new RunResources(runId, recipe);
            }
            catch (Exception e) when (e is DatasetFormatException or ArgumentException or IOException)
            {
                Console.Error.WriteLine($"Cannot use the run's data: {e.Message}");
                return 2;
            }
            var settings = SiloSettings.Read(new Microsoft.Extensions.Configuration.ConfigurationBuilder().AddInMemoryCollection(ClusterOptions.Defaults)
                .AddEnvironmentVariables("DAPO_").AddInMemoryCollection(cluster.Settings(result)).Build());
            await using var client = await ClusterClient.ConnectAsync(settings, cancellationToken);
            if (client is null) return 2;
            var spec = RunResources.SpecJson(recipe);
            var learner = client.Grains.GetGrain<ILearnerGrain>(runId);
            var existing = await learner.GetAsync();
            if (existing is not null && existing.SpecJson != spec && RunResources.ExtendedSteps(existing, spec) is null)
            {
                Console.Error.WriteLine($"Run '{runId}' on the cluster was started with another recipe or options; nothing was changed. " +
                                        "Use the same options to see or resume it (more --steps to train it further), or another run name for a new run.");
                return 2;
            }
            var run = await learner.StartAsync(spec);
            if (run.SpecJson != spec)
            {
                Console.Error.WriteLine($"Run '{runId}' has another spec in blob storage; nothing was changed. Use another run name.");
                return 2;
            }
            var where = settings.Silo.Storage == ClusterStorage.Redis ? $"Redis {settings.Redis.Redacted}" : Dapo.Grains.Blobs.ConnectionStrings.Redact(settings.Blobs.ConnectionString);
            Console.WriteLine($"Run '{run.RunId}' is {run.Status.ToString().ToLowerInvariant()} at step {run.Step} on cluster '{settings.Silo.ClusterId}' ({where}): {Describe(recipe)}");
            return 0;
        });
        return command;
    }

    /// <summary>The named recipe with the command's overrides, or null (after printing why) when it is invalid.</summary>
    private static DemoRecipe? BuildRecipe(ParseResult result)
    {
        DemoRecipe recipe;
        try
        {
            recipe = DemoRecipe.Named(result.GetValue(Recipe)!, result.GetValue(TaskOption)!);
            if (result.GetValue(Model) is { } model) recipe = ModelRecipe(model, result.GetValue(Recipe)!);
        }
        catch (Exception e) when (e is KeyNotFoundException or IOException or InvalidDataException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine(e is KeyNotFoundException ? e.Message : $"--model: {e.Message}");
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

    /// <summary>
    /// Whether this machine's engine has the device the recipe keeps the model on. A command that trains here checks
    /// before it starts anything; otherwise a CUDA recipe on a CPU-only engine would fail only once the learner builds
    /// the model. (start-run does not check: the cluster's learner silo may be another machine.)
    /// </summary>
    internal static bool DeviceIsHere(DemoRecipe recipe)
    {
        if (recipe.Model.Device != Dapo.Torch.DeviceType.Cuda || Dapo.Torch.TorchEngine.CudaAvailable) return true;
        Console.Error.WriteLine("The recipe keeps the model on CUDA (\"Model\": {\"Device\": \"Cuda\"}), but this machine's engine has no " +
                                "CUDA device: its libtorch was built without CUDA (see the README, The native engine, CUDA) or no GPU is " +
                                "visible. Nothing was started; leave Device out to train on the CPU.");
        return false;
    }

    /// <summary>The real-model recipe of <paramref name="directory"/>, as the named recipe ("grpo": its naive-GRPO ablation).</summary>
    internal static DemoRecipe ModelRecipe(string directory, string name)
    {
        var recipe = DemoRecipe.ForModel(directory);
        return name == "grpo" ? recipe.AsNaiveGrpo() : recipe;
    }

    internal static string Describe(DemoRecipe r) => r.ModelDirectory is { } model
        ? string.Create(CultureInfo.InvariantCulture,
            $"recipe '{r.Name}', model {model} (d_model {r.Model.DModel} x {r.Model.Layers} layers, vocabulary {r.Model.VocabSize}), " +
            $"{(r.Dataset is null ? $"synthetic levels {string.Join(",", r.Levels)}" : $"dataset {r.Dataset}")}, {r.Steps} DAPO steps " +
            $"(G {r.Dapo.GroupSize}, {r.Dapo.PromptBatchSize} prompts/step, responses up to {r.Dapo.MaxResponseLength} tokens); " +
            $"{r.Model.ParameterCount / 1e6:F1}M parameters: the learner holds {Dapo.Torch.ModelConfig.LearnerBytesPerParameter} bytes each " +
            $"({Gib(r.Model.ParameterCount * Dapo.Torch.ModelConfig.LearnerBytesPerParameter)}: fp32 weights, gradients, AdamW moments), " +
            $"each rollout worker {Dapo.Torch.ModelConfig.RolloutBytesPerParameter} ({Gib(r.Model.ParameterCount * Dapo.Torch.ModelConfig.RolloutBytesPerParameter)}), " +
            $"plus activations ({r.MaxTokensPerMicroBatch} tokens a learner call) and key/value caches")
        : DescribeDemo(r);

    private static string Gib(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):F2} GiB");

    private static string DescribeDemo(DemoRecipe r) => string.Create(CultureInfo.InvariantCulture,
        $"recipe '{r.Name}', model d_model {r.Model.DModel} x {r.Model.Layers} layers, task '{r.Task}' levels {string.Join(",", r.Levels)}, " +
        $"warm-start up to {r.WarmStart.MaxSteps} steps{(r.WarmStart.StopAtAccuracy is { } target ? $" (it stops as soon as held-out accuracy reaches {target:P0})" : "")}, then {r.Steps} DAPO steps (G {r.Dapo.GroupSize}, {r.Dapo.PromptBatchSize} prompts/step)");
}
