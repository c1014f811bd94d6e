namespace Dapo.Torch.Tests;

/// <summary>The OpenBLAS kernel choice, on CPU descriptions recorded from /proc/cpuinfo of real machines.</summary>
public sealed class BlasKernelTests
{
    private const string CommonFlags =
        "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx " +
        "pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid tsc_known_freq pni pclmulqdq ssse3 " +
        "cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave rdrand hypervisor lahf_lm abm";

    private static string CpuInfo(string vendor, int family, int model, string name, string flags, string mhz = "2600.000") =>
        $"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: {name}\n" +
        $"stepping\t: 1\ncpu MHz\t\t: {mhz}\nflags\t\t: {CommonFlags} {flags}\n\n" +
        $"processor\t: 1\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\nflags\t\t: sse\n";

    /// <summary>The machine of the report: OpenBLAS 0.3.21 does not know model 207 and falls back to Prescott.</summary>
    public static readonly string EmeraldRapids = CpuInfo("GenuineIntel", 6, 207, "INTEL(R) XEON(R) PLATINUM 8581C CPU @ 2.10GHz",
        "fma avx f16c avx2 bmi1 bmi2 avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi " +
        "avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq avx512_fp16 amx_bf16 amx_tile amx_int8",
        "2100.000");

    /// <summary>An AMD EPYC Zen 4 (family 25, model 17): OpenBLAS recognises it by family.</summary>
    public static readonly string Zen4 = CpuInfo("AuthenticAMD", 25, 17, "AMD EPYC 9R14",
        "fma avx f16c avx2 bmi1 bmi2 avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi " +
        "avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq");

    /// <summary>An AMD EPYC Zen 5 (family 26): a family OpenBLAS 0.3.21 does not know.</summary>
    public static readonly string Zen5 = CpuInfo("AuthenticAMD", 26, 2, "AMD EPYC 9R45",
        "fma avx f16c avx2 bmi1 bmi2 avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi " +
        "avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq avx_vnni avx512_vp2intersect");

    /// <summary>Broadwell (Xeon E5 v4, model 79): AVX2 and FMA, no AVX-512; OpenBLAS runs its Haswell kernel.</summary>
    public static readonly string Broadwell = CpuInfo("GenuineIntel", 6, 79, "Intel(R) Xeon(R) CPU E5-2673 v4 @ 2.30GHz",
        "fma avx f16c avx2 bmi1 bmi2 rdseed adx");

    /// <summary>Skylake-SP (Xeon Platinum 8168, model 85): AVX-512 without BF16; OpenBLAS runs SkylakeX.</summary>
    public static readonly string SkylakeSp = CpuInfo("GenuineIntel", 6, 85, "Intel(R) Xeon(R) Platinum 8168 CPU @ 2.70GHz",
        "fma avx f16c avx2 bmi1 bmi2 avx512f avx512dq avx512cd avx512bw avx512vl");

    /// <summary>Knights Landing (model 87): AVX-512 foundation without BW/VL, which SkylakeX kernels need.</summary>
    public static readonly string KnightsLanding = CpuInfo("GenuineIntel", 6, 87, "Intel(R) Xeon Phi(TM) CPU 7250 @ 1.40GHz",
        "fma avx f16c avx2 avx512f avx512cd avx512pf avx512er");

    /// <summary>An Atom without AVX (model 77).</summary>
    public static readonly string Avoton = CpuInfo("GenuineIntel", 6, 77, "Intel(R) Atom(TM) CPU C2750 @ 2.40GHz", "");

    [Fact]
    public void Parses_the_first_processor_of_a_cpuinfo_text()
    {
        var cpu = CpuDescription.Parse(EmeraldRapids);
        Assert.Equal("GenuineIntel", cpu.Vendor);
        Assert.Equal(6, cpu.Family);
        Assert.Equal(207, cpu.Model);
        Assert.Equal(2100.0, cpu.NominalMHz);
        Assert.True(cpu.HasAvx512);
        Assert.True(cpu.Has("avx512_bf16", "amx_tile"));
        Assert.False(cpu.Has("avx512er")); // the second processor's block is not read
    }

    [Fact]
    public void A_description_without_vendor_family_or_model_is_refused_by_name()
    {
        var e = Assert.Throws<FormatException>(() => CpuDescription.Parse("processor : 0\nvendor_id : GenuineIntel\nmodel : 1\n"));
        Assert.Contains("cpu family", e.Message);
        e = Assert.Throws<FormatException>(() => CpuDescription.Parse("vendor_id : X\ncpu family : six\nmodel : 1\n"));
        Assert.Contains("'six'", e.Message);
    }

