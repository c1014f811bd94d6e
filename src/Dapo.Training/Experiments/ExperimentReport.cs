using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Training.Reports;

namespace Dapo.Training.Experiments;

/// <summary>One finished run of the suite: its rung, seed and per-step metrics rows (metrics.jsonl).</summary>
public sealed record ExperimentRun(AblationRecipe Rung, ulong Seed, IReadOnlyList<JsonObject> Steps)
{
    public static ExperimentRun Load(AblationRecipe rung, ulong seed, string metricsFile) =>
        new(rung, seed, File.ReadLines(metricsFile).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList());

    public double Value(JsonObject row, string key) => row.TryGetPropertyValue(key, out var v) && v is not null ? v.GetValue<double>() : double.NaN;

    /// <summary>(step, value) of every row that has <paramref name="key"/>.</summary>
    public IEnumerable<(double Step, double Value)> Series(string key) =>
        Steps.Where(r => r.ContainsKey(key)).Select(r => ((double)r["step"]!.GetValue<int>(), Value(r, key)));
}

/// <summary>
/// The results of the ablation suite: the table in the paper's form (our numbers beside the paper's), the plots the
/// issue asks for as SVG files, and a JSON summary, written to the results directory.
/// </summary>
public static class ExperimentReport
{
    /// <summary>What the report wrote and the numbers per rung.</summary>
    public sealed record Summary(IReadOnlyList<RungResult> Rungs, double WarmStartAccuracy, int K, IReadOnlyList<string> Files)
    {
        /// <summary>What each component changes: every pair of <see cref="Components"/> present, on every metric of the table.</summary>
        public IReadOnlyList<Effect> Effects => [.. Components.SelectMany(c =>
            Rungs.FirstOrDefault(r => r.Key == c.From) is { } from && Rungs.FirstOrDefault(r => r.Key == c.To) is { } to
                ? Metrics.Select(m => new Effect(c.Name, m.Name, (m.Of(to).Mean - m.Of(from).Mean) * m.Scale, Separated(m.Of(from), m.Of(to)),
                    SeedBySeed(from.Seeds, m.Of(from), to.Seeds, m.Of(to))))
                : [])];
    }

    /// <summary>The change a component makes to one metric: the difference of the seed means (with − without, in the
    /// table's units: points for shares), and whether it is beyond the seed spread: every seed of one rung on the same
    /// side of every seed of the other. One seed is never beyond its spread. <paramref name="Seeds"/> compares the two
    /// rungs seed by seed, over the seeds both ran.</summary>
    public sealed record Effect(string Component, string Metric, double Difference, bool BeyondSpread, PairedSeeds Seeds);

    /// <summary>Of the seeds both rungs ran, those where the rung with the component is the higher, the lower, and the
    /// same. A seed fixes the prompts drawn and the sampling's random stream, so the two rungs of a seed start alike,
    /// and a component can move every seed the same way while the seeds' own differences are larger than its effect.</summary>
    public sealed record PairedSeeds(int Higher, int Lower, int Same)
    {
        public int Count => Higher + Lower + Same;

        /// <summary>"(3↑ 2↓)", "(5↑)", "(5=)"; empty when no seed was run by both.</summary>
        public override string ToString()
        {
            var parts = new[] { (Seeds: Higher, Mark: '↑'), (Seeds: Lower, Mark: '↓'), (Seeds: Same, Mark: '=') }
                .Where(p => p.Seeds > 0).Select(p => $"{p.Seeds}{p.Mark}");
            return Count == 0 ? "" : $"({string.Join(' ', parts)})";
        }
    }

    private static PairedSeeds SeedBySeed(IReadOnlyList<ulong> fromSeeds, SeedStat from, IReadOnlyList<ulong> toSeeds, SeedStat to)
    {
        var (higher, lower, same) = (0, 0, 0);
        var fromIndex = fromSeeds.Select((seed, j) => (seed, j)).ToDictionary(p => p.seed, p => p.j);
        for (var i = 0; i < toSeeds.Count; i++)
        {
            if (!fromIndex.TryGetValue(toSeeds[i], out var j) || !double.IsFinite(to.PerSeed[i]) || !double.IsFinite(from.PerSeed[j])) continue;
            if (to.PerSeed[i] > from.PerSeed[j]) higher++;
            else if (to.PerSeed[i] < from.PerSeed[j]) lower++;
            else same++;
        }
        return new PairedSeeds(higher, lower, same);
    }

