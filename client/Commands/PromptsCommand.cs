using System.CommandLine;
using System.Globalization;
using Dapo.Grains;
using Spectre.Console;

using Dapo.Grains.Inspection;

namespace Dapo.Client.Commands;

/// <summary>`prompts`: the prompts of one step (its step grain's ledger) with their prompt grains' groups.</summary>
internal static class PromptsCommand
{
    public static Command Create()
    {
        var step = new Option<int?>("--step") { Description = "The step (default: the run's current step)" };
        var status = new Option<string>("--status") { Description = "Only prompts with this status" };
        status.AcceptOnlyFromAmong("accepted", "filtered", "sampling", "abandoned");
        var command = new Command("prompts", "The prompts of a step: status, group accuracy, mean reward, lengths, truncations")
        {
            step, status,
        };
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var wanted = result.GetValue(status) is { } s ? Enum.Parse<PromptStatus>(s, ignoreCase: true) : (PromptStatus?)null;
            var view = await new Inspector(session).PromptsAsync(result.GetValue(step), wanted, cancellationToken);
            if (Handler.Json(result)) Output.Json(view);
            else Render(view);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void Render(PromptsView view)
    {
        Output.Source(view.Source);
        var counts = string.Join(", ", view.Counts.Where(c => c.Value > 0).Select(c => $"{c.Value} {c.Key}"));
        var table = Tables.New($"[bold]Prompts of step {view.Step}[/] [grey]({view.StepPhase ?? "not opened"}; {(counts.Length == 0 ? "none" : counts)})[/]",
            "Key", "Status", "Slots", "Accuracy", "Reward", "Length", "Trunc", "Decided").Right(2, 3, 4, 5, 6, 7);
        foreach (var p in view.Prompts)
            table.AddRow(Markup.Escape(p.Key), Status(p.Status), $"{p.Filled}/{p.GroupSize}", Format.Number(p.Accuracy, "F2"),
                Format.Number(p.MeanReward, "F2"), Format.Number(p.MeanLength, "F1"), p.TruncatedCount?.ToString(CultureInfo.InvariantCulture) ?? "-",
                p.Decided?.ToString(CultureInfo.InvariantCulture) ?? "-");
        if (view.Prompts.Count == 0) table.AddRow($"[grey]no {view.StatusFilter ?? ""} prompts[/]");
        AnsiConsole.Write(table);
    }

    public static string Status(string status) => status switch
    {
        "accepted" => "[green]accepted[/]",
        "filtered" => "[yellow]filtered[/]",
        "sampling" => "[aqua]sampling[/]",
        _ => "[grey]abandoned[/]",
    };
}
