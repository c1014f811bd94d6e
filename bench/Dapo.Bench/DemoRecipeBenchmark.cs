using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Training;
using Dapo.Core.Common;
using Dapo.Core.Data;
using Dapo.Core.Metrics;
using Dapo.Core.Options;
using Dapo.Core.Rewards;
using Dapo.Core.Sampling;
using Dapo.Torch;

namespace Dapo.Bench;

/// <summary>
/// The demo recipe in one process, without a cluster: supervised warm-start, then DAPO steps with plain in-memory
/// dynamic sampling (over-sample, drop all-equal groups, refill until the prompt batch is full, cap on generation
/// rounds). By default it is the reference the cluster is measured against: the same recipe (no evaluations between
/// steps) run here and then by `dapo-silo train` on the embedded silo, and their step times compared. With
/// <c>--reference-only</c> it is the tuning tool of <see cref="DemoRecipe"/>: the whole recipe with held-out evaluations.
/// </summary>
internal static class DemoRecipeBenchmark
{
    private const string Usage =
        "demo-recipe [--steps N] [--quick] [--override JSON] [--json]\n" +
        "  compares the step time of `train` (the embedded silo) with this process's reference, on the demo recipe without\n" +
        "  evaluations: --steps DAPO steps (40; --quick: 15 after a short warm-start), --override JSON merged into both\n" +
        "demo-recipe --reference-only [--recipe dapo|grpo] [--seed N] [--steps N] [--eval-every N] [--save-warm FILE]\n" +
        "            [--load-warm FILE] [--override JSON] [--json]\n" +
        "  the whole recipe in this process only, with held-out evaluations (the recipe's tuning tool)\n" +
        "  --seed        seed of the DAPO phase (prompt order and rollout draws); the warm-start is the recipe's\n" +
        "  --override    JSON merged into the recipe, e.g. '{\"Dapo\":{\"LearningRate\":5e-4},\"WarmStart\":{\"MaxSteps\":400}}'\n" +
        "  --save-warm / --load-warm   weights after the warm-start, so variants can share one warm-start";

    private sealed record Args(
        string Recipe, ulong? Seed, int? Steps, int? EvaluateEvery, string? SaveWarm, string? LoadWarm, string? Override, bool Json,
        bool ReferenceOnly, bool Quick);

    public static int Command(string[] argv)
    {
        Args args;
        DemoRecipe recipe;
        try
        {
            args = Parse(argv);
            if (!args.ReferenceOnly && (args.Recipe != "dapo" || args.Seed is not null || args.EvaluateEvery is not null
                                        || args.SaveWarm is not null || args.LoadWarm is not null))
                throw new ArgumentException("--recipe, --seed, --eval-every, --save-warm and --load-warm need --reference-only.");
            recipe = DemoRecipe.Named(args.Recipe);
            if (!args.ReferenceOnly)
                recipe = recipe.WithOverrides(args.Quick ? EmbeddedTrainRun.ShortWarmStart : EmbeddedTrainRun.NoEvaluations) with { Steps = args.Quick ? 15 : 40 };
            if (args.Override is not null) recipe = recipe.WithOverrides(args.Override);
            if (args.Seed is { } seed) recipe = recipe with { Dapo = recipe.Dapo with { Seed = seed } };
            if (args.Steps is { } steps) recipe = recipe with { Steps = steps };
            if (args.EvaluateEvery is { } every) recipe = recipe with { EvaluateEvery = every };
            recipe.EnsureValid();
            if (!args.ReferenceOnly && recipe.Steps < 3) throw new ArgumentException("--steps: the comparison needs 3 or more steps.");
        }
        catch (Exception e) when (e is ArgumentException or KeyNotFoundException or FormatException or JsonException
                                      or OptionsValidationException)
        {
            Console.Error.WriteLine($"demo-recipe: {e.Message}\n{Usage}");
            return 2;
        }
        if (!args.ReferenceOnly) return Compare(recipe, args.Json);
        if (Run(recipe, args) is not { } report) return 2;
        if (args.Json) Console.WriteLine(report.ToJsonString());
        return 0;
    }

