using Dapo.Training;
using Dapo.Core.Data.Synthetic;
using Dapo.Core.Loss;
using Dapo.Core.Options;
using Dapo.Torch;

namespace Dapo.Training.Tests;

public sealed class DemoRecipeTests
{
    [Fact]
    public void The_default_is_valid_and_its_data_fits_the_model()
    {
        var recipe = DemoRecipe.Default;
        Assert.Empty(recipe.Validate());
        var data = DemoData.Create(recipe);
        Assert.Equal(recipe.TrainProblemsPerLevel.Sum(), data.Train.Count);
        Assert.Equal(data.Train.Count, data.Supervised.Count);
        Assert.Equal(recipe.HeldOutProblemsPerLevel.Sum(), data.HeldOut.Count);
        Assert.Empty(data.Train.Select(p => p.Id).Intersect(data.HeldOut.Select(p => p.Id)));
        Assert.All(data.Supervised, e => Assert.True(e.Prompt.Length + e.Response.Length <= recipe.Model.MaxSeqLen));
        // Worked solutions fit before the overlong cache: a correct answer is never punished.
        Assert.True(data.Supervised.Max(e => e.Response.Length) <= recipe.Dapo.MaxResponseLength - recipe.Dapo.OverlongCacheLength);
    }

    [Fact]
    public void The_data_fingerprint_is_the_same_for_the_same_data_and_changes_with_any_problem_or_solution()
    {
        var recipe = DemoRecipe.ChainMixed with { TrainProblemsPerLevel = [20, 20, 20, 20, 20, 20, 20, 20], HeldOutProblemsPerLevel = [4, 4, 4, 4, 4, 4, 4, 4] };
        var data = DemoData.Create(recipe);
        var fingerprint = data.Fingerprint();
        Assert.Matches("^[0-9a-f]{16}$", fingerprint);
        Assert.Equal(fingerprint, DemoData.Create(recipe).Fingerprint());
        Assert.NotEqual(fingerprint, DemoData.Create(recipe with { DataSeed = 2 }).Fingerprint());
        Assert.NotEqual(fingerprint, DemoData.Create(recipe with { Task = SyntheticTasks.Chain, Levels = [3, 4, 5, 6, 7, 8, 9, 9] }).Fingerprint());
        // One worked solution changed (as a new generator version would): the recipe is the same, the fingerprint not.
        var supervised = data.Supervised.ToList();
        supervised[^1] = supervised[^1] with { Response = [.. supervised[^1].Response, 5] };
        Assert.NotEqual(fingerprint, (data with { Supervised = supervised }).Fingerprint());
        var heldOut = data.HeldOut.ToList();
        heldOut[0] = heldOut[0] with { GroundTruth = heldOut[0].GroundTruth + "0" };
        Assert.NotEqual(fingerprint, (data with { HeldOut = heldOut }).Fingerprint());
    }

    [Fact]
    public void Naive_grpo_changes_only_the_dapo_components()
    {
        var dapo = DemoRecipe.Default;
        var grpo = DemoRecipe.Named("grpo");
        Assert.Equal("grpo", grpo.Name);
        Assert.Equal(0.2, grpo.Dapo.ClipRatioHigh);
        Assert.Equal(LossAggregations.SeqMeanTokenMean, grpo.Dapo.LossAggregation);
        Assert.False(grpo.Dapo.DynamicSampling);
        Assert.False(grpo.Dapo.OverlongPunishment);
        Assert.Equal(0.0, grpo.Dapo.KlCoefficient);
        // Everything else is the demo's: same shape, learning rate, model, warm-start and evaluation.
        var undone = grpo.Dapo with
        {
            ClipRatioHigh = dapo.Dapo.ClipRatioHigh, LossAggregation = dapo.Dapo.LossAggregation,
            DynamicSampling = dapo.Dapo.DynamicSampling, OverlongPunishment = dapo.Dapo.OverlongPunishment,
        };
        Assert.Equal(dapo.Dapo, undone);
        Assert.Equal(dapo with { Name = "grpo", Dapo = grpo.Dapo }, grpo);
    }

    [Fact]
    public void The_chain_recipes_hard_levels_reach_the_length_limit_and_its_easy_ones_stay_clear_of_the_cache()
    {
        var recipe = DemoRecipe.ForTask("chain");
        Assert.Same(DemoRecipe.Chain, recipe);
        Assert.Empty(recipe.Validate());
        var data = DemoData.Create(recipe);
        Assert.Equal(recipe.TrainProblemsPerLevel.Sum(), data.Supervised.Count);
        Assert.All(data.Supervised, e => Assert.True(e.Prompt.Length <= recipe.Dapo.MaxPromptLength));
        var cacheStart = recipe.Dapo.MaxResponseLength - recipe.Dapo.OverlongCacheLength;
        int[] LengthsOf(int levelIndex) => data.Supervised.Skip(recipe.TrainProblemsPerLevel.Take(levelIndex).Sum())
            .Take(recipe.TrainProblemsPerLevel[levelIndex]).Select(e => e.Response.Length).ToArray();
        // The easiest level's worked solutions are never punished; the hardest level's are punished or cut off.
        Assert.True(LengthsOf(0).Max() <= cacheStart);
        var hardest = LengthsOf(recipe.Levels.Count - 1);
        Assert.True(hardest.Count(l => l > cacheStart) > hardest.Length / 2, $"{hardest.Count(l => l > cacheStart)} of {hardest.Length} in the cache or beyond");
        Assert.Contains(hardest, l => l > recipe.Dapo.MaxResponseLength);
        // Naive GRPO on the chain task is the same task.
        Assert.Equal("chain", DemoRecipe.Named("grpo", "chain").Task);
    }

