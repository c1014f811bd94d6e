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
    /// The machine's fp32 matmul rate on the CPU with the current thread count, best of <paramref name="repeats"/>
    /// n x n x n products: the limit that benchmarks compare the engine's throughput with.
    /// </summary>
    public static double MatmulGflops(int n = 2048, int repeats = 5)
    {
        var gflops = NativeMethods.dapo_matmul_gflops(n, repeats);
        return gflops >= 0 ? gflops : throw NativeMethods.TakeError();
    }

    /// <summary>The model configuration at the head of exported weights or a saved training state.</summary>
    public static ModelConfig ReadConfig(ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data)
        {
            NativeMethods.Check(NativeMethods.dapo_read_config(p, data.Length, out var config));
            return ModelConfig.FromNative(config);
        }
    }
}
