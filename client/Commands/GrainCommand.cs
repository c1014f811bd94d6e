using System.CommandLine;
using System.Globalization;
using Spectre.Console;

using Dapo.Grains.Inspection;

namespace Dapo.Client.Commands;

/// <summary>`grain prompt|learner|rollout`: one grain's state in full.</summary>
internal static class GrainCommand
{
    public static Command Create() => new("grain", "One grain's state in full")
    {
        Prompt(), Step(), Learner(), Rollout(),
    };

    private static Command Prompt()
    {
        var key = new Argument<string>("key") { Description = "RUN/STEP/PROMPT_ID, e.g. demo/3/17 (as `prompts` lists them); STEP/PROMPT_ID means the default run" };
        var tokens = new Option<bool>("--tokens") { Description = "Show each response's token ids and log-probabilities too" };
        var command = new Command("prompt", "A prompt grain: prompt, ground truth, every response slot, status and decision history") { key, tokens };
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var parsed = PromptKey.Parse(result.GetValue(key)!);
            var view = await new Inspector(session).PromptAsync(parsed, cancellationToken);
            if (Handler.Json(result)) Output.Json(view);
            else RenderPrompt(view, result.GetValue(tokens));
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void RenderPrompt(PromptDetailView p, bool tokens)
    {
        Output.Source(p.Source);
        var facts = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        facts.AddRow("[bold]Prompt grain[/]", $"[bold]{Markup.Escape(p.Key)}[/]");
        facts.AddRow("Step", $"{p.Step} [grey]({p.StepPhase ?? "not opened"})[/]");
        // The reason usually starts with the status ("accepted: accuracy 0.25"); say it once.
        facts.AddRow("Status", p.Reason.StartsWith(p.Status, StringComparison.Ordinal)
            ? PromptsCommand.Status(p.Status).Replace(p.Status, Markup.Escape(p.Reason), StringComparison.Ordinal)
            : $"{PromptsCommand.Status(p.Status)} [grey]({Markup.Escape(p.Reason)})[/]");
        if (p.LedgerReason is { } ledger && ledger != p.Reason) facts.AddRow("Step ledger", Markup.Escape(ledger));
        facts.AddRow("Trained on", p.TrainedOn ? "[green]yes[/]: the learner trained on these slots" : "no");
        facts.AddRow("Policy", $"v{p.PolicyVersion}");
        facts.AddRow("Group", string.Create(CultureInfo.InvariantCulture,
            $"{p.Filled}/{p.GroupSize} slots, accuracy {Format.Number(p.Accuracy, "F2")}, mean reward {Format.Number(p.MeanReward, "F3")}, " +
            $"mean length {Format.Number(p.MeanLength, "F1")}, truncated {p.TruncatedCount?.ToString(CultureInfo.InvariantCulture) ?? "-"}"));
        facts.AddRow("Dataset", $"example {p.DatasetIndex}, draw {p.DrawOrdinal}");
        facts.AddRow("Prompt", p.Problem is null ? "[grey]unknown (the run's spec cannot be read)[/]" : Markup.Escape(p.Problem.TrimEnd('\n')));
        facts.AddRow("Ground truth", Markup.Escape(p.GroundTruth ?? "-"));
        AnsiConsole.Write(facts);
        AnsiConsole.WriteLine();

        var slots = Tables.New("[bold]Response slots[/] [grey](what the learner reads to train)[/]",
            "Slot", "Reward", "Score", "Penalty", "Length", "Trunc", "Worker").Right(0, 1, 2, 3, 4);
        foreach (var s in p.Slots)
            slots.AddRow(Format.Int(s.Slot), Reward(s.Reward, s.Correct), Format.Number(s.Score, "F2"), Format.Number(s.OverlongPenalty, "F3"),
                Format.Int(s.Length), s.Truncated ? "[yellow]yes[/]" : "no", Markup.Escape(s.Worker));
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

    private static Command Step()
    {
        var key = new Argument<string>("key") { Description = "RUN/STEP, e.g. demo/3 (as `steps` lists them); a bare STEP means the default run" };
        var command = new Command("step", "A step grain: its ledger (phase, target, accepted, filtered, draws, rounds, stop reason) and prompt counts") { key };
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var view = await new Inspector(session).StepAsync(StepKey.Parse(result.GetValue(key)!), cancellationToken);
            if (Handler.Json(result)) Output.Json(view);
            else RenderStep(view);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void RenderStep(StepDetailView v)
    {
        Output.Source(v.Source);
        var s = v.Ledger;
        var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        grid.AddRow("[bold]Step grain[/]", $"[bold]{Markup.Escape(v.Key)}[/] ({StepsCommand.Phase(s.Phase)})");
        grid.AddRow("Policy", $"v{s.PolicyVersion} [grey](opening {s.Opening}, learner epoch {s.Epoch})[/]");
        grid.AddRow("Groups", $"{s.Accepted}/{s.Target} accepted, {s.Filtered} filtered, {s.Abandoned} abandoned, {s.InFlight} in flight, " +
                              $"{s.SurplusCarried} carried in");
        grid.AddRow("Draws", $"{s.Draws} drawn in {s.GenerationRounds} round(s)");
        grid.AddRow("Stop reason", Markup.Escape(s.StopReason ?? "-"));
        grid.AddRow("Time", $"opened {Format.Time(s.OpenedAt)}, sampling {Format.Seconds(s.SamplingSeconds)}, step {Format.Seconds(s.StepSeconds)}");
        grid.AddRow("Prompts", string.Join(", ", v.Counts.Select(c => $"{c.Value} {c.Key}")));
        AnsiConsole.Write(grid);
    }

    private static Command Learner()
    {
        var command = new Command("learner", "The learner grain of a run: phase, progress, epoch, silo, step, last checkpoint");
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var view = await new Inspector(session).LearnerAsync(cancellationToken);
            if (Handler.Json(result)) Output.Json(view);
            else RenderLearner(view);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void RenderLearner(LearnerView l)
    {
        Output.Source(l.Source);
        var s = l.State;
        var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        grid.AddRow("[bold]Learner of run[/]", $"[bold]{Markup.Escape(l.RunId)}[/] [grey]({l.RunStatus})[/]");
        grid.AddRow("Phase", $"[bold]{Markup.Escape(s.Phase)}[/] [grey](state written {Format.Age(s.AgeMs)} ago)[/]");
        if (s.Detail.Length > 0) grid.AddRow("Progress", Markup.Escape(s.Detail));
        grid.AddRow("Silo", s.Silo.Length == 0 ? "[grey]none (history)[/]" : $"{Markup.Escape(s.Silo)} [grey](epoch {s.Epoch})[/]");
        grid.AddRow("Run", $"step {Describe.Step(l.RunStatus, l.Step, l.CompletedSteps, l.TotalSteps)}, policy v{l.PolicyVersion}");
        if (l.CurrentStep is { } c)
            grid.AddRow("Step ledger", $"{StepsCommand.Phase(c.Phase)}: {c.Accepted}/{c.Target} accepted, {c.Filtered} filtered, {c.InFlight} in flight, " +
                                       $"{c.Draws} drawn, {c.GenerationRounds} round(s)");
        grid.AddRow("Held-out", $"avg@k {Format.Percent(s.StartAccuracy)} at the start, {Format.Percent(s.LatestAccuracy)} at the latest evaluation");
        grid.AddRow("Last checkpoint", l.LatestCheckpoint is { } k ? $"step {k}" : "[grey]none[/]");
        if (l.Error is { } error) grid.AddRow("Error", $"[red]{Markup.Escape(error)}[/]");
        AnsiConsole.Write(grid);
    }

    private static Command Rollout()
    {
        var key = new Argument<string?>("key")
        {
            Description = "A rollout grain's key (SILO_ADDRESS/DEVICE) or a silo's address (all its rollout grains); default: every active one",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var command = new Command("rollout", "Rollout grains (live only): run and policy version they sample, groups in hand, groups and tokens so far") { key };
        Handler.Set(command, async (result, session, cancellationToken) =>
        {
            var view = await new Inspector(session).RolloutsAsync(result.GetValue(key), cancellationToken);
            if (Handler.Json(result)) Output.Json(view);
            else RenderRollouts(view);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void RenderRollouts(RolloutsView v)
    {
        Output.Source(v.Source);
        var table = Tables.New("[bold]Rollout grains[/]", "Key", "Run", "Policy", "In hand", "Groups", "Tokens", "Updated").Right(3, 4, 5, 6);
        foreach (var r in v.Rollouts)
            table.AddRow(Markup.Escape(r.Key), Markup.Escape(r.RunId ?? "-"), r.PolicyVersion is { } p ? $"v{p}" : "-", Format.Int(r.InHand),
                r.GroupsSubmitted.ToString("N0", CultureInfo.InvariantCulture), r.TokensGenerated.ToString("N0", CultureInfo.InvariantCulture),
                $"{Format.Age(r.AgeMs)} ago");
        if (v.Rollouts.Count == 0) table.AddRow("[grey]no rollout grain is active[/]");
        AnsiConsole.Write(table);
    }
}
