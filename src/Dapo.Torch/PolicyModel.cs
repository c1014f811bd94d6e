using System.Runtime.InteropServices;
using Dapo.Torch.Native;

namespace Dapo.Torch;

/// <summary>A named parameter tensor of the model.</summary>
public sealed record ParameterInfo(int Index, string Name, int[] Shape)
{
    public int ElementCount => Shape.Aggregate(1, (a, b) => a * b);
}

/// <summary>
/// A language-model policy in the native engine: sample from it, score sequences with gradients, move its weights.
/// Not safe for concurrent use (the engine serialises calls on one model). Dispose it to free native memory.
/// </summary>
public sealed unsafe class PolicyModel : IDisposable
{
    internal ModelHandle Handle { get; }

    /// <summary>The configuration the model was created with.</summary>
    public ModelConfig Config { get; }

    /// <summary>Parameter tensors, in the engine's fixed order.</summary>
    public IReadOnlyList<ParameterInfo> Parameters { get; }

    /// <summary>Total number of weights.</summary>
    public long ParameterElementCount => Parameters.Sum(p => (long)p.ElementCount);

    private PolicyModel(ModelHandle handle)
    {
        Handle = handle;
        NativeMethods.Check(NativeMethods.dapo_model_get_config(handle, out var config));
        Config = ModelConfig.FromNative(config);
        var count = NativeMethods.Check(NativeMethods.dapo_model_param_count(handle));
        var parameters = new List<ParameterInfo>();
        var name = stackalloc byte[256];
        var shape = stackalloc long[8];
        for (var i = 0; i < count; i++)
        {
            NativeMethods.Check(NativeMethods.dapo_model_param_info(handle, i, name, 256, shape, 8, out var ndim));
            var dims = new int[ndim];
            for (var d = 0; d < ndim; d++) dims[d] = checked((int)shape[d]);
            parameters.Add(new ParameterInfo(i, Marshal.PtrToStringUTF8((IntPtr)name) ?? "", dims));
        }
        Parameters = parameters;
    }

    /// <summary>A new model initialised deterministically from <see cref="ModelConfig.Seed"/>.</summary>
    public static PolicyModel Create(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var native = config.ToNative();
        return new PolicyModel(NativeMethods.Check(NativeMethods.dapo_model_create(in native)));
    }

    /// <summary>
    /// A new model on <paramref name="device"/> with the architecture and weights of <paramref name="weights"/> (from
    /// <see cref="ExportWeights"/>; saved weights do not say where they were made, so a GPU's load on a CPU and back).
    /// </summary>
    public static PolicyModel FromWeights(ReadOnlySpan<byte> weights, DeviceType device = DeviceType.Cpu, int deviceIndex = 0)
    {
        fixed (byte* p = weights) return FromWeights(p, weights.Length, device, deviceIndex);
    }

    /// <inheritdoc cref="FromWeights(ReadOnlySpan{byte}, DeviceType, int)"/>
    public static PolicyModel FromWeights(NativeBytes weights, DeviceType device = DeviceType.Cpu, int deviceIndex = 0) =>
        weights.Use((p, length) => FromWeights((byte*)p, length, device, deviceIndex));

