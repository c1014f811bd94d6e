using System.Diagnostics;
using System.Text.Json.Nodes;
using Dapo.Torch;

namespace Dapo.Bench;

/// <summary>
/// What an engine benchmark runs on one model shape: training steps (score with gradients, backward from uniform
/// coefficients, AdamW) on <see cref="TrainBatch"/> random sequences of <see cref="TrainSeqLen"/> tokens, and KV-cache
/// sampling of <see cref="NewTokens"/> tokens after <see cref="SampleBatch"/> random prompts of
/// <see cref="PromptLen"/>. The same workload is handed to the PyTorch eager peer, so the two sides run the same
/// shapes; <c>engine</c> and <c>real-model</c> differ only in their workloads.
/// </summary>
internal sealed record EngineWorkload(
    ModelConfig Config, int TrainBatch, int TrainSeqLen, int SampleBatch, int PromptLen, int NewTokens)
{
    public int TrainTokens => TrainBatch * TrainSeqLen;
    public int SampledTokens => SampleBatch * NewTokens;

    /// <summary>The training batch: every token but the first is scored, each with coefficient -1/N (the mean log-prob's gradient).</summary>
    public (List<ScoredSequence> Sequences, float[] Coefficients) TrainingBatch(Random rng)
    {
        var sequences = Enumerable.Range(0, TrainBatch)
            .Select(_ => Enumerable.Range(0, TrainSeqLen).Select(_ => rng.Next(Config.VocabSize)).ToArray())
            .Select(s => new ScoredSequence(s, s.Select((_, t) => t > 0).ToArray()))
            .ToList();
        var scored = TrainBatch * (TrainSeqLen - 1);
        return (sequences, Enumerable.Repeat(-1f / scored, scored).ToArray());
    }

    public int[][] Prompts(Random rng) => Enumerable.Range(0, SampleBatch)
        .Select(_ => Enumerable.Range(0, PromptLen).Select(_ => rng.Next(Config.VocabSize)).ToArray()).ToArray();

    /// <summary>Seconds of one training step: one warm-up step, then the median of <paramref name="repeats"/>.</summary>
    public double MeasureTraining(PolicyModel model, AdamW optimizer, Random rng, int repeats)
    {
        var (sequences, coefficients) = TrainingBatch(rng);
        return Timing.Median(repeats, () =>
        {
            using var score = model.Score(sequences, requiresGrad: true);
            score.Backward(coefficients);
            optimizer.Step(1e-4);
        });
    }

    /// <summary>What every engine benchmark samples: <see cref="NewTokens"/> after each prompt, seed 5, with the KV cache.</summary>
    public SampleOptions Sampling => new() { MaxNewTokens = NewTokens, Seed = 5 };

    /// <summary>
    /// Seconds of sampling <paramref name="prompts"/> (<see cref="Sampling"/>): one warm-up run (of only
    /// <paramref name="warmupTokens"/> new tokens where given: a full one can take a minute), then the median of
    /// <paramref name="repeats"/>.
    /// </summary>
    public double MeasureSampling(PolicyModel model, int[][] prompts, int repeats, int? warmupTokens = null) =>
        Timing.Median(repeats, () => model.Sample(prompts, Sampling),
            warmupTokens is { } tokens ? () => model.Sample(prompts, Sampling with { MaxNewTokens = tokens }) : null);

    /// <summary>
    /// Model FLOPs of one training step (forward + backward = 3x forward), counting the matmuls the engine runs:
    /// projections and MLP (2 flops per weight per token), attention scores and weighted values over the full
    /// T x T square (2 x 2 T d per token per layer), and the LM head on the scored positions.
    /// </summary>
    public double TrainFlops()
    {
        var c = Config;
        double d = c.DModel, tokens = TrainTokens;
        var forward = tokens * (2 * c.Layers * WeightsPerLayer() + c.Layers * 4.0 * TrainSeqLen * d)
                      + TrainBatch * (TrainSeqLen - 1) * 2.0 * d * c.VocabSize;
        return 3 * forward;
    }

    /// <summary>
    /// Model FLOPs of sampling <see cref="NewTokens"/> tokens after every prompt with the KV cache: the prompt's
    /// forward pass, then per new token the weights (2 flops each), attention over the positions so far
    /// (2 x 2 p d per layer) and the LM head.
    /// </summary>
    public double SampleFlops()
    {
        var c = Config;
        double d = c.DModel;
        var weights = c.Layers * WeightsPerLayer();
        var perSequence = 0.0;
        for (var p = 1; p < PromptLen + NewTokens; p++) perSequence += 2 * weights + c.Layers * 4.0 * p * d;
        perSequence += NewTokens * 2.0 * d * c.VocabSize;
        return SampleBatch * perSequence;
    }

    /// <summary>Matmul weights of one block: fused q/k/v, output projection, gate and up, down.</summary>
    private double WeightsPerLayer()
    {
        var c = Config;
        double d = c.DModel, kv = c.KvHeads * c.HeadDim, ff = c.DFf;
        return d * (d + 2 * kv) + d * d + 3 * ff * d;
    }
}

