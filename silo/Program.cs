using System.CommandLine;
using Dapo.Core.Common;
using Dapo.Silo;

// dapo-silo: a process hosting Dapo's roles. `train` runs everything on this machine; `join` joins a cluster.
var root = new RootCommand("Dapo silo: trains language-model policies with DAPO")
{
    Commands.Train(),
    Commands.Join(),
    Commands.StartRun(),
    ExperimentsCommand.Create(),
};
// No command: show what there is, rather than an error.
var parsed = root.Parse(args.Length == 0 ? ["--help"] : args);
if (parsed.Errors.Count > 0 && parsed.Action is not System.CommandLine.Help.HelpAction)
{
    // One line per problem and where to look, exit code 2 like every other refused input; not the whole help.
    foreach (var error in parsed.Errors) Console.Error.WriteLine($"dapo-silo: {UsageErrors.Describe(error.Message)}");
    var command = parsed.CommandResult.Command is RootCommand ? "dapo-silo" : $"dapo-silo {parsed.CommandResult.Command.Name}";  // one level deep
    Console.Error.WriteLine($"dapo-silo: see `{command} --help`");
    return 2;
}
// The host handles Ctrl+C and SIGTERM itself (a graceful stop can take a checkpoint's time), not the parser.
try
{
    return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
}
catch (SiloConfigurationException e)
{
    Console.Error.WriteLine($"dapo-silo: {e.Message}");
    return 2;
}
catch (Microsoft.Extensions.Options.OptionsValidationException e)
{
    // Every bad setting, one line each, before anything started.
    foreach (var failure in e.Failures) Console.Error.WriteLine($"Invalid configuration: {failure}");
    return 2;
}
catch (Exception e) when (e is not OperationCanceledException)
{
    // What the parser's default handler did: the whole exception, exit code 1.
    Console.Error.WriteLine($"Unhandled exception: {e}");
    return 1;
}