    /// <summary>The components the ladder adds, each as the pair of rungs that differ by it alone, then the whole of DAPO
    /// against naive GRPO, then each component taken out of full DAPO (<see cref="AblationLadder.LeaveOneOut"/>).</summary>
    public static IReadOnlyList<(string Name, string From, string To)> Components { get; } =
    [
        ("Overlong Filtering", "grpo", "overlong-filtering"),
        ("Clip-Higher", "overlong-filtering", "clip-higher"),
        ("Soft Overlong Punishment", "clip-higher", "soft-overlong"),
        ("Token-level Loss", "soft-overlong", "token-level"),
        ("Dynamic Sampling", "token-level", "dapo"),
        ("DAPO vs naive GRPO", "grpo", "dapo"),
        ("Clip-Higher, in DAPO", "dapo-no-clip-higher", "dapo"),
        ("Overlong Filtering, in DAPO", "dapo-no-filtering", "dapo"),
        ("Soft Overlong Punishment, in DAPO", "dapo-no-soft-overlong", "dapo"),
        ("Both overlong components, in DAPO", "dapo-no-overlong", "dapo"),
        ("Token-level Loss, in DAPO", "dapo-no-token-level", "dapo"),
    ];

    // Each metric of the effects table with the scale and format of its column in the rung table.
    private static readonly (string Name, Func<RungResult, SeedStat> Of, double Scale, string Format)[] Metrics =
    [
        ("final avg@k %", r => r.Accuracy, 100, "F1"), ("run-mean avg@k %", r => r.MeanAccuracy, 100, "F1"), ("pass@k %", r => r.PassAtK, 100, "F1"),
        ("entropy", r => r.Entropy, 1, "F3"), ("entropy, last fifth", r => r.LateEntropy, 1, "F4"), ("length", r => r.ResponseLength, 1, "F1"),
        ("truncated %", r => r.TruncatedShare, 100, "F1"), ("held-out truncated %", r => r.HeldOutTruncatedShare, 100, "F1"), ("clipped ↑ %", r => r.ClipUpper, 100, "F2"),
        ("distinct right answers %", r => r.DistinctCorrect, 100, "F1"), ("same right-answer pairs %", r => r.SameCorrectPairs, 100, "F1"),
    ];

    private static bool Separated(SeedStat a, SeedStat b) =>
        a.PerSeed.Count > 1 && b.PerSeed.Count > 1 && (b.Min > a.Max || b.Max < a.Min);

    /// <summary>One number per seed, and its mean and spread.</summary>
    public sealed record SeedStat(IReadOnlyList<double> PerSeed, double Mean, double Min, double Max)
    {
        public double Spread => Max - Min;

        public static SeedStat Of(IReadOnlyList<double> values) =>
            values.Count == 0 ? new SeedStat(values, double.NaN, double.NaN, double.NaN) : new SeedStat(values, values.Average(), values.Min(), values.Max());
    }

