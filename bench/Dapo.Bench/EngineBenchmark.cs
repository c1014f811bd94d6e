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

    /// <summary>
    /// The reference workload: training steps of 64 sequences of 256 tokens, sampling 64 prompts of 16 tokens; 256 new
    /// tokens each (<paramref name="quick"/>: 64).
    /// </summary>
    public static EngineWorkload Workload(bool quick) => new(Reference, 64, 256, 64, 16, NewTokens: quick ? 64 : 256);

    /// <summary>Parses <c>--quick --json --no-peer</c> and runs.</summary>
    public static int Command(string[] args) => BenchArgs.Parse(args) is { } parsed ? Run(parsed) : 2;

    public static int Run(BenchArgs args)
    {
        var threads = TorchEngine.Threads;
        // --quick: shorter generations and fewer repeats (about a minute on 2 cores); the figures are noisier.
        var w = Workload(args.Quick);
        var c = w.Config;
        int trainRepeats = args.Quick ? 2 : 4, sampleRepeats = args.Quick ? 1 : 3;
        Console.WriteLine($"engine benchmark: d_model {c.DModel}, {c.Layers} layers, {c.Heads} heads / {c.KvHeads} kv heads, " +
                          $"d_ff {c.DFf}, vocab {c.VocabSize}; batch {w.TrainBatch}, sequence {w.TrainSeqLen}; {threads} threads");
        var results = new JsonObject { ["config"] = JsonSerializer.SerializeToNode(c) };
        var machine = MachineLimits.Measure(threads, args.Quick, results);
        var limit = machine.MatmulGflops;

        using var model = PolicyModel.Create(c);
        using var optimizer = new AdamW(model);
        var rng = new Random(3);
        var trainSeconds = w.MeasureTraining(model, optimizer, rng, trainRepeats);
        var trainTokens = w.TrainTokens / trainSeconds;
        var trainGflops = w.TrainFlops() / trainSeconds / 1e9;
        Console.WriteLine($"  training: {trainSeconds:F3} s/step, {trainTokens:F0} tokens/s, {trainGflops:F1} GFLOP/s = " +
                          $"{trainGflops / limit:F2} of the matmul limit{machine.OfPeak(trainGflops)} (target >= 0.5)");
        results["train_seconds_per_step"] = trainSeconds;
        results["train_tokens_per_s"] = trainTokens;
        results["train_gflops"] = trainGflops;
        results["train_ratio_to_limit"] = trainGflops / limit;
        if (machine.Peak is { } peak) results["train_ratio_to_peak"] = trainGflops / peak.Gflops;

        var prompts = w.Prompts(rng);
        var cachedSeconds = w.MeasureSampling(model, prompts, sampleRepeats);
        var cachedTokens = w.SampledTokens / cachedSeconds;
        var sampleGflops = w.SampleFlops() / cachedSeconds / 1e9;
        // Without a cache every new token recomputes the whole sequence; one run is enough (it is slow and steady).
        var uncachedSeconds = Timing.Time(() => model.Sample(prompts, w.Sampling with { UseKvCache = false }));
        var uncachedTokens = w.SampledTokens / uncachedSeconds;
        Console.WriteLine($"  sampling {w.NewTokens} new tokens: KV cache {cachedTokens:F0} tokens/s ({sampleGflops:F1} GFLOP/s{machine.OfPeak(sampleGflops)}), " +
                          $"without cache {uncachedTokens:F0} tokens/s: {cachedTokens / uncachedTokens:F1}x (target >= 5)");
        results["sample_tokens_per_s"] = cachedTokens;
        results["sample_gflops"] = sampleGflops;
        if (machine.Peak is { } p) results["sample_ratio_to_peak"] = sampleGflops / p.Gflops;
        results["sample_nocache_tokens_per_s"] = uncachedTokens;
        results["sample_cache_speedup"] = cachedTokens / uncachedTokens;

        if (!args.NoPeer)
        {
            var peer = TorchEagerPeer.Run(w, threads, sampleRepeats, trainRepeats);
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
}
