using System.Reflection;
using System.Runtime.InteropServices;

namespace Dapo.Torch.Native;

/// <summary>
/// Every import of the native engine (include/dapo_torch.h). Calls return a sentinel on failure; the
/// <c>Check</c> helpers turn it into a <see cref="TorchException"/> carrying the native message.
/// </summary>
internal static unsafe partial class NativeMethods
{
    internal const string Library = "dapo_torch";

    /// <summary>Environment variable naming the native library file, overriding the search next to the assembly.</summary>
    internal const string LibraryPathVariable = "DAPO_TORCH_LIBRARY";

    static NativeMethods()
    {
        // libgomp reads OMP_WAIT_POLICY once, when it loads with the engine. Unless the user chose a policy, idle
        // OpenMP threads sleep instead of spinning: spinning threads of two processes (or of .NET's own threads) on
        // the same cores starve each other. Measured here with a second training process on the 2 cores: a held-out
        // evaluation took 97 s spinning, 5 s passive.
        if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is null) setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
        // OpenBLAS chooses its kernel when it loads with the engine: the best one for this CPU (see OpenBlasKernel).
        BlasSelection = OpenBlasKernel.Select(Environment.GetEnvironmentVariable(OpenBlasKernel.Variable), CpuDescription.Current());
        if (BlasSelection.Requested is { } kernel) setenv(OpenBlasKernel.Variable, kernel, 0);
        NativeLibrary.SetDllImportResolver(typeof(NativeMethods).Assembly, Resolve);
    }

    /// <summary>The BLAS kernel this process asked for before the engine loaded, and why.</summary>
    internal static BlasKernelSelection BlasSelection { get; }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != Library) return IntPtr.Zero;
        var explicitPath = Environment.GetEnvironmentVariable(LibraryPathVariable);
        if (!string.IsNullOrEmpty(explicitPath))
        {
            if (!File.Exists(explicitPath))
                throw new DllNotFoundException($"{LibraryPathVariable} names '{explicitPath}', which does not exist.");
            return NativeLibrary.Load(explicitPath);
        }
        var besideAssembly = Path.Combine(AppContext.BaseDirectory, "libdapo_torch.so");
        if (File.Exists(besideAssembly)) return NativeLibrary.Load(besideAssembly);
        if (NativeLibrary.TryLoad("libdapo_torch.so", assembly, searchPath, out var handle)) return handle;
        throw new DllNotFoundException(
            $"The native engine libdapo_torch.so was not found next to the application ({AppContext.BaseDirectory}) " +
            $"or on the library path. Build it with ./dapo.sh setup, or set {LibraryPathVariable} to its path.");
    }

    internal static void Check(int status)
    {
        if (status != 0) throw TakeError();
    }

    internal static long Check(long value) => value >= 0 ? value : throw TakeError();

    internal static T Check<T>(T handle) where T : SafeHandle
    {
        if (!handle.IsInvalid) return handle;
        handle.Dispose();
        throw TakeError();
    }

    internal static TorchException TakeError()
    {
        var message = dapo_take_error();
        if (message == null) return new TorchException("The native engine reported a failure without a message.");
        try
        {
            return new TorchException(Marshal.PtrToStringUTF8((IntPtr)message) ?? "");
        }
        finally
        {
            dapo_string_free(message);
        }
    }

    [LibraryImport(Library)] internal static partial byte* dapo_take_error();
    [LibraryImport(Library)] internal static partial void dapo_string_free(byte* message);
    [LibraryImport(Library)] internal static partial int dapo_set_num_threads(int n);
    [LibraryImport(Library)] internal static partial int dapo_get_num_threads();
    [LibraryImport(Library)] internal static partial long dapo_live_objects();
    [LibraryImport(Library)] internal static partial int dapo_cuda_available();
    [LibraryImport(Library)] internal static partial double dapo_matmul_gflops(long n, int repeats, int deviceType);
    [LibraryImport(Library)] internal static partial int dapo_heap_stats(out long inUse, out long held);
    [LibraryImport(Library)] internal static partial int dapo_blas_info(byte* core, long coreCapacity, byte* config, long configCapacity);
    [LibraryImport(Library)] internal static partial double dapo_measure_clock_ghz(int threads);

    [LibraryImport(Library)] internal static partial ModelHandle dapo_model_create(in NativeModelConfig config);
    [LibraryImport(Library)] internal static partial void dapo_model_free(IntPtr model);
    [LibraryImport(Library)] internal static partial int dapo_model_get_config(ModelHandle model, out NativeModelConfig config);
    [LibraryImport(Library)] internal static partial long dapo_model_param_count(ModelHandle model);
    [LibraryImport(Library)]
    internal static partial int dapo_model_param_info(ModelHandle model, long index, byte* name, long nameCapacity,
        long* shape, int shapeCapacity, out int ndim);
    [LibraryImport(Library)] internal static partial int dapo_model_param_read(ModelHandle model, long index, float* output, long count);
    [LibraryImport(Library)] internal static partial int dapo_model_param_write(ModelHandle model, long index, float* values, long count);
    [LibraryImport(Library)] internal static partial int dapo_model_logits(ModelHandle model, int* tokens, long count, float* output, long outputCount);
    [LibraryImport(Library)] internal static partial int dapo_model_grad_read(ModelHandle model, long index, float* output, long count);
    [LibraryImport(Library)] internal static partial int dapo_model_zero_grad(ModelHandle model);
    [LibraryImport(Library)] internal static partial BufferHandle dapo_model_export_weights(ModelHandle model);
    [LibraryImport(Library)] internal static partial int dapo_model_import_weights(ModelHandle model, byte* data, long size);
    [LibraryImport(Library)] internal static partial int dapo_read_config(byte* data, long size, out NativeModelConfig config);

    [LibraryImport(Library)]
    internal static partial SamplesHandle dapo_model_sample(ModelHandle model, int* promptTokens, long tokenCount,
        long* promptLengths, long promptCount, in NativeSampleOptions options);
    [LibraryImport(Library)] internal static partial long dapo_samples_count(SamplesHandle samples);
    [LibraryImport(Library)] internal static partial long dapo_samples_total_tokens(SamplesHandle samples);
    [LibraryImport(Library)]
    internal static partial int dapo_samples_copy(SamplesHandle samples, int* tokens, float* logprobs, long tokenCount,
        long* lengths, byte* truncated, long sampleCount);
    [LibraryImport(Library)] internal static partial void dapo_samples_free(IntPtr samples);

    [LibraryImport(Library)]
    internal static partial ScoreHandle dapo_model_score(ModelHandle model, int* tokens, byte* responseMask, long tokenCount,
        long* sequenceLengths, long sequenceCount, double temperature, int requiresGrad);
    [LibraryImport(Library)] internal static partial long dapo_score_count(ScoreHandle score);
    [LibraryImport(Library)] internal static partial int dapo_score_copy(ScoreHandle score, float* logprobs, float* entropies, long count);
    [LibraryImport(Library)] internal static partial int dapo_score_backward(ScoreHandle score, float* coefficients, long count);
    [LibraryImport(Library)] internal static partial void dapo_score_free(IntPtr score);

    [LibraryImport(Library)] internal static partial OptimizerHandle dapo_optim_adamw_create(ModelHandle model, in NativeAdamWOptions options);
    [LibraryImport(Library)] internal static partial int dapo_optim_step(OptimizerHandle optim, double lr, out double gradNorm, out int applied);
    [LibraryImport(Library)] internal static partial long dapo_optim_step_count(OptimizerHandle optim);
    [LibraryImport(Library)] internal static partial void dapo_optim_free(IntPtr optim);

    [LibraryImport(Library)] internal static partial BufferHandle dapo_state_save(ModelHandle model, OptimizerHandle optim);
    [LibraryImport(Library)] internal static partial int dapo_state_load(ModelHandle model, OptimizerHandle optim, byte* data, long size);

    [LibraryImport(Library)] internal static partial long dapo_buffer_size(BufferHandle buffer);
    [LibraryImport(Library)] internal static partial byte* dapo_buffer_data(BufferHandle buffer);
    [LibraryImport(Library)] internal static partial void dapo_buffer_free(IntPtr buffer);
}

[StructLayout(LayoutKind.Sequential)]
internal struct NativeModelConfig
{
    public long VocabSize, DModel, Layers, Heads, KvHeads, DFf, MaxSeqLen;
    public double RopeTheta, NormEps;
    public int TieEmbeddings, AttentionBias;
    public ulong Seed;
    public int DeviceType, DeviceIndex;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativeSampleOptions
{
    public long SamplesPerPrompt, MaxNewTokens;
    public double Temperature, TopP;
    public int* StopTokens;
    public long StopTokenCount;
    public ulong Seed;
    public int UseKvCache;
    public ulong* PromptSeeds;
}

[StructLayout(LayoutKind.Sequential)]
internal struct NativeAdamWOptions
{
    public double Beta1, Beta2, Eps, WeightDecay, MaxGradNorm;
}
