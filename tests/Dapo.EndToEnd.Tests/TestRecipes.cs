namespace Dapo.EndToEnd.Tests;

/// <summary>Recipes small enough for tests: a 64-wide, 2-layer policy on level-1 problems, a short warm-start.</summary>
internal static class TestRecipes
{
    /// <summary>Overrides for --override: G responses per prompt, a batch of prompts per step, a few steps.</summary>
    public static string Tiny(int steps, int group = 4, int batch = 4, int evaluateEvery = 2) =>
        $$"""
        {"Model":{"DModel":64,"Layers":2,"Heads":4,"KvHeads":2,"DFf":128,"MaxSeqLen":64},
         "Levels":[1],"TrainProblemsPerLevel":[500],"HeldOutProblemsPerLevel":[32],
         "WarmStart":{"MaxSteps":150,"EvaluateEvery":0,"StopAtAccuracy":null,"LearningRate":0.003},
         "Dapo":{"GroupSize":{{group}},"PromptBatchSize":{{batch}},"MaxResponseLength":24,"OverlongCacheLength":8,"MaxPromptLength":16,
                 "MaxGenerationRounds":8,"EvalSamplesPerPrompt":2},
         "Steps":{{steps}},"EvaluateEvery":{{evaluateEvery}}}
        """.ReplaceLineEndings(" ");

    /// <summary>
    /// Overrides for `experiments --task chain`: the tiny policy on running sums of 3 and 8 digits, whose worked
    /// solutions (about 24 and 62 characters) meet or pass a 24-token limit, so responses are truncated (the model
    /// still holds a whole solution, which the warm-start trains on).
    /// </summary>
    public static string TinyChain(int steps) =>
        $$"""
        {"Model":{"DModel":64,"Layers":2,"Heads":4,"KvHeads":2,"DFf":128,"MaxSeqLen":96},
         "Levels":[3,8],"TrainProblemsPerLevel":[300,300],"HeldOutProblemsPerLevel":[16,16],
         "WarmStart":{"MaxSteps":100,"EvaluateEvery":0,"StopAtAccuracy":null,"LearningRate":0.003},
         "Dapo":{"GroupSize":4,"PromptBatchSize":4,"MiniBatchesPerStep":2,"MaxResponseLength":24,"OverlongCacheLength":8,"MaxPromptLength":24,
                 "MaxGenerationRounds":8,"EvalSamplesPerPrompt":2},
         "Steps":{{steps}},"EvaluateEvery":1}
        """.ReplaceLineEndings(" ");
}