    [Fact]
    public void On_the_mixed_chain_task_whether_a_long_chain_is_cut_off_depends_on_how_its_solution_is_written()
    {
        var recipe = DemoRecipe.ForTask("chain-mixed");
        Assert.Same(DemoRecipe.ChainMixed, recipe);
        Assert.Empty(recipe.Validate());
        var data = DemoData.Create(recipe);
        Assert.Equal(recipe.TrainProblemsPerLevel.Sum(), data.Supervised.Count);
        Assert.All(data.Supervised, e => Assert.True(e.Prompt.Length <= recipe.Dapo.MaxPromptLength));
        var limit = recipe.Dapo.MaxResponseLength;
        var hardest = data.Supervised.TakeLast(recipe.TrainProblemsPerLevel[^1]).Select(e => e.Response).ToList();
        // The warm-start's mix cuts off part of the hardest level (about a quarter), and none of the easiest.
        var cut = hardest.Count(r => r.Length > limit);
        Assert.InRange(cut, hardest.Count / 5, hardest.Count / 3);
        // The soft punishment's cache starts below nearly all of the hardest level's solutions.
        Assert.True(hardest.Count(r => r.Length > limit - recipe.Dapo.OverlongCacheLength) > hardest.Count * 9 / 10);
        var easiest = data.Supervised.Take(recipe.TrainProblemsPerLevel[0]).ToList();
        Assert.All(easiest, e => Assert.True(e.Response.Length <= limit - recipe.Dapo.OverlongCacheLength, $"{e.Response.Length} tokens"));
        // Every hardest problem written out line by line passes the limit in most cases; in two-operation lines none does.
        var problems = SyntheticChainTask.Generate(recipe.Levels[^1], SyntheticSplit.Train, 500, recipe.DataSeed);
        Assert.True(problems.Count(p => p.Solution.Length > limit) > 450);
        Assert.All(problems, p => Assert.True(TwoOperationLines(p.Problem, p.Answer).Length < limit, p.Problem)); // plus the end token
    }

    [Fact]
    public void On_the_sum_task_every_solution_fits_before_the_punishment_so_only_the_order_is_learnt()
    {
        var recipe = DemoRecipe.ForTask("sum");
        Assert.Same(DemoRecipe.Sum, recipe);
        Assert.Empty(recipe.Validate());
        var data = DemoData.Create(recipe);
        Assert.Equal(recipe.TrainProblemsPerLevel.Sum(), data.Supervised.Count);
        Assert.All(data.Supervised, e => Assert.True(e.Prompt.Length <= recipe.Dapo.MaxPromptLength));
        // The longest solution, its end token included, stays below the cache.
        var longest = data.Supervised.Max(e => e.Response.Length);
        Assert.InRange(longest, recipe.Dapo.MaxResponseLength - 2 * recipe.Dapo.OverlongCacheLength, recipe.Dapo.MaxResponseLength - recipe.Dapo.OverlongCacheLength);
    }

    /// <summary>A chain's worked solution with two operations on every line (one on the last if the count is odd).</summary>
    private static string TwoOperationLines(string problem, string answer)
    {
        var total = problem[0] - '0';
        var lines = new List<string>();
        for (var i = 1; i < problem.Length; i += 4)
        {
            var part = problem.Substring(i, Math.Min(4, problem.Length - i));
            var start = total;
            for (var k = 0; k < part.Length; k += 2) total += part[k] == '+' ? part[k + 1] - '0' : -(part[k + 1] - '0');
            lines.Add($"{start}{part}={total}");
        }
        return string.Join("\n", lines) + "\nAnswer: " + answer;
    }

    [Fact]
    public void A_task_or_level_the_generators_do_not_have_is_named()
    {
        Assert.Contains(DemoRecipe.Default with { Task = "poetry" } is var p ? p.Validate() : [], e => e.Contains("Task 'poetry'") && e.Contains("math, chain"));
        Assert.Contains((DemoRecipe.Chain with { Levels = [1, 5, 7, 9, 15] }).Validate(), e => e == "Levels: 1 is not a level of task 'chain' (2-14).");
        Assert.Contains((DemoRecipe.Chain with { Levels = [1, 5, 7, 9, 15] }).Validate(), e => e == "Levels: 15 is not a level of task 'chain' (2-14).");
        var unknown = Assert.Throws<KeyNotFoundException>(() => DemoRecipe.ForTask("poetry"));
        Assert.Contains("math, chain", unknown.Message);
    }