    /// <summary>
    /// Step time of the embedded silo's `train` against this process's reference, on one recipe. A step's time on
    /// the silo is the wall time between its metrics row and the previous one: everything the learner does for a step,
    /// checkpoint and state writes included. The first step (it follows the warm-start) and the last (it evaluates) are
    /// left out of both.
    /// </summary>
    private static int Compare(DemoRecipe recipe, bool json)
    {
        Console.WriteLine($"demo-recipe benchmark: {recipe.Steps} DAPO steps after the warm-start, first in this process (the reference), " +
                          "then on the embedded silo (`dapo-silo train`) from the same warm-start weights");
        var warm = Path.GetTempFileName();
        List<JsonObject>? rows;
        List<JsonObject> reference;
        try
        {
            if (Run(recipe, new Args(recipe.Name, null, null, null, warm, null, null, false, true, false)) is not { } report) return 2;
            reference = report["steps"]!.AsArray().Select(r => r!.AsObject()).ToList();
            rows = EmbeddedTrainRun.Train(recipe.Steps, JsonSerializer.Serialize(recipe), threads: null, initWeights: warm);
        }
        finally
        {
            File.Delete(warm);
        }
        if (rows is null) return 1;
        if (rows.Count != recipe.Steps)
        {
            Console.Error.WriteLine($"train wrote {rows.Count} metrics rows for {recipe.Steps} steps.");
            return 1;
        }
        var times = rows.Select(r => DateTimeOffset.Parse(r["time"]!.GetValue<string>(), CultureInfo.InvariantCulture)).ToList();
        var measured = Enumerable.Range(1, recipe.Steps - 2).ToList();  // 0-based indices of steps 2 .. N-1
        var silo = measured.Select(i => (times[i] - times[i - 1]).TotalSeconds).ToList();
        var local = measured.Select(i => reference[i]["step_seconds"]!.GetValue<double>()).ToList();
        double Median(List<double> x) => x.Order().ElementAt(x.Count / 2);
        string Describe(string name, List<double> seconds, IEnumerable<double> lengths, IEnumerable<double> filtered) =>
            string.Create(CultureInfo.InvariantCulture,
                $"  {name,-10} mean step {seconds.Average():F2} s, median {Median(seconds):F2} s over {seconds.Count} steps; " +
                $"mean response length {lengths.Average():F1}, filtered groups per step {filtered.Average():F1}");
        Console.WriteLine(Describe("reference", local, measured.Select(i => reference[i]["response_length/mean"]!.GetValue<double>()),
            measured.Select(i => reference[i]["train/groups_filtered"]!.GetValue<double>())));
        Console.WriteLine(Describe("embedded", silo, measured.Select(i => rows[i]["response_length/mean"]!.GetValue<double>()),
            measured.Select(i => rows[i]["train/groups_filtered"]!.GetValue<double>())));
        var (meanRatio, medianRatio) = (silo.Average() / local.Average(), Median(silo) / Median(local));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  embedded / reference: {meanRatio:F3}x mean step time ({(meanRatio - 1) * 100:+0.0;-0.0} %), {medianRatio:F3}x median (target: within 5 %)"));
        if (json)
            Console.WriteLine(new JsonObject
            {
                ["reference_step_s"] = new JsonArray(local.Select(x => (JsonNode)x).ToArray()),
                ["embedded_step_s"] = new JsonArray(silo.Select(x => (JsonNode)x).ToArray()),
                ["mean_ratio"] = meanRatio, ["median_ratio"] = medianRatio,
            }.ToJsonString());
        return 0;
    }

