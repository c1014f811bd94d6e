namespace Dapo.Torch.Tests;

/// <summary>Small models and inputs shared by the engine tests.</summary>
internal static class TinyModels
{
    public static ModelConfig Config(ulong seed = 7, bool tie = false) => new()
    {
        VocabSize = 32, DModel = 32, Layers = 2, Heads = 4, KvHeads = 2, DFf = 64, MaxSeqLen = 96,
        TieEmbeddings = tie, Seed = seed,
    };

    public static PolicyModel Create(ulong seed = 7, bool tie = false) => PolicyModel.Create(Config(seed, tie));

    /// <summary>Deterministic pseudo-random token sequences of the given lengths, ids in [low, vocab).</summary>
    public static int[][] Sequences(int[] lengths, int vocab = 32, int seed = 1, int low = 0)
    {
        var rng = new Random(seed);
        return lengths.Select(n => Enumerable.Range(0, n).Select(_ => rng.Next(low, vocab)).ToArray()).ToArray();
    }

    /// <summary>Scores each response after its prompt, as a trainer would.</summary>
    public static ScoreResult ScoreResponses(PolicyModel model, IReadOnlyList<int[]> prompts,
        IReadOnlyList<SampledResponse> responses, double temperature, bool requiresGrad = false)
    {
        var sequences = responses
            .Select(r => ScoredSequence.FromPromptAndResponse(prompts[r.PromptIndex], r.Tokens))
            .ToList();
        return model.Score(sequences, temperature, requiresGrad);
    }
}

internal static class NativeBytesExtensions
{
    /// <summary>The bytes in a managed array, the native ones freed.</summary>
    public static byte[] Take(this NativeBytes bytes)
    {
        using (bytes) return bytes.ToArray();
    }
}
