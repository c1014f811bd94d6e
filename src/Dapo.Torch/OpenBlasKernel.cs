namespace Dapo.Torch;

/// <summary>How the BLAS kernel was chosen, decided before the native library loads.</summary>
/// <param name="Requested">The OpenBLAS core type this process asked for, or null when OpenBLAS chooses itself.</param>
/// <param name="Reason">Why, in words, for the start-up log.</param>
public sealed record BlasKernelSelection(string? Requested, string Reason);

/// <summary>
/// Chooses the OpenBLAS kernel (<c>OPENBLAS_CORETYPE</c>) from the CPU's features. OpenBLAS picks its kernel from
/// a table of CPU model numbers when it loads and falls back to its oldest x86-64 kernel, Prescott (SSE3), for a
/// model its release does not list: Debian 12's OpenBLAS 0.3.21 does not know Intel's Emerald Rapids (family 6,
/// model 207) and ran fp32 matmuls there at 32 GFLOP/s instead of 138 with the SkylakeX kernel.
/// </summary>
/// <remarks>
/// <para>For Intel CPUs the kernel follows from the features, by the rule OpenBLAS's own table applies to every Intel
/// model it knows: AVX-512 (F, BW, DQ, CD, VL) with BF16 → Cooperlake (the SkylakeX kernels plus bf16 ones),
/// AVX-512 → SkylakeX, AVX2 with FMA → Haswell, AVX → Sandybridge. So a known Intel CPU keeps the kernel OpenBLAS
/// would pick, and an unknown one gets the kernel its features allow instead of Prescott. AMD CPUs keep OpenBLAS's
/// choice where it knows their family (it recognises Zen by family, not model: 0.3.21 picks Cooperlake on a Zen 4).
/// A later family (Zen 5) gets the same rule as Intel except that AVX-512 always means SkylakeX: on a Zen 5 (family
/// 26, model 2) the Cooperlake kernel matched SkylakeX on large matmuls (about 380 GFLOP/s) but took 1.3-1.5x longer
/// per training step and sampled at 0.3-0.6 of its rate (`./dapo.sh bench engine --quick`, three runs each, 2026-12-04).
/// Other vendors keep OpenBLAS's choice.</para>
/// <para>OpenBLAS reads the variable once, when it loads with the engine; .NET's
/// <see cref="Environment.SetEnvironmentVariable(string, string)"/> does not reach native code on Linux, so
/// <see cref="Native.NativeMethods"/> sets it with libc's setenv before the first call into the engine. A value
/// the user set wins.</para>
/// </remarks>
public static class OpenBlasKernel
{
    /// <summary>The variable OpenBLAS reads.</summary>
    public const string Variable = "OPENBLAS_CORETYPE";

    /// <summary>The newest AMD family Debian 12's OpenBLAS (0.3.21) recognises: 25, Zen 3 and Zen 4.</summary>
    public const int LastKnownAmdFamily = 25;

    /// <summary>The kernel to ask for on <paramref name="cpu"/>, or null to keep OpenBLAS's own choice.</summary>
    public static string? Choose(CpuDescription cpu)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        var amd = cpu.Vendor is "AuthenticAMD" or "HygonGenuine";
        // AMD families up to Zen 4 (25) are in OpenBLAS 0.3.21's table; a later family (Zen 5 is 26) is not.
        if (!(cpu.Vendor == "GenuineIntel" || (amd && cpu.Family > LastKnownAmdFamily))) return null;
        if (cpu.HasAvx512) return cpu.Has("avx512_bf16") && !amd ? "Cooperlake" : "SkylakeX";
        if (cpu.Has("avx2", "fma")) return "Haswell";
        return cpu.Has("avx") ? "Sandybridge" : null;
    }

    /// <summary>The selection for this process: the user's <c>OPENBLAS_CORETYPE</c>, else <see cref="Choose"/> on
    /// the current CPU.</summary>
    public static BlasKernelSelection Select(string? fromEnvironment, CpuDescription? cpu)
    {
        if (!string.IsNullOrEmpty(fromEnvironment))
            return new BlasKernelSelection(fromEnvironment, $"{Variable}={fromEnvironment} from the environment");
        if (cpu is null) return new BlasKernelSelection(null, "OpenBLAS's own choice (no CPU description)");
        return Choose(cpu) is { } kernel
            ? new BlasKernelSelection(kernel, $"chosen by Dapo from the features of {cpu}")
            : new BlasKernelSelection(null, $"OpenBLAS's own choice for {cpu}");
    }
}
