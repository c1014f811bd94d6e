using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Grains;
using Dapo.Grains.Blobs;
using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Training;
using Dapo.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Hosting;

namespace Dapo.Bench;

/// <summary>
/// Control-plane throughput: slot submissions per second through prompt grains (a group's G slots in one call: the
/// prompt grain stores them, judges the group, reports it to its step grain, which counts it and stores its ledger)
/// with 1, 2 and 4 concurrent submitters, on a two-silo cluster in this process (Orleans places the grains on either
/// silo), with grain state in memory (Orleans' memory storage), in an Azure table (written in batches) on an Azurite
/// started for the run (Dapo's TableGrainStorage, the Azure cluster's provider), and in Redis (Orleans' Redis provider,
/// as a cluster on Redis configures it) on a redis-server started for the run. The baseline is one submitter on the
/// same storage; the durable storages are also given as a share of memory's rate.
/// </summary>
internal static class ControlPlaneBenchmark
{
    private const int Group = 16, ResponseTokens = 64;

    private static readonly string[] StorageNames = ["memory", "azure-table", "redis"];

    /// <summary>Parses <c>--quick --json --storage NAME</c> and runs.</summary>
    public static int Command(string[] args)
    {
        var only = StorageNames;
        var rest = args.ToList();
        if (rest.IndexOf("--storage") is var at and >= 0)
        {
            if (at + 1 >= rest.Count || !StorageNames.Contains(rest[at + 1]))
            {
                Console.Error.WriteLine($"--storage needs one of: {string.Join(", ", StorageNames)}");
                return 2;
            }
            only = [rest[at + 1]];
            rest.RemoveRange(at, 2);
        }
        return BenchArgs.Parse(rest.ToArray(), "--quick", "--json") is { } parsed ? RunAsync(parsed, only).GetAwaiter().GetResult() : 2;
    }

