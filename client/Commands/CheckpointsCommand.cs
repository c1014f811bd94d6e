using System.CommandLine;
using Spectre.Console;

using Dapo.Grains.Inspection;

namespace Dapo.Client.Commands;

/// <summary>`checkpoints`: a run's checkpoints in blob storage, each checked against its manifest's checksums.</summary>
internal static class CheckpointsCommand
{
    public static Command Create()
    {
        var command = new Command("checkpoints", "Checkpoints with step, size, checksum status, and which one is latest");
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var inspector = new Inspector(session);
            var run = await session.RunAsync(cancellationToken);
            CheckpointsView view;
            // Verifying reads every checkpoint's files back: show that it is working when a person is watching.
            if (!Handler.Json(result) && AnsiConsole.Profile.Capabilities.Interactive)
                view = await AnsiConsole.Status().StartAsync("Verifying checksums…", _ => inspector.CheckpointsAsync(run, cancellationToken));
            else view = await inspector.CheckpointsAsync(run, cancellationToken);
            if (Handler.Json(result)) Output.Json(view);
            else Render(view, session.Description);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void Render(CheckpointsView view, string source)
    {
        Output.Source($"{source}; blobs in {view.Blobs}");
        var table = Tables.New($"[bold]Checkpoints of run {Markup.Escape(view.RunId)}[/]", "Step", "Size", "Checksum", "").Right(0, 1);
        foreach (var c in view.Checkpoints)
            table.AddRow(Format.Int(c.Step), Format.Bytes(c.SizeBytes), c.Complete ? "[green]ok[/]" : $"[red]{Markup.Escape(c.Checksum)}[/]",
                c.Latest ? "[bold]latest[/]" : "");
        if (view.Checkpoints.Count == 0) table.AddRow("[grey]none yet[/]", "", "", "");
        AnsiConsole.Write(table);
        var latest = view.Checkpoints.FirstOrDefault(c => c.Latest)?.Step;
        if (view.LearnerLatest != latest)
            AnsiConsole.MarkupLine($"[grey]The learner records step {view.LearnerLatest?.ToString() ?? "none"} as its latest checkpoint " +
                                   "(a checkpoint is written before the learner records it).[/]");
    }
}
