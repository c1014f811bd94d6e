using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Training.Experiments;
using Dapo.Training;

namespace Dapo.Training.Tests.Experiments;

public sealed class AblationLadderTests
{
    /// <summary>The DAPO options fields in which two rungs differ.</summary>
    private static List<string> Differences(AblationRecipe a, AblationRecipe b)
    {
        var x = JsonSerializer.SerializeToNode(a.Recipe.Dapo)!.AsObject();
        var y = JsonSerializer.SerializeToNode(b.Recipe.Dapo)!.AsObject();
        return x.Where(kv => !JsonNode.DeepEquals(kv.Value, y[kv.Key])).Select(kv => kv.Key).ToList();
    }

    [Fact]
    public void Each_rung_adds_exactly_the_component_it_names_in_the_papers_order()
    {
        var ladder = AblationLadder.Build(DemoRecipe.Default);
        Assert.Equal(["grpo", "overlong-filtering", "clip-higher", "soft-overlong", "token-level", "dapo"], ladder.Select(r => r.Key));
        Assert.Equal([30.0, 36, 38, 41, 42, 50], ladder.Select(r => r.PaperAime!.Value));
        var grpo = ladder[0].Recipe.Dapo;
        Assert.Equal((0.2, 0.2, "seq-mean-token-mean", false, false, false),
            (grpo.ClipRatioLow, grpo.ClipRatioHigh, grpo.LossAggregation, grpo.DynamicSampling, grpo.OverlongPunishment, grpo.OverlongFiltering));
        Assert.Equal(["OverlongFiltering"], Differences(ladder[0], ladder[1]));
        Assert.Equal(["ClipRatioHigh"], Differences(ladder[1], ladder[2]));
        Assert.Equal(["OverlongPunishment"], Differences(ladder[2], ladder[3]));
        Assert.Equal(["LossAggregation"], Differences(ladder[3], ladder[4]));
        Assert.Equal(["DynamicSampling"], Differences(ladder[4], ladder[5]));
        // Everything but the DAPO options is the base recipe's.
        Assert.All(ladder, r => Assert.Equal(DemoRecipe.Default with { Name = r.Key, Dapo = r.Recipe.Dapo }, r.Recipe));
        Assert.Equal(0.28, ladder[5].Recipe.Dapo.ClipRatioHigh);
    }

    [Fact]
    public void Each_leave_one_out_rung_is_full_dapo_less_the_component_it_names()
    {
        var dapo = AblationLadder.Build(DemoRecipe.Chain)[^1];
        var rungs = AblationLadder.LeaveOneOut(DemoRecipe.Chain);
        Assert.Equal(["dapo-no-clip-higher", "dapo-no-filtering", "dapo-no-soft-overlong", "dapo-no-overlong", "dapo-no-token-level"], rungs.Select(r => r.Key));
        Assert.Equal(["ClipRatioHigh"], Differences(dapo, rungs[0]));
        Assert.Equal(["OverlongFiltering"], Differences(dapo, rungs[1]));
        Assert.Equal(["OverlongPunishment"], Differences(dapo, rungs[2]));
        Assert.Equal(["OverlongPunishment", "OverlongFiltering"], Differences(dapo, rungs[3]));
        Assert.Equal(["LossAggregation"], Differences(dapo, rungs[4]));
        Assert.Equal(0.2, rungs[0].Recipe.Dapo.ClipRatioHigh);
        Assert.All(rungs, r => Assert.True(r.Recipe.Dapo.DynamicSampling));
        Assert.All(rungs, r => Assert.Null(r.PaperAime));
        Assert.All(rungs, r => Assert.Equal(DemoRecipe.Chain with { Name = r.Key, Dapo = r.Recipe.Dapo }, r.Recipe));
    }
}
