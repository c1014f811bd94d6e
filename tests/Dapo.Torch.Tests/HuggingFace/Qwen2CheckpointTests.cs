using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Torch.HuggingFace;

namespace Dapo.Torch.Tests.HuggingFace;

/// <summary>
/// Hugging Face Qwen2 checkpoints written by PyTorch (random weights, <c>torch_peer.py qwen2</c>), loaded into the
/// engine and compared with an independent forward pass in PyTorch (<c>torch_peer.py forward</c>): the logits of every
/// position (within 1e-4), the scored log-probabilities and greedy generation. Then exported and compared with the original, byte for byte.
/// </summary>
public sealed class Qwen2CheckpointTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("dapo-qwen2-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Model(string name, object spec)
    {
        var directory = Path.Combine(_directory, name);
        Directory.CreateDirectory(directory);
        TorchPeer.Run("qwen2", directory, JsonSerializer.Serialize(spec));
        return directory;
    }

    private static readonly int[][] Sequences = [[3, 17, 5, 9, 22, 40, 1, 8, 8, 31, 2, 44], [7, 7, 7, 12], [45, 0, 19, 33, 6, 27, 14]];
    private static readonly int[][] Prompts = [[3, 17, 5], [20, 11]];
    private const int NewTokens = 12;

    /// <summary>The engine's log-probability of each token after the first, per sequence.</summary>
    private static float[][] EngineLogProbs(PolicyModel model)
    {
        using var score = model.Score(Sequences.Select(s => new ScoredSequence(s, s.Select((_, t) => t > 0).ToArray())).ToList());
        var (result, offset) = (new List<float[]>(), 0);
        foreach (var sequence in Sequences)
        {
            result.Add(score.LogProbs.AsSpan(offset, sequence.Length - 1).ToArray());
            offset += sequence.Length - 1;
        }
        return result.ToArray();
    }

    private static void AssertSameAsTorch(PolicyModel model, string directory)
    {
        var torch = TorchPeer.Run("forward", directory, JsonSerializer.Serialize(new { sequences = Sequences, greedy = Prompts, @new = NewTokens }));
        var expectedLogits = torch.GetProperty("logits").EnumerateArray().Select(TorchPeer.Floats).ToArray();
        for (var s = 0; s < Sequences.Length; s++)
        {
            var logits = model.Logits(Sequences[s]);
            Assert.Equal(expectedLogits[s].Length, logits.Length);
            var worst = Enumerable.Range(0, logits.Length).MaxBy(i => Math.Abs(expectedLogits[s][i] - logits[i]));
            Assert.True(Math.Abs(expectedLogits[s][worst] - logits[worst]) <= 1e-4,
                $"sequence {s}, position {worst / model.Config.VocabSize}, token {worst % model.Config.VocabSize}: PyTorch logit {expectedLogits[s][worst]}, engine {logits[worst]}");
        }
        var expected = torch.GetProperty("logprobs").EnumerateArray().Select(TorchPeer.Floats).ToArray();
        var actual = EngineLogProbs(model);
        for (var s = 0; s < Sequences.Length; s++)
            for (var t = 0; t < expected[s].Length; t++)
                Assert.True(Math.Abs(expected[s][t] - actual[s][t]) <= 1e-4,
                    $"sequence {s} token {t + 1}: PyTorch {expected[s][t]}, engine {actual[s][t]} (|diff| {Math.Abs(expected[s][t] - actual[s][t]):E2})");

        var greedy = model.Sample(Prompts, new SampleOptions { MaxNewTokens = NewTokens, Temperature = 0 });
        var expectedGreedy = torch.GetProperty("greedy").EnumerateArray().Select(g => g.EnumerateArray().Select(t => t.GetInt32()).ToArray()).ToArray();
        for (var p = 0; p < Prompts.Length; p++) Assert.Equal(expectedGreedy[p], greedy[p].Tokens);
    }

    public static TheoryData<string, object> Configs => new()
    {
        { "tied, 2 query heads per key/value head, bf16", new { hidden = 32, heads = 4, kv_heads = 2, ff = 48, vocab = 61, layers = 2, tied = true, dtype = "bfloat16" } },
        { "untied, 4 query heads per key/value head, fp32", new { hidden = 32, heads = 4, kv_heads = 1, ff = 40, vocab = 53, layers = 3, tied = false, dtype = "float32", rope_theta = 1000000.0 } },
        { "untied, multi-head, fp16, two shards", new { hidden = 24, heads = 2, kv_heads = 2, ff = 64, vocab = 47, layers = 2, tied = false, dtype = "float16", shards = 2 } },
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public void A_checkpoint_pytorch_wrote_scores_and_decodes_as_pytorch_does_and_exports_to_the_same_bytes(string name, object spec)
    {
        var directory = Model("source", spec);
        using var model = Qwen2Checkpoint.Load(directory);
        AssertSameAsTorch(model, directory);

        // Export in the source's dtype: every tensor's bytes as PyTorch wrote them; loaded again, the same weights.
        var config = Qwen2Config.Read(directory);
        var exported = Path.Combine(_directory, "exported");
        Qwen2Checkpoint.Save(model, config, exported, config.StoredDType);
        var original = OriginalTensors(directory);
        using (var file = SafeTensorsFile.Open(Path.Combine(exported, Qwen2Checkpoint.SingleFile)))
        {
            Assert.Equal(original.Keys.Order(), file.Tensors.Keys.Order());
            foreach (var (tensor, bytes) in original) Assert.True(bytes.AsSpan().SequenceEqual(file.Bytes(tensor)), $"{name}: tensor {tensor} changed");
        }
        var reread = Qwen2Config.Read(exported);
        Assert.Equal(config, reread with { Source = config.Source });
        Assert.Equal(config.Source.ToJsonString(), reread.Source.ToJsonString());  // every field kept, the dtype too
        using var again = Qwen2Checkpoint.Load(exported);
        foreach (var parameter in model.Parameters) Assert.Equal(model.ReadParameter(parameter.Index), again.ReadParameter(parameter.Index));
    }

    private static Dictionary<string, byte[]> OriginalTensors(string directory)
    {
        var tensors = new Dictionary<string, byte[]>();
        foreach (var path in Directory.GetFiles(directory, "*.safetensors"))
        {
            using var file = SafeTensorsFile.Open(path);
            foreach (var name in file.Tensors.Keys) tensors[name] = file.Bytes(name).ToArray();
        }
        return tensors;
    }

    [Fact]
    public void A_policy_trained_here_exports_to_a_checkpoint_pytorch_scores_the_same()
    {
        var directory = Model("source", new { hidden = 32, heads = 4, kv_heads = 2, ff = 48, vocab = 61, layers = 2, tied = true, dtype = "float32" });
        using var model = Qwen2Checkpoint.Load(directory);
        var before = EngineLogProbs(model);
        using (var optimizer = new AdamW(model, new AdamWOptions { WeightDecay = 0.0 }))
        {
            var batch = Sequences.Select(s => new ScoredSequence(s, s.Select((_, t) => t > 0).ToArray())).ToList();
            for (var step = 0; step < 5; step++)
            {
                using var score = model.Score(batch, requiresGrad: true);
                score.Backward(Enumerable.Repeat(-1f / score.Count, score.Count).ToArray());
                Assert.True(optimizer.Step(1e-2).Applied);
            }
        }
        Assert.True(EngineLogProbs(model).SelectMany(x => x).Sum() > before.SelectMany(x => x).Sum() + 0.1, "five steps of likelihood training did not change the model");

        var exported = Path.Combine(_directory, "trained");
        Qwen2Checkpoint.Save(model, Qwen2Config.Read(directory), exported, SafeTensorsDType.F32);
        AssertSameAsTorch(model, exported);
    }

    private static void EditConfig(string directory, Action<JsonObject> edit)
    {
        var path = Path.Combine(directory, Qwen2Config.FileName);
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(json);
        File.WriteAllText(path, json.ToJsonString());
    }

    [Theory]
    [InlineData("use_sliding_window", "true", "use_sliding_window is true")]
    [InlineData("rope_scaling", """{"type":"yarn","factor":4.0}""", "rope_scaling is {\"type\":\"yarn\"")]
    [InlineData("hidden_act", "\"gelu\"", "hidden_act is 'gelu'")]
    [InlineData("architectures", """["LlamaForCausalLM"]""", "LlamaForCausalLM")]
    [InlineData("num_key_value_heads", "3", "num_attention_heads 4 is not a multiple of num_key_value_heads 3")]
    [InlineData("hidden_size", "\"big\"", "hidden_size is \"big\"")]
    public void A_config_the_engine_cannot_run_is_refused_naming_the_field_and_value(string field, string value, string message)
    {
        var directory = Model("source", new { hidden = 32, heads = 4, kv_heads = 2, ff = 48, vocab = 61, layers = 1, tied = true, dtype = "float32" });
        EditConfig(directory, json =>
        {
            json[field] = JsonNode.Parse(value);
            if (field == "architectures") json["model_type"] = "llama";
        });
        var error = Assert.Throws<InvalidDataException>(() => Qwen2Checkpoint.Load(directory));
        Assert.Contains(Path.Combine(directory, Qwen2Config.FileName), error.Message);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void Weights_that_do_not_match_the_config_are_refused_naming_the_file_the_tensor_and_both_shapes()
    {
        var directory = Model("source", new { hidden = 32, heads = 4, kv_heads = 2, ff = 48, vocab = 61, layers = 1, tied = true, dtype = "float32" });
        EditConfig(directory, json => json["intermediate_size"] = 40);
        var error = Assert.Throws<InvalidDataException>(() => Qwen2Checkpoint.Load(directory));
        Assert.Contains(Path.Combine(directory, Qwen2Checkpoint.SingleFile), error.Message);
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", error.Message);
        Assert.Contains("[48, 32]", error.Message);
        Assert.Contains("[40, 32]", error.Message);

        // A layer more than the weights hold: the missing tensor is named.
        EditConfig(directory, json => { json["intermediate_size"] = 48; json["num_hidden_layers"] = 2; });
        error = Assert.Throws<InvalidDataException>(() => Qwen2Checkpoint.Load(directory));
        Assert.Contains("model.layers.1.", error.Message);
        Assert.Contains("none of the weight files", error.Message);

        // A layer fewer: the extra tensors are not silently dropped.
        EditConfig(directory, json => json["num_hidden_layers"] = 1);
        using (Qwen2Checkpoint.Load(directory)) { }
        EditConfig(directory, json => json["tie_word_embeddings"] = false);
        Assert.Contains("lm_head.weight", Assert.Throws<InvalidDataException>(() => Qwen2Checkpoint.Load(directory)).Message);
    }

    [Fact]
    public void A_checkpoint_loads_onto_the_device_asked_for()
    {
        var directory = Model("source", new { hidden = 32, heads = 4, kv_heads = 2, ff = 48, vocab = 61, layers = 1, tied = true, dtype = "float32" });
        using (var onCpu = Qwen2Checkpoint.Load(directory)) Assert.Equal(DeviceType.Cpu, onCpu.Config.Device);
        if (TorchEngine.CudaAvailable)
        {
            using var onGpu = Qwen2Checkpoint.Load(directory, device: DeviceType.Cuda);
            Assert.Equal(DeviceType.Cuda, onGpu.Config.Device);
        }
        else
        {
            // Not a CPU model handed to a GPU recipe (whose learner then refused it as "a model of another shape").
            var error = Assert.Throws<TorchException>(() => Qwen2Checkpoint.Load(directory, device: DeviceType.Cuda));
            Assert.StartsWith("config.device_type is 1 (CUDA), but this engine has no CUDA device", error.Message);
        }
    }

    [Fact]
    public void A_missing_shard_is_refused_naming_the_index_and_the_shard()
    {
        var directory = Model("source", new { hidden = 24, heads = 2, kv_heads = 2, ff = 32, vocab = 40, layers = 2, tied = false, dtype = "bfloat16", shards = 2 });
        File.Delete(Path.Combine(directory, "model-00002-of-00002.safetensors"));
        var error = Assert.Throws<FileNotFoundException>(() => Qwen2Checkpoint.Load(directory));
        Assert.Contains(Path.Combine(directory, Qwen2Checkpoint.IndexFile), error.Message);
        Assert.Contains("model-00002-of-00002.safetensors", error.Message);
    }
}
