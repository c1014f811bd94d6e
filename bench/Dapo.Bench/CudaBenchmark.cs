using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Torch;

namespace Dapo.Bench;

/// <summary>
/// The engine on a CUDA GPU (a native library built against a CUDA libtorch, see the README) against the same engine
/// on this machine's CPU. First it checks that the two agree — the same initial weights, scores, gradients, AdamW
/// steps, seeded samples, and checkpoints that move between devices — and fails (exit 1) where they do not. Then it
/// measures training and sampling throughput on the engine benchmark's workload (CPU and GPU) and on Qwen2.5-0.5B's
/// shapes (GPU), against the GPU's measured fp32 matmul rate and PyTorch eager on the same GPU.
/// </summary>
internal static class CudaBenchmark
{
    /// <summary>The agreement checks' model: small enough for the CPU side, with every layer kind and GQA.</summary>
    private static readonly ModelConfig Small = new()
    {
        VocabSize = 96, DModel = 128, Layers = 2, Heads = 4, KvHeads = 2, DFf = 256, MaxSeqLen = 128, Seed = 11,
    };

    /// <summary>Largest difference tolerated between CPU and GPU values of the same fp32 computation, relative to
    /// the larger magnitude (plus this much absolute): summation orders differ, the arithmetic does not.</summary>
    private const double Tolerance = 2e-4;

    /// <summary>Parses <c>--train N</c> and <c>--quick --json --no-peer</c>, and runs.</summary>
    public static int Command(string[] args)
    {
        var rest = args.ToList();
        var trainSteps = 0;
        if (rest.IndexOf("--train") is var at and >= 0)
        {
            if (at + 1 >= rest.Count || !int.TryParse(rest[at + 1], out trainSteps) || trainSteps < 1)
            {
                Console.Error.WriteLine("--train takes a number of steps (at least 1)");
                return 2;
            }
            rest.RemoveRange(at, 2);
        }
        return BenchArgs.Parse(rest.ToArray()) is { } parsed ? Run(parsed, trainSteps) : 2;
    }

