using System.CommandLine;
using Spectre.Console;

using Dapo.Grains.Inspection;

namespace Dapo.Client.Commands;

/// <summary>`steps`: the step ledger of a run, from its step grains.</summary>
internal static class StepsCommand
{
    public static Command Create()
    {
        var last = new Option<int>("--last") { Description = "How many of the latest steps", DefaultValueFactory = _ => 20 };
        last.Refuse(v => v < 1, "--last must be 1 or more");
        var command = new Command("steps", "The step ledger: target, accepted, filtered, abandoned, prompts drawn, generation rounds, surplus carried, time")
        {
            last,
        };
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var view = await new Inspector(session).StepsAsync(result.GetValue(last), cancellationToken);
            if (Handler.Json(result)) Output.Json(view);
            else Render(view);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void Render(StepsView view)
    {
        Output.Source(view.Source);
        var table = Tables.New($"[bold]Steps of run {Markup.Escape(view.RunId)}[/]{(view.TotalSteps is { } t ? $" [grey](of {t})[/]" : "")}",
            "Step", "Phase", "Target", "Accept", "Filter", "Abandon", "Drawn", "Rounds", "Carry", "Time").Right(0, 2, 3, 4, 5, 6, 7, 8, 9);
        foreach (var s in view.Steps)
            table.AddRow(Format.Int(s.Step), Phase(s.Phase), Format.Int(s.Target), Format.Int(s.Accepted), Format.Int(s.Filtered),
                Format.Int(s.Abandoned), Format.Int(s.Draws), Format.Int(s.GenerationRounds), Format.Int(s.SurplusCarried),
                Format.Seconds(s.StepSeconds));
        if (view.Steps.Count == 0) table.AddRow("[grey]no steps yet[/]");
        AnsiConsole.Write(table);
    }

    public static string Phase(string phase) => phase switch
    {
        "sampling" => "[yellow]sampling[/]",
        "training" => "[aqua]training[/]",
        "done" => "done",
        _ => $"[grey]{Markup.Escape(phase)}[/]",
    };
}
