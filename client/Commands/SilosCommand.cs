using System.CommandLine;
using Spectre.Console;

using Dapo.Grains.Inspection;

namespace Dapo.Client.Commands;

/// <summary>`silos`: the cluster's membership (IManagementGrain.GetDetailedHosts), with the grains each silo runs.</summary>
internal static class SilosCommand
{
    public static Command Create()
    {
        var command = new Command("silos", "Silos of the cluster's membership: address, status, last I-am-alive, rollout grains and learners on each");
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var view = await new Inspector(session).SilosViewAsync(cancellationToken);
            if (Handler.Json(result)) Output.Json(view);
            else
            {
                Output.Source(view.Source);
                if (view.Mode == "history") AnsiConsole.MarkupLine("[grey]History: no silo is running.[/]");
                else RenderTable(view.Silos);
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    public static void RenderTable(IReadOnlyList<SiloView> silos)
    {
        var table = Tables.New("[bold]Silos[/]", "Silo", "Name", "Status", "Alive", "Gateway", "Rollout", "Learner of").Right(3, 4, 5);
        foreach (var s in silos)
            table.AddRow(Markup.Escape(s.Address), Markup.Escape(s.Name), StatusCommand.SiloStatus(s.Status), $"{Format.Age(s.IAmAliveAgeMs)} ago",
                s.GatewayPort == 0 ? "-" : Format.Int(s.GatewayPort), Format.Int(s.RolloutGrains), Markup.Escape(string.Join(", ", s.Learners)));
        if (silos.Count == 0) table.AddRow("[grey]no silos have joined[/]");
        AnsiConsole.Write(table);
    }
}
