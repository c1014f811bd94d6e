using Dapo.Bench;

// Benchmarks by name; each prints its figures and ratios to a baseline measured in the same run.
var benchmarks = new Dictionary<string, Func<BenchArgs, Task<int>>>
{
    ["engine"] = a => Task.FromResult(EngineBenchmark.Run(a)),
    ["control-plane"] = ControlPlaneBenchmark.RunAsync,
};

var name = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal)) ?? "engine";
if (!benchmarks.TryGetValue(name, out var run))
{
    Console.Error.WriteLine($"unknown benchmark '{name}'; known: {string.Join(", ", benchmarks.Keys)}");
    return 2;
}
var unknown = args.Where(a => a.StartsWith("--", StringComparison.Ordinal) && !BenchArgs.Flags.Contains(a)).ToList();
if (unknown.Count > 0)
{
    Console.Error.WriteLine($"unknown option {unknown[0]}; known: {string.Join(", ", BenchArgs.Flags)}");
    return 2;
}
return await run(new BenchArgs(Quick: args.Contains("--quick"), Json: args.Contains("--json"), NoPeer: args.Contains("--no-peer")));

namespace Dapo.Bench
{
    /// <param name="Quick">Fewer repeats, for a fast look.</param>
    /// <param name="Json">Also print the figures as JSON.</param>
    /// <param name="NoPeer">Skip the peer implementations.</param>
    internal sealed record BenchArgs(bool Quick, bool Json, bool NoPeer)
    {
        public static readonly string[] Flags = ["--quick", "--json", "--no-peer"];
    }
}
