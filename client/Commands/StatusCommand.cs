using System.CommandLine;
using System.Globalization;
using Spectre.Console;

namespace Dapo.Client.Commands;

/// <summary>`status`: runs (step, policy version, learner lease, queue, latest checkpoint) and silos.</summary>
internal static class StatusCommand
{
    public static Command Create()
    {
        var command = new Command("status", "Runs with their step, policy version, learner and queue; silos with roles, heartbeat and work");
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
        Output.Source(view.Store);
        var runs = Tables.New("[bold]Runs[/]", "Run", "Status", "Step", "Policy", "Learner (lease)", "Queue", "Ckpt").Right(2, 6);
        foreach (var r in view.Runs)
        {
            // Holder on the first line, how fresh the lease is under it (`grain learner` has the phase).
            var learner = r.Learner is not { } l ? "[grey]none[/]"
                : l.Held ? $"{Markup.Escape(l.Owner)}\n[grey]renewed {Format.Age(l.AgeMs ?? 0)} ago[/]"
                : $"{Markup.Escape(l.Owner)}\n[yellow]{(l.Released ? "released" : $"expired {Format.Age(-(l.ExpiresInMs ?? 0))} ago")}[/]";
            runs.AddRow(Markup.Escape(r.RunId), RunStatus(r), Describe.Step(r), $"v{r.PolicyVersion}", learner,
                $"{r.Queue.Open} ({r.Queue.Leased} leased)", r.LatestCheckpoint?.ToString(CultureInfo.InvariantCulture) ?? "-");
        }
        if (view.Runs.Count == 0) runs.AddRow("[grey]no runs yet[/]");
        AnsiConsole.Write(runs);
        foreach (var r in view.Runs.Where(r => r.Error is not null))
            AnsiConsole.MarkupLineInterpolated($"[red]run {r.RunId} failed: {r.Error}[/]");

        var silos = Tables.New("[bold]Silos[/]", "Silo", "Roles", "Address", "State", "Heartbeat", "Work", "Leased").Right(4, 5, 6);
        foreach (var s in view.Silos)
            silos.AddRow(Markup.Escape(s.SiloId), string.Join(",", s.Roles), Markup.Escape(s.Address), SiloState(s.State),
                $"{Format.Age(s.HeartbeatAgeMs)} ago", Format.Int(s.WorkInHand), Format.Int(s.Leased));
        if (view.Silos.Count == 0) silos.AddRow("[grey]no silos have joined[/]");
        AnsiConsole.Write(silos);
    }

    public static string RunStatus(RunStatusView r) => r.Status switch
    {
        "running" => "[green]running[/]",
        "completed" => "[blue]completed[/]",
        _ => $"[red]{Markup.Escape(r.Status)}[/]",
    };

    public static string SiloState(string state) => state switch
    {
        "active" => "[green]active[/]",
        "silent" => "[red]silent[/]",
        _ => "[grey]left[/]",
    };
}