    /// <summary>The recipe in this process; its report (recipe, warm-start, evaluations, per-step rows), or null after saying why not.</summary>
    private static JsonObject? Run(DemoRecipe recipe, Args args)
    {
        var total = Stopwatch.StartNew();
        TorchEngine.Threads = recipe.Threads;
        var o = recipe.Dapo;
        var m = recipe.Model;
        var data = DemoData.Create(recipe);
        var reward = RewardFunctions.Get(o.RewardFunction);
        var evaluator = new Evaluator(data.Encoder, reward, recipe.Evaluation);
        var generator = new RolloutGenerator(data.Encoder, new ResponseScorer(reward, o));
        var report = new JsonObject { ["recipe"] = JsonSerializer.SerializeToNode(recipe), ["threads"] = TorchEngine.Threads };
        Console.WriteLine(
            $"demo-recipe '{recipe.Name}': d_model {m.DModel}, {m.Layers} layers, {m.Heads}/{m.KvHeads} heads, d_ff {m.DFf}; " +
            $"levels {string.Join(",", recipe.Levels)}: {data.Train.Count} train / {data.HeldOut.Count} held-out problems; " +
            $"{TorchEngine.Threads} threads");
        Console.WriteLine(
            $"  DAPO: {recipe.Steps} steps, G {o.GroupSize}, batch {o.PromptBatchSize} in {o.MiniBatchesPerStep} mini-batches x {o.PpoEpochs} epoch(s), " +
            $"lr {o.LearningRate:G3} (warm-up {o.WarmupSteps}), eps {o.ClipRatioLow}/{o.ClipRatioHigh}, {o.LossAggregation}, " +
            $"dynamic sampling {(o.DynamicSampling ? $"on (x{o.OverSamplingFactor}, {o.MaxGenerationRounds} rounds)" : "off")}, " +
            $"overlong {(o.OverlongPunishment ? $"{o.MaxResponseLength}/{o.OverlongCacheLength}" : "off")}, seed {o.Seed}; " +
            $"eval {data.HeldOut.Count} x {recipe.Evaluation.SamplesPerProblem} at T {recipe.Evaluation.Temperature}, top-p {recipe.Evaluation.TopP}");

        // ---- Warm-start -------------------------------------------------------------------------------------------
        using var model = args.LoadWarm is { } path ? PolicyModel.FromWeights(File.ReadAllBytes(path)) : PolicyModel.Create(m);
        if (model.Config with { Seed = m.Seed } != m)
        {
            Console.Error.WriteLine($"demo-recipe: {args.LoadWarm} holds a {model.Config} model, not the recipe's {m}.");
            return null;
        }
        Console.WriteLine($"  policy: {model.ParameterElementCount:N0} parameters");
        var warmWatch = Stopwatch.StartNew();
        if (args.LoadWarm is null)
        {
            using var warmOptimizer = WarmStart.CreateOptimizer(model, recipe.WarmStart);
            var warm = WarmStart.Run(model, warmOptimizer, data.Supervised, recipe.WarmStart,
                step => Evaluate(evaluator, model, data, $"warm-start step {step}").AverageAtK,
                p =>
                {
                    if (p.Step % 25 == 0)
                        Console.WriteLine(
                            $"  warm-start step {p.Step,4}: nll {p.Loss:F3} lr {p.LearningRate:G3} {p.TokensPerSecond:F0} tok/s {p.Elapsed.TotalSeconds:F0}s");
                });
            Console.WriteLine($"  warm-start: {warm.Steps} steps, stopped by {warm.Stop}, {warm.Elapsed.TotalSeconds:F1}s");
            report["warm_start"] = JsonSerializer.SerializeToNode(warm);
            if (args.SaveWarm is { } save)
            {
                using var weights = model.ExportWeights();
                File.WriteAllBytes(save, weights.ToArray());
            }
        }
        var warmSeconds = warmWatch.Elapsed.TotalSeconds;
        var before = Evaluate(evaluator, model, data, "after warm-start");
        var evaluations = new JsonArray { EvaluationJson(0, before) };

        // ---- DAPO steps -------------------------------------------------------------------------------------------
        var rlWatch = Stopwatch.StartNew();
        using var optimizer = PolicyUpdater.CreateOptimizer(model, o);
        var updater = new PolicyUpdater(model, optimizer, o, recipe.MaxTokensPerMicroBatch);
        var policy = DynamicSamplingPolicy.FromOptions(o);
        var cursor = new DatasetCursor(data.Train.Count, o.Seed, o.ShuffleData);
        var steps = new JsonArray();
        var last = before;
        for (var step = 0; step < recipe.Steps; step++)
        {
            var stepWatch = Stopwatch.StartNew();
            var sampled = SampleStep(model, generator, policy, cursor, data, o, step);
            var sampleSeconds = stepWatch.Elapsed.TotalSeconds;
            PolicyUpdateResult? update = null;
            if (sampled.Accepted.Count > 0) update = updater.Update(sampled.Accepted.Select(g => g.ToTrainingGroup()).ToArray(), step);
            var stepSeconds = stepWatch.Elapsed.TotalSeconds;
            var trained = sampled.Accepted.SelectMany(g => g.Outcomes).ToArray();
            var metrics = StepMetrics.Compute(new StepMetricsInput
            {
                Step = step, Responses = trained, Advantages = update?.Advantages ?? [],
                CorrectResponsesByGroup = sampled.Accepted.Select(g => g.Slots.Where(s => s.Correct).Select(s => s.Tokens).ToArray()).ToArray(),
                Entropies = update?.Entropies ?? [], LogProbs = sampled.Accepted.SelectMany(g => g.Slots.SelectMany(s => s.LogProbs)).ToArray(),
                GenerationRounds = policy.GenerationRounds(new StepCounters(o.PromptBatchSize, sampled.Accepted.Count, 0, sampled.Draws)),
                GroupsAccepted = sampled.Accepted.Count, GroupsFiltered = sampled.Filtered,
                Updates = update?.Updates ?? [], LearningRate = update?.LearningRate ?? 0,
            });
            var tokens = sampled.GeneratedTokens + (update?.ScoredTokens ?? 0);
            Console.WriteLine(
                $"  step {step + 1,3}: acc {sampled.Accuracy:F3} (trained {metrics.Accuracy:F3}) reward {metrics.RewardMean:F3} " +
                $"entropy {metrics.EntropyMean:F3} len {metrics.ResponseLengthMean:F1} filtered {sampled.Filtered} rounds {metrics.GenerationRounds} " +
                $"clip {metrics.ClipFraction:F3} kl {metrics.ApproxKl:F4} gnorm {metrics.GradNorm:F2} " +
                $"{tokens / stepSeconds:F0} tok/s (sample {sampled.GeneratedTokens / sampleSeconds:F0}, train {update?.TokensPerSecond ?? 0:F0}) {stepSeconds:F1}s" +
                (update is null ? " (no informative group at the cap: no update)" : ""));
            var row = new JsonObject();  // metrics.jsonl's names
            foreach (var (key, value) in metrics.ToDictionary()) row[key] = value;
            row["sampled_accuracy"] = sampled.Accuracy;
            row["step_seconds"] = stepSeconds;
            row["sample_seconds"] = sampleSeconds;
            row["generated_tokens"] = sampled.GeneratedTokens;
            row["tokens_per_second"] = tokens / stepSeconds;
            steps.Add(row);
            if ((recipe.EvaluateEvery > 0 && (step + 1) % recipe.EvaluateEvery == 0) || step + 1 == recipe.Steps)
            {
                last = Evaluate(evaluator, model, data, $"after step {step + 1}");
                evaluations.Add(EvaluationJson(step + 1, last));
            }
        }
        var rlSeconds = rlWatch.Elapsed.TotalSeconds;
        Console.WriteLine(
            $"demo-recipe '{recipe.Name}' seed {o.Seed}: held-out avg@{last.K} {before.AverageAtK:P1} after warm-start -> " +
            $"{last.AverageAtK:P1} after {recipe.Steps} steps ({(last.AverageAtK - before.AverageAtK) * 100:+0.0;-0.0} points); " +
            $"warm-start {warmSeconds:F0}s, DAPO {rlSeconds:F0}s, total {total.Elapsed.TotalSeconds:F0}s");
        report["evaluations"] = evaluations;
        report["steps"] = steps;
        report["warm_start_seconds"] = warmSeconds;
        report["dapo_seconds"] = rlSeconds;
        report["total_seconds"] = total.Elapsed.TotalSeconds;
        report["avg_at_k_before"] = before.AverageAtK;
        report["avg_at_k_after"] = last.AverageAtK;
        return report;
    }