    [Fact]
    public void An_override_names_the_device_and_a_name_it_does_not_know_lists_the_ones_it_does()
    {
        // The README's GPU command: the device by name.
        Assert.Equal(DeviceType.Cuda, DemoRecipe.Default.WithOverrides("""{"Model": {"Device": "Cuda"}}""").Model.Device);
        Assert.Equal(DeviceType.Cpu, DemoRecipe.Default.WithOverrides("""{"Model": {"Device": "Cpu"}}""").Model.Device);
        var e = Assert.Throws<FormatException>(() => DemoRecipe.Default.WithOverrides("""{"Model": {"Device": "Gpu"}}"""));
        Assert.Equal("field 'Model.Device': expected one of \"Cpu\", \"Cuda\"", e.Message);
        // Other enum fields are said the same way.
        e = Assert.Throws<FormatException>(() => DemoRecipe.Default.WithOverrides("""{"Dapo": {"FilterMetric": "Score"}}"""));
        Assert.StartsWith("field 'Dapo.FilterMetric': expected one of \"", e.Message);
    }

    [Fact]
    public void An_unknown_recipe_lists_the_known_ones()
    {
        var e = Assert.Throws<KeyNotFoundException>(() => DemoRecipe.Named("ppo"));
        Assert.Contains("dapo, grpo", e.Message);
        Assert.Throws<OptionsValidationException>(() => (DemoRecipe.Default with { Steps = -1 }).EnsureValid());
    }

    [Fact]
    public void A_model_directory_gives_the_papers_options_and_the_models_shape()
    {
        var directory = Directory.CreateTempSubdirectory("dapo-recipe-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(directory, "config.json"), """
                {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
                 "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
                 "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": true,
                 "torch_dtype": "bfloat16", "use_sliding_window": false, "hidden_act": "silu"}
                """);
            var recipe = DemoRecipe.ForModel(directory);
            Assert.Equal(directory, recipe.ModelDirectory);
            Assert.Equal((896, 24, 151936, 22528), (recipe.Model.DModel, recipe.Model.Layers, recipe.Model.VocabSize, recipe.Model.MaxSeqLen));
            Assert.Equal(new DapoOptions(), recipe.Dapo);  // the paper's: G 16, 512 prompts, 20480 + 4096 cache, lr 1e-6
            Assert.Equal(Dapo.Core.Data.PromptTemplates.Dapo, recipe.PromptTemplate);
            Assert.Equal(1024, recipe.MaxTokensPerMicroBatch);  // the demo's 16,384 would take ~10 GB of logits alone
            Assert.Empty(recipe.Validate());

            var wrong = recipe with { Model = recipe.Model with { Layers = 12 } };
            Assert.Contains(wrong.Validate(), e => e.Contains("is not the shape of") && e.Contains("config.json"));
            var both = recipe with { InitialWeights = Path.Combine(directory, "config.json") };
            Assert.Contains(both.Validate(), e => e.Contains("give one"));
            var gone = recipe with { ModelDirectory = Path.Combine(directory, "missing") };
            Assert.Contains(gone.Validate(), e => e.Contains("there is no directory"));
            Assert.Empty(recipe.AsNaiveGrpo().Validate());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Initial_weights_are_checked_from_their_header_naming_the_file_and_what_is_wrong()
    {
        var directory = Directory.CreateTempSubdirectory("dapo-weights-").FullName;
        try
        {
            var recipe = DemoRecipe.Default;
            var good = Path.Combine(directory, "policy");
            using (var model = Dapo.Torch.PolicyModel.Create(recipe.Model with { Seed = 7 }))
            using (var weights = model.ExportWeights())
                File.WriteAllBytes(good, weights.ToArray());
            // Another seed is the same model: the file's weights replace the initialisation.
            Assert.Empty((recipe with { InitialWeights = good }).Validate());

            var other = Path.Combine(directory, "other");
            using (var model = Dapo.Torch.PolicyModel.Create(recipe.Model with { Layers = 2 }))
            using (var weights = model.ExportWeights())
                File.WriteAllBytes(other, weights.ToArray());
            Assert.Equal([$"InitialWeights: {other} holds weights of another model"],
                (recipe with { InitialWeights = other }).Validate().Select(e => e[..e.IndexOf(" (", StringComparison.Ordinal)]));

            var garbage = Path.Combine(directory, "garbage");
            File.WriteAllBytes(garbage, Enumerable.Range(0, 1000).Select(i => (byte)(i * 7)).ToArray());
            var error = Assert.Single((recipe with { InitialWeights = garbage }).Validate());
            Assert.StartsWith($"InitialWeights: {garbage} is not a file of policy weights:", error);
            Assert.Contains("DAPOENG1", error);

            var empty = Path.Combine(directory, "empty");
            File.WriteAllBytes(empty, []);
            Assert.Contains("is empty", Assert.Single((recipe with { InitialWeights = empty }).Validate()));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