    public static async Task<int> RunAsync(BenchArgs args, IReadOnlyCollection<string> only)
    {
        // Each run lasts seconds, long enough for the thread pool to settle: fewer groups on the slower storage.
        var repeats = args.Quick ? 1 : 3;
        int GroupsPerRun(string storage) => (storage == "memory" ? 4096 : 512) / (args.Quick ? 4 : 1);
        var results = new JsonObject();
        Console.WriteLine($"control-plane benchmark: submissions of {Group} slots ({ResponseTokens} tokens each) to prompt grains on a " +
                          $"two-silo cluster in this process, {GroupsPerRun("memory")} groups per run in memory, {GroupsPerRun("azure-table")} on Azurite and on Redis, " +
                          $"median of {repeats} run(s) after a warm-up run");
        // Azurite only when its storage is measured.
        await using var azurite = only.Contains("azure-table") ? await AzuriteProcess.StartNewAsync(tables: true) : null;
        await using var redis = only.Contains("redis") ? await RedisProcess.StartNewAsync() : null;
        var directory = Directory.CreateTempSubdirectory("dapo-bench-").FullName;
        try
        {
            var storages = new (string Name, Action<ISiloBuilder> Configure)[]
            {
                ("memory", s => s.AddMemoryGrainState()),
                ("azure-table", s => s.AddTableGrainState(azurite!.ConnectionString, "bench")),
                ("redis", s => s.AddRedisGrainState(new RedisSettings { ConnectionString = redis!.ConnectionString })),
            };
            foreach (var (name, storage) in storages.Where(s => only.Contains(s.Name)))
            {
                await using var cluster = await TwoSilos.StartAsync(Path.Combine(directory, name), storage);
                var row = new JsonObject();
                double? baseline = null;
                // The first run compiles the code paths and opens the silos' connections: not measured.
                await MeasureAsync(cluster, $"{name}-warm-up", 2, GroupsPerRun(name) / 4);
                foreach (var submitters in new[] { 1, 2, 4 })
                {
                    var runs = new List<double>();
                    for (var r = 0; r < repeats; r++) runs.Add(await MeasureAsync(cluster, $"{name}-{submitters}-{r}", submitters, GroupsPerRun(name)));
                    var perSecond = runs.Order().ElementAt(runs.Count / 2);
                    baseline ??= perSecond;
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  {name,-10} {submitters} submitter(s): {perSecond,7:F1} groups/s = {perSecond * Group,8:F0} slots/s ({perSecond / baseline:F2}x one submitter; " +
                        $"runs {string.Join(" ", runs.Select(x => (x * Group).ToString("F0", CultureInfo.InvariantCulture)))} slots/s)"));
                    row[$"{submitters}"] = perSecond * Group;
                }
                results[name + "_slots_per_s"] = row;
            }
            if (results["memory_slots_per_s"]?["1"]?.GetValue<double>() is { } memory)
                foreach (var durable in new[] { "azure-table", "redis" })
                    if (results[$"{durable}_slots_per_s"]?["1"]?.GetValue<double>() is { } rate)
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"  {durable} / memory, one submitter: {rate / memory:F2}x (the cost of durable grain state there)"));
            if (results["azure-table_slots_per_s"]?["1"]?.GetValue<double>() is { } azure && results["redis_slots_per_s"]?["1"]?.GetValue<double>() is { } onRedis)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  redis / azure-table, one submitter: {onRedis / azure:F2}x"));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
        if (args.Json) Console.WriteLine(results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    /// <summary>Groups submitted per second by <paramref name="submitters"/> concurrent tasks to a fresh run's first step.</summary>
    private static async Task<double> MeasureAsync(TwoSilos cluster, string runId, int submitters, int groups)
    {
        // Dynamic sampling off: the step draws exactly its batch, every group is accepted, nothing is refilled; the
        // target is met only by the last group.
        var recipe = DemoRecipe.Default.WithOverrides(JsonSerializer.Serialize(new
        {
            Levels = new[] { 1 }, TrainProblemsPerLevel = new[] { 500 }, HeldOutProblemsPerLevel = new[] { 8 },
            Dapo = new { GroupSize = Group, PromptBatchSize = groups, MiniBatchesPerStep = 1, DynamicSampling = false },
        }));
        var spec = RunResources.SpecJson(recipe);
        await cluster.Blobs.PutAsync(RunResources.SpecBlob(runId), Encoding.UTF8.GetBytes(spec), CancellationToken.None);
        var resources = new RunResources(runId, recipe);
        var step = cluster.Grains.GetGrain<IStepGrain>(GrainKeys.Step(runId, 1));
        var ledger = await step.OpenAsync(new StepOpening(1, 0, resources.InitialCursor.ToJson(), []));
        var work = (await step.ListPromptsAsync()).Select(p => new WorkItem(runId, 1, p.PromptId, p.DatasetIndex, p.DrawOrdinal, 0)).ToList();
        if (work.Count != groups) throw new InvalidOperationException($"The step drew {work.Count} prompts, not {groups} ({ledger}).");
        // Each group: responses alternate right and wrong, as an informative group's would.
        var slots = Enumerable.Range(0, Group).Select(i => new SlotResult(i, new int[ResponseTokens], new float[ResponseTokens],
            "Answer: 1", i % 2 == 0 ? 1 : -1, 0, i % 2 == 0, false, "bench")).ToList();
        // Each silo builds the run's data from its spec once per run (RunCatalog): setup, not control-plane work.
        await cluster.WarmAsync(runId);
        var watch = Stopwatch.StartNew();
        var outcomes = await Task.WhenAll(Enumerable.Range(0, submitters).Select(w => Task.Run(async () =>
        {
            var accepted = 0;
            for (var i = w; i < work.Count; i += submitters)
                if (await cluster.Grains.GetGrain<IPromptGrain>(work[i].PromptKey).SubmitAsync(work[i], slots, $"w{w}") == SubmitOutcome.Accepted)
                    accepted++;
            return accepted;
        })));
        var perSecond = work.Count / watch.Elapsed.TotalSeconds;
        // Every group counted once: the figure is of work that was done, not refused.
        var after = (await step.GetAsync())!;
        if (outcomes.Sum() != groups || after.Accepted != groups)
            throw new InvalidOperationException($"{outcomes.Sum()} submissions accepted and {after.Accepted} counted by the step, of {groups}.");
        return perSecond;
    }

    /// <summary>Two learner-role silos in this process, one cluster on loopback ports, blobs in a local directory.</summary>
    private sealed class TwoSilos : IAsyncDisposable
    {
        private readonly List<IHost> _hosts;

        private TwoSilos(List<IHost> hosts) => _hosts = hosts;

        public IGrainFactory Grains => _hosts[0].Services.GetRequiredService<IGrainFactory>();
        public IBlobStore Blobs => _hosts[0].Services.GetRequiredService<IBlobStore>();

        /// <summary>Has every silo load the run's resources.</summary>
        public Task WarmAsync(string runId) => Task.WhenAll(_hosts.Select(h => h.Services.GetRequiredService<RunCatalog>().GetAsync(runId)));

        public static async Task<TwoSilos> StartAsync(string directory, Action<ISiloBuilder> storage)
        {
            var ports = Enumerable.Range(0, 4).Select(_ => LoopbackPorts.Free()).ToArray();
            var primary = new IPEndPoint(IPAddress.Loopback, ports[0]);
            var hosts = new List<IHost>();
            for (var i = 0; i < 2; i++)
            {
                var settings = SiloSettings.Read(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
                {
                    ["Silo:Roles"] = "learner", ["Silo:Storage"] = "Local", ["Silo:ClusterId"] = "dapo-bench",
                    ["Silo:RunDirectory"] = directory, ["Silo:SiloPort"] = ports[2 * i].ToString(CultureInfo.InvariantCulture),
                    ["Silo:GatewayPort"] = ports[2 * i + 1].ToString(CultureInfo.InvariantCulture),
                    ["Blobs:Kind"] = "Local", ["Blobs:LocalRoot"] = Path.Combine(directory, "blobs"),
                }).Build());
                var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
                builder.Logging.SetMinimumLevel(LogLevel.Error);
                builder.UseOrleans(silo =>
                {
                    silo.AddDapo(settings);
                    // Both silos in one cluster: the first is the primary of the development membership, and the grain
                    // storage under test replaces the embedded file storage (registered last, it is the one resolved).
                    silo.UseDevelopmentClustering(primary);
                    storage(silo);
                });
                var host = builder.Build();
                await host.StartAsync();
                hosts.Add(host);
            }
            await hosts[0].Services.GetRequiredService<IBlobStore>().EnsureContainerAsync(CancellationToken.None);
            return new TwoSilos(hosts);
        }

        public async ValueTask DisposeAsync()
        {
            for (var i = _hosts.Count - 1; i >= 0; i--)
            {
                await _hosts[i].StopAsync();
                _hosts[i].Dispose();
            }
        }
    }
}
