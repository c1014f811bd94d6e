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
    /// <summary>What the report wrote and the final numbers per rung.</summary>
    public sealed record Summary(IReadOnlyList<RungResult> Rungs, double WarmStartAccuracy, int K, IReadOnlyList<string> Files);

    /// <param name="Mean">Mean over seeds of the final held-out avg@k.</param>
    /// <param name="Spread">Max minus min over seeds.</param>
    public sealed record RungResult(string Key, string Label, double? PaperAime, IReadOnlyList<double> Finals, double Mean, double Min,
        double Max, double Spread, double MeanSecondsPerStep);

    public static Summary Write(string directory, IReadOnlyList<ExperimentRun> runs, double warmStartAccuracy, int k)
    {
        Directory.CreateDirectory(directory);
        var accuracyKey = $"eval/avg@{k}";
        var files = new List<string>();
        var rungs = runs.GroupBy(r => r.Rung.Key).Select(g => g.ToList()).ToList();
        var results = rungs.Select(g =>
        {
            var finals = g.Select(r => r.Series(accuracyKey).Last().Value).ToList();
            return new RungResult(g[0].Rung.Key, g[0].Rung.Label, g[0].Rung.PaperAime, finals, finals.Average(), finals.Min(), finals.Max(),
                finals.Max() - finals.Min(), g.Average(r => r.Steps.Average(s => r.Value(s, "timing/step_s"))));
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

        var entropy = new SvgLineChart("Entropy with and without Clip-Higher", "step", "mean token entropy");
        foreach (var key in new[] { "overlong-filtering", "clip-higher", "dapo" })
            if (Rung(key) is { } g) entropy.Series.Add(Mean(g, "actor/entropy", key == "overlong-filtering" ? "without Clip-Higher (" + g[0].Rung.Label.TrimStart('+', ' ') + ")" : g[0].Rung.Label));
        if (entropy.Series.Count > 0) Chart("entropy.svg", entropy);

        var length = new SvgLineChart("Response length: sample-level vs token-level loss", "step", "mean response length (tokens)");
        foreach (var (key, name) in new[] { ("soft-overlong", "sample-level loss (seq-mean-token-mean)"), ("token-level", "token-level loss (token-mean)") })
            if (Rung(key) is { } g) length.Series.Add(Mean(g, "response_length/mean", name));
        if (length.Series.Count > 0) Chart("response_length.svg", length);

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
                for (var j = 0; j < g.Count; j++) clock[j] += g[j].Value(g[j].Steps[i], "timing/step_s");
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

    /// <summary>The ablation table in the paper's form, our numbers beside the paper's.</summary>
    public static string Table(Summary s)
    {
        var table = new StringBuilder();
        var seeds = s.Rungs.Count == 0 ? 0 : s.Rungs[0].Finals.Count;
        table.AppendLine(CultureInfo.InvariantCulture, $"| Model | Paper: AIME 2024 avg@32 (Qwen2.5-32B) | Ours: held-out avg@{s.K}, mean of {seeds} seed(s) | spread (max - min) | s/step |");
        table.AppendLine("| --- | ---: | ---: | ---: | ---: |");
        table.AppendLine(CultureInfo.InvariantCulture, $"| Warm-start (start of every run) | | {s.WarmStartAccuracy * 100:F1} | | |");
        foreach (var r in s.Rungs)
            table.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.Label} | {(r.PaperAime is { } p ? p.ToString(CultureInfo.InvariantCulture) : "")} | {r.Mean * 100:F1} | {r.Spread * 100:F1} | {r.MeanSecondsPerStep:F2} |");
        return table.ToString();
    }
}
