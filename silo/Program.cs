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
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
