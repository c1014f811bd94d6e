using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Torch;

namespace Dapo.Bench;

/// <summary>
/// The policy engine against the machine's limits and against PyTorch eager on the same libtorch: training
/// throughput (score with gradients, backward, AdamW) and sampling throughput with and without the KV cache, for
/// the reference configuration of issue 2. Two limits: the CPU's theoretical fp32 peak (<see cref="CpuPeak"/>, at
/// the clock measured under load) and the fp32 matmul rate of the BLAS libtorch runs on. The second alone can hide a
/// loss: on a BLAS kernel that is slow for the CPU, the engine, the matmul and the PyTorch peer all slow down together.
/// </summary>
internal static class EngineBenchmark
{
    public static readonly ModelConfig Reference = new()
    {
        VocabSize = 64, DModel = 256, Layers = 4, Heads = 8, KvHeads = 2, DFf = 1024, MaxSeqLen = 512, Seed = 1,
    };

    private const int Batch = 64, SeqLen = 256, PromptLen = 16;

    /// <summary>Parses <c>--quick --json --no-peer</c> and runs.</summary>
    public static int Command(string[] args) => BenchArgs.Parse(args) is { } parsed ? Run(parsed) : 2;

    public static int Run(BenchArgs args)
    {
        var threads = TorchEngine.Threads;
        var c = Reference;
        // --quick: shorter generations and fewer repeats (about a minute on 2 cores); the figures are noisier.
        var newTokens = args.Quick ? 64 : 256;
        Console.WriteLine($"engine benchmark: d_model {c.DModel}, {c.Layers} layers, {c.Heads} heads / {c.KvHeads} kv heads, " +
                          $"d_ff {c.DFf}, vocab {c.VocabSize}; batch {Batch}, sequence {SeqLen}; {threads} threads");
        var cpu = CpuDescription.Current();
        Console.WriteLine($"  CPU: {cpu?.ToString() ?? "not described (no /proc/cpuinfo)"}; {TorchEngine.Blas}");
        var results = new JsonObject
        {
            ["threads"] = threads, ["config"] = JsonSerializer.SerializeToNode(c), ["cpu"] = cpu?.ToString(),
            ["blas_kernel"] = TorchEngine.Blas.Kernel, ["blas_kernel_reason"] = TorchEngine.Blas.Selection.Reason,
        };

        CpuPeak? peak = null;
        var ghz = TorchEngine.MeasureClockGhz(threads);
        if (cpu is not null && ghz > 0)
        {
            peak = CpuPeak.Of(cpu, threads, ghz);
            Console.WriteLine($"  fp32 peak: {peak}; clock measured under load on {threads} thread(s), nominal {cpu.NominalMHz / 1000:F2} GHz");
            results["clock_ghz"] = ghz;
            results["peak_gflops"] = peak.Gflops;
        }
        string OfPeak(double gflops) => peak is null ? "" : $", {gflops / peak.Gflops:F2} of the peak";

        var limit = TorchEngine.MatmulGflops(2048, args.Quick ? 3 : 7);
        Console.WriteLine($"  matmul limit: fp32 matmul 2048^3 at {limit:F1} GFLOP/s{OfPeak(limit)}");
        results["matmul_gflops"] = limit;

        using var model = PolicyModel.Create(c);
        using var optimizer = new AdamW(model);
        var rng = new Random(3);
        var sequences = Enumerable.Range(0, Batch)
            .Select(_ => Enumerable.Range(0, SeqLen).Select(_ => rng.Next(c.VocabSize)).ToArray())
            .Select(s => new ScoredSequence(s, s.Select((_, t) => t > 0).ToArray()))
            .ToList();
        var coefficients = Enumerable.Repeat(-1f / (Batch * (SeqLen - 1)), Batch * (SeqLen - 1)).ToArray();
        var trainSeconds = Median(args.Quick ? 2 : 4, () =>
        {
            using var score = model.Score(sequences, requiresGrad: true);
            score.Backward(coefficients);
            optimizer.Step(1e-4);
        });
        var trainTokens = Batch * SeqLen / trainSeconds;
        var trainGflops = TrainFlops(c) / trainSeconds / 1e9;
        Console.WriteLine($"  training: {trainSeconds:F3} s/step, {trainTokens:F0} tokens/s, {trainGflops:F1} GFLOP/s = " +
                          $"{trainGflops / limit:F2} of the matmul limit{OfPeak(trainGflops)} (target >= 0.5)");
        results["train_seconds_per_step"] = trainSeconds;
        results["train_tokens_per_s"] = trainTokens;
        results["train_gflops"] = trainGflops;
        results["train_ratio_to_limit"] = trainGflops / limit;
        if (peak is not null) results["train_ratio_to_peak"] = trainGflops / peak.Gflops;

        var prompts = Enumerable.Range(0, Batch)
            .Select(_ => Enumerable.Range(0, PromptLen).Select(_ => rng.Next(c.VocabSize)).ToArray()).ToArray();
        var sampling = new SampleOptions { MaxNewTokens = newTokens, Seed = 5 };
        var cachedSeconds = Median(args.Quick ? 1 : 3, () => model.Sample(prompts, sampling));
        var cachedTokens = Batch * newTokens / cachedSeconds;
        var sampleGflops = SampleFlops(c, newTokens) / cachedSeconds / 1e9;
        // Without a cache every new token recomputes the whole sequence; one run is enough (it is slow and steady).
        var uncachedSeconds = Time(() => model.Sample(prompts, sampling with { UseKvCache = false }));
        var uncachedTokens = Batch * newTokens / uncachedSeconds;
        Console.WriteLine($"  sampling {newTokens} new tokens: KV cache {cachedTokens:F0} tokens/s ({sampleGflops:F1} GFLOP/s{OfPeak(sampleGflops)}), " +
                          $"without cache {uncachedTokens:F0} tokens/s: {cachedTokens / uncachedTokens:F1}x (target >= 5)");
        results["sample_tokens_per_s"] = cachedTokens;
        results["sample_gflops"] = sampleGflops;
        if (peak is not null) results["sample_ratio_to_peak"] = sampleGflops / peak.Gflops;
        results["sample_nocache_tokens_per_s"] = uncachedTokens;
        results["sample_cache_speedup"] = cachedTokens / uncachedTokens;

        if (!args.NoPeer)
        {
            var peer = PyTorchPeer(threads, newTokens, args.Quick);
            if (peer is null)
            {
                Console.WriteLine("  PyTorch eager: not run (Debian's python3-torch is missing; ./dapo.sh bench installs it)");
            }
            else
            {
                var peerTrain = peer["train_tokens_per_s"]!.GetValue<double>();
                var peerSample = peer["sample_tokens_per_s"]!.GetValue<double>();
                Console.WriteLine($"  PyTorch eager {peer["torch_version"]}: training {peerTrain:F0} tokens/s -> ours " +
                                  $"{trainTokens / peerTrain:F2}x; sampling {peerSample:F0} tokens/s -> ours " +
                                  $"{cachedTokens / peerSample:F2}x (target >= 1.0 on both)");
                results["pytorch"] = peer;
                results["train_ratio_to_pytorch"] = trainTokens / peerTrain;
                results["sample_ratio_to_pytorch"] = cachedTokens / peerSample;
            }
        }
        if (args.Json) Console.WriteLine(results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    /// <summary>
    /// Model FLOPs of one training step (forward + backward = 3x forward), counting the matmuls the engine runs:
    /// projections and MLP (2 flops per weight per token), attention scores and weighted values over the full
    /// T x T square (2 x 2 T d per token per layer), and the LM head on the scored positions.
    /// </summary>
    private static double TrainFlops(ModelConfig c)
    {
        double d = c.DModel, tokens = Batch * SeqLen;
        var forward = tokens * (2 * c.Layers * WeightsPerLayer(c) + c.Layers * 4.0 * SeqLen * d)
                      + Batch * (SeqLen - 1) * 2.0 * d * c.VocabSize;
        return 3 * forward;
    }

    /// <summary>
    /// Model FLOPs of sampling <paramref name="newTokens"/> tokens after every prompt with the KV cache: the prompt's
    /// forward pass, then per new token the weights (2 flops each), attention over the positions so far
    /// (2 x 2 p d per layer) and the LM head.
    /// </summary>
    private static double SampleFlops(ModelConfig c, int newTokens)
    {
        double d = c.DModel;
        var weights = c.Layers * WeightsPerLayer(c);
        var perSequence = 0.0;
        for (var p = 1; p < PromptLen + newTokens; p++) perSequence += 2 * weights + c.Layers * 4.0 * p * d;
        perSequence += newTokens * 2.0 * d * c.VocabSize;
        return Batch * perSequence;
    }

    /// <summary>Matmul weights of one block: fused q/k/v, output projection, gate and up, down.</summary>
    private static double WeightsPerLayer(ModelConfig c)
    {
        double d = c.DModel, kv = c.KvHeads * c.HeadDim, ff = c.DFf;
        return d * (d + 2 * kv) + d * d + 3 * ff * d;
    }

    private static JsonNode? PyTorchPeer(int threads, int newTokens, bool quick)
    {
        const string python = "/usr/bin/python3";  // Debian's python3-torch installs for this interpreter
        var script = Path.Combine(AppContext.BaseDirectory, "peers", "torch_eager.py");
        if (!File.Exists(python)) return null;
        var c = Reference;
        var start = new ProcessStartInfo(python)
        {
            ArgumentList =
            {
                script, "--threads", threads.ToString(), "--vocab", c.VocabSize.ToString(), "--d-model", c.DModel.ToString(),
                "--layers", c.Layers.ToString(), "--heads", c.Heads.ToString(), "--kv-heads", c.KvHeads.ToString(),
                "--d-ff", c.DFf.ToString(), "--batch", Batch.ToString(), "--seq", SeqLen.ToString(),
                "--prompt", PromptLen.ToString(), "--new-tokens", newTokens.ToString(), "--repeats", quick ? "1" : "3",
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        // The same BLAS kernel as the engine: this process set its choice natively, which a child does not inherit.
        if (TorchEngine.Blas.IsOpenBlas) start.Environment[OpenBlasKernel.Variable] = TorchEngine.Blas.Kernel;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEnd();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode == 3) return null;  // the script's "torch is not installed"
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"The PyTorch peer failed ({process.ExitCode}): {stderr}");
        return JsonNode.Parse(stdout);
    }

    private static double Time(Action action)
    {
        var watch = Stopwatch.StartNew();
        action();
        return watch.Elapsed.TotalSeconds;
    }

    /// <summary>One warm-up run, then the median of <paramref name="repeats"/> timed runs.</summary>
    private static double Median(int repeats, Action action)
    {
        action();
        var times = Enumerable.Range(0, repeats).Select(_ => Time(action)).Order().ToArray();
        return times[times.Length / 2];
    }
}
