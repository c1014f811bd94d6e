namespace Dapo.Grains.Inspection;

/// <summary>Where the client looks: an embedded run's directory, or a cluster on Azure Storage.</summary>
public abstract record ClusterTarget
{
    /// <summary>A run of `./dapo.sh train`: its silo while it runs (silo.json), its grains/ and blobs/ afterwards.</summary>
    public sealed record Embedded(string Directory) : ClusterTarget
    {
        /// <summary>The run an embedded directory holds: the one named after it.</summary>
        public string RunId => Path.GetFileName(Directory.TrimEnd(Path.DirectorySeparatorChar));
    }

    /// <summary>Silos of `dapo-silo join`: Azure Table membership, blobs in <paramref name="Container"/>.</summary>
    public sealed record Cluster(string ConnectionString, string Container, string ClusterId) : ClusterTarget
    {
        /// <summary>Without the connection string: it holds the account key.</summary>
        public override string ToString() => $"Cluster {{ ClusterId = {ClusterId}, Container = {Container} }}";
    }
}
