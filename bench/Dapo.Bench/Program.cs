using Dapo.Bench;

// Benchmarks by name; each parses its own options and prints its figures (the engine's with ratios to a baseline
// measured in the same run).
var benchmarks = new Dictionary<string, Func<string[], int>>
{
    ["engine"] = EngineBenchmark.Command,
    ["control-plane"] = ControlPlaneBenchmark.Command,
    ["coordination"] = CoordinationBenchmark.Command,
    ["demo-recipe"] = DemoRecipeBenchmark.Command,
    ["blobs"] = BlobsBenchmark.Command,
};

var name = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal)) ?? "engine";
if (!benchmarks.TryGetValue(name, out var run))
{
    Console.Error.WriteLine($"unknown benchmark '{name}'; known: {string.Join(", ", benchmarks.Keys)}");
    return 2;
}
var rest = args.ToList();
rest.Remove(name);
return run(rest.ToArray());

namespace Dapo.Bench
{
    /// <param name="Quick">Fewer repeats, for a fast look.</param>
    /// <param name="Json">Also print the figures as JSON.</param>
    /// <param name="NoPeer">Skip the peer implementations.</param>
    internal sealed record BenchArgs(bool Quick, bool Json, bool NoPeer)
    {
        public static readonly string[] Flags = ["--quick", "--json", "--no-peer"];

        /// <summary>
        /// The flags of <paramref name="args"/>, which may be only <paramref name="known"/> ones (all of
        /// <see cref="Flags"/> when none are given); null, after saying which, when one is not.
        /// </summary>
        public static BenchArgs? Parse(string[] args, params string[] known)
        {
            if (known.Length == 0) known = Flags;
            if (args.FirstOrDefault(a => !known.Contains(a)) is { } unknown)
            {
                Console.Error.WriteLine($"unknown option {unknown}; known: {string.Join(", ", known)}");
                return null;
            }
            return new BenchArgs(Quick: args.Contains("--quick"), Json: args.Contains("--json"), NoPeer: args.Contains("--no-peer"));
        }
    }
}
