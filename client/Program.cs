using System.CommandLine;
using Dapo.Client;
using Dapo.Core.Common;
using Dapo.Client.Commands;
using Dapo.Grains.Inspection;
using Spectre.Console;

// Escape codes only for a terminal: none when the output goes to a file or a pipe, or when NO_COLOR is set (no
// colour and no bold either: a reader that asks for plain text wants plain text).
if (Console.IsOutputRedirected || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NO_COLOR")))
{
    AnsiConsole.Console = AnsiConsole.Create(new AnsiConsoleSettings
    {
        Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No,
        Out = new AnsiConsoleOutput(Console.Out),
    });
}

// dapo-client: a read-only console onto a run's grains (an Orleans client, or an embedded run's history) and blob
// storage. One handler per command.
var root = new RootCommand("Dapo client: inspect the grains, silos, steps, metrics and checkpoints of a run (read-only)")
{
    StatusCommand.Create(),
    SilosCommand.Create(),
    StepsCommand.Create(),
    PromptsCommand.Create(),
    GrainCommand.Create(),
    MetricsCommand.Create(),
    CheckpointsCommand.Create(),
    WatchCommand.Create(),
};
foreach (var option in GlobalOptions.All) root.Options.Add(option);

// No command: show what there is, rather than an error.
var parsed = root.Parse(args.Length == 0 ? ["--help"] : args);
if (parsed.Errors.Count > 0 && parsed.Action is not System.CommandLine.Help.HelpAction)
{
    // One line per problem on stderr, exit code 2, like every other usage error of the client.
    foreach (var error in parsed.Errors) Console.Error.WriteLine($"dapo-client: {UsageErrors.Describe(error.Message)}");
    Console.Error.WriteLine($"dapo-client: see `dapo-client {string.Join(' ', CommandPath(parsed.CommandResult.Command, root))} --help`".Replace("  ", " "));
    return ExitCodes.Usage;
}
return await parsed.InvokeAsync();

static IEnumerable<string> CommandPath(Command command, RootCommand root)
{
    var names = new Stack<string>();
    for (var c = command; c is not null && c != root; c = c.Parents.OfType<Command>().FirstOrDefault())
        names.Push(c.Name);
    return names;
}