    /// <summary>A rung's numbers over its seeds: the final held-out scores, and what each run measured over all its
    /// steps (the mean of the per-step values).</summary>
    /// <param name="Accuracy">Final held-out avg@k.</param>
    /// <param name="MeanAccuracy">Held-out avg@k averaged over the run's evaluations (the warm-start's excluded): less
    /// noisy than the final one, since every evaluation samples afresh.</param>
    /// <param name="PassAtK">Final held-out pass@k.</param>
    /// <param name="Entropy">Mean token entropy of the sampled responses, over the run.</param>
    /// <param name="LateEntropy">Mean token entropy over the last fifth of the run's steps (at least one): where the
    /// paper's Figure 2b curves have parted, and the whole-run mean still carries the shared start.</param>
    /// <param name="ResponseLength">Mean response length (tokens), over the run.</param>
    /// <param name="TruncatedShare">Share of the trained responses that reached the length limit, over the run.</param>
    /// <param name="HeldOutTruncatedShare">Share of the final evaluation's held-out samples that reached the length
    /// limit: what the policy has learnt about length, where the trained share is what dynamic sampling let through.</param>
    /// <param name="ClipUpper">Share of tokens clipped at the upper bound 1 + ε_high, over the run.</param>
    /// <param name="ClipLower">Share of tokens clipped at the lower bound 1 − ε_low, over the run.</param>
    /// <param name="DistinctCorrect">Share of a trained group's correct responses that are distinct, over the run
    /// (<see cref="Dapo.Core.Metrics.StepMetrics.DistinctCorrectShare"/>): how many ways of solving a problem the
    /// policy still samples.</param>
    /// <param name="SameCorrectPairs">Share of pairs of a trained group's correct responses that are the same, over the
    /// run (<see cref="Dapo.Core.Metrics.StepMetrics.SameCorrectPairShare"/>): the same question, unaffected by how
    /// many responses were right.</param>
    /// <param name="SecondsPerStep">Mean seconds a step.</param>
    /// <param name="AccuracyBySource">Final held-out avg@k of each source the evaluation reports apart (the synthetic
    /// tasks' levels: "L3", ..., "L10"), in natural order; empty when it reports none.</param>
    /// <param name="Seeds">The runs' seeds, in the order of every <see cref="SeedStat.PerSeed"/>.</param>
    public sealed record RungResult(string Key, string Label, double? PaperAime, SeedStat Accuracy, SeedStat MeanAccuracy, SeedStat PassAtK, SeedStat Entropy,
        SeedStat LateEntropy, SeedStat ResponseLength, SeedStat TruncatedShare, SeedStat HeldOutTruncatedShare, SeedStat ClipUpper, SeedStat ClipLower,
        SeedStat DistinctCorrect, SeedStat SameCorrectPairs, double SecondsPerStep,
        IReadOnlyList<KeyValuePair<string, SeedStat>> AccuracyBySource, IReadOnlyList<ulong> Seeds);

    /// <summary>The per-step metrics the report reads (metrics.jsonl keys).</summary>
    public const string EntropyKey = "actor/entropy", LengthKey = "response_length/mean", TruncatedKey = "response_length/clip_ratio",
        ClipUpperKey = "actor/pg_clipfrac_upper", UpClippedProbabilityKey = "actor/pg_clipped_upper_prob", ClipLowerKey = "actor/pg_clipfrac_lower_bound", StepSecondsKey = "timing/step_s",
        HeldOutTruncatedKey = "eval/truncated_share", DistinctCorrectKey = "response/distinct_correct_share",
        SameCorrectPairsKey = "response/same_correct_pair_share";

