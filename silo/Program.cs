using System.CommandLine;
using Dapo.Silo;

// dapo-silo: a process hosting Dapo's roles. `train` runs everything on this machine; `join` joins a cluster.
var root = new RootCommand("Dapo silo: trains language-model policies with DAPO")
{
    Commands.Train(),
    Commands.Join(),
    Commands.StartRun(),
    ExperimentsCommand.Create(),
};
// The host handles Ctrl+C and SIGTERM itself (a graceful stop can take a checkpoint's time), not the parser.
try
{
    return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
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