    private static PolicyModel FromWeights(byte* weights, long length, DeviceType device, int deviceIndex)
    {
        var model = Create(TorchEngine.ReadConfig(weights, length) with { Device = device, DeviceIndex = deviceIndex });
        try
        {
            model.ImportWeights(weights, length);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Samples <see cref="SampleOptions.SamplesPerPrompt"/> responses for every prompt; response k belongs to prompt
    /// k / SamplesPerPrompt. Uses a key/value cache unless told not to.
    /// </summary>
    public IReadOnlyList<SampledResponse> Sample(IReadOnlyList<int[]> prompts, SampleOptions options)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        ThrowIfDisposed();
        var (tokens, lengths) = Flatten(prompts, nameof(prompts));
        var stops = options.StopTokens.ToArray();
        var seeds = options.PromptSeeds?.ToArray();
        if (seeds is not null && seeds.Length != prompts.Count)
            throw new ArgumentException($"PromptSeeds has {seeds.Length} seeds for {prompts.Count} prompts.", nameof(options));
        SamplesHandle samples;
        fixed (int* tokensPtr = tokens)
        fixed (long* lengthsPtr = lengths)
        fixed (int* stopsPtr = stops)
        fixed (ulong* seedsPtr = seeds)
        {
            var native = new NativeSampleOptions
            {
                SamplesPerPrompt = options.SamplesPerPrompt, MaxNewTokens = options.MaxNewTokens,
                Temperature = options.Temperature, TopP = options.TopP, StopTokens = stopsPtr,
                StopTokenCount = stops.Length, Seed = options.Seed, UseKvCache = options.UseKvCache ? 1 : 0,
                PromptSeeds = seedsPtr,
            };
            samples = NativeMethods.Check(NativeMethods.dapo_model_sample(
                Handle, tokensPtr, tokens.Length, lengthsPtr, lengths.Length, in native));
        }
        using (samples)
        {
            var count = checked((int)NativeMethods.Check(NativeMethods.dapo_samples_count(samples)));
            var total = checked((int)NativeMethods.Check(NativeMethods.dapo_samples_total_tokens(samples)));
            var outTokens = new int[total];
            var outLogprobs = new float[total];
            var outLengths = new long[count];
            var outTruncated = new byte[count];
            fixed (int* t = outTokens)
            fixed (float* l = outLogprobs)
            fixed (long* n = outLengths)
            fixed (byte* tr = outTruncated)
                NativeMethods.Check(NativeMethods.dapo_samples_copy(samples, t, l, total, n, tr, count));
            var results = new SampledResponse[count];
            var offset = 0;
            for (var i = 0; i < count; i++)
            {
                var len = (int)outLengths[i];
                results[i] = new SampledResponse(i / options.SamplesPerPrompt, outTokens[offset..(offset + len)],
                    outLogprobs[offset..(offset + len)], outTruncated[i] != 0);
                offset += len;
            }
            return results;
        }
    }

    /// <summary>
    /// Per-token log-probabilities (at <paramref name="temperature"/>, the convention of sampling) and entropies of
    /// the masked tokens of each sequence. With <paramref name="requiresGrad"/> the result keeps the graph for one
    /// <see cref="ScoreResult.Backward"/>.
    /// </summary>
    public ScoreResult Score(IReadOnlyList<ScoredSequence> sequences, double temperature = 1.0, bool requiresGrad = false)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        ThrowIfDisposed();
        var total = 0;
        foreach (var s in sequences)
        {
            if (s.Tokens is null || s.ResponseMask is null)
                throw new ArgumentException("Every scored sequence needs tokens and a response mask.", nameof(sequences));
            if (s.Tokens.Length != s.ResponseMask.Length)
                throw new ArgumentException(
                    $"A sequence has {s.Tokens.Length} tokens but a response mask of {s.ResponseMask.Length}.", nameof(sequences));
            total = checked(total + s.Tokens.Length);
        }
        var tokens = new int[total];
        var mask = new byte[total];
        var lengths = new long[sequences.Count];
        var counts = new int[sequences.Count];
        var offset = 0;
        for (var i = 0; i < sequences.Count; i++)
        {
            var s = sequences[i];
            s.Tokens.CopyTo(tokens, offset);
            for (var t = 0; t < s.Tokens.Length; t++)
                if (s.ResponseMask[t]) { mask[offset + t] = 1; counts[i]++; }
            lengths[i] = s.Tokens.Length;
            offset += s.Tokens.Length;
        }
        fixed (int* t = tokens)
        fixed (byte* m = mask)
        fixed (long* l = lengths)
        {
            var handle = NativeMethods.Check(NativeMethods.dapo_model_score(
                Handle, t, m, total, l, lengths.Length, temperature, requiresGrad ? 1 : 0));
            return new ScoreResult(handle, counts);
        }
    }