    public static Summary Write(string directory, IReadOnlyList<ExperimentRun> runs, double warmStartAccuracy, int k)
    {
        Directory.CreateDirectory(directory);
        var accuracyKey = $"eval/avg@{k}";
        var passKey = $"eval/pass@{k}";
        var files = new List<string>();
        var rungs = runs.GroupBy(r => r.Rung.Key).Select(g => g.ToList()).ToList();
        var results = rungs.Select(g =>
        {
            SeedStat Final(string key) => SeedStat.Of(g.Select(r => r.Series(key).Select(p => p.Value).DefaultIfEmpty(double.NaN).Last()).ToList());
            SeedStat OverRun(string key, bool lastFifth = false) => SeedStat.Of(g.Select(r =>
            {
                var values = r.Series(key).Select(p => p.Value).Where(double.IsFinite).ToList();
                return (lastFifth ? values.TakeLast(Math.Max(1, values.Count / 5)) : values).DefaultIfEmpty(double.NaN).Average();
            }).ToList());
            var sources = g[0].Steps.LastOrDefault(row => row.ContainsKey(accuracyKey)) is { } last
                ? last.Select(p => p.Key).Where(key => key.StartsWith(accuracyKey + "/", StringComparison.Ordinal)).OrderBy(NaturalOrder).ToList()
                : [];
            return new RungResult(g[0].Rung.Key, g[0].Rung.Label, g[0].Rung.PaperAime, Final(accuracyKey), OverRun(accuracyKey), Final(passKey), OverRun(EntropyKey),
                OverRun(EntropyKey, lastFifth: true), OverRun(LengthKey), OverRun(TruncatedKey), Final(HeldOutTruncatedKey), OverRun(ClipUpperKey), OverRun(ClipLowerKey),
                OverRun(DistinctCorrectKey), OverRun(SameCorrectPairsKey), OverRun(StepSecondsKey).Mean,
                [.. sources.Select(key => KeyValuePair.Create(key[(accuracyKey.Length + 1)..], Final(key)))], [.. g.Select(r => r.Seed)]);
        }).ToList();

        void Chart(string file, SvgLineChart chart)
        {
            File.WriteAllText(Path.Combine(directory, file), chart.Render());
            files.Add(file);
        }
        ChartSeries Mean(List<ExperimentRun> group, string key, string? name = null, double? start = null)
        {
            var steps = group[0].Series(key).Select(p => p.Step).ToList();
            var points = new List<(double, double)>();
            var band = new List<(double, double, double)>();
            if (start is { } s0)
            {
                points.Add((0, s0));
                band.Add((0, s0, s0));
            }
            foreach (var step in steps)
            {
                var values = group.Select(r => r.Series(key).FirstOrDefault(p => p.Step == step).Value).Where(double.IsFinite).ToList();
                if (values.Count == 0) continue;
                points.Add((step, values.Average()));
                band.Add((step, values.Min(), values.Max()));
            }
            return new ChartSeries(name ?? group[0].Rung.Label, points, group.Count > 1 ? band : null);
        }
        List<ExperimentRun>? Rung(string key) => rungs.FirstOrDefault(g => g[0].Rung.Key == key);

        var accuracy = new SvgLineChart($"Held-out avg@{k} by step (mean over seeds, band: min-max)", "step", $"avg@{k}") { YRange = (0, 1) };
        foreach (var g in rungs) accuracy.Series.Add(Mean(g, accuracyKey, start: warmStartAccuracy));
        Chart("accuracy.svg", accuracy);

        // The paper's figures, each a pair of rungs that differ by one component (the ladder adds them in turn).
        void Pair(string file, string title, string yLabel, string key, (string Rung, string Name)[] lines, (double, double)? range = null, double? start = null)
        {
            var chart = new SvgLineChart(title, "step", yLabel) { YRange = range };
            // A run written before a metric existed has none of it: no line rather than an empty one.
            foreach (var (rung, name) in lines)
                if (Rung(rung) is { } g && Mean(g, key, name, start) is { Points.Count: > 0 } series) chart.Series.Add(series);
            if (chart.Series.Count > 0) Chart(file, chart);
        }
        (string, string)[] clipHigher = [("overlong-filtering", "without Clip-Higher (ε_high 0.2)"), ("clip-higher", "with Clip-Higher (ε_high 0.28)")];
        (string, string)[] clipHigherAndDapo = [.. clipHigher, ("dapo", "DAPO"), ("dapo-no-clip-higher", "DAPO without Clip-Higher")];
        (string, string)[] tokenLevel = [("soft-overlong", "sample-level loss (seq-mean-token-mean)"), ("token-level", "token-level loss (token-mean)")];
        (string, string)[] filtering = [("grpo", "without Overlong Filtering"), ("overlong-filtering", "with Overlong Filtering")];
        (string, string)[] punishment = [("clip-higher", "without Soft Overlong Punishment"), ("soft-overlong", "with Soft Overlong Punishment")];
        // Figure 2: accuracy and entropy, with and without clip-higher (full DAPO beside them).
        Pair("entropy.svg", "Entropy with and without Clip-Higher (paper Fig. 2b)", "mean token entropy", EntropyKey, clipHigherAndDapo);
        // Entropy counts tokens; this counts whole solutions: whether the policy still finds a problem's answer more than one way.
        Pair("distinct_correct.svg", "Distinct right answers with and without Clip-Higher", "distinct share of a group's right answers", DistinctCorrectKey,
            clipHigherAndDapo, (0, 1));
        Pair("same_correct_pairs.svg", "Pairs of right answers that are the same, with and without Clip-Higher", "share of pairs of a group's right answers",
            SameCorrectPairsKey, clipHigherAndDapo, (0, 1));
        Pair("clip_higher_accuracy.svg", $"Held-out avg@{k} with and without Clip-Higher (paper Fig. 2a)", $"avg@{k}", accuracyKey, clipHigher, (0, 1), warmStartAccuracy);
        Pair("clip_fraction_upper.svg", "Tokens clipped at the upper bound 1 + ε_high", "share of tokens", ClipUpperKey, clipHigher);
        // Figure 3a: the bound is meant for unlikely tokens; a step with none clipped above plots 0.
        Pair("up_clipped_probability.svg", "Mean probability of the tokens clipped at 1 + ε_high (paper Fig. 3a)", "mean π_old (0: none clipped)",
            UpClippedProbabilityKey, clipHigherAndDapo, (0, 1));
        Pair("clip_fraction_lower.svg", "Tokens clipped at the lower bound 1 − ε_low", "share of tokens", ClipLowerKey, clipHigher);
        // Figure 4: length and entropy, sample-level against token-level loss.
        Pair("response_length.svg", "Response length: sample-level vs token-level loss (paper Fig. 4b)", "mean response length (tokens)", LengthKey, tokenLevel);
        Pair("token_level_entropy.svg", "Entropy: sample-level vs token-level loss (paper Fig. 4a)", "mean token entropy", EntropyKey, tokenLevel);
        // Figure 5: accuracy and entropy with and without overlong filtering; the soft punishment's effect on truncation.
        Pair("overlong_accuracy.svg", $"Held-out avg@{k} with and without Overlong Filtering (paper Fig. 5a)", $"avg@{k}", accuracyKey, filtering, (0, 1), warmStartAccuracy);
        Pair("overlong_entropy.svg", "Entropy with and without Overlong Filtering (paper Fig. 5b)", "mean token entropy", EntropyKey, filtering);
        var truncated = new SvgLineChart("Truncated responses (reached the length limit)", "step", "share of responses") { YRange = (0, 1) };
        foreach (var g in rungs) truncated.Series.Add(Mean(g, TruncatedKey));
        Chart("truncated_share.svg", truncated);
        var heldOutTruncated = new SvgLineChart("Held-out samples cut off at the length limit", "step", "share of held-out samples") { YRange = (0, 1) };
        foreach (var g in rungs) heldOutTruncated.Series.Add(Mean(g, HeldOutTruncatedKey));
        Chart("held_out_truncated_share.svg", heldOutTruncated);
        Pair("soft_overlong_length.svg", "Response length with and without Soft Overlong Punishment", "mean response length (tokens)", LengthKey, punishment);

        if (Rung("dapo") is { } dapo)
        {
            var rounds = new SvgLineChart("Dynamic sampling: generation rounds per step (DAPO)", "step", "generation rounds");
            rounds.Series.Add(Mean(dapo, "train/num_gen_batches", "generation rounds"));
            Chart("generation_rounds.svg", rounds);
            var filtered = new SvgLineChart("Dynamic sampling: share of groups filtered (DAPO)", "step", "filtered / judged") { YRange = (0, 1) };
            filtered.Series.Add(Mean(dapo, "train/filtered_fraction", "filtered share"));
            Chart("filtered_share.svg", filtered);
        }

        var time = new SvgLineChart($"Held-out avg@{k} by wall-clock time", "seconds of training", $"avg@{k}") { YRange = (0, 1) };
        foreach (var (key, name) in new[] { ("dapo", "DAPO"), ("token-level", "DAPO without dynamic sampling") })
        {
            if (Rung(key) is not { } g) continue;
            var points = new List<(double, double)> { (0, warmStartAccuracy) };
            var clock = g.Select(r => 0.0).ToArray();
            var stepCount = g.Min(r => r.Steps.Count);
            for (var i = 0; i < stepCount; i++)
            {
                for (var j = 0; j < g.Count; j++) clock[j] += g[j].Value(g[j].Steps[i], StepSecondsKey);
                var values = g.Select(r => r.Value(r.Steps[i], accuracyKey)).ToList();
                if (values.All(double.IsFinite)) points.Add((clock.Average(), values.Average()));
            }
            time.Series.Add(new ChartSeries(name, points));
        }
        if (time.Series.Count > 0) Chart("accuracy_vs_time.svg", time);

        var summary = new Summary(results, warmStartAccuracy, k, files);
        File.WriteAllText(Path.Combine(directory, "summary.json"), JsonSerializer.Serialize(summary, new JsonSerializerOptions { WriteIndented = true }));
        File.WriteAllText(Path.Combine(directory, "table.md"), Table(summary));
        files.AddRange(["summary.json", "table.md"]);
        return summary with { Files = files };
    }

