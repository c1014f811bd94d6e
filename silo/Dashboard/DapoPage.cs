using System.Text.Json;
using Dapo.Grains;
using Dapo.Grains.Blobs;
using Dapo.Grains.Inspection;
using Dapo.Training.Reports;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Dapo.Silo.Dashboard;

/// <summary>
/// The Dapo page of the dashboard: the run, the current step's ledger, the learner's phase, the rollout workers, and
/// plots of the paper's training dynamics over steps, refreshed every 2 s. The data is what `dapo-client watch` shows,
/// read by the same <see cref="Inspector"/> through this silo's own grains; the plots are <see cref="SvgLineChart"/>s
/// rendered here (no script library, no CDN).
/// </summary>
internal static class DapoPage
{
    /// <summary>The plots: file name, title, y label, the value of a step, a fixed y range.</summary>
    private static readonly (string Name, string Title, string Y, Func<MetricPointView, double?> Value, (double, double)? Range)[] Plots =
    [
        ("held-out", "Held-out avg@k", "avg@k", p => p.HeldOut, (0, 1)),
        ("accuracy", "Train accuracy (sampled groups)", "accuracy", p => p.Accuracy, (0, 1)),
        ("reward", "Mean reward", "reward", p => p.Reward, null),
        ("entropy", "Mean token entropy", "entropy", p => p.Entropy, null),
        ("length", "Mean response length", "tokens", p => p.ResponseLength, null),
        ("filtered", "Filtered share of judged groups", "share", p => p.FilteredFraction, (0, 1)),
        ("step-time", "Step time", "seconds", p => p.StepSeconds, null),
    ];

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <param name="target">What this silo serves: the embedded run's directory, or the cluster.</param>
    /// <param name="run">The run shown: the embedded run; null: the only one, or the only running one.</param>
    public static void Map(WebApplication app, ClusterTarget target, string? run)
    {
        var history = new PlottedHistory();
        app.MapGet("/", () => Results.Content(Html, "text/html; charset=utf-8"));
        // Every 2 s: the last step's metrics row only (its throughput); the plots read the whole history when a step ends.
        app.MapGet("/api/watch", (Delegate)((HttpContext context) => ReadRunAsync(app.Services, target, run, context, async (inspector, current) =>
            Results.Json(await inspector.WatchAsync(current.RunId, 1, context.RequestAborted), Json))));
        app.MapGet("/api/plots/{name}.svg", (string name, HttpContext context) =>
        {
            var plot = Plots.FirstOrDefault(p => p.Name == name);
            if (plot.Name is null) return Task.FromResult(Results.NotFound($"no plot '{name}'; known: {string.Join(", ", Plots.Select(p => p.Name))}"));
            return ReadRunAsync(app.Services, target, run, context, async (inspector, current) =>
            {
                var points = (await history.PointsAsync(inspector, current, context.RequestAborted))
                    .Where(p => plot.Value(p) is not null).Select(p => ((double)p.Step, plot.Value(p)!.Value)).ToList();
                var chart = new SvgLineChart(plot.Title, "step", plot.Y) { YRange = plot.Range };
                chart.Series.Add(new ChartSeries(current.RunId, points));
                return Results.Content(chart.Render(), "image/svg+xml");
            });
        });
    }

    /// <summary>Answers from the shown run through this silo's grains; a run or cluster it cannot read is a problem
    /// response (404: no such run; 503: the cluster or storage did not answer).</summary>
    private static async Task<IResult> ReadRunAsync(IServiceProvider services, ClusterTarget target, string? run, HttpContext context,
        Func<Inspector, RunInfo, Task<IResult>> answer)
    {
        await using var session = new InspectionSession(
            new GrainRunReader(services.GetRequiredService<IGrainFactory>(), "this silo's cluster: live", TimeSpan.FromSeconds(10)),
            services.GetRequiredService<IBlobStore>(), target, run);
        try
        {
            var current = await session.RunAsync(context.RequestAborted);
            return await answer(new Inspector(session), current);
        }
        catch (InspectionException e)
        {
            return Results.Problem(e.Message, statusCode: e.ExitCode == ExitCodes.NotFound ? 404 : 503);
        }
    }

