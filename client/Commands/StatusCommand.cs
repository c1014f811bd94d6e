using System.CommandLine;
using System.Globalization;
using Spectre.Console;

using Dapo.Grains.Inspection;

namespace Dapo.Client.Commands;

/// <summary>`status`: runs (step, policy version, learner, current step, latest checkpoint) and silos.</summary>
internal static class StatusCommand
{
    public static Command Create()
    {
        var command = new Command("status", "Runs with their step, policy version, learner and current step; silos with status and grains");
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var view = await new Inspector(session).StatusAsync(cancellationToken);
            if (Handler.Json(result)) Output.Json(view);
            else Render(view);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void Render(StatusView view)
    {
        Output.Source(view.Source);
        var runs = Tables.New("[bold]Runs[/]", "Run", "Status", "Step", "Policy", "Learner", "Current step", "Ckpt").Right(2, 6);
        foreach (var r in view.Runs)
        {
            // Phase on the first line, where and how fresh under it (`grain learner` has the detail).
            var learner = $"{Markup.Escape(r.Learner.Phase)}\n[grey]{(r.Learner.Silo.Length == 0 ? "" : Markup.Escape(r.Learner.Silo) + ", ")}" +
                          $"epoch {r.Learner.Epoch}[/]";
            var step = r.CurrentStep is { } c ? $"{StepsCommand.Phase(c.Phase)} {c.Accepted}/{c.Target}\n[grey]{c.Filtered} filtered, {c.InFlight} in flight[/]" : "[grey]-[/]";
            runs.AddRow(Markup.Escape(r.RunId), RunStatus(r), Describe.Step(r), $"v{r.PolicyVersion}", learner, step,
                r.LatestCheckpoint?.ToString(CultureInfo.InvariantCulture) ?? "-");
        }
        if (view.Runs.Count == 0) runs.AddRow("[grey]no runs yet[/]");
        AnsiConsole.Write(runs);
        foreach (var r in view.Runs.Where(r => r.Error is not null))
            AnsiConsole.MarkupLineInterpolated($"[red]run {r.RunId} failed: {r.Error}[/]");
        if (view.Mode == "history")
        {
            AnsiConsole.MarkupLine("[grey]History: no silo is running, so there are no silos or rollout grains to show.[/]");
            return;
        }
        SilosCommand.RenderTable(view.Silos);
    }

    public static string RunStatus(RunStatusView r) => r.Status switch
    {
        "running" => "[green]running[/]",
        "completed" => "[blue]completed[/]",
        _ => $"[red]{Markup.Escape(r.Status)}[/]",
    };

    public static string SiloStatus(string status) => status switch
    {
        "active" => "[green]active[/]",
        "dead" => "[red]dead[/]",
        _ => $"[yellow]{Markup.Escape(status)}[/]",
    };
}
