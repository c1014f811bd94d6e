using Dapo.Training;
using Dapo.Core.Loss;
using Dapo.Core.Options;

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
    public void An_unknown_recipe_lists_the_known_ones()
    {
        var e = Assert.Throws<KeyNotFoundException>(() => DemoRecipe.Named("ppo"));
        Assert.Contains("dapo, grpo", e.Message);
        Assert.Throws<OptionsValidationException>(() => (DemoRecipe.Default with { Steps = -1 }).EnsureValid());
    }
}