    /// <param name="trainSteps">Also train the demo recipe this many steps on the embedded silo, on the GPU and on the CPU.</param>
    public static int Run(BenchArgs args, int trainSteps = 0)
    {
        if (!TorchEngine.CudaAvailable)
        {
            Console.Error.WriteLine("cuda benchmark: no CUDA GPU for the engine. Build the native library against a CUDA libtorch " +
                                    "and point DAPO_TORCH_LIBRARY at it (README, \"The native engine\", CUDA).");
            return 2;
        }
        var results = new JsonObject { ["threads"] = TorchEngine.Threads };
        Console.WriteLine($"cuda benchmark: {TorchEngine.Describe()}");
        var agreement = new Agreement(results);
        agreement.Run();

        var gpuMatmul = TorchEngine.MatmulGflops(4096, args.Quick ? 5 : 20, DeviceType.Cuda);
        var cpuMatmul = TorchEngine.MatmulGflops(2048, 3);
        Console.WriteLine($"limits: fp32 matmul on the GPU 4096^3 at {gpuMatmul:F0} GFLOP/s; on the CPU ({TorchEngine.Threads} threads) " +
                          $"2048^3 at {cpuMatmul:F0} GFLOP/s");
        results["gpu_matmul_gflops"] = gpuMatmul;
        results["cpu_matmul_gflops"] = cpuMatmul;

        // The engine benchmark's workload on both devices: the same shapes the 2-core figures in the README use.
        var engine = EngineBenchmark.Workload(args.Quick);
        var cpu = Throughput(engine, "engine workload, CPU", cpuMatmul, args.Quick ? 1 : 2);
        var gpu = Throughput(engine with { Config = engine.Config with { Device = DeviceType.Cuda } }, "engine workload, GPU", gpuMatmul, args.Quick ? 2 : 4);
        Console.WriteLine($"  GPU / CPU: training {gpu.TrainTokens / cpu.TrainTokens:F1}x, sampling {gpu.SampleTokens / cpu.SampleTokens:F1}x");
        results["engine_cpu"] = cpu.Json;
        results["engine_gpu"] = gpu.Json;
        Peer(engine, "engine workload", gpu, results, args);

        // Qwen2.5-0.5B's shapes at a GPU's batch sizes.
        var q = RealModelBenchmark.Qwen25_05B with { Device = DeviceType.Cuda };
        var real = args.Quick
            ? new EngineWorkload(q, TrainBatch: 4, TrainSeqLen: 512, SampleBatch: 32, PromptLen: 64, NewTokens: 64)
            : new EngineWorkload(q, TrainBatch: 16, TrainSeqLen: 512, SampleBatch: 64, PromptLen: 128, NewTokens: 128);
        var realGpu = Throughput(real, "Qwen2.5-0.5B shapes, GPU", gpuMatmul, 2);
        results["real_model_gpu"] = realGpu.Json;
        Peer(real, "Qwen2.5-0.5B shapes", realGpu, results, args);

        var trained = trainSteps == 0 || Train(trainSteps, results);
        if (args.Json) Console.WriteLine(results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine(agreement.Failures == 0
            ? $"agreement: all {agreement.Checks} checks passed"
            : $"agreement: {agreement.Failures} of {agreement.Checks} checks FAILED");
        return agreement.Failures == 0 && trained ? 0 : 1;
    }

    /// <summary>
    /// `dapo-silo train` as a user runs it with <c>"Model": {"Device": "Cuda"}</c>, after a short warm-start, then the
    /// same on the CPU: whether the whole stack (grains, checkpoints, evaluation) runs on the GPU, and its step time.
    /// The demo's policy is tiny, so the GPU need not be faster here.
    /// </summary>
    private static bool Train(int steps, JsonObject results)
    {
        foreach (var device in new[] { DeviceType.Cuda, DeviceType.Cpu })
        {
            var overrides = JsonNode.Parse(EmbeddedTrainRun.ShortWarmStart)!.AsObject();
            overrides["Model"] = new JsonObject { ["Device"] = device.ToString() };
            var rows = EmbeddedTrainRun.Train(steps, overrides.ToJsonString(), threads: null);
            if (rows is null) return false;
            double Sum(string key) => rows.Sum(r => r[key]!.GetValue<double>());
            var step = Sum("timing/step_s") / rows.Count;
            Console.WriteLine($"train on the {device} (demo recipe, {rows.Count} steps after a short warm-start): {step:F2} s a step, " +
                              $"sampling {Sum("timing/sampling_s") / Sum("timing/step_s"):P0}, training {Sum("timing/training_s") / Sum("timing/step_s"):P0}");
            results[$"train_{device.ToString().ToLowerInvariant()}_seconds_per_step"] = step;
        }
        return true;
    }

    private sealed record Figures(double TrainSeconds, double TrainTokens, double SampleTokens, JsonObject Json);

    private static Figures Throughput(EngineWorkload w, string label, double matmulGflops, int repeats)
    {
        using var model = PolicyModel.Create(w.Config);
        using var optimizer = new AdamW(model);
        var rng = new Random(3);
        var trainSeconds = w.MeasureTraining(model, optimizer, rng, repeats);
        var trainGflops = w.TrainFlops() / trainSeconds / 1e9;
        var sampleSeconds = w.MeasureSampling(model, w.Prompts(rng), repeats);
        var sampleGflops = w.SampleFlops() / sampleSeconds / 1e9;
        var figures = new Figures(trainSeconds, w.TrainTokens / trainSeconds, w.SampledTokens / sampleSeconds, new JsonObject
        {
            ["train_batch"] = w.TrainBatch, ["train_seq_len"] = w.TrainSeqLen, ["sample_batch"] = w.SampleBatch,
            ["prompt_len"] = w.PromptLen, ["new_tokens"] = w.NewTokens,
            ["train_seconds_per_step"] = trainSeconds, ["train_tokens_per_s"] = w.TrainTokens / trainSeconds,
            ["train_gflops"] = trainGflops, ["sample_tokens_per_s"] = w.SampledTokens / sampleSeconds,
            ["sample_gflops"] = sampleGflops,
        });
        Console.WriteLine($"{label}: training {w.TrainBatch} x {w.TrainSeqLen} tokens {trainSeconds:F3} s/step, " +
                          $"{figures.TrainTokens:F0} tokens/s, {trainGflops:F0} GFLOP/s = {trainGflops / matmulGflops:F2} of the matmul limit; " +
                          $"sampling {w.SampleBatch} x {w.NewTokens} new tokens with the KV cache {figures.SampleTokens:F0} tokens/s, " +
                          $"{sampleGflops:F1} GFLOP/s");
        return figures;
    }

    /// <summary>PyTorch eager on the GPU, same shapes (<c>peers/torch_eager.py --device cuda</c>).</summary>
    private static void Peer(EngineWorkload w, string label, Figures ours, JsonObject results, BenchArgs args)
    {
        if (args.NoPeer) return;
        var peer = TorchEagerPeer.Run(w, TorchEngine.Threads, 2, 2, device: "cuda");
        if (peer is null)
        {
            Console.WriteLine($"  PyTorch eager on the GPU: not run (no torch for {TorchEagerPeer.Python}; set {TorchEagerPeer.PythonVariable})");
            return;
        }
        var train = peer["train_tokens_per_s"]!.GetValue<double>();
        var sample = peer["sample_tokens_per_s"]!.GetValue<double>();
        Console.WriteLine($"  PyTorch eager {peer["torch_version"]} on the GPU ({label}): training {train:F0} tokens/s -> ours " +
                          $"{ours.TrainTokens / train:F2}x; sampling {sample:F0} tokens/s -> ours {ours.SampleTokens / sample:F2}x");
        results[$"pytorch_{label.Replace(' ', '_').Replace('.', '_')}"] = peer;
    }

    /// <summary>The CPU-against-GPU checks; each prints its largest difference and whether it passed.</summary>
    private sealed class Agreement(JsonObject results)
    {
        public int Checks { get; private set; }
        public int Failures { get; private set; }

        public void Run()
        {
            Console.WriteLine($"agreement of CPU and GPU (tolerance {Tolerance:G} relative): d_model {Small.DModel}, {Small.Layers} layers, vocab {Small.VocabSize}");
            using var cpu = PolicyModel.Create(Small);
            using var gpu = PolicyModel.Create(Small with { Device = DeviceType.Cuda });
            Check("initial weights (bitwise)", MaxParameterDifference(cpu, gpu), 0);

            var rng = new Random(7);
            var batch = Enumerable.Range(0, 12).Select(i =>
            {
                var length = 8 + rng.Next(48);
                var prompt = 2 + rng.Next(6);
                var tokens = Enumerable.Range(0, length).Select(_ => rng.Next(Small.VocabSize)).ToArray();
                return new ScoredSequence(tokens, tokens.Select((_, t) => t >= prompt).ToArray());
            }).ToList();
            Check("logits", Difference(cpu.Logits(batch[0].Tokens), gpu.Logits(batch[0].Tokens)));

            var initial = cpu.Parameters.Select(p => cpu.ReadParameter(p.Index)).ToArray();
            using var cpuOptimizer = new AdamW(cpu);
            using var gpuOptimizer = new AdamW(gpu);
            for (var step = 0; step < 3; step++)
            {
                using var cs = cpu.Score(batch, temperature: 1.2, requiresGrad: true);
                using var gs = gpu.Score(batch, temperature: 1.2, requiresGrad: true);
                Check($"step {step}: log-probabilities", Difference(cs.LogProbs, gs.LogProbs));
                Check($"step {step}: entropies", Difference(cs.Entropies, gs.Entropies));
                var coefficients = cs.LogProbs.Select(_ => (float)((rng.NextDouble() - 0.5) / cs.Count)).ToArray();
                cs.Backward(coefficients);
                gs.Backward(coefficients);
                if (step == 0)
                    Check("gradients (relative to each parameter's gradient norm)",
                        cpu.Parameters.Max(p => RelativeNorm(cpu.ReadGradient(p.Index), gpu.ReadGradient(p.Index))));
                var cpuStep = cpuOptimizer.Step(1e-3);
                var gpuStep = gpuOptimizer.Step(1e-3);
                Check($"step {step}: gradient norm", Difference([(float)cpuStep.GradNorm], [(float)gpuStep.GradNorm]));
                // AdamW moves every weight by about the learning rate whatever its gradient's size, so a gradient that
                // is rounding noise on both sides (a sum that cancels) moves its weight differently on each: compare
                // the whole update, |CPU - GPU| / |CPU - initial| over all weights, not the largest single difference.
                Check($"step {step}: weights after AdamW (relative to the update)", UpdateDifference(cpu, gpu, initial), 1e-3);
            }

            var prompts = batch.Take(8).Select(s => s.Tokens[..4]).ToArray();
            var sampling = new SampleOptions { MaxNewTokens = 24, SamplesPerPrompt = 2, Temperature = 1.0, TopP = 0.95, Seed = 3 };
            var cpuSamples = cpu.Sample(prompts, sampling);
            var gpuSamples = gpu.Sample(prompts, sampling);
            var gpuUncached = gpu.Sample(prompts, sampling with { UseKvCache = false });
            // Seeded draws are made on the host from the same probabilities; a token can only differ where the two
            // devices' probabilities straddle a draw, which at this tolerance is rare.
            Share("seeded samples: same tokens on CPU and GPU", cpuSamples, gpuSamples);
            Share("seeded samples on the GPU: same tokens with and without the KV cache", gpuSamples, gpuUncached);
            var same = cpuSamples.Zip(gpuSamples).Where(p => p.First.Tokens.SequenceEqual(p.Second.Tokens)).ToList();
            Check("sampled log-probabilities", same.Select(p => Difference(p.First.LogProbs, p.Second.LogProbs)).DefaultIfEmpty(double.NaN).Max());

            using var gpuState = TrainingState.Save(gpu, gpuOptimizer);
            var (restored, restoredOptimizer) = TrainingState.Restore(gpuState);
            using (restored)
            using (restoredOptimizer)
            {
                Check("GPU training state restored on the CPU: weights (bitwise)", MaxParameterDifference(restored, gpu), 0);
                Check("GPU training state restored on the CPU: optimizer steps", Math.Abs(restoredOptimizer.StepCount - gpuOptimizer.StepCount), 0);
            }
            using var cpuState = TrainingState.Save(cpu, cpuOptimizer);
            var (onGpu, onGpuOptimizer) = TrainingState.Restore(cpuState, DeviceType.Cuda);
            using (onGpu)
            using (onGpuOptimizer)
            {
                Check("CPU training state restored on the GPU: on the GPU", onGpu.Config.Device == DeviceType.Cuda ? 0 : 1, 0);
                Check("CPU training state restored on the GPU: weights (bitwise)", MaxParameterDifference(cpu, onGpu), 0);
            }
            using var cpuWeights = cpu.ExportWeights();
            gpu.ImportWeights(cpuWeights);
            Check("CPU weights imported on the GPU (bitwise)", MaxParameterDifference(cpu, gpu), 0);
            using var gpuWeights = gpu.ExportWeights();
            using var back = PolicyModel.FromWeights(gpuWeights);
            Check("GPU weights exported and loaded on the CPU (bitwise)", MaxParameterDifference(cpu, back), 0);
        }

        private void Check(string what, double difference, double tolerance = Tolerance)
        {
            var ok = difference <= tolerance;  // NaN fails
            Checks++;
            if (!ok) Failures++;
            Console.WriteLine($"  {(ok ? "ok  " : "FAIL")} {what}: largest difference {difference:G3} (at most {tolerance:G3})");
            results[$"agreement: {what}"] = difference;
        }

        private void Share(string what, IReadOnlyList<SampledResponse> a, IReadOnlyList<SampledResponse> b)
        {
            var same = a.Zip(b).Count(p => p.First.Tokens.SequenceEqual(p.Second.Tokens));
            var ok = same >= 0.9 * a.Count;
            Checks++;
            if (!ok) Failures++;
            Console.WriteLine($"  {(ok ? "ok  " : "FAIL")} {what}: {same} of {a.Count} responses (at least 90 %)");
            results[$"agreement: {what}"] = (double)same / a.Count;
        }

        /// <summary>Largest |a - b| / (1 + max(|a|, |b|)) over the two arrays; +inf when their lengths differ.</summary>
        private static double Difference(IReadOnlyList<float> a, IReadOnlyList<float> b) =>
            a.Count != b.Count ? double.PositiveInfinity
                : a.Zip(b).Select(p => Math.Abs(p.First - p.Second) / (1.0 + Math.Max(Math.Abs(p.First), Math.Abs(p.Second))))
                    .DefaultIfEmpty(0).Max();

        /// <summary>|a - b| / |a| (Euclidean norms), 0 where both are zero.</summary>
        private static double RelativeNorm(IReadOnlyList<float> a, IReadOnlyList<float> b)
        {
            double diff = 0, norm = 0;
            for (var i = 0; i < a.Count; i++)
            {
                diff += (double)(a[i] - b[i]) * (a[i] - b[i]);
                norm += (double)a[i] * a[i];
            }
            return diff == 0 ? 0 : Math.Sqrt(diff / norm);
        }

        private static double UpdateDifference(PolicyModel cpu, PolicyModel gpu, float[][] initial)
        {
            double apart = 0, moved = 0;
            foreach (var p in cpu.Parameters)
            {
                var (c, g, before) = (cpu.ReadParameter(p.Index), gpu.ReadParameter(p.Index), initial[p.Index]);
                for (var i = 0; i < c.Length; i++)
                {
                    apart += (double)(c[i] - g[i]) * (c[i] - g[i]);
                    moved += (double)(c[i] - before[i]) * (c[i] - before[i]);
                }
            }
            return Math.Sqrt(apart / moved);
        }

        private static double MaxParameterDifference(PolicyModel a, PolicyModel b) =>
            a.Parameters.Max(p => a.ReadParameter(p.Index).Zip(b.ReadParameter(p.Index)).Max(x => (double)Math.Abs(x.First - x.Second)));
    }
}
