using System.Collections.Concurrent;
using System.Text.Json;
using Dapo.Cluster.Grains;
using Dapo.Cluster.Store;
using Dapo.Training;
using Dapo.Core.Data;
using Dapo.Core.Rewards;

namespace Dapo.Cluster.Hosting;

/// <summary>Everything a silo derives from a run's spec: the recipe, its data, the grains' context, the rollout.</summary>
public sealed class RunResources
{
    public RunResources(string runId, DemoRecipe recipe)
    {
        Recipe = recipe;
        Data = DemoData.Create(recipe);
        // The problem text shown for a prompt is its templated prompt, decoded.
        var dataset = Data.Train.Select(p => new PromptExample(p.Id, Data.Encoder.Tokenizer.Decode(p.Tokens, skipSpecialTokens: true),
            p.GroundTruth, p.Source)).ToList();
        Context = new RunContext(runId, recipe.Dapo, dataset, i => Data.Train[i].Tokens, recipe.Dapo.Seed);
        Generator = new RolloutGenerator(Data.Encoder, new ResponseScorer(recipe.Dapo));
        Rollout = RolloutSettings.ForTraining(recipe.Dapo, recipe.Dapo.Seed);
    }

    public DemoRecipe Recipe { get; }
    public DemoData Data { get; }
    public RunContext Context { get; }
    public RolloutGenerator Generator { get; }
    public RolloutSettings Rollout { get; }

    /// <summary>The spec as stored with the run.</summary>
    public static string SpecJson(DemoRecipe recipe) => JsonSerializer.Serialize(recipe, SpecOptions);

    public static DemoRecipe ParseSpec(string json) =>
        JsonSerializer.Deserialize<DemoRecipe>(json, SpecOptions) ?? throw new FormatException("The run's spec is empty.");

    private static readonly JsonSerializerOptions SpecOptions = new()
    {
        WriteIndented = false,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };
}

/// <summary>The resources of each run this silo touches, built once per run from its spec in the store.</summary>
public sealed class RunCatalog(IClusterStore store)
{
    private readonly ConcurrentDictionary<string, Lazy<Task<RunResources>>> _runs = new();

    public Task<RunResources> GetAsync(string runId, CancellationToken cancellationToken) =>
        _runs.GetOrAdd(runId, id => new Lazy<Task<RunResources>>(() => LoadAsync(id, cancellationToken))).Value;

    private async Task<RunResources> LoadAsync(string runId, CancellationToken cancellationToken)
    {
        var run = await store.TransactAsync(s => s.GetRunAsync(runId), cancellationToken)
                  ?? throw new InvalidOperationException($"Run '{runId}' does not exist in the store.");
        return new RunResources(runId, RunResources.ParseSpec(run.SpecJson));
    }
}