    /// <summary>
    /// The plotted metrics read so far: a step's row is read once, not once per plot and step (seven plots ask at
    /// each step's end). A learner that restarted (a new epoch) redoes the steps after its checkpoint and rewrites
    /// their rows, so a new epoch, or another run, reads the history again.
    /// </summary>
    private sealed class PlottedHistory
    {
        private readonly SemaphoreSlim _reading = new(1, 1);
        private (string RunId, long Epoch) _of = ("", -1);
        private List<MetricPointView> _points = [];

        public async Task<IReadOnlyList<MetricPointView>> PointsAsync(Inspector inspector, RunInfo run, CancellationToken cancellationToken)
        {
            await _reading.WaitAsync(cancellationToken);
            try
            {
                if (_of != (run.RunId, run.Epoch)) (_of, _points) = ((run.RunId, run.Epoch), []);
                _points.AddRange(await inspector.PointsAsync(run, _points.Count > 0 ? _points[^1].Step : 0, cancellationToken));
                return _points.ToList();
            }
            finally
            {
                _reading.Release();
            }
        }
    }

    private static string Html => $$"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>Dapo</title>
        <style>
          body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
          header a { margin-left: 1em; }
          table { border-collapse: collapse; margin: 0.5em 0 1em; }
          td, th { padding: 0.15em 0.8em; text-align: left; border-bottom: 1px solid #ddd; }
          .plots { display: flex; flex-wrap: wrap; gap: 1em; }
          .plots img { width: 420px; border: 1px solid #eee; }
          .error { color: #b00; }
        </style>
        </head>
        <body>
        <header><strong>Dapo</strong><a href="orleans/">Orleans Dashboard</a></header>
        <h2 id="run">…</h2>
        <p id="error" class="error"></p>
        <table id="ledger"></table>
        <div class="plots">
        {{string.Join("\n", Plots.Select(p => $"<img data-plot=\"{p.Name}\" alt=\"{p.Title}\">"))}}
        </div>
        <script>
        const cell = (k, v) => `<tr><th>${k}</th><td>${v ?? "–"}</td></tr>`;
        let shownSteps = -1;
        async function refresh() {
          try {
            const response = await fetch("api/watch", { cache: "no-store" });
            if (!response.ok) throw new Error((await response.json()).detail ?? response.statusText);
            const w = await response.json();
            const r = w.run, s = r.currentStep, l = r.learner;
            document.getElementById("error").textContent = "";
            document.getElementById("run").textContent =
              `Run ${r.runId}: ${r.status}, step ${r.step}` + (r.totalSteps ? ` of ${r.totalSteps}` : "") + ` (${r.completedSteps} done)`;
            document.getElementById("run").dataset.completedSteps = r.completedSteps;
            document.getElementById("ledger").innerHTML =
              cell("learner", l ? `${l.phase} ${l.detail}` : null) +
              (s ? cell("step", s.step) + cell("target", s.target) + cell("accepted", s.accepted) + cell("filtered", s.filtered) +
                   cell("in flight", s.inFlight) + cell("generation rounds", s.generationRounds) : "") +
              cell("rollout grains", `${w.rolloutGrains} on ${w.silosAlive} of ${w.silos} silo(s)`) +
              cell("throughput", w.tokensPerSecond ? `${Math.round(w.tokensPerSecond)} tokens/s` : null);
            if (r.completedSteps !== shownSteps) {
              shownSteps = r.completedSteps;
              for (const img of document.querySelectorAll("img[data-plot]"))
                img.src = `api/plots/${img.dataset.plot}.svg?steps=${shownSteps}`;
            }
          } catch (e) {
            document.getElementById("error").textContent = `cannot read the run: ${e.message}`;
          }
        }
        refresh();
        setInterval(refresh, 2000);
        </script>
        </body>
        </html>
        """;
}
