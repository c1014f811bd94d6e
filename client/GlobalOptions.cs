using System.CommandLine;

namespace Dapo.Client;

/// <summary>Options every command takes: where the run is, which run, and the output format.</summary>
internal static class GlobalOptions
{
    public static readonly Option<string> RunDir = new("--run-dir")
    {
        Description = $"Directory of an embedded run of `./dapo.sh train` (its cluster.db and blobs/); default {ClientConfiguration.DefaultRunDirectory} " +
                      "when no store is configured",
        Recursive = true,
    };

    public static readonly Option<string> Store = new("--store")
    {
        Description = "PostgreSQL connection string of a cluster (or Store:ConnectionString / DAPO_Store__ConnectionString)",
        Recursive = true,
    };

    public static readonly Option<string> Blobs = new("--blobs")
    {
        Description = "Azure Storage connection string of the cluster's blobs (or Blobs:ConnectionString / DAPO_Blobs__ConnectionString)",
        Recursive = true,
    };

    public static readonly Option<string> Container = new("--container")
    {
        Description = "Blob container of the cluster (default dapo)",
        Recursive = true,
    };

    public static readonly Option<string> Run = new("--run")
    {
        Description = "The run (default: the only run, the only running run, or the run of --run-dir)",
        Recursive = true,
    };

    public static readonly Option<bool> Json = new("--json")
    {
        Description = "Print JSON for scripts instead of tables",
        Recursive = true,
    };

    public static IEnumerable<Option> All => [RunDir, Store, Blobs, Container, Run, Json];
}

/// <summary>Exit codes of dapo-client: the same for every command.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>A bad command line or configuration: a malformed key, conflicting options.</summary>
    public const int Usage = 2;
    /// <summary>What was asked for does not exist: a run, a step, a prompt grain, a silo, the store itself.</summary>
    public const int NotFound = 3;
    /// <summary>The store or blob storage cannot be reached, refuses us, or is not a Dapo store.</summary>
    public const int Unavailable = 4;
}

/// <summary>A failure the user can act on: printed as one line, with its exit code.</summary>
internal sealed class ClientException(int exitCode, string message, Exception? inner = null) : Exception(message, inner)
{
    public int ExitCode { get; } = exitCode;
}
