using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Dapo.Grains;
using Spectre.Console;

using Dapo.Grains.Inspection;

namespace Dapo.Client.Commands;

/// <summary>`metrics`: per-step metrics as the learner recorded them; with --follow, new rows as they land.</summary>
internal static class MetricsCommand
{
    /// <summary>The table's columns: heading, width, and the value from a metrics row (keys of LearnerLoop.MetricsJson).</summary>
    private static readonly (string Heading, int Width, Func<JsonObject, string> Value)[] Columns =
    [
        ("Step", 5, m => Format.Integer(Inspector.Number(m, "step"))),
        ("Acc", 6, m => Format.Number(Inspector.Number(m, "sampled/accuracy"))),
        ("Reward", 7, m => Format.Number(Inspector.Number(m, "critic/rewards/mean"))),
        ("Entropy", 7, m => Format.Number(Inspector.Number(m, "actor/entropy"))),
        ("Length", 6, m => Format.Number(Inspector.Number(m, "response_length/mean"), "F1")),
        ("Filt", 5, m => Format.Integer(Inspector.Number(m, "train/groups_filtered"))),
        ("Rounds", 6, m => Format.Integer(Inspector.Number(m, "train/num_gen_batches"))),
        ("Tok/s", 7, m => Format.Integer(Inspector.Number(m, "throughput/tokens_per_s"))),
        ("Time", 6, m => Format.Seconds(Inspector.Number(m, "timing/step_s"))),
        ("Eval", 6, m => Inspector.HeldOutAccuracy(m) is { } e ? Format.Percent(e) : ""),
    ];

    public static Command Create()
    {
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new rows as steps complete, until the run ends (Ctrl+C stops)" };
        var last = new Option<int?>("--last") { Description = "Only the latest N steps (default: all)" };
        last.Refuse(v => v is < 1, "--last must be 1 or more");
        var command = new Command("metrics", "Per-step metrics as a table (--json: the learner's rows with every key)") { follow, last };
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var inspector = new Inspector(session);
            var run = await session.RunAsync(cancellationToken);
            var json = Handler.Json(result);
            var after = result.GetValue(last) is { } n ? Math.Max(0, Inspector.CompletedSteps(run) - n) : 0;
            var rows = await inspector.MetricsAsync(run.RunId, after, cancellationToken);
            if (result.GetValue(last) is { } keep) rows = rows.TakeLast(keep).ToList();
            if (!result.GetValue(follow))
            {
                if (json) Output.Json(new MetricsView(run.RunId, rows));
                else RenderTable(run.RunId, rows, session.Description);
                return ExitCodes.Ok;
            }
            await FollowAsync(session, inspector, run, rows, json, cancellationToken);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>
    /// Prints what there is, then each new row as it lands, once a second, until the run stops running. An embedded
    /// run's silo stops when its run ends: the client then reads the run's history, where the last rows are.
    /// </summary>
    private static async Task FollowAsync(InspectionSession session, Inspector inspector, RunInfo run, IReadOnlyList<JsonObject> rows, bool json,
        CancellationToken cancellationToken)
    {
        if (!json)
        {
            Output.Source(session.Description);
            Console.Out.WriteLine(Line(Columns.Select(c => c.Heading)));
        }
        var printed = 0;
        void Print(IEnumerable<JsonObject> batch)
        {
            foreach (var row in batch)
            {
                if (json) Output.JsonLine(row);
                else Console.Out.WriteLine(Line(Columns.Select(c => c.Value(row))));
                printed = Math.Max(printed, (int)(Inspector.Number(row, "step") ?? printed));
            }
            Console.Out.Flush();
        }
        Print(rows);
        while (true)
        {
            RunInfo current;
            try
            {
                // Read the run before the rows: rows of a run seen ended are then all there.
                current = await session.RunAsync(run.RunId, cancellationToken);
                Print(await inspector.MetricsAsync(run.RunId, printed, cancellationToken));
            }
            catch (InspectionException e) when (e.ExitCode == ExitCodes.Unavailable)
            {
                await Handler.ReconnectAsync(session, e, cancellationToken);
                continue;
            }
            if (current.Status != RunStatus.Running || session.Reader.IsHistory)
            {
                if (!json)
                {
                    var state = current.Status == RunStatus.Running ? "not running: no silo runs it" : current.Status.ToString().ToLowerInvariant();
                    AnsiConsole.MarkupLineInterpolated($"[grey]run {run.RunId} is {state}[/]");
                }
                return;
            }
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
        }
    }

    private static string Line(IEnumerable<string> cells)
    {
        var line = new StringBuilder();
        foreach (var (cell, column) in cells.Zip(Columns))
            line.Append(cell.PadLeft(column.Width)).Append(' ');
        return line.ToString().TrimEnd();
    }

    private static void RenderTable(string runId, IReadOnlyList<JsonObject> rows, string store)
    {
        Output.Source(store);
        var table = Tables.New($"[bold]Metrics of run {Markup.Escape(runId)}[/]", Columns.Select(c => c.Heading).ToArray())
            .Right(Enumerable.Range(0, Columns.Length).ToArray());
        foreach (var row in rows) table.AddRow(Columns.Select(c => Markup.Escape(c.Value(row))).ToArray());
        if (rows.Count == 0) table.AddRow("[grey]no step has completed yet[/]");
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
            $"[grey]Acc: sampled accuracy of the step's groups · Eval: held-out avg@k · --json: every key[/]"));
    }
}