    /// <summary>What one step's sampling produced.</summary>
    private sealed record StepSample(IReadOnlyList<RolloutGroup> Accepted, int Filtered, int Draws, double Accuracy, long GeneratedTokens);

    /// <summary>
    /// In-memory dynamic sampling for one step: ask the policy what to do, draw that many prompts, generate their
    /// groups, judge each; repeat until the target is met or the cap stops it. Groups beyond the target are dropped
    /// (verl's surplus behaviour).
    /// </summary>
    private static StepSample SampleStep(
        PolicyModel model, RolloutGenerator generator, DynamicSamplingPolicy policy, DatasetCursor cursor, DemoData data,
        DapoOptions o, int step)
    {
        var accepted = new List<RolloutGroup>();
        int filtered = 0, draws = 0, correct = 0, responses = 0;
        long tokens = 0;
        var settings = RolloutSettings.ForTraining(o, DeterministicRandom.Mix(o.Seed, (ulong)step));
        while (true)
        {
            var decision = policy.Decide(new StepCounters(o.PromptBatchSize, accepted.Count, 0, draws));
            if (decision.Action == SamplingAction.Stop) break;
            if (decision.Action == SamplingAction.Wait) throw new InvalidOperationException("Nothing is in flight; the policy cannot wait.");
            var prompts = cursor.Take(decision.Prompts).Select(i => data.Train[i]).ToArray();
            draws += prompts.Length;
            foreach (var group in generator.Generate(model, prompts, settings))
            {
                correct += group.Slots.Count(s => s.Correct);
                responses += group.Slots.Count;
                tokens += group.Slots.Sum(s => s.Length);
                if (policy.Judge(group.Outcomes) == GroupVerdict.Accepted) accepted.Add(group);
                else filtered++;
            }
        }
        return new StepSample(accepted.Take(o.PromptBatchSize).ToArray(), filtered, draws, (double)correct / responses, tokens);
    }

