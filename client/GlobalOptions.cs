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

    public static readonly Option<string> Redis = new("--redis")
    {
        Description = "Redis configuration (host:port[,password=...]) of a cluster on Redis: membership and grain state (or Redis:ConnectionString with Silo:Storage=Redis)",
        Recursive = true,
    };

    public static readonly Option<string> BlobDir = new("--blob-dir")
    {
        Description = "The directory a cluster on Redis shares for its blobs (metrics, checkpoints), when they are not in Azure Storage (--storage)",
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

    public static IEnumerable<Option> All => [RunDir, Storage, Redis, BlobDir, Container, ClusterId, Run, Json];
}