    // A source name in natural order: "L9" before "L10" (the metrics keep the ordinal order, "L10" before "L3").
    private static string NaturalOrder(string source)
    {
        var digits = source.Length;
        while (digits > 0 && char.IsAsciiDigit(source[digits - 1])) digits--;
        return source[..digits] + source[digits..].PadLeft(20, '0');
    }

    /// <summary>The ablation table in the paper's form, our numbers beside the paper's: each cell the mean over seeds,
    /// with the spread (max − min) in brackets; then what each component changes, and whether beyond the spread.</summary>
    public static string Table(Summary s)
    {
        var table = new StringBuilder();
        var seeds = s.Rungs.Count == 0 ? 0 : s.Rungs[0].Accuracy.PerSeed.Count;
        string Number(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
        string Cell(SeedStat stat, double scale, string format) => !double.IsFinite(stat.Mean) ? "" : seeds > 1
            ? $"{Number(stat.Mean * scale, format)} ({Number(stat.Spread * scale, format)})"
            : Number(stat.Mean * scale, format);
        table.AppendLine(CultureInfo.InvariantCulture,
            $"| Model | Paper: AIME 2024 avg@32 (Qwen2.5-32B) | Ours: held-out avg@{s.K} (spread), {seeds} seed(s) | run-mean avg@{s.K} | pass@{s.K} | entropy | entropy, last fifth | length | truncated % | held-out truncated % | clipped ↑ % | clipped ↓ % | distinct right answers % | same right-answer pairs % | s/step |");
        table.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        table.AppendLine(CultureInfo.InvariantCulture, $"| Warm-start (start of every run) | | {s.WarmStartAccuracy * 100:F1} | | | | | | | | | | | | |");
        foreach (var r in s.Rungs)
            table.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.Label} | {(r.PaperAime is { } p ? p.ToString(CultureInfo.InvariantCulture) : "")} | {Cell(r.Accuracy, 100, "F1")} | {Cell(r.MeanAccuracy, 100, "F1")} | " +
                $"{Cell(r.PassAtK, 100, "F1")} | {Cell(r.Entropy, 1, "F3")} | {Cell(r.LateEntropy, 1, "F4")} | {Cell(r.ResponseLength, 1, "F1")} | {Cell(r.TruncatedShare, 100, "F1")} | " +
                $"{Cell(r.HeldOutTruncatedShare, 100, "F1")} | {Cell(r.ClipUpper, 100, "F2")} | {Cell(r.ClipLower, 100, "F2")} | {Cell(r.DistinctCorrect, 100, "F1")} | {Cell(r.SameCorrectPairs, 100, "F1")} | {r.SecondsPerStep:F2} |");