    private static EvaluationResult Evaluate(Evaluator evaluator, PolicyModel model, DemoData data, string label)
    {
        var result = evaluator.Evaluate(model, data.HeldOut);
        var levels = string.Join(" ", result.AverageAtKBySource.Select(kv => $"{kv.Key} {kv.Value:P0}"));
        Console.WriteLine(
            $"  eval {label}: avg@{result.K} {result.AverageAtK:P1} pass@{result.K} {result.PassAtK:P1} maj@{result.K} {result.MajorityAtK:P1} " +
            $"({levels}) len {result.MeanResponseLength:F1} {result.Elapsed.TotalSeconds:F1}s");
        return result;
    }

    private static JsonObject EvaluationJson(int step, EvaluationResult r) => new()
    {
        ["step"] = step, ["avg_at_k"] = r.AverageAtK, ["pass_at_k"] = r.PassAtK, ["maj_at_k"] = r.MajorityAtK, ["k"] = r.K,
        ["mean_length"] = r.MeanResponseLength, ["seconds"] = r.Elapsed.TotalSeconds,
        ["by_source"] = JsonSerializer.SerializeToNode(r.AverageAtKBySource),
    };

    private static Args Parse(string[] argv)
    {
        string recipe = "dapo";
        ulong? seed = null;
        int? steps = null, every = null;
        string? save = null, load = null, patch = null;
        bool json = false, referenceOnly = false, quick = false;
        for (var i = 0; i < argv.Length; i++)
        {
            string Value() => i + 1 < argv.Length ? argv[++i] : throw new ArgumentException($"{argv[i]} needs a value.");
            switch (argv[i])
            {
                case "--recipe": recipe = Value(); break;
                case "--seed": seed = ulong.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--steps": steps = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--eval-every": every = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--save-warm": save = Value(); break;
                case "--load-warm": load = Value(); break;
                case "--override": patch = Value(); break;
                case "--json": json = true; break;
                case "--reference-only": referenceOnly = true; break;
                case "--quick": quick = true; break;
                default: throw new ArgumentException($"unknown option {argv[i]}.");
            }
        }
        return new Args(recipe, seed, steps, every, save, load, patch, json, referenceOnly, quick);
    }

}