/// <summary>The machine's two limits an engine figure is read against, measured and printed once per run.</summary>
/// <param name="Peak">The CPU's theoretical fp32 peak at the clock measured under load; null where the CPU is not described.</param>
/// <param name="MatmulGflops">The fp32 matmul rate of the BLAS libtorch runs on (2048^3).</param>
internal sealed record MachineLimits(CpuPeak? Peak, double MatmulGflops)
{
    /// <summary>Prints the CPU, its peak and the matmul rate, and records them in <paramref name="results"/>.</summary>
    public static MachineLimits Measure(int threads, bool quick, JsonObject results)
    {
        var cpu = CpuDescription.Current();
        Console.WriteLine($"  CPU: {cpu?.ToString() ?? "not described (no /proc/cpuinfo)"}; {TorchEngine.Blas}");
        results["threads"] = threads;
        results["cpu"] = cpu?.ToString();
        results["blas_kernel"] = TorchEngine.Blas.Kernel;
        results["blas_kernel_reason"] = TorchEngine.Blas.Selection.Reason;
        CpuPeak? peak = null;
        var ghz = TorchEngine.MeasureClockGhz(threads);
        if (cpu is not null && ghz > 0)
        {
            peak = CpuPeak.Of(cpu, threads, ghz);
            Console.WriteLine($"  fp32 peak: {peak}; clock measured under load on {threads} thread(s), nominal {cpu.NominalMHz / 1000:F2} GHz");
            results["clock_ghz"] = ghz;
            results["peak_gflops"] = peak.Gflops;
        }
        var limits = new MachineLimits(peak, TorchEngine.MatmulGflops(2048, quick ? 3 : 7));
        Console.WriteLine($"  matmul limit: fp32 matmul 2048^3 at {limits.MatmulGflops:F1} GFLOP/s{limits.OfPeak(limits.MatmulGflops)}");
        results["matmul_gflops"] = limits.MatmulGflops;
        return limits;
    }

    /// <summary>", 0.42 of the peak", or nothing without a peak.</summary>
    public string OfPeak(double gflops) => Peak is null ? "" : $", {gflops / Peak.Gflops:F2} of the peak";
}

/// <summary>
/// The PyTorch eager peer (<c>peers/torch_eager.py</c> on Debian's python3-torch): the same model shape and workload,
/// the same thread count and BLAS kernel, in a child process so that its memory is its own.
/// </summary>
internal static class TorchEagerPeer
{
    /// <summary>Names another interpreter with torch (a CUDA build, for the <c>cuda</c> benchmark).</summary>
    public const string PythonVariable = "DAPO_PEER_PYTHON";

    /// <summary>Debian's python3-torch installs for /usr/bin/python3.</summary>
    public static string Python => Environment.GetEnvironmentVariable(PythonVariable) is { Length: > 0 } python ? python : "/usr/bin/python3";

    /// <summary>
    /// The peer's JSON (tokens/s of training and sampling, peak RSS after sampling and at the end); null when
    /// python3 or torch is missing. <paramref name="sampleRepeats"/> and <paramref name="trainRepeats"/> are timed
    /// runs after one warm-up each, as on our side. <paramref name="device"/> is torch's name for where it runs.
    /// </summary>
    public static JsonNode? Run(EngineWorkload w, int threads, int sampleRepeats, int trainRepeats, int? sampleWarmupTokens = null,
        string device = "cpu")
    {
        var script = Path.Combine(AppContext.BaseDirectory, "peers", "torch_eager.py");
        if (!File.Exists(Python)) return null;
        var c = w.Config;
        var start = new ProcessStartInfo(Python)
        {
            ArgumentList =
            {
                script, "--threads", threads.ToString(), "--vocab", c.VocabSize.ToString(), "--d-model", c.DModel.ToString(),
                "--layers", c.Layers.ToString(), "--heads", c.Heads.ToString(), "--kv-heads", c.KvHeads.ToString(),
                "--d-ff", c.DFf.ToString(), "--batch", w.TrainBatch.ToString(), "--seq", w.TrainSeqLen.ToString(),
                "--sample-batch", w.SampleBatch.ToString(), "--prompt", w.PromptLen.ToString(),
                "--new-tokens", w.NewTokens.ToString(), "--repeats", sampleRepeats.ToString(),
                "--train-repeats", trainRepeats.ToString(), "--rope-theta", c.RopeTheta.ToString("R"),
                "--norm-eps", c.NormEps.ToString("R"), "--device", device,
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (c.TieEmbeddings) start.ArgumentList.Add("--tied");
        if (sampleWarmupTokens is { } warmup) { start.ArgumentList.Add("--sample-warmup-tokens"); start.ArgumentList.Add(warmup.ToString()); }
        if (!c.AttentionBias) throw new NotSupportedException("The PyTorch peer always has q/k/v biases.");
        // The same BLAS kernel as the engine: this process set its choice natively, which a child does not inherit.
        if (TorchEngine.Blas.IsOpenBlas) start.Environment[OpenBlasKernel.Variable] = TorchEngine.Blas.Kernel;
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode == 3) return null;  // the script's "torch is not installed"
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"The PyTorch peer failed ({process.ExitCode}): {stderr.Result}");
        return JsonNode.Parse(stdout);
    }
}

internal static class Timing
{
    public static double Time(Action action)
    {
        var watch = Stopwatch.StartNew();
        action();
        return watch.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// One warm-up run (of <paramref name="warmup"/> where given: a shorter run that touches the same code and
    /// memory), then the median of <paramref name="repeats"/> timed runs of <paramref name="action"/>.
    /// </summary>
    public static double Median(int repeats, Action action, Action? warmup = null)
    {
        (warmup ?? action)();
        var times = Enumerable.Range(0, repeats).Select(_ => Time(action)).Order().ToArray();
        return times[times.Length / 2];
    }
}
