using Dapo.Torch.Native;

namespace Dapo.Torch;

/// <summary>Where the engine keeps its tensors. In JSON (a recipe, <c>--override</c>) by name: "Cpu" or "Cuda".</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<DeviceType>))]
public enum DeviceType
{
    Cpu = 0,
    /// <summary>Needs the native library built against a CUDA libtorch (see the README).</summary>
    Cuda = 1,
}

/// <summary>
/// Shape of a Qwen2-style decoder: token embedding, <see cref="Layers"/> pre-norm blocks of grouped-query attention
/// with rotary positions and a SwiGLU MLP, final RMSNorm, LM head. The engine checks every field on creation and
/// names the one that is wrong.
/// </summary>
public sealed record ModelConfig
{
    public required int VocabSize { get; init; }
    public required int DModel { get; init; }
    public required int Layers { get; init; }
    public required int Heads { get; init; }
    /// <summary>Key/value heads; divides <see cref="Heads"/> (grouped-query attention). Equal to Heads is plain multi-head.</summary>
    public required int KvHeads { get; init; }
    /// <summary>Hidden width of the SwiGLU MLP.</summary>
    public required int DFf { get; init; }
    /// <summary>Longest sequence (prompt plus response) the model accepts.</summary>
    public required int MaxSeqLen { get; init; }
    /// <summary>Rotary base. Qwen2 uses 1e6 for long contexts; 1e4 suits the short sequences of tiny models.</summary>
    public double RopeTheta { get; init; } = 10_000;
    public double NormEps { get; init; } = 1e-6;
    /// <summary>Reuse the token embedding as the LM head.</summary>
    public bool TieEmbeddings { get; init; }
    /// <summary>Bias on the q, k and v projections, as in Qwen2.</summary>
    public bool AttentionBias { get; init; } = true;
    /// <summary>Seed of the deterministic initialisation.</summary>
    public ulong Seed { get; init; }
    public DeviceType Device { get; init; } = DeviceType.Cpu;
    public int DeviceIndex { get; init; }

    public int HeadDim => DModel / Heads;

    /// <summary>Number of parameters: embedding (and an untied head), per block the fused q/k/v projection with its
    /// bias, the output projection, gate/up/down and two norms, and the final norm.</summary>
    public long ParameterCount
    {
        get
        {
            long d = DModel, qkv = DModel + 2L * KvHeads * HeadDim;
            var block = d * qkv + (AttentionBias ? qkv : 0) + d * d + 3L * DFf * d + 2 * d;
            return (TieEmbeddings ? 1 : 2) * (long)VocabSize * d + Layers * block + d;
        }
    }

    /// <summary>Bytes per parameter the learner holds: fp32 weights, gradients and AdamW's two moments.</summary>
    public const int LearnerBytesPerParameter = 16;

    /// <summary>Bytes per parameter a rollout worker holds: its fp32 copy of the policy.</summary>
    public const int RolloutBytesPerParameter = 4;

    internal NativeModelConfig ToNative() => new()
    {
        VocabSize = VocabSize, DModel = DModel, Layers = Layers, Heads = Heads, KvHeads = KvHeads, DFf = DFf,
        MaxSeqLen = MaxSeqLen, RopeTheta = RopeTheta, NormEps = NormEps, TieEmbeddings = TieEmbeddings ? 1 : 0,
        AttentionBias = AttentionBias ? 1 : 0, Seed = Seed, DeviceType = (int)Device, DeviceIndex = DeviceIndex,
    };

    internal static ModelConfig FromNative(in NativeModelConfig c) => new()
    {
        VocabSize = checked((int)c.VocabSize), DModel = checked((int)c.DModel), Layers = checked((int)c.Layers),
        Heads = checked((int)c.Heads), KvHeads = checked((int)c.KvHeads), DFf = checked((int)c.DFf),
        MaxSeqLen = checked((int)c.MaxSeqLen), RopeTheta = c.RopeTheta, NormEps = c.NormEps,
        TieEmbeddings = c.TieEmbeddings != 0, AttentionBias = c.AttentionBias != 0, Seed = c.Seed,
        Device = (DeviceType)c.DeviceType, DeviceIndex = c.DeviceIndex,
    };
}
