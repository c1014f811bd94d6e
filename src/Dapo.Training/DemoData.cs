using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Dapo.Core.Common;
using Dapo.Core.Data;
using Dapo.Core.Data.Synthetic;

namespace Dapo.Training;

/// <summary>
/// The demo's problems, encoded: train prompts (RL draws from them), their worked solutions (the warm-start's
/// targets) and the held-out prompts (evaluation). Built deterministically from a <see cref="DemoRecipe"/>.
/// </summary>
/// <param name="Encoder">The encoder the prompts were built with.</param>
/// <param name="Train">Train prompts, levels in recipe order.</param>
/// <param name="Supervised">The warm-start examples, one per train prompt, same order.</param>
/// <param name="HeldOut">Held-out prompts (never in <paramref name="Train"/>: the task's split is a fixed function of
/// the problem text).</param>
public sealed record DemoData(
    PromptEncoder Encoder, IReadOnlyList<RolloutPrompt> Train, IReadOnlyList<SupervisedExample> Supervised,
    IReadOnlyList<RolloutPrompt> HeldOut)
{
    /// <summary>The data of <paramref name="recipe"/>.</summary>
    /// <exception cref="ArgumentException">A prompt is longer than the recipe's MaxPromptLength, or a prompt and its
    /// worked solution longer than the model's MaxSeqLen.</exception>
    public static DemoData Create(DemoRecipe recipe)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        recipe.EnsureValid();
        var encoder = recipe.ModelDirectory is { } model
            ? PromptEncoder.ForModel(model, recipe.PromptTemplate)
            : PromptEncoder.Create(template: recipe.PromptTemplate);
        if (encoder.Tokenizer.VocabSize > recipe.Model.VocabSize)
            throw new ArgumentException(
                $"The tokenizer has {encoder.Tokenizer.VocabSize} ids, more than the model's vocabulary of {recipe.Model.VocabSize}.", nameof(recipe));
        if (recipe.Dataset is { } path) return FromJsonl(encoder, path, recipe);
        var train = new List<RolloutPrompt>();
        var supervised = new List<SupervisedExample>();
        var heldOut = new List<RolloutPrompt>();
        for (var i = 0; i < recipe.Levels.Count; i++)
        {
            foreach (var p in SyntheticTasks.Generate(recipe.Task, recipe.Levels[i], SyntheticSplit.Train, recipe.TrainProblemsPerLevel[i], recipe.DataSeed))
            {
                var prompt = Prompt(encoder, p, recipe);
                train.Add(prompt);
                var solution = encoder.EncodeResponse(p.Solution);
                // The warm-start trains on the whole worked solution, even one longer than the response limit.
                if (prompt.Tokens.Length + solution.Length > recipe.Model.MaxSeqLen)
                    throw new ArgumentException(
                        $"Problem {p.Id}: its prompt and worked solution take {prompt.Tokens.Length + solution.Length} tokens; Model.MaxSeqLen is {recipe.Model.MaxSeqLen}.",
                        nameof(recipe));
                supervised.Add(new SupervisedExample(prompt.Tokens, solution));
            }
            foreach (var p in SyntheticTasks.Generate(recipe.Task, recipe.Levels[i], SyntheticSplit.HeldOut, recipe.HeldOutProblemsPerLevel[i], recipe.DataSeed))
                heldOut.Add(Prompt(encoder, p, recipe));
        }
        return new DemoData(encoder, train, supervised, heldOut);
    }

    /// <summary>
    /// What the data is, in 16 hex digits (SHA-256 of every train and held-out prompt with its ground truth, and every
    /// worked solution): a warm-start records it, so that weights trained on another version of a task's generator are not
    /// reused as if the recipe alone said what they were trained on.
    /// </summary>
    public string Fingerprint()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(int[] tokens)
        {
            hash.AppendData(BitConverter.GetBytes(tokens.Length));  // the length first: [1,2][3] is not [1][2,3]
            hash.AppendData(MemoryMarshal.AsBytes(tokens.AsSpan()));
        }
        foreach (var prompt in Train.Concat(HeldOut))
        {
            Add(prompt.Tokens);
            hash.AppendData(Encoding.UTF8.GetBytes(prompt.GroundTruth + "\n"));
        }
        foreach (var example in Supervised) Add(example.Response);
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }

    /// <summary>
    /// Prompts from a JSONL dataset (read and de-duplicated by <see cref="JsonlDatasetReader"/>, which names the file,
    /// line and field of a malformed record); every 20th problem, by a stable hash of its text, is held out. No worked
    /// solutions: the run starts from given weights.
    /// </summary>
    private static DemoData FromJsonl(PromptEncoder encoder, string path, DemoRecipe recipe)
    {
        var loaded = JsonlDatasetReader.ReadFile(path);
        var train = new List<RolloutPrompt>();
        var heldOut = new List<RolloutPrompt>();
        foreach (var example in loaded.Examples)
        {
            int[] tokens;
            try
            {
                tokens = encoder.EncodePrompt(example.Problem);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"{path}: problem {example.Id} cannot be encoded: {e.Message}", nameof(recipe), e);
            }
            if (tokens.Length > recipe.Dapo.MaxPromptLength)
                throw new ArgumentException(
                    $"{path}: problem {example.Id} encodes to {tokens.Length} prompt tokens; MaxPromptLength is {recipe.Dapo.MaxPromptLength}.",
                    nameof(recipe));
            var prompt = new RolloutPrompt(example.Id, tokens, example.Answer, example.DataSource);
            (StableHash.Fnv1a64(example.Problem) % 20 == 0 ? heldOut : train).Add(prompt);
        }
        if (train.Count == 0 || heldOut.Count == 0)
            throw new ArgumentException($"{path}: {loaded.Examples.Count} distinct problems are too few to hold some out for evaluation.", nameof(recipe));
        return new DemoData(encoder, train, [], heldOut);
    }

    private static RolloutPrompt Prompt(PromptEncoder encoder, SyntheticProblem problem, DemoRecipe recipe)
    {
        var tokens = encoder.EncodePrompt(problem.Problem);
        if (tokens.Length > recipe.Dapo.MaxPromptLength)
            throw new ArgumentException(
                $"Problem {problem.Id} encodes to {tokens.Length} prompt tokens; MaxPromptLength is {recipe.Dapo.MaxPromptLength}.",
                nameof(recipe));
        return new RolloutPrompt(problem.Id, tokens, problem.Answer, $"L{problem.Level}");
    }
}
