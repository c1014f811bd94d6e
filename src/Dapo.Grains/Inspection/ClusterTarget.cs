using Dapo.Grains.Hosting;

namespace Dapo.Grains.Inspection;

/// <summary>Where the client looks: an embedded run's directory, or a cluster on Azure Storage or on Redis.</summary>
public abstract record ClusterTarget
{
    /// <summary>A run of `./dapo.sh train`: its silo while it runs (silo.json), its grains/ and blobs/ afterwards.</summary>
    public sealed record Embedded(string Directory) : ClusterTarget
    {
        /// <summary>The run an embedded directory holds: the one named after it.</summary>
        public string RunId => Path.GetFileName(Directory.TrimEnd(Path.DirectorySeparatorChar));
    }

    /// <summary>Silos of `dapo-silo join --storage`: Azure Table membership and grain state, blobs in <paramref name="Container"/>.</summary>
    public sealed record Cluster(string ConnectionString, string Container, string ClusterId) : ClusterTarget
    {
        /// <summary>Without the connection string: it holds the account key.</summary>
        public override string ToString() => $"Cluster {{ ClusterId = {ClusterId}, Container = {Container} }}";
    }

    /// <summary>Silos of `dapo-silo join --redis`: membership and grain state in Redis (blobs are configured apart).</summary>
    public sealed record RedisCluster(string Configuration, string ClusterId) : ClusterTarget
    {
        /// <summary>Without the password the configuration may hold.</summary>
        public override string ToString() => $"RedisCluster {{ ClusterId = {ClusterId}, Redis = {RedisSettings.Redact(Configuration)} }}";
    }

    /// <summary>The cluster a silo's settings name; null for the embedded silo of `train`.</summary>
    public static ClusterTarget? Of(SiloSettings settings) => settings.Silo.Storage switch
    {
        ClusterStorage.AzureStorage => new Cluster(settings.Blobs.ConnectionString!, settings.Blobs.Container, settings.Silo.ClusterId),
        ClusterStorage.Redis => new RedisCluster(settings.Redis.ConnectionString!, settings.Silo.ClusterId),
        _ => null,
    };
}
