using System.CommandLine;

namespace Dapo.Client;

/// <summary>Options every command takes: where the cluster or run is, which run, and the output format.</summary>
internal static class GlobalOptions
{
    public static readonly Option<string> RunDir = new("--run-dir")
    {
        Description = $"Directory of an embedded run of `./dapo.sh train`: its silo while it runs, its grains/ and blobs/ once it stopped " +
                      $"(default {ClientConfiguration.DefaultRunDirectory} when no cluster is configured)",
        Recursive = true,
    };

    public static readonly Option<string> Storage = new("--storage")
    {
        Description = "Azure Storage connection string of a cluster: membership and blobs (or Blobs:ConnectionString / DAPO_Blobs__ConnectionString)",
        Recursive = true,
    };

    public static readonly Option<string> Container = new("--container")
    {
        Description = "Blob container of the cluster (default dapo)",
        Recursive = true,
    };

    public static readonly Option<string> ClusterId = new("--cluster-id")
    {
        Description = "Orleans cluster id of the cluster (default dapo)",
        Recursive = true,
    };

    public static readonly Option<string> Run = new("--run")
    {
        Description = "The run (default: the run of --run-dir; else the only run, or the only running one)",
        Recursive = true,
    };

    public static readonly Option<bool> Json = new("--json")
    {
        Description = "Print JSON for scripts instead of tables",
        Recursive = true,
    };

    public static IEnumerable<Option> All => [RunDir, Storage, Container, ClusterId, Run, Json];
}

/// <summary>Exit codes of dapo-client: the same for every command.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>A bad command line or configuration: a malformed key, conflicting options.</summary>
    public const int Usage = 2;
    /// <summary>What was asked for does not exist: a run, a step, a prompt grain, a silo, the run directory itself.</summary>
    public const int NotFound = 3;
    /// <summary>The cluster or blob storage cannot be reached, refuses us, or does not answer in time.</summary>
    public const int Unavailable = 4;
}

/// <summary>A failure the user can act on: printed as one line, with its exit code.</summary>
internal sealed class ClientException(int exitCode, string message, Exception? inner = null) : Exception(message, inner)
{
    public int ExitCode { get; } = exitCode;
}
