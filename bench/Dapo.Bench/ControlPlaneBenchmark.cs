using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Grains.Grains;
using Dapo.Grains.Store;
using Dapo.Core.Data;
using Dapo.Core.Options;
using Dapo.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Dapo.Bench;

/// <summary>
/// Control-plane throughput: prompt-grain submissions (one transaction storing a group's G slots and judging it)
/// per second with 1, 2 and 4 concurrent submitters, on a local PostgreSQL server started for the run and on the
/// embedded SQLite store. The baseline is one submitter on the same store.
/// </summary>
internal static class ControlPlaneBenchmark
{
    private const int Group = 16, ResponseTokens = 64;

    /// <summary>Parses <c>--quick --json</c> and runs.</summary>
    public static int Command(string[] args) =>
        BenchArgs.Parse(args, "--quick", "--json") is { } parsed ? RunAsync(parsed).GetAwaiter().GetResult() : 2;

    public static async Task<int> RunAsync(BenchArgs args)
    {
        var groupsPerRun = args.Quick ? 96 : 480;
        var results = new JsonObject();
        Console.WriteLine($"control-plane benchmark: submissions of {Group} slots ({ResponseTokens} tokens each) to prompt grains, " +
                          $"{groupsPerRun} groups per run");
        await using var postgres = await PostgresServer.StartAsync();
        var directory = Directory.CreateTempSubdirectory("dapo-bench-").FullName;
        try
        {
            var stores = new (string Name, Func<int, Task<IClusterStore>> Create)[]
            {
                ("postgres", async _ => ClusterStores.Create(new ClusterStoreOptions { Kind = "postgres", ConnectionString = await postgres.CreateDatabaseAsync() })),
                ("sqlite", n => Task.FromResult(ClusterStores.Create(new ClusterStoreOptions { Kind = "sqlite", SqlitePath = Path.Combine(directory, $"bench-{n}.db") }))),
            };
            var run = 0;
            foreach (var (name, create) in stores)
            {
                var row = new JsonObject();
                double? baseline = null;
                foreach (var submitters in new[] { 1, 2, 4 })
                {
                    await using var store = await create(run++);
                    var perSecond = await MeasureAsync(store, submitters, groupsPerRun);
                    baseline ??= perSecond;
                    Console.WriteLine($"  {name,-8} {submitters} submitter(s): {perSecond,7:F1} groups/s = {perSecond * Group,8:F0} slots/s " +
                                      $"({perSecond / baseline:F2}x one submitter)");
                    row[$"{submitters}"] = perSecond * Group;
                }
                results[name + "_slots_per_s"] = row;
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
        if (args.Json) Console.WriteLine(results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    /// <summary>Groups submitted per second by <paramref name="submitters"/> concurrent tasks.</summary>
    private static async Task<double> MeasureAsync(IClusterStore store, int submitters, int groups)
    {
        await store.MigrateAsync(CancellationToken.None);
        // Dynamic sampling off: every group is accepted, no refills; the target is never met, so the step stays open.
        var options = DapoOptions.Dapo with { GroupSize = Group, PromptBatchSize = groups, MiniBatchesPerStep = 1, DynamicSampling = false };
        var dataset = Enumerable.Range(0, groups).Select(i => new PromptExample($"p{i}", $"{i}+1=", $"{i + 1}", "bench")).ToList();
        var context = new RunContext("bench", options, dataset, i => new int[16], seed: 1);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await LearnerLedger.CreateOrGetRunAsync(store, context, "{}", now, CancellationToken.None);
        var lease = (await Leases.TryAcquireAsync(store, context.LearnerLease, "bench", TimeSpan.FromHours(1), now, CancellationToken.None))!;
        await LearnerLedger.RestoreAsync(store, context, lease, new CheckpointPosition(0, 0, context.InitialCursor), now, CancellationToken.None);
        await LearnerLedger.OpenStepAsync(store, context, lease, 1, now, CancellationToken.None);
        var prompts = await store.TransactAsync(s => s.ListPromptsAsync("bench", 1), CancellationToken.None);
        // Each group: responses alternate right and wrong, as an informative group's would.
        var slots = Enumerable.Range(0, Group).Select(i => new SlotResult(i, new int[ResponseTokens], new float[ResponseTokens],
            "Answer: 1", i % 2 == 0 ? 1 : -1, 0, i % 2 == 0, false)).ToList();
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, submitters).Select(w => Task.Run(async () =>
        {
            for (var i = w; i < prompts.Count; i += submitters)
                await PromptGrain.SubmitAsync(store, context, prompts[i].PromptId, 0, slots, $"w{w}",
                    DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), CancellationToken.None);
        })));
        return prompts.Count / watch.Elapsed.TotalSeconds;
    }
}
