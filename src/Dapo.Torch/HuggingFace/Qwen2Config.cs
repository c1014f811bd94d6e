using System.Text.Json;
using System.Text.Json.Nodes;

namespace Dapo.Torch.HuggingFace;

/// <summary>
/// The fields of a Hugging Face Qwen2/Qwen2.5 <c>config.json</c> the engine uses, read and checked: another
/// architecture, or a feature the engine does not implement (sliding-window attention, rope scaling, another
/// activation), is refused with the field and its value.
/// </summary>
public sealed record Qwen2Config(
    int HiddenSize, int IntermediateSize, int Layers, int Heads, int KvHeads, int VocabSize, double RmsNormEps,
    double RopeTheta, int MaxPositionEmbeddings, bool TieWordEmbeddings, string TorchDtype)
{
    public const string FileName = "config.json";

    /// <summary>The file as read, so that an export writes back every field the engine does not use.</summary>
    public JsonObject Source { get; init; } = new();

    public int HeadDim => HiddenSize / Heads;

    public static Qwen2Config Read(string directory)
    {
        var path = Path.Combine(Path.GetFullPath(directory), FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no {FileName} (is {directory} a Hugging Face model directory?).", path);
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw Bad(path, "it is not a JSON object");
        }
        catch (JsonException e)
        {
            throw Bad(path, $"it is not valid JSON ({e.Message})");
        }

        var architectures = json["architectures"] is JsonArray a ? a.Select(n => n?.GetValue<string>()).ToList() : [];
        var modelType = Text(json, path, "model_type", required: false);
        if (!architectures.Contains("Qwen2ForCausalLM") && modelType != "qwen2")
            throw Bad(path, $"architectures [{string.Join(", ", architectures)}] and model_type '{modelType}' name no Qwen2 model (Qwen2ForCausalLM, qwen2): the engine implements Qwen2's decoder only");
        if (json["use_sliding_window"] is JsonValue sliding && sliding.GetValue<bool>())
            throw Bad(path, "use_sliding_window is true: the engine has no sliding-window attention");
        if (json["rope_scaling"] is JsonNode scaling && scaling.GetValueKind() != JsonValueKind.Null)
            throw Bad(path, $"rope_scaling is {scaling.ToJsonString()}: the engine implements plain rotary positions only");
        if (Text(json, path, "hidden_act", required: false) is { } act && act != "silu")
            throw Bad(path, $"hidden_act is '{act}': the engine's MLP is SwiGLU (silu)");

        var config = new Qwen2Config(
            Int(json, path, "hidden_size"), Int(json, path, "intermediate_size"), Int(json, path, "num_hidden_layers"),
            Int(json, path, "num_attention_heads"), json.ContainsKey("num_key_value_heads") ? Int(json, path, "num_key_value_heads") : Int(json, path, "num_attention_heads"),
            Int(json, path, "vocab_size"), Number(json, path, "rms_norm_eps"), json.ContainsKey("rope_theta") ? Number(json, path, "rope_theta") : 10_000,
            Int(json, path, "max_position_embeddings"), json["tie_word_embeddings"] is JsonValue tie && tie.GetValue<bool>(),
            Text(json, path, "torch_dtype", required: false) ?? "float32") { Source = json };
        if (config.HiddenSize % config.Heads != 0)
            throw Bad(path, $"hidden_size {config.HiddenSize} is not a multiple of num_attention_heads {config.Heads}");
        if (config.Heads % config.KvHeads != 0)
            throw Bad(path, $"num_attention_heads {config.Heads} is not a multiple of num_key_value_heads {config.KvHeads}");
        if (json["head_dim"] is JsonValue headDim && headDim.GetValue<int>() != config.HeadDim)
            throw Bad(path, $"head_dim is {headDim.GetValue<int>()}, not hidden_size / num_attention_heads = {config.HeadDim}: the engine derives it");
        return config;
    }

    /// <summary>The engine's model of this shape, for sequences of at most <paramref name="maxSeqLen"/> tokens (the model's own limit if null).</summary>
    public ModelConfig ToModelConfig(int? maxSeqLen = null)
    {
        if (maxSeqLen > MaxPositionEmbeddings)
            throw new ArgumentOutOfRangeException(nameof(maxSeqLen), maxSeqLen, $"The model takes at most max_position_embeddings = {MaxPositionEmbeddings} tokens.");
        return new ModelConfig
        {
            VocabSize = VocabSize, DModel = HiddenSize, Layers = Layers, Heads = Heads, KvHeads = KvHeads, DFf = IntermediateSize,
            MaxSeqLen = maxSeqLen ?? MaxPositionEmbeddings, RopeTheta = RopeTheta, NormEps = RmsNormEps,
            TieEmbeddings = TieWordEmbeddings, AttentionBias = true,
        };
    }

    /// <summary>The safetensors dtype of <see cref="TorchDtype"/>.</summary>
    public SafeTensorsDType StoredDType => TorchDtype switch
    {
        "bfloat16" => SafeTensorsDType.BF16,
        "float16" => SafeTensorsDType.F16,
        _ => SafeTensorsDType.F32,
    };

    /// <summary>Writes <c>config.json</c> into <paramref name="directory"/>: the source's fields, torch_dtype set to <paramref name="dtype"/>.</summary>
    public void Write(string directory, SafeTensorsDType dtype)
    {
        var json = (JsonObject)Source.DeepClone();
        json["torch_dtype"] = dtype switch { SafeTensorsDType.BF16 => "bfloat16", SafeTensorsDType.F16 => "float16", _ => "float32" };
        File.WriteAllText(Path.Combine(directory, FileName), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static int Int(JsonObject json, string path, string field) =>
        json[field] is JsonValue v && v.TryGetValue<int>(out var n) && n > 0 ? n : throw Bad(path, $"{field} is {Shown(json[field])}, not a positive integer");

    private static double Number(JsonObject json, string path, string field) =>
        json[field] is JsonValue v && v.TryGetValue<double>(out var x) && x > 0 ? x : throw Bad(path, $"{field} is {Shown(json[field])}, not a positive number");

    private static string? Text(JsonObject json, string path, string field, bool required) => json[field] switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        null when !required => null,
        var other => throw Bad(path, $"{field} is {Shown(other)}, not a string"),
    };

    private static string Shown(JsonNode? node) => node is null ? "missing" : node.ToJsonString();

    private static InvalidDataException Bad(string path, string problem) => new($"{path}: {problem}.");
}
