using System.Globalization;

namespace Dapo.Torch;

/// <summary>
/// The CPU's theoretical fp32 peak: cores × FMA units per core × vector lanes × 2 flops per FMA × clock. Benchmarks
/// report the engine as a fraction of it, beside the measured matmul rate: a ratio to a measured baseline alone
/// hides a baseline that is itself slow (a BLAS on the wrong kernel).
/// </summary>
/// <param name="Cores">Physical cores the engine's threads run on.</param>
/// <param name="FmaUnits">Vector FMA units per core.</param>
/// <param name="Lanes">fp32 lanes per FMA unit (its width in bits / 32).</param>
/// <param name="Ghz">Clock the cores run at under load.</param>
/// <param name="Derivation">Where the units and lanes come from, in words.</param>
public sealed record CpuPeak(int Cores, int FmaUnits, int Lanes, double Ghz, string Derivation)
{
    /// <summary>fp32 GFLOP/s at the peak.</summary>
    public double Gflops => Cores * FmaUnits * Lanes * 2 * Ghz;

    /// <summary>"2 cores × 2 FMA units × 8 lanes × 2 × 3.70 GHz = 236.8 GFLOP/s".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Cores} core(s) x {FmaUnits} FMA unit(s) x {Lanes} fp32 lanes x 2 flops x {Ghz:F2} GHz = {Gflops:F1} GFLOP/s ({Derivation})");

    /// <summary>
    /// Units and width from the CPU's vendor, family and features, as the vendors document their cores:
    /// <list type="bullet">
    /// <item>Intel with AVX-512: two 512-bit FMA units (Xeon Scalable from Skylake-SP on; some low-end parts and
    /// client cores have one, so this is an upper bound there);</item>
    /// <item>AMD Zen 4 (family 25 with AVX-512): AVX-512 on two 256-bit FMA units; Zen 5 (family 26): two 512-bit;
    /// Zen 1 (family 23, models below 0x30): two 128-bit; Zen 2 and 3: two 256-bit;</item>
    /// <item>other AVX2 + FMA cores (Intel Haswell on): two 256-bit FMA units;</item>
    /// <item>AVX without FMA (Sandy Bridge): one 256-bit multiplier and one adder, counted as one FMA unit;</item>
    /// <item>otherwise SSE: one 128-bit multiplier and one adder.</item>
    /// </list>
    /// </summary>
    public static (int FmaUnits, int Lanes, string Derivation) Units(CpuDescription cpu)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        var amd = cpu.Vendor is "AuthenticAMD" or "HygonGenuine";
        if (amd && cpu.Family >= 26 && cpu.Has("avx512f")) return (2, 16, "AMD Zen 5 or later: two 512-bit FMA units");
        if (amd && cpu.Family == 25 && cpu.Has("avx512f")) return (2, 8, "AMD Zen 4: AVX-512 on two 256-bit FMA units");
        if (amd && cpu.Family == 23 && cpu.Model < 0x30) return (2, 4, "AMD Zen 1: two 128-bit FMA units");
        if (!amd && cpu.Has("avx512f")) return (2, 16, "Intel AVX-512: two 512-bit FMA units");
        if (cpu.Has("avx2", "fma")) return (2, 8, "AVX2: two 256-bit FMA units");
        if (cpu.Has("avx")) return (1, 8, "AVX without FMA: one 256-bit multiplier and one adder");
        return (1, 4, "SSE: one 128-bit multiplier and one adder");
    }

    /// <summary>The peak of <paramref name="threads"/> engine threads on <paramref name="cpu"/> at <paramref name="ghz"/>:
    /// one core per thread, at most the physical cores this process may use.</summary>
    public static CpuPeak Of(CpuDescription cpu, int threads, double ghz)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threads);
        var (units, lanes, derivation) = Units(cpu);
        var cores = Math.Max(1, Math.Min(threads, Environment.ProcessorCount / cpu.ThreadsPerCore));
        return new CpuPeak(cores, units, lanes, ghz, derivation);
    }
}
