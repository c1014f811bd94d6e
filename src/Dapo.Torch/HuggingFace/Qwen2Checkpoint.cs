using System.Text.Json;

namespace Dapo.Torch.HuggingFace;

/// <summary>
/// Hugging Face Qwen2 model directories in and out of the engine: <c>config.json</c> with <c>model.safetensors</c>, or
/// shards named by <c>model.safetensors.index.json</c>; weights in bf16, fp16 or fp32. The engine keeps q, k and v
/// in one fused projection (and their biases), and gate and up in one; Hugging Face keeps them apart. Importing
/// concatenates them along the output rows, exporting splits them again, so import → export → import is exact.
/// </summary>
public static class Qwen2Checkpoint
{
    public const string SingleFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>A Hugging Face tensor: its name and the shape the config implies.</summary>
    private sealed record HfTensor(string Name, long[] Shape);

    /// <summary>Each engine parameter and the Hugging Face tensors it is made of, in row order.</summary>
    private static Dictionary<string, HfTensor[]> Layout(Qwen2Config c)
    {
        long d = c.HiddenSize, q = c.Heads * c.HeadDim, kv = c.KvHeads * c.HeadDim, ff = c.IntermediateSize, v = c.VocabSize;
        var layout = new Dictionary<string, HfTensor[]>
        {
            ["embed"] = [new("model.embed_tokens.weight", [v, d])],
            ["final_norm"] = [new("model.norm.weight", [d])],
        };
        for (var i = 0; i < c.Layers; i++)
        {
            var hf = $"model.layers.{i}.";
            var engine = $"layers.{i}.";
            layout[engine + "attn_norm"] = [new(hf + "input_layernorm.weight", [d])];
            layout[engine + "w_qkv"] = [new(hf + "self_attn.q_proj.weight", [q, d]), new(hf + "self_attn.k_proj.weight", [kv, d]), new(hf + "self_attn.v_proj.weight", [kv, d])];
            layout[engine + "b_qkv"] = [new(hf + "self_attn.q_proj.bias", [q]), new(hf + "self_attn.k_proj.bias", [kv]), new(hf + "self_attn.v_proj.bias", [kv])];
            layout[engine + "w_o"] = [new(hf + "self_attn.o_proj.weight", [d, q])];
            layout[engine + "mlp_norm"] = [new(hf + "post_attention_layernorm.weight", [d])];
            layout[engine + "w_gate_up"] = [new(hf + "mlp.gate_proj.weight", [ff, d]), new(hf + "mlp.up_proj.weight", [ff, d])];
            layout[engine + "w_down"] = [new(hf + "mlp.down_proj.weight", [d, ff])];
        }
        if (!c.TieWordEmbeddings) layout["lm_head"] = [new("lm_head.weight", [v, d])];
        return layout;
    }

