using System.CommandLine;
using System.Globalization;
using Spectre.Console;

namespace Dapo.Client.Commands;

/// <summary>`grain prompt|learner|rollout`: one grain's state in full.</summary>
internal static class GrainCommand
{
    public static Command Create() => new("grain", "One grain's state in full")
    {
        Prompt(), Learner(), Rollout(),
    };

    private static Command Prompt()
    {
        var key = new Argument<string>("key") { Description = "RUN/PROMPT_ID, e.g. demo/17 (as `prompts` lists them); a bare PROMPT_ID means the default run" };
        var tokens = new Option<bool>("--tokens") { Description = "Show each response's token ids and log-probabilities too" };
        var command = new Command("prompt", "A prompt grain: prompt, ground truth, every response slot, status and decision history") { key, tokens };
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var parsed = PromptKey.Parse(result.GetValue(key)!);
            var view = await new Inspector(session).PromptAsync(parsed, cancellationToken);
            if (Handler.Json(result)) Output.Json(view);
            else RenderPrompt(view, result.GetValue(tokens), session.Store.Description);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void RenderPrompt(PromptDetailView p, bool tokens, string store)
    {
        Output.Source(store);
        var facts = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        facts.AddRow("[bold]Prompt grain[/]", $"[bold]{Markup.Escape(p.Key)}[/]");
        facts.AddRow("Step", $"{p.Step} [grey]({p.StepPhase ?? "not opened"})[/]");
        // The reason usually starts with the status ("accepted: accuracy 0.25"); say it once.
        facts.AddRow("Status", p.Reason.StartsWith(p.Status, StringComparison.Ordinal)
            ? PromptsCommand.Status(p.Status).Replace(p.Status, Markup.Escape(p.Reason), StringComparison.Ordinal)
            : $"{PromptsCommand.Status(p.Status)} [grey]({Markup.Escape(p.Reason)})[/]");
        facts.AddRow("Trained on", p.TrainedOn ? "[green]yes[/]: the learner trained on these slots" : "no");
        facts.AddRow("Policy", $"v{p.PolicyVersion}");
        facts.AddRow("Group", string.Create(CultureInfo.InvariantCulture,
            $"{p.Filled}/{p.GroupSize} slots, accuracy {Format.Number(p.Accuracy, "F2")}, mean reward {Format.Number(p.MeanReward, "F3")}, " +
            $"mean length {Format.Number(p.MeanLength, "F1")}, truncated {p.TruncatedCount?.ToString(CultureInfo.InvariantCulture) ?? "-"}"));
        facts.AddRow("Dataset", $"example {p.DatasetIndex}, draw {p.DrawOrdinal}");
        facts.AddRow("Prompt", Markup.Escape(p.Problem.TrimEnd('\n')));
        facts.AddRow("Ground truth", Markup.Escape(p.GroundTruth));
        AnsiConsole.Write(facts);
        AnsiConsole.WriteLine();

        var slots = Tables.New("[bold]Response slots[/] [grey](what the learner reads to train)[/]",
            "Slot", "Reward", "Score", "Penalty", "Length", "Trunc", "Policy", "Worker").Right(0, 1, 2, 3, 4);
        foreach (var s in p.Slots)
            slots.AddRow(Format.Int(s.Slot), Reward(s.Reward, s.Correct), Format.Number(s.Score, "F2"), Format.Number(s.OverlongPenalty, "F3"),
                Format.Int(s.Length), s.Truncated ? "[yellow]yes[/]" : "no", $"v{s.PolicyVersion}", Markup.Escape(s.Worker));
        if (p.Slots.Count == 0) slots.AddRow("[grey]no slots submitted yet[/]");
        AnsiConsole.Write(slots);

        AnsiConsole.MarkupLine("[bold]Responses[/]");
        var texts = new Grid().AddColumn(new GridColumn().NoWrap().PadLeft(2).PadRight(2)).AddColumn();
        foreach (var s in p.Slots)
        {
            var text = Markup.Escape(s.Text.ReplaceLineEndings("⏎"));
            if (tokens)
                text += $"\n[grey]tokens {string.Join(' ', s.Tokens)}\nlogprobs {string.Join(' ', s.LogProbs.Select(x => x.ToString("F3", CultureInfo.InvariantCulture)))}[/]";
            texts.AddRow($"[grey]{s.Slot}[/]", text);
        }
        AnsiConsole.Write(texts);
        AnsiConsole.WriteLine();

        AnsiConsole.MarkupLine("[bold]History[/]");
        var history = new Grid().AddColumn(new GridColumn().NoWrap().PadLeft(2).PadRight(2)).AddColumn();
        foreach (var h in p.History)
            history.AddRow($"[grey]{Markup.Escape(LocalTime(h.Time))}[/]",
                Markup.Escape(h.Detail.StartsWith(h.Event + ":", StringComparison.Ordinal) ? h.Detail : $"{h.Event}: {h.Detail}"));
        AnsiConsole.Write(history);
    }

    private static string LocalTime(string iso) =>
        DateTimeOffset.TryParse(iso, CultureInfo.InvariantCulture, DateTimeStyles.None, out var t)
            ? t.ToLocalTime().ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture)
            : iso;

