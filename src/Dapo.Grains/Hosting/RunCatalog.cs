using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Grains.Blobs;
using Dapo.Training;
using Dapo.Core.Data;
using Dapo.Core.Options;
using Dapo.Core.Rewards;
using Dapo.Core.Sampling;

namespace Dapo.Grains.Hosting;

/// <summary>Everything a silo derives from a run's spec: the recipe, its data, the sampling policy, the rollout.</summary>
public sealed class RunResources
{
    public RunResources(string runId, DemoRecipe recipe)
    {
        ArgumentException.ThrowIfNullOrEmpty(runId);
        RunId = runId;
        Recipe = recipe;
        Data = DemoData.Create(recipe);
        if (Data.Train.Count == 0) throw new ArgumentException("The run's dataset is empty.", nameof(recipe));
        Options = recipe.Dapo.EnsureValid();
        Sampling = DynamicSamplingPolicy.FromOptions(Options);
        Generator = new RolloutGenerator(Data.Encoder, new ResponseScorer(recipe.Dapo));
        Rollout = RolloutSettings.ForTraining(recipe.Dapo, recipe.Dapo.Seed);
    }

    public string RunId { get; }
    public DemoRecipe Recipe { get; }
    public DemoData Data { get; }
    public DapoOptions Options { get; }
    public DynamicSamplingPolicy Sampling { get; }
    public RolloutGenerator Generator { get; }
    public RolloutSettings Rollout { get; }

    /// <summary>The cursor a new run starts with: the dataset order is keyed by the run's seed.</summary>
    public CursorState InitialCursor => new DatasetCursor(Data.Train.Count, Recipe.Dapo.Seed).State;

    /// <summary>The rollout prompt of dataset example <paramref name="index"/>; its id, the draw ordinal, keys its
    /// randomness, so a group drawn again samples the same responses whatever else is in the batch.</summary>
    public RolloutPrompt Prompt(int index, long drawOrdinal) =>
        new(drawOrdinal.ToString(System.Globalization.CultureInfo.InvariantCulture), Data.Train[index].Tokens, Data.Train[index].GroundTruth);

    /// <summary>The problem text shown for a prompt: its templated prompt, decoded.</summary>
    public string ProblemText(int index) => Data.Encoder.Tokenizer.Decode(Data.Train[index].Tokens, skipSpecialTokens: true);

    /// <summary>The spec as stored with the run.</summary>
    public static string SpecJson(DemoRecipe recipe) => JsonSerializer.Serialize(recipe, SpecOptions);

    /// <summary>The run's steps in <paramref name="specJson"/>, or null when it is not a spec.</summary>
    public static int? StepsOf(string specJson) => StepsOf(ParseObject(specJson));

    /// <summary>
    /// The steps <paramref name="requested"/> raises <paramref name="run"/> to, or null when it asks for anything else.
    /// A run trains further (its data cursor, sampling streams and learning rate go on as if it had been started with
    /// more steps) only when nothing but its steps changes, never back (fewer steps would leave trained steps past its
    /// end), and not once it failed: its failure stands.
    /// </summary>
    public static int? ExtendedSteps(RunInfo run, string requested)
    {
        if (run.Status == RunStatus.Failed) return null;
        var (stored, asked) = (ParseObject(run.SpecJson), ParseObject(requested));
        if (StepsOf(stored) is not { } before || StepsOf(asked) is not { } after || after <= before) return null;
        stored!.Remove("Steps");
        asked!.Remove("Steps");
        return JsonNode.DeepEquals(stored, asked) ? after : null;
    }

    private static JsonObject? ParseObject(string json)
    {
        try
        {
            return JsonNode.Parse(json) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static int? StepsOf(JsonObject? spec) => spec?["Steps"] is JsonValue v && v.TryGetValue<int>(out var steps) ? steps : null;

    public static DemoRecipe ParseSpec(string json) =>
        JsonSerializer.Deserialize<DemoRecipe>(json, SpecOptions) ?? throw new FormatException("The run's spec is empty.");

    /// <summary>Where a run's spec lives in blob storage, beside its checkpoints: every silo builds the run from it.</summary>
    public static string SpecBlob(string runId) => $"runs/{runId}/spec.json";

    private static readonly JsonSerializerOptions SpecOptions = new()
    {
        WriteIndented = false,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };
}

/// <summary>The resources of each run this silo touches, built once per run from its spec in blob storage.</summary>
public sealed class RunCatalog(IBlobStore blobs)
{
    private readonly ConcurrentDictionary<string, Lazy<Task<RunResources>>> _runs = new();

    public Task<RunResources> GetAsync(string runId) =>
        _runs.GetOrAdd(runId, id => new Lazy<Task<RunResources>>(() => LoadAsync(id))).Value;

    /// <summary>Records a run's spec (create-only: a spec is replaced only by <see cref="ExtendSpecAsync"/>) and returns the stored one.</summary>
    public async Task<string> PublishSpecAsync(string runId, string specJson, CancellationToken cancellationToken)
    {
        if (await blobs.TryCreateAsync(RunResources.SpecBlob(runId), Encoding.UTF8.GetBytes(specJson), cancellationToken)) return specJson;
        var stored = await blobs.GetAsync(RunResources.SpecBlob(runId), cancellationToken);
        return stored is null ? specJson : Encoding.UTF8.GetString(stored);
    }

    /// <summary>
    /// Replaces a run's spec by one that only raises its steps (<see cref="RunResources.ExtendedSteps"/>; the learner
    /// checks). Other silos may keep the resources they built from the old spec: only the learner reads the steps, and
    /// it reads them from its own state.
    /// </summary>
    public async Task ExtendSpecAsync(string runId, string specJson, CancellationToken cancellationToken)
    {
        await blobs.PutAsync(RunResources.SpecBlob(runId), Encoding.UTF8.GetBytes(specJson), cancellationToken);
        _runs.TryRemove(runId, out _);
    }

    private async Task<RunResources> LoadAsync(string runId)
    {
        try
        {
            var spec = await blobs.GetAsync(RunResources.SpecBlob(runId), CancellationToken.None)
                       ?? throw new InvalidOperationException($"Run '{runId}' has no spec in blob storage ({RunResources.SpecBlob(runId)}).");
            // Building the run's data is CPU work: off the caller's (perhaps a grain's) scheduler thread.
            return await Task.Run(() => new RunResources(runId, RunResources.ParseSpec(Encoding.UTF8.GetString(spec))));
        }
        catch
        {
            _runs.TryRemove(runId, out _);  // a transient failure is not remembered
            throw;
        }
    }
}