    /// <summary>Tensors a Qwen2 checkpoint may hold that the engine does not need: rotary frequency buffers (the
    /// engine computes them), and the LM head of a tied model (the embedding is the head).</summary>
    private static bool Ignorable(string name, Qwen2Config config) =>
        name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal) || (config.TieWordEmbeddings && name == "lm_head.weight");

    /// <summary>
    /// The engine's model on <paramref name="device"/> with the directory's weights, for sequences of at most
    /// <paramref name="maxSeqLen"/> tokens (the model's own limit if null). Every tensor is checked against the config
    /// before anything is loaded.
    /// </summary>
    public static PolicyModel Load(string directory, int? maxSeqLen = null, DeviceType device = DeviceType.Cpu, int deviceIndex = 0)
    {
        directory = Path.GetFullPath(directory);
        var config = Qwen2Config.Read(directory);
        var layout = Layout(config);
        using var files = WeightFiles.Open(directory);
        var expected = layout.Values.SelectMany(t => t).ToDictionary(t => t.Name);
        foreach (var (name, file) in files.Owners)
        {
            if (expected.ContainsKey(name) || Ignorable(name, config)) continue;
            throw new InvalidDataException($"{file.Path}: tensor '{name}' is not part of a Qwen2 model with the shape {Qwen2Config.FileName} gives " +
                                           $"({config.Layers} layers{(config.TieWordEmbeddings ? ", tied embeddings" : "")}).");
        }
        foreach (var tensor in expected.Values)
        {
            var file = files.Owner(tensor.Name);
            var info = file.Info(tensor.Name);
            if (!info.Shape.SequenceEqual(tensor.Shape))
                throw new InvalidDataException($"{file.Path}: tensor '{tensor.Name}' has shape {info.ShapeText}, but {Qwen2Config.FileName} implies [{string.Join(", ", tensor.Shape)}].");
        }

        var model = PolicyModel.Create(config.ToModelConfig(maxSeqLen) with { Device = device, DeviceIndex = deviceIndex });
        try
        {
            foreach (var parameter in model.Parameters)
            {
                var parts = layout.TryGetValue(parameter.Name, out var p)
                    ? p
                    : throw new InvalidOperationException($"The engine's parameter '{parameter.Name}' has no Hugging Face counterpart.");
                var values = new float[parameter.ElementCount];
                var offset = 0;
                foreach (var part in parts)
                {
                    var file = files.Owner(part.Name);
                    var info = file.Info(part.Name);
                    var count = checked((int)info.ElementCount);
                    SafeTensorsFile.Widen(file.Bytes(part.Name), info.DType, values.AsSpan(offset, count));
                    offset += count;
                }
                if (offset != values.Length)
                    throw new InvalidOperationException($"Parameter '{parameter.Name}': {offset} values from {string.Join(", ", parts.Select(x => x.Name))}, the engine holds {values.Length}.");
                model.WriteParameter(parameter.Index, values);
            }
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes <paramref name="model"/> as a Hugging Face model directory: <c>config.json</c> (the source config's
    /// fields, <c>torch_dtype</c> set) and <c>model.safetensors</c> in <paramref name="dtype"/>, the layout and names
    /// the model was loaded from, so it loads wherever the original did.
    /// </summary>
    public static void Save(PolicyModel model, Qwen2Config config, string directory, SafeTensorsDType dtype)
    {
        var layout = Layout(config);
        var engine = model.Config;
        if (engine.DModel != config.HiddenSize || engine.Layers != config.Layers || engine.VocabSize != config.VocabSize ||
            engine.Heads != config.Heads || engine.KvHeads != config.KvHeads || engine.DFf != config.IntermediateSize ||
            engine.TieEmbeddings != config.TieWordEmbeddings || !engine.AttentionBias)
            throw new ArgumentException($"The model's shape ({engine}) is not the config's.", nameof(config));
        Directory.CreateDirectory(directory);

        // One engine parameter in memory at a time: its Hugging Face pieces are written one after another.
        (int Index, float[] Values) cached = (-1, []);
        float[] Read(ParameterInfo parameter)
        {
            if (cached.Index != parameter.Index) cached = (parameter.Index, model.ReadParameter(parameter.Index));
            return cached.Values;
        }
        var tensors = new List<SafeTensorToWrite>();
        foreach (var parameter in model.Parameters)
        {
            long offset = 0;
            foreach (var part in layout[parameter.Name])
            {
                var (start, count) = (offset, part.Shape.Aggregate(1L, (a, b) => a * b));
                tensors.Add(new SafeTensorToWrite(part.Name, dtype, part.Shape,
                    () => SafeTensorsFile.Narrow(Read(parameter).AsSpan((int)start, (int)count), dtype)));
                offset += count;
            }
        }
        SafeTensorsFile.Write(Path.Combine(directory, SingleFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        config.Write(directory, dtype);
    }

    /// <summary>The weight files of a model directory: one file, or the shards its index names.</summary>
    private sealed class WeightFiles : IDisposable
    {
        private readonly List<SafeTensorsFile> _files = [];
        private readonly Dictionary<string, SafeTensorsFile> _owners = new(StringComparer.Ordinal);
        private string _where = "";

        public IEnumerable<KeyValuePair<string, SafeTensorsFile>> Owners => _owners;

        public static WeightFiles Open(string directory)
        {
            var files = new WeightFiles();
            try
            {
                var index = Path.Combine(directory, IndexFile);
                var single = Path.Combine(directory, SingleFile);
                if (File.Exists(index)) files.OpenShards(index);
                else if (File.Exists(single)) files.Add(SafeTensorsFile.Open(single));
                else throw new FileNotFoundException($"{directory}: no {SingleFile} and no {IndexFile}.", single);
                return files;
            }
            catch
            {
                files.Dispose();
                throw;
            }
        }

        private void OpenShards(string index)
        {
            _where = index;
            Dictionary<string, string> map;
            try
            {
                using var json = JsonDocument.Parse(File.ReadAllText(index));
                map = json.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new InvalidDataException($"{index}: not a safetensors index with a weight_map of tensor names to files ({e.Message}).");
            }
            var directory = Path.GetDirectoryName(index)!;
            foreach (var shard in map.Values.Distinct())
            {
                var path = Path.Combine(directory, shard);
                if (!File.Exists(path))
                    throw new FileNotFoundException($"{index} names shard {shard} (for tensor '{map.First(p => p.Value == shard).Key}'), but {path} does not exist.", path);
                var file = SafeTensorsFile.Open(path);
                Add(file);
                foreach (var (name, owner) in map)
                    if (owner == shard && !file.Tensors.ContainsKey(name))
                        throw new InvalidDataException($"{path}: {IndexFile} says it holds tensor '{name}', but it does not.");
            }
        }

        private void Add(SafeTensorsFile file)
        {
            _files.Add(file);
            foreach (var name in file.Tensors.Keys)
                if (!_owners.TryAdd(name, file))
                    throw new InvalidDataException($"{file.Path}: tensor '{name}' is also in {_owners[name].Path}.");
        }

        public SafeTensorsFile Owner(string name) => _owners.TryGetValue(name, out var file)
            ? file
            : throw new InvalidDataException($"Tensor '{name}' of the Qwen2 model is in none of the weight files ({(_where.Length > 0 ? _where : string.Join(", ", _files.Select(f => f.Path)))}).");

        public void Dispose()
        {
            foreach (var file in _files) file.Dispose();
        }
    }
}
