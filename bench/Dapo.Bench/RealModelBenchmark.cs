using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Torch;

namespace Dapo.Bench;

/// <summary>
/// The engine on random weights in the exact shapes of Qwen2.5-0.5B (494 M parameters, a 151,936-token vocabulary
/// whose LM head is the tied embedding), against PyTorch eager on the same shapes, libtorch, threads and BLAS kernel:
/// KV-cache sampling tokens/s, training tokens/s, and resident memory against what each role must hold
/// (<see cref="LearnerBytesPerParameter"/>, <see cref="RolloutBytesPerParameter"/>). Sampling runs first, so that the
/// peak RSS after it is what a rollout process needs; training then adds gradients and AdamW's moments.
/// </summary>
internal static class RealModelBenchmark
{
    /// <summary>Qwen2.5-0.5B's config.json: hidden 896, 24 layers, 14 heads / 2 kv heads, intermediate 4864.</summary>
    public static readonly ModelConfig Qwen25_05B = new()
    {
        VocabSize = 151_936, DModel = 896, Layers = 24, Heads = 14, KvHeads = 2, DFf = 4864, MaxSeqLen = 32_768,
        RopeTheta = 1e6, NormEps = 1e-6, TieEmbeddings = true, AttentionBias = true, Seed = 1,
    };

    /// <summary>fp32 weights, gradients and AdamW's two moments.</summary>
    public const int LearnerBytesPerParameter = 16;

    /// <summary>fp32 weights alone.</summary>
    public const int RolloutBytesPerParameter = 4;

    /// <summary>New tokens of the warm-up sampling run (a full one costs a minute here).</summary>
    private const int WarmupTokens = 4;

    /// <summary>Parses <c>--quick --json --no-peer</c> and runs.</summary>
    public static int Command(string[] args) => BenchArgs.Parse(args) is { } parsed ? Run(parsed) : 2;