    [Fact]
    public void The_Intel_CPU_OpenBLAS_does_not_know_gets_a_SkylakeX_class_kernel()
    {
        // Cooperlake is OpenBLAS's SkylakeX kernels plus bf16 ones; OpenBLAS picks it itself on CPUs with AVX-512
        // BF16 that it knows (Cooper Lake, Zen 4).
        Assert.Equal("Cooperlake", OpenBlasKernel.Choose(CpuDescription.Parse(EmeraldRapids)));
    }

    [Fact]
    public void An_AMD_family_newer_than_OpenBLAS_knows_gets_the_kernel_its_features_allow() =>
        // SkylakeX although it has AVX-512 BF16: Cooperlake was slower on a Zen 5 (OpenBlasKernel's remarks).
        Assert.Equal("SkylakeX", OpenBlasKernel.Choose(CpuDescription.Parse(Zen5)));

    [Theory]
    [InlineData(nameof(Zen4), null)] // OpenBLAS 0.3.21 itself picks Cooperlake there (seen on this project's machines)
    [InlineData(nameof(Broadwell), "Haswell")] // what OpenBLAS picks for model 79
    [InlineData(nameof(SkylakeSp), "SkylakeX")] // what OpenBLAS picks for model 85 without BF16
    [InlineData(nameof(KnightsLanding), "Haswell")] // what OpenBLAS picks for model 87
    [InlineData(nameof(Avoton), null)]
    public void AMD_and_CPUs_OpenBLAS_knows_keep_its_choice(string machine, string? expected)
    {
        var text = (string)typeof(BlasKernelTests).GetField(machine)!.GetValue(null)!;
        Assert.Equal(expected, OpenBlasKernel.Choose(CpuDescription.Parse(text)));
    }

    [Fact]
    public void The_users_OPENBLAS_CORETYPE_wins()
    {
        var cpu = CpuDescription.Parse(EmeraldRapids);
        var selection = OpenBlasKernel.Select("Prescott", cpu);
        Assert.Equal("Prescott", selection.Requested);
        Assert.Contains("from the environment", selection.Reason);
        Assert.Equal("Cooperlake", OpenBlasKernel.Select(null, cpu).Requested);
        Assert.Equal("Cooperlake", OpenBlasKernel.Select("", cpu).Requested);
        Assert.Null(OpenBlasKernel.Select(null, CpuDescription.Parse(Zen4)).Requested);
        Assert.Null(OpenBlasKernel.Select(null, null).Requested);
    }

    [Fact]
    public void This_process_runs_the_kernel_it_asked_for_and_says_so()
    {
        var blas = TorchEngine.Blas;
        Assert.True(blas.IsOpenBlas, "setup installs OpenBLAS as libtorch's BLAS");
        Assert.StartsWith("OpenBLAS", blas.Config);
        Assert.False(string.IsNullOrEmpty(blas.Kernel));
        var expected = Environment.GetEnvironmentVariable(OpenBlasKernel.Variable) is { Length: > 0 } forced
            ? forced
            : CpuDescription.Current() is { } cpu ? OpenBlasKernel.Choose(cpu) : null;
        if (expected is not null) Assert.Equal(expected, blas.Kernel, ignoreCase: true);
        Assert.Contains($"kernel {blas.Kernel} (", TorchEngine.Describe());
        Assert.DoesNotContain("WARNING", TorchEngine.Describe());
    }

    [Fact]
    public void The_clock_under_load_is_measured()
    {
        var ghz = TorchEngine.MeasureClockGhz(1);
        // Any x86-64 core of the last twenty years runs between 0.8 and 6.5 GHz.
        Assert.InRange(ghz, 0.8, 6.5);
    }

    [Theory]
    [InlineData(nameof(EmeraldRapids), 2, 16)]
    [InlineData(nameof(Zen4), 2, 8)]
    [InlineData(nameof(Zen5), 2, 16)]
    [InlineData(nameof(Broadwell), 2, 8)]
    [InlineData(nameof(Avoton), 1, 4)]
    public void The_fp32_peak_counts_FMA_units_and_lanes_of_the_core(string machine, int units, int lanes)
    {
        var cpu = CpuDescription.Parse((string)typeof(BlasKernelTests).GetField(machine)!.GetValue(null)!);
        var peak = CpuPeak.Of(cpu, threads: 1, ghz: 3.0);
        Assert.Equal((units, lanes), (peak.FmaUnits, peak.Lanes));
        Assert.Equal(units * lanes * 2 * 3.0, peak.Gflops, 6);
    }
}
