using Dapo.Training;

namespace Dapo.Grains.Tests.Cluster;

/// <summary>Recipes small enough for grain tests (tests/Dapo.EndToEnd.Tests/TestRecipes.cs has the same tiny recipe).</summary>
internal static class GrainRecipes
{
    /// <summary>
    /// A 64-wide, 2-layer policy on level-1 problems with a short warm-start: <paramref name="steps"/> DAPO steps of
    /// <paramref name="batch"/> informative groups of <paramref name="group"/> responses; <paramref name="dapo"/> is
    /// merged into the "Dapo" section (e.g. <c>"SurplusGroups":"Carry"</c>).
    /// </summary>
    public static DemoRecipe Tiny(int steps, int group = 4, int batch = 4, string dapo = "")
    {
        var tiny = DemoRecipe.Default.WithOverrides($$"""
            {"Model":{"DModel":64,"Layers":2,"Heads":4,"KvHeads":2,"DFf":128,"MaxSeqLen":64},
             "Levels":[1],"TrainProblemsPerLevel":[500],"HeldOutProblemsPerLevel":[32],
             "WarmStart":{"MaxSteps":150,"EvaluateEvery":0,"StopAtAccuracy":null,"LearningRate":0.003},
             "Dapo":{"GroupSize":{{group}},"PromptBatchSize":{{batch}},"MaxResponseLength":24,"OverlongCacheLength":8,"MaxPromptLength":16,
                     "MaxGenerationRounds":8,"EvalSamplesPerPrompt":2},
             "Steps":{{steps}},"EvaluateEvery":100}
            """);
        return dapo.Length == 0 ? tiny : tiny.WithOverrides("{\"Dapo\":{" + dapo + "}}");
    }
}