    private static string Reward(double reward, bool correct) =>
        $"[{(correct ? "green" : "red")}]{reward.ToString("F2", CultureInfo.InvariantCulture)}[/]";

    private static Command Learner()
    {
        var command = new Command("learner", "The learner grain of a run: lease holder, phase, step, progress, last checkpoint");
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var view = await new Inspector(session).LearnerAsync(cancellationToken);
            if (Handler.Json(result)) Output.Json(view);
            else RenderLearner(view, session.Store.Description);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void RenderLearner(LearnerView l, string store)
    {
        Output.Source(store);
        var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        grid.AddRow("[bold]Learner of run[/]", $"[bold]{Markup.Escape(l.RunId)}[/] [grey]({l.RunStatus})[/]");
        grid.AddRow("Lease", l.Lease is not { } lease ? "[grey]never taken[/]"
            : lease.Held ? $"held by {Markup.Escape(Describe.Lease(lease))}, expires in {Format.Age(lease.ExpiresInMs ?? 0)} [grey](epoch {lease.Epoch})[/]"
            : $"[yellow]{Markup.Escape(Describe.Lease(lease))}[/] [grey](epoch {lease.Epoch})[/]");
        if (l.State is { } s)
        {
            grid.AddRow("Phase", $"[bold]{Markup.Escape(s.Phase)}[/] at step {s.Step} [grey](reported {Format.Age(s.AgeMs)} ago by {Markup.Escape(s.SiloId)})[/]");
            grid.AddRow("Progress", Markup.Escape(s.Detail));
        }
        else grid.AddRow("Phase", "[grey]no learner has reported yet[/]");
        grid.AddRow("Run", $"step {Describe.Step(l.RunStatus, l.Step, l.CompletedSteps, l.TotalSteps)}, policy v{l.PolicyVersion}");
        if (l.CurrentStep is { } c)
            grid.AddRow("Step ledger", $"{StepsCommand.Phase(c.Phase)}: {c.Accepted}/{c.Target} accepted, {c.Filtered} filtered, {c.InFlight} in flight, " +
                                       $"{c.Draws} drawn, {c.GenerationRounds} round(s)");
        grid.AddRow("Last checkpoint", l.LatestCheckpoint is { } k ? $"step {k}" : "[grey]none[/]");
        AnsiConsole.Write(grid);
    }

    private static Command Rollout()
    {
        var silo = new Argument<string>("silo") { Description = "The silo's id, as `status` lists it (a worker id silo/wN works too)" };
        var command = new Command("rollout", "A rollout silo: its heartbeat and the work items its workers hold leases on") { silo };
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var view = await new Inspector(session).RolloutAsync(result.GetValue(silo)!, cancellationToken);
            if (Handler.Json(result)) Output.Json(view);
            else RenderRollout(view, session.Store.Description);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void RenderRollout(RolloutView r, string store)
    {
        Output.Source(store);
        var s = r.Silo;
        var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        grid.AddRow("[bold]Silo[/]", $"[bold]{Markup.Escape(s.SiloId)}[/] ({StatusCommand.SiloState(s.State)})");
        grid.AddRow("Roles", string.Join(", ", s.Roles));
        grid.AddRow("Address", Markup.Escape(s.Address));
        grid.AddRow("Heartbeat", $"{Format.Age(s.HeartbeatAgeMs)} ago [grey](started {Format.Time(s.StartedAt)})[/]");
        grid.AddRow("Work", $"{s.WorkInHand} group(s) in hand at the last heartbeat, {s.Leased} leased now");
        AnsiConsole.Write(grid);
        var table = Tables.New("[bold]Leased work items[/]", "Item", "Prompt grain", "Step", "Policy", "Worker", "Lease", "Attempts").Right(0, 2, 6);
        foreach (var w in r.Leased)
            table.AddRow(w.ItemId.ToString(CultureInfo.InvariantCulture), Markup.Escape(w.Key), Format.Int(w.Step), $"v{w.PolicyVersion}",
                Markup.Escape(w.Worker), w.Expired ? $"[yellow]expired {Format.Age(-w.ExpiresInMs)} ago[/]" : $"{Format.Age(w.ExpiresInMs)} left",
                Format.Int(w.Attempts));
        if (r.Leased.Count == 0) table.AddRow("[grey]none[/]");
        AnsiConsole.Write(table);
    }
}