    public static int Run(BenchArgs args)
    {
        var threads = TorchEngine.Threads;
        var c = Qwen25_05B;
        // Full: 16 prompts of 64 tokens, 64 new tokens each; 4 sequences of 256 tokens a training step; the median
        // of 2 timed runs of each after a warm-up (sampling's warm-up draws only WarmupTokens): about 5 minutes on
        // 2 cores, both sides. --quick: a quarter of the tokens, one timed run of each (about 2 minutes).
        var w = args.Quick
            ? new EngineWorkload(c, TrainBatch: 2, TrainSeqLen: 128, SampleBatch: 8, PromptLen: 32, NewTokens: 32)
            : new EngineWorkload(c, TrainBatch: 4, TrainSeqLen: 256, SampleBatch: 16, PromptLen: 64, NewTokens: 64);
        int repeats = args.Quick ? 1 : 2;
        Console.WriteLine($"real-model benchmark: Qwen2.5-0.5B shapes, random weights (d_model {c.DModel}, {c.Layers} layers, " +
                          $"{c.Heads} heads / {c.KvHeads} kv heads, d_ff {c.DFf}, vocab {c.VocabSize}, tied embeddings); " +
                          $"sampling {w.SampleBatch} prompts x {w.PromptLen} tokens + {w.NewTokens} new, training " +
                          $"{w.TrainBatch} x {w.TrainSeqLen} tokens; {threads} threads");
        var results = new JsonObject
        {
            ["config"] = JsonSerializer.SerializeToNode(c), ["workload"] = JsonSerializer.SerializeToNode(
                new { w.TrainBatch, w.TrainSeqLen, w.SampleBatch, w.PromptLen, w.NewTokens }),
        };
        var machine = MachineLimits.Measure(threads, args.Quick, results);
        var limit = machine.MatmulGflops;

        // The peer runs first, in its own process, and has exited before our model exists: the two never hold their
        // memory at once (about 10 GB each while training).
        JsonNode? peer = null;
        if (!args.NoPeer)
        {
            peer = TorchEagerPeer.Run(w, threads, repeats, repeats, WarmupTokens);
            if (peer is null)
                Console.WriteLine("  PyTorch eager: not run (Debian's python3-torch is missing; ./dapo.sh bench installs it)");
            else
                Console.WriteLine($"  PyTorch eager {peer["torch_version"]}: sampling {Get(peer, "sample_tokens_per_s"):F1} tokens/s, " +
                                  $"training {Get(peer, "train_tokens_per_s"):F1} tokens/s; peak RSS after sampling " +
                                  $"{Gb((long)Get(peer, "peak_rss_after_sampling_bytes"))}, after training " +
                                  $"{Gb((long)Get(peer, "peak_rss_bytes"))} ({peer["parameters"]} parameters); fp32 matmul " +
                                  $"2048^3 at its start {Get(peer, "matmul_gflops"):F1} GFLOP/s");
            results["pytorch"] = peer;
        }

        // The machine is shared: a matmul rate far from the peer's says the two sides ran under different loads.
        var matmulNow = TorchEngine.MatmulGflops(2048, 3);
        results["matmul_gflops_before_ours"] = matmulNow;
        var startRss = PeakRss();
        using var model = PolicyModel.Create(c);
        var parameters = model.ParameterElementCount;
        Console.WriteLine($"  ours: {parameters / 1e6:F1} M parameters; process peak RSS before the model {Gb(startRss)}; " +
                          $"fp32 matmul 2048^3 at the start {matmulNow:F1} GFLOP/s");
        results["parameters"] = parameters;
        var rng = new Random(3);

        var prompts = w.Prompts(rng);
        var sampleSeconds = w.MeasureSampling(model, prompts, repeats, WarmupTokens);
        var sampleTokens = w.SampledTokens / sampleSeconds;
        var sampleGflops = w.SampleFlops() / sampleSeconds / 1e9;
        var rolloutRss = PeakRss();
        Console.WriteLine($"  sampling: {sampleSeconds:F2} s for {w.SampledTokens} new tokens, {sampleTokens:F1} tokens/s" +
                          $"{VsPeer(sampleTokens, peer, "sample_tokens_per_s")}, {sampleGflops:F1} GFLOP/s = " +
                          $"{sampleGflops / limit:F2} of the matmul limit{machine.OfPeak(sampleGflops)}");
        Console.WriteLine($"    memory: peak RSS {Gb(rolloutRss)} = {(double)rolloutRss / parameters:F1} B/param" +
                          $"{VsPeer(rolloutRss, peer, "peak_rss_after_sampling_bytes")}; rollout role " +
                          $"{RolloutBytesPerParameter} B/param (fp32 weights) = {Gb(parameters * RolloutBytesPerParameter)}");
        results["sample_seconds"] = sampleSeconds;
        results["sample_tokens_per_s"] = sampleTokens;
        results["sample_gflops"] = sampleGflops;
        results["sample_ratio_to_limit"] = sampleGflops / limit;
        results["peak_rss_after_sampling_bytes"] = rolloutRss;

        using var optimizer = new AdamW(model);
        var trainSeconds = w.MeasureTraining(model, optimizer, rng, repeats);
        var trainTokens = w.TrainTokens / trainSeconds;
        var trainGflops = w.TrainFlops() / trainSeconds / 1e9;
        var learnerRss = PeakRss();
        Console.WriteLine($"  training: {trainSeconds:F2} s/step, {trainTokens:F1} tokens/s{VsPeer(trainTokens, peer, "train_tokens_per_s")}, " +
                          $"{trainGflops:F1} GFLOP/s = {trainGflops / limit:F2} of the matmul limit{machine.OfPeak(trainGflops)}");
        Console.WriteLine($"    memory: peak RSS {Gb(learnerRss)} = {(double)learnerRss / parameters:F1} B/param" +
                          $"{VsPeer(learnerRss, peer, "peak_rss_bytes")}; learner role {LearnerBytesPerParameter} B/param " +
                          $"(fp32 weights, gradients, AdamW's two moments) = {Gb(parameters * LearnerBytesPerParameter)}");
        results["train_seconds_per_step"] = trainSeconds;
        results["train_tokens_per_s"] = trainTokens;
        results["train_gflops"] = trainGflops;
        results["train_ratio_to_limit"] = trainGflops / limit;
        results["peak_rss_bytes"] = learnerRss;
        results["rollout_role_bytes"] = parameters * RolloutBytesPerParameter;
        results["learner_role_bytes"] = parameters * LearnerBytesPerParameter;
        if (peer is not null)
        {
            var sampleRatio = sampleTokens / Get(peer, "sample_tokens_per_s");
            var trainRatio = trainTokens / Get(peer, "train_tokens_per_s");
            Console.WriteLine($"  vs PyTorch eager: sampling {sampleRatio:F2}x, training {trainRatio:F2}x (target >= 1.0 on both)");
            results["sample_ratio_to_pytorch"] = sampleRatio;
            results["train_ratio_to_pytorch"] = trainRatio;
        }
        // The model's other half: its tokenizer's encoding rate against the JavaScript peer.
        if (TokenizerBenchmark.Run(args.NoPeer) is { } tokenizer)
            foreach (var (key, value) in tokenizer.ToList())
            {
                tokenizer.Remove(key);
                results[key] = value;
            }
        if (args.Json) Console.WriteLine(results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    /// <summary>The process's peak resident set (VmHWM on Linux).</summary>
    private static long PeakRss()
    {
        using var self = Process.GetCurrentProcess();
        return self.PeakWorkingSet64;
    }

    private static string Gb(long bytes) => $"{bytes / 1e9:F2} GB";

    private static double Get(JsonNode peer, string name) => peer[name]!.GetValue<double>();

    /// <summary>" (1.23x PyTorch's)", or nothing without the peer.</summary>
    private static string VsPeer(double ours, JsonNode? peer, string name) =>
        peer is null ? "" : $" ({ours / Get(peer, name):F2}x PyTorch's)";
}