        var sources = s.Rungs.SelectMany(r => r.AccuracyBySource.Select(p => p.Key)).Distinct().ToList();
        if (sources.Count > 0)
        {
            table.AppendLine();
            table.AppendLine(CultureInfo.InvariantCulture, $"Final held-out avg@{s.K} % per source (the synthetic tasks' levels): where a component's effect lies.");
            table.AppendLine();
            table.AppendLine($"| Model | {string.Join(" | ", sources)} |");
            table.AppendLine($"| --- |{string.Concat(sources.Select(_ => " ---: |"))}");
            foreach (var r in s.Rungs)
                table.AppendLine($"| {r.Label} | {string.Join(" | ", sources.Select(source =>
                    r.AccuracyBySource.FirstOrDefault(p => p.Key == source).Value is { } stat ? Cell(stat, 100, "F1") : ""))} |");
        }

        var effects = s.Effects;
        if (effects.Count == 0) return table.ToString();
        table.AppendLine();
        table.AppendLine("What each component changes: the difference of the seed means, with it − without it; ** marks a difference beyond the seed spread (every seed of one rung past every seed of the other). " +
                         "In brackets, seed by seed over the seeds both rungs ran: in how many the rung with the component is higher (↑), lower (↓) or the same (=).");
        table.AppendLine();
        table.AppendLine($"| Component | {string.Join(" | ", Metrics.Select(m => m.Name.Replace("@k", $"@{s.K}", StringComparison.Ordinal)))} |");
        table.AppendLine($"| --- |{string.Concat(Metrics.Select(_ => " ---: |"))}");
        foreach (var component in effects.GroupBy(e => e.Component))
            table.AppendLine($"| {component.Key} | {string.Join(" | ", component.Select(e =>
            {
                if (!double.IsFinite(e.Difference)) return "";
                // Signed; the third section makes a difference that rounds to zero +0.0 rather than -0.0.
                var decimals = new string('0', int.Parse(Metrics.First(m => m.Name == e.Metric).Format[1..], CultureInfo.InvariantCulture));
                var text = Number(e.Difference, $"+0.{decimals};-0.{decimals};+0.{decimals}");
                return $"{(e.BeyondSpread ? $"**{text}**" : text)} {e.Seeds}".TrimEnd();
            }))} |");
        return table.ToString();
    }
}
