using Dapo.Training;
using Dapo.Core.Options;
using Dapo.Core.Rewards;
using Dapo.Torch;

namespace Dapo.Training.Tests;

/// <summary>Tiny models and problems shared by the training tests (each test runs in well under a second or two).</summary>
internal static class TrainingFixtures
{
    public static ModelConfig TinyConfig(ulong seed = 5) => new()
    {
        VocabSize = 99, DModel = 32, Layers = 2, Heads = 4, KvHeads = 2, DFf = 64, MaxSeqLen = 64, Seed = seed,
    };

    public static PolicyModel TinyModel(ulong seed = 5) => PolicyModel.Create(TinyConfig(seed));

    public static PromptEncoder Encoder { get; } = PromptEncoder.Create();

    public static DapoOptions Options { get; } = new()
    {
        GroupSize = 4, PromptBatchSize = 2, MiniBatchesPerStep = 1, MaxResponseLength = 24, OverlongCacheLength = 8,
        RewardFunction = RewardFunctions.ExactInteger, LearningRate = 1e-2, WarmupSteps = 0, WeightDecay = 0,
    };

    public static RolloutPrompt Prompt(string problem, string answer) =>
        new($"test-{problem}", Encoder.EncodePrompt(problem), answer, "test");

    public static RolloutGenerator Generator(DapoOptions? options = null) =>
        new(Encoder, new ResponseScorer(options ?? Options));
}
