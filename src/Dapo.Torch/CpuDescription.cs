using System.Globalization;

namespace Dapo.Torch;

/// <summary>
/// The CPU this process runs on as Linux's <c>/proc/cpuinfo</c> describes its first processor: vendor, family and
/// model numbers, the feature flags the kernel lets programs use (a flag the OS does not enable, such as AVX-512
/// without its register state, is absent), and the nominal clock. Chooses the BLAS kernel
/// (<see cref="OpenBlasKernel"/>) and the benchmarks' fp32 peak (<see cref="FpPeak"/>).
/// </summary>
/// <param name="Vendor">"GenuineIntel", "AuthenticAMD", ...</param>
/// <param name="Family">The CPU family (the displayed family: base plus extended, e.g. 25 for AMD Zen 4).</param>
/// <param name="Model">The displayed model number (extended model included, e.g. 207 for Emerald Rapids).</param>
/// <param name="ModelName">The marketing name, for messages.</param>
/// <param name="Flags">Feature flags as /proc/cpuinfo spells them ("avx2", "avx512f", "avx512_bf16", ...).</param>
/// <param name="NominalMHz">The "cpu MHz" line: in a virtual machine usually the nominal (base) clock.</param>
/// <param name="ThreadsPerCore">Hardware threads per physical core ("siblings" / "cpu cores"; 1 when not said).</param>
public sealed record CpuDescription(string Vendor, int Family, int Model, string ModelName, IReadOnlySet<string> Flags, double NominalMHz,
    int ThreadsPerCore = 1)
{
    /// <summary>Where Linux describes the CPUs.</summary>
    public const string CpuInfoPath = "/proc/cpuinfo";

    /// <summary>True when the CPU has every one of <paramref name="flags"/>.</summary>
    public bool Has(params string[] flags) => flags.All(Flags.Contains);

    /// <summary>AVX-512 as OpenBLAS's SkylakeX kernels need it: foundation, byte/word, doubleword/quadword,
    /// conflict detection and 128/256-bit forms.</summary>
    public bool HasAvx512 => Has("avx512f", "avx512bw", "avx512dq", "avx512cd", "avx512vl");

    /// <summary>"GenuineIntel family 6 model 207 (name)" for messages.</summary>
    public override string ToString() => $"{Vendor} family {Family} model {Model} ({ModelName})";

    /// <summary>The CPU this process runs on, or null where /proc/cpuinfo does not exist or says nothing of x86.</summary>
    public static CpuDescription? Current()
    {
        try
        {
            return File.Exists(CpuInfoPath) ? Parse(File.ReadAllText(CpuInfoPath)) : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>Reads the first processor's block of a /proc/cpuinfo text.</summary>
    /// <exception cref="FormatException">The text has no vendor_id, cpu family or model line.</exception>
    public static CpuDescription Parse(string cpuInfo)
    {
        ArgumentNullException.ThrowIfNull(cpuInfo);
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in cpuInfo.Split('\n'))
        {
            if (line.Trim().Length == 0)
            {
                if (fields.Count > 0) break; // end of the first processor's block
                continue;
            }
            var colon = line.IndexOf(':');
            if (colon < 0) continue;
            fields.TryAdd(line[..colon].Trim(), line[(colon + 1)..].Trim());
        }
        string Field(string name) => fields.TryGetValue(name, out var value)
            ? value
            : throw new FormatException($"The CPU description has no '{name}' line.");
        int Number(string name) => int.TryParse(Field(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n)
            ? n
            : throw new FormatException($"The CPU description's '{name}' is '{Field(name)}', not a number.");
        var flags = fields.TryGetValue("flags", out var f) ? f.Split(' ', StringSplitOptions.RemoveEmptyEntries) : [];
        var mhz = fields.TryGetValue("cpu MHz", out var m) && double.TryParse(m, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : 0;
        var threadsPerCore = fields.ContainsKey("siblings") && fields.ContainsKey("cpu cores") && Number("cpu cores") > 0
            ? Math.Max(1, Number("siblings") / Number("cpu cores"))
            : 1;
        return new CpuDescription(Field("vendor_id"), Number("cpu family"), Number("model"),
            fields.GetValueOrDefault("model name", "unknown"), new HashSet<string>(flags, StringComparer.Ordinal), mhz, threadsPerCore);
    }
}
