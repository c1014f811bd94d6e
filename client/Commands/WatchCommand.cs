using System.CommandLine;
using System.Globalization;
using System.Text;
using Spectre.Console;
using Spectre.Console.Rendering;

using Dapo.Grains.Inspection;

namespace Dapo.Client.Commands;

/// <summary>
/// `watch`: a live dashboard of one run, refreshed every second. Every frame has the same number of lines, each cut
/// to the terminal's width, and Spectre's live display redraws it in place: nothing scrolls or flickers, and it fits
/// an 80x24 terminal. With --json, one frame per line.
/// </summary>
internal static class WatchCommand
{
    /// <summary>Steps shown in the recent-steps table; the sparklines cover more.</summary>
    private const int RecentRows = 6;

    public static Command Create()
    {
        var interval = new Option<double>("--interval") { Description = "Seconds between refreshes", DefaultValueFactory = _ => 1.0 };
        interval.Refuse(v => v is < 0.1 or > 3600 or double.NaN, "--interval must be 0.1 to 3600 seconds");
        var frames = new Option<int?>("--frames") { Description = "Stop after this many refreshes (default: until Ctrl+C; 1 when output is not a terminal)" };
        frames.Refuse(v => v is < 1, "--frames must be 1 or more");
        var command = new Command("watch", "Live dashboard: step progress, filtered share, workers, throughput, sparklines of recent metrics (Ctrl+C exits)")
        {
            interval, frames,
        };
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var inspector = new Inspector(session);
            var run = await session.RunAsync(cancellationToken);
            var delay = TimeSpan.FromSeconds(result.GetValue(interval));
            var interactive = AnsiConsole.Profile.Capabilities.Interactive && !Console.IsOutputRedirected;
            var json = Handler.Json(result);
            var limit = result.GetValue(frames) ?? (json || interactive ? int.MaxValue : 1);
            const int history = 100;  // steps of metrics fetched for the table and the sparklines
            var dashboard = new Dashboard(delay);

            // A frame; when the cluster was lost (an embedded run's silo stops when its run ends), the next frame
            // reads what there is then: the run's history, or the cluster back after a restart.
            async Task<WatchView> ViewAsync()
            {
                try
                {
                    return await inspector.WatchAsync(run.RunId, history, cancellationToken);
                }
                catch (InspectionException e) when (e.ExitCode == ExitCodes.Unavailable)
                {
                    await Handler.ReconnectAsync(session, e, cancellationToken);
                    return await inspector.WatchAsync(run.RunId, history, cancellationToken);
                }
            }

            async Task<IRenderable> FrameAsync() => dashboard.Render(await ViewAsync(), Width());

            if (json)
            {
                for (var frame = 1; ; frame++)
                {
                    Output.JsonLine(await ViewAsync());
                    if (frame >= limit) return ExitCodes.Ok;
                    await Task.Delay(delay, cancellationToken);
                }
            }
            if (!interactive)
            {
                for (var frame = 1; ; frame++)
                {
                    AnsiConsole.Write(await FrameAsync());
                    if (frame >= limit) return ExitCodes.Ok;
                    await Task.Delay(delay, cancellationToken);
                }
            }
            await AnsiConsole.Live(await FrameAsync())
                .AutoClear(false)
                .Overflow(VerticalOverflow.Crop)
                .Cropping(VerticalOverflowCropping.Bottom)
                .StartAsync(async context =>
                {
                    for (var frame = 1; frame < limit; frame++)
                    {
                        try
                        {
                            await Task.Delay(delay, cancellationToken);
                        }
                        catch (OperationCanceledException)
                        {
                            return;  // Ctrl+C: leave the last frame on screen
                        }
                        try
                        {
                            context.UpdateTarget(await FrameAsync());
                        }
                        catch (InspectionException e) when (e.ExitCode == ExitCodes.Unavailable)
                        {
                            // The cluster went away (a restart): say so in place, keep the last numbers.
                            context.UpdateTarget(dashboard.Render(null, Width(), e.Message));
                        }
                        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                        {
                            return;
                        }
                    }
                });
            return ExitCodes.Ok;
        });
        return command;
    }

    private static int Width() => Math.Clamp(AnsiConsole.Profile.Width, 40, 120);

    /// <summary>Renders frames of a fixed height (<see cref="Height"/> lines), keeping the last view for error frames.</summary>
    private sealed class Dashboard(TimeSpan interval)
    {
        public const int Height = 22;
        private WatchView? _last;

        public IRenderable Render(WatchView? view, int width, string? error = null)
        {
            view ??= _last;
            _last = view;
            var lines = view is null ? [] : Lines(view, width);
            while (lines.Count < Height - 1) lines.Add(new Line());
            lines = lines.Take(Height - 1).ToList();
            lines.Add(error is null
                ? new Line().Add(string.Create(CultureInfo.InvariantCulture, $"Ctrl+C exits · refreshed every {interval.TotalSeconds:0.#}s · read-only"), "grey")
                : new Line().Add($"cluster unavailable, retrying: {error}", "red"));
            return new Rows(lines.Select(l => l.ToMarkup(width)));
        }

        private static List<Line> Lines(WatchView v, int width)
        {
            var r = v.Run;
            var lines = new List<Line>();
            var title = $" {r.RunId} · {r.Status} · step {Describe.Step(r)} · policy v{r.PolicyVersion} · ckpt {r.LatestCheckpoint?.ToString(CultureInfo.InvariantCulture) ?? "-"}";
            var clock = Format.Time(v.Now) + " ";
            lines.Add(new Line().Add("dapo", "bold black on green").Add(title.PadRight(Math.Max(0, width - 4 - clock.Length)), "bold")
                .Add(clock, "grey"));
            lines.Add(new Line().Add(v.Source, "grey"));
            lines.Add(new Line());

            var step = r.CurrentStep;
            if (step is not null)
            {
                var label = $"{step.Accepted}/{step.Target} accepted";
                var barWidth = Math.Max(10, width - 9 - label.Length - 2 - step.Phase.Length - 2);
                var filled = step.Target == 0 ? 0 : (int)Math.Round(barWidth * Math.Min(1.0, (double)step.Accepted / step.Target));
                lines.Add(new Line().Add($"Step {step.Step}".PadRight(9), "bold").Add(new string('█', filled), "green")
                    .Add(new string('░', barWidth - filled), "grey").Add($"  {label}  ").Add(step.Phase, step.Phase == "sampling" ? "yellow" : "aqua"));
                lines.Add(new Line().Add(new string(' ', 9)).Add(string.Create(CultureInfo.InvariantCulture,
                    $"filtered {step.Filtered} ({Format.Percent(v.FilteredShare)} of judged) · {step.InFlight} in flight · {step.Draws} drawn · {step.GenerationRounds} round(s)")));
            }
            else
            {
                lines.Add(new Line().Add("Step".PadRight(9), "bold").Add(r.Status == "running" ? "not opened yet (warm-start or restore)" : r.Status, "grey"));
                lines.Add(new Line());
            }
            var s = r.Learner;
            lines.Add(new Line().Add("Learner".PadRight(9), "bold").Add(s.Phase, "aqua").Add(s.Detail.Length == 0 ? "" : $" · {s.Detail}"));
            lines.Add(new Line().Add(new string(' ', 9)).Add(s.Silo.Length == 0
                ? $"no silo runs it (history) · epoch {s.Epoch}"
                : $"on {s.Silo} · epoch {s.Epoch} · state written {Format.Age(s.AgeMs)} ago", s.Silo.Length == 0 ? "grey" : ""));
            lines.Add(new Line().Add("Workers".PadRight(9), "bold").Add(v.Mode == "history"
                ? "none: no silo is running"
                : string.Create(CultureInfo.InvariantCulture,
                    $"{v.RolloutGrains} rollout grain(s) · {v.SilosAlive}/{v.Silos} silos alive · {step?.InFlight ?? 0} group(s) in flight")));
            lines.Add(new Line().Add("Speed".PadRight(9), "bold").Add(string.Create(CultureInfo.InvariantCulture,
                $"{Format.Integer(v.TokensPerSecond)} tok/s · {Format.Seconds(v.LastStepSeconds)} per step (last completed)")));
            lines.Add(new Line());

            lines.Add(new Line().Add(" Step     Acc   Reward  Entropy  Length  Filtered    Tok/s    Time", "bold"));
            var recent = v.Recent.TakeLast(RecentRows).ToList();
            foreach (var p in recent)
                lines.Add(new Line().Add(string.Create(CultureInfo.InvariantCulture,
                    $"{p.Step,5}  {Format.Number(p.Accuracy),6}  {Format.Number(p.Reward),7}  {Format.Number(p.Entropy),7}  {Format.Number(p.ResponseLength, "F1"),6}  {Format.Percent(p.FilteredFraction),8}  {Format.Integer(p.TokensPerSecond),7}  {Format.Seconds(p.StepSeconds),6}")));
            if (recent.Count == 0) lines.Add(new Line().Add(" no step has completed yet", "grey"));
            while (lines.Count < 10 + RecentRows) lines.Add(new Line());
            lines.Add(new Line());

            var sparkWidth = Math.Max(10, width - 10 - 22);
            lines.Add(Spark("accuracy", v.Recent.Select(p => p.Accuracy).ToList(), sparkWidth, "F3", "green"));
            lines.Add(Spark("entropy", v.Recent.Select(p => p.Entropy).ToList(), sparkWidth, "F3", "aqua"));
            lines.Add(Spark("length", v.Recent.Select(p => p.ResponseLength).ToList(), sparkWidth, "F1", "yellow"));
            return lines;
        }

        private static Line Spark(string name, IReadOnlyList<double?> values, int width, string format, string color)
        {
            var shown = values.TakeLast(width).Where(x => x is not null).Select(x => x!.Value).ToList();
            var range = shown.Count == 0 ? "" : string.Create(CultureInfo.InvariantCulture,
                $" {shown[^1].ToString(format, CultureInfo.InvariantCulture)} [{shown.Min().ToString(format, CultureInfo.InvariantCulture)}..{shown.Max().ToString(format, CultureInfo.InvariantCulture)}]");
            return new Line().Add(name.PadRight(10), "bold").Add(Format.Sparkline(values, width), color).Add(range, "grey");
        }
    }

    /// <summary>One line of the dashboard: styled pieces, cut to the width so that it never wraps.</summary>
    private sealed class Line
    {
        private readonly List<(string Text, string Style)> _pieces = [];

        public Line Add(string text, string style = "")
        {
            _pieces.Add((text, style));
            return this;
        }

        public IRenderable ToMarkup(int width)
        {
            var markup = new StringBuilder();
            var left = width;
            foreach (var (text, style) in _pieces)
            {
                if (left <= 0) break;
                var piece = text.Length > left ? text[..Math.Max(0, left - 1)] + "…" : text;
                left -= piece.Length;
                markup.Append(style.Length == 0 ? Markup.Escape(piece) : $"[{style}]{Markup.Escape(piece)}[/]");
            }
            return markup.Length == 0 ? new Text(" ") : new Markup(markup.ToString());
        }
    }
}