    /// <summary>The weights as bytes, with the configuration, for <see cref="ImportWeights(NativeBytes)"/> or
    /// <see cref="FromWeights(NativeBytes)"/>; in native memory (fp32: 4 bytes a parameter, past 2 GB from 537M
    /// parameters).</summary>
    public NativeBytes ExportWeights()
    {
        ThrowIfDisposed();
        return NativeBytes.Of(NativeMethods.Check(NativeMethods.dapo_model_export_weights(Handle)));
    }

    /// <summary>Replaces the weights. Rejects weights of another architecture and leaves the model unchanged then.</summary>
    public void ImportWeights(ReadOnlySpan<byte> weights)
    {
        fixed (byte* p = weights) ImportWeights(p, weights.Length);
    }

    /// <inheritdoc cref="ImportWeights(ReadOnlySpan{byte})"/>
    public void ImportWeights(NativeBytes weights) => weights.Use((p, length) =>
    {
        ImportWeights((byte*)p, length);
        return 0;
    });

    private void ImportWeights(byte* weights, long length)
    {
        ThrowIfDisposed();
        NativeMethods.Check(NativeMethods.dapo_model_import_weights(Handle, weights, length));
    }

    /// <summary>The logits of every position of <paramref name="tokens"/> (row t: the distribution of token t + 1), flat, tokens × vocabulary.</summary>
    public float[] Logits(ReadOnlySpan<int> tokens)
    {
        ThrowIfDisposed();
        var logits = new float[checked(tokens.Length * Config.VocabSize)];
        fixed (int* t = tokens)
        fixed (float* l = logits)
            NativeMethods.Check(NativeMethods.dapo_model_logits(Handle, t, tokens.Length, l, logits.Length));
        return logits;
    }

    public float[] ReadParameter(int index)
    {
        var values = new float[ParameterAt(index).ElementCount];
        fixed (float* p = values)
            NativeMethods.Check(NativeMethods.dapo_model_param_read(Handle, index, p, values.Length));
        return values;
    }

    public void WriteParameter(int index, ReadOnlySpan<float> values)
    {
        ParameterAt(index);
        fixed (float* p = values)
            NativeMethods.Check(NativeMethods.dapo_model_param_write(Handle, index, p, values.Length));
    }

    /// <summary>The gradient accumulated by <see cref="ScoreResult.Backward"/> since the last step or <see cref="ZeroGrad"/>.</summary>
    public float[] ReadGradient(int index)
    {
        var values = new float[ParameterAt(index).ElementCount];
        fixed (float* p = values)
            NativeMethods.Check(NativeMethods.dapo_model_grad_read(Handle, index, p, values.Length));
        return values;
    }

    public void ZeroGrad()
    {
        ThrowIfDisposed();
        NativeMethods.Check(NativeMethods.dapo_model_zero_grad(Handle));
    }

    public void Dispose() => Handle.Dispose();

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Handle.IsClosed, this);

    private ParameterInfo ParameterAt(int index)
    {
        ThrowIfDisposed();
        if ((uint)index >= (uint)Parameters.Count)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"The model has {Parameters.Count} parameters.");
        return Parameters[index];
    }

    private static (int[] Tokens, long[] Lengths) Flatten(IReadOnlyList<int[]> sequences, string name)
    {
        var lengths = new long[sequences.Count];
        var total = 0;
        for (var i = 0; i < sequences.Count; i++)
        {
            var s = sequences[i] ?? throw new ArgumentException($"Sequence {i} is null.", name);
            lengths[i] = s.Length;
            total = checked(total + s.Length);
        }
        var tokens = new int[total];
        var offset = 0;
        foreach (var s in sequences)
        {
            s.CopyTo(tokens, offset);
            offset += s.Length;
        }
        return (tokens, lengths);
    }
}
