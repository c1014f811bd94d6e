using Dapo.Torch.Native;

namespace Dapo.Torch;

/// <summary>Process-wide settings and diagnostics of the native engine.</summary>
public static unsafe class TorchEngine
{
    /// <summary>
    /// Intra-op threads of every model in the process. Starts at the CPUs this process may use (or DAPO_THREADS).
    /// </summary>
    public static int Threads
    {
        get => NativeMethods.dapo_get_num_threads();
        set => NativeMethods.Check(NativeMethods.dapo_set_num_threads(value));
    }

    /// <summary>Native objects (models, optimizers, scores, sample sets, buffers) created and not yet freed.</summary>
    public static long LiveNativeObjects => NativeMethods.dapo_live_objects();

    /// <summary>True when the native library was built against a CUDA libtorch and a GPU is present.</summary>
    public static bool CudaAvailable => NativeMethods.dapo_cuda_available() == 1;

    /// <summary>
    /// The machine's fp32 matmul rate on <paramref name="device"/> (the CPU: with the current thread count), best of
    /// <paramref name="repeats"/> n x n x n products: the limit that benchmarks compare the engine's throughput with.
    /// </summary>
    public static double MatmulGflops(int n = 2048, int repeats = 5, DeviceType device = DeviceType.Cpu)
    {
        var gflops = NativeMethods.dapo_matmul_gflops(n, repeats, (int)device);
        return gflops >= 0 ? gflops : throw NativeMethods.TakeError();
    }

    /// <summary>
    /// Bytes of the C heap (glibc malloc, every arena) in use and held from the system. Leak checks count the first:
    /// unlike resident memory, it does not include freed blocks the allocator keeps for reuse.
    /// </summary>
    public static (long InUse, long Held) HeapBytes()
    {
        NativeMethods.Check(NativeMethods.dapo_heap_stats(out var inUse, out var held));
        return (inUse, held);
    }

    /// <summary>The BLAS the engine's matmuls run on and the kernel it uses (fixed for the life of the process).</summary>
    public static BlasInfo Blas => BlasInfoOnce.Value;

    private static readonly Lazy<BlasInfo> BlasInfoOnce = new(() =>
    {
        var core = new byte[64];
        var config = new byte[256];
        int isOpenBlas;
        fixed (byte* c = core)
        fixed (byte* g = config)
            isOpenBlas = NativeMethods.dapo_blas_info(c, core.Length, g, config.Length);
        if (isOpenBlas < 0) throw NativeMethods.TakeError();
        static string Text(byte[] bytes) => System.Text.Encoding.UTF8.GetString(bytes, 0, Math.Max(0, Array.IndexOf(bytes, (byte)0)));
        return new BlasInfo(isOpenBlas == 1, Text(core), Text(config), NativeMethods.BlasSelection);
    });

    /// <summary>
    /// The clock the cores run at under load, in GHz, measured by <paramref name="threads"/> threads at once (each
    /// times a chain of dependent additions, one per cycle); 0 where it cannot be measured (not x86-64). In a
    /// virtual machine the nominal clock /proc/cpuinfo shows can be far from the real one.
    /// </summary>
    public static double MeasureClockGhz(int threads)
    {
        var ghz = NativeMethods.dapo_measure_clock_ghz(threads);
        return ghz >= 0 ? ghz : throw NativeMethods.TakeError();
    }

    /// <summary>One line for start-up logs: threads, BLAS and its kernel, and how the kernel was chosen.</summary>
    public static string Describe() => $"engine: {Threads} thread(s), {Blas}";

    /// <summary>The model configuration at the head of exported weights or a saved training state.</summary>
    public static ModelConfig ReadConfig(ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data) return ReadConfig(p, data.Length);
    }

    internal static ModelConfig ReadConfig(byte* data, long length)
    {
        NativeMethods.Check(NativeMethods.dapo_read_config(data, length, out var config));
        return ModelConfig.FromNative(config);
    }
}

/// <summary>The BLAS library under libtorch.</summary>
/// <param name="IsOpenBlas">False for another BLAS (the other fields are then empty).</param>
/// <param name="Kernel">OpenBLAS's core name, e.g. "SkylakeX"; "Prescott" is its SSE3 fallback.</param>
/// <param name="Config">OpenBLAS's build description, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY ...".</param>
/// <param name="Selection">What this process asked OpenBLAS for, and why.</param>
public sealed record BlasInfo(bool IsOpenBlas, string Kernel, string Config, BlasKernelSelection Selection)
{
    /// <summary>True when OpenBLAS runs another kernel than the one asked for (it did not know that name).</summary>
    public bool KernelDiffersFromRequest =>
        IsOpenBlas && Selection.Requested is { } requested && !string.Equals(requested, Kernel, StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc />
    public override string ToString()
    {
        if (!IsOpenBlas) return "BLAS: not OpenBLAS (its kernel is not known)";
        var version = Config.Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(2);
        var line = $"BLAS: {string.Join(' ', version)}, kernel {Kernel} ({Selection.Reason})";
        return KernelDiffersFromRequest
            ? $"{line}; WARNING: {Selection.Requested} was asked for and OpenBLAS does not know it, so it runs {Kernel}"
            : line;
    }
}
