namespace Dapo.Testing;

/// <summary>
/// One Azurite in its own OS process, bound to 127.0.0.1 on free ports, storing under a temporary folder that is
/// deleted on dispose: the blob service, and with <c>tables</c> the table service too (an Orleans cluster on Azure
/// Storage keeps membership and reminders in tables). It can be stopped and started again on the same port and folder, to make
/// storage unavailable in the middle of a test.
/// </summary>
/// <remarks>
/// Azurite is installed by scripts/setup.sh (./dapo.sh setup or ./dapo.sh test) into .tools/azurite. It runs as a
/// <see cref="ServerProcess"/>: it ends with this test process, even one killed with -9.
/// </remarks>
public sealed class AzuriteProcess : IRestartableServer
{
    /// <summary>Azurite's (and the old storage emulator's) fixed account; it is public, not a secret.</summary>
    public const string AccountName = "devstoreaccount1";

    /// <summary>The fixed key of <see cref="AccountName"/>, published in Azurite's documentation.</summary>
    public const string AccountKey =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    /// <summary>Where setup.sh installs azurite-blob, relative to the repository root.</summary>
    public const string RelativeExecutable = ".tools/azurite/node_modules/.bin/azurite-blob";

    /// <summary>Azurite with every service (blob, queue, table), installed beside azurite-blob.</summary>
    public const string RelativeFullExecutable = ".tools/azurite/node_modules/.bin/azurite";

    private readonly ServerProcess _server;
    private readonly bool _checkApiVersion;

    private AzuriteProcess(string location, bool checkApiVersion, bool tables)
    {
        _checkApiVersion = checkApiVersion;
        HasTables = tables;
        _server = new ServerProcess("azurite", location, () => Command(FindExecutable(tables)),
            () => HasTables ? [Port, TablePort] : [Port]);
    }

    /// <summary>The blob service's port (kept across <see cref="StopAsync"/> and <see cref="StartAsync"/>).</summary>
    public int Port { get; private set; }

    /// <summary>Whether the table (and queue) services run too.</summary>
    public bool HasTables { get; }

    /// <summary>The table service's port, when <see cref="HasTables"/>.</summary>
    public int TablePort { get; private set; }

    /// <summary>The queue service's port, when <see cref="HasTables"/> (full Azurite always starts it; nothing uses it).</summary>
    public int QueuePort { get; private set; }

    /// <summary>The folder Azurite stores blobs in.</summary>
    public string Location => _server.Location;

    public bool IsRunning => _server.IsRunning;

    /// <summary>The blob service URL in Azurite's path style: <c>http://127.0.0.1:{Port}/devstoreaccount1</c>.</summary>
    public Uri BlobEndpoint => new($"http://127.0.0.1:{Port}/{AccountName}");

    /// <summary>The table service URL, when <see cref="HasTables"/>.</summary>
    public Uri TableEndpoint => new($"http://127.0.0.1:{TablePort}/{AccountName}");

    /// <summary>A SharedKey connection string for Azurite's well-known account on these ports (with the table
    /// endpoint when <see cref="HasTables"/>).</summary>
    public string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName={AccountName};AccountKey={AccountKey};BlobEndpoint={BlobEndpoint}" +
        (HasTables ? $";TableEndpoint={TableEndpoint}" : "");

    /// <summary>Path of azurite-blob in this repository; throws saying how to install it when it is missing.</summary>
    public static string FindExecutable(bool tables = false)
    {
        var path = Path.Combine(RepositoryPaths.Root, tables ? RelativeFullExecutable : RelativeExecutable);
        if (!File.Exists(path))
            throw new InvalidOperationException(
                $"Azurite is not installed ({path} is missing). Run ./dapo.sh setup (or ./dapo.sh test), which installs " +
                "azurite 3.37.0 with npm into .tools/azurite.");
        return path;
    }

    /// <summary>Starts Azurite on free ports with a fresh temporary folder and waits until it accepts connections.</summary>
    /// <param name="checkApiVersion">Refuse requests of a REST API version newer than this Azurite knows, as a stock
    /// Azurite does; by default it takes them (<c>--skipApiVersionCheck</c>).</param>
    /// <param name="tables">Run the table service too (and the queue service, which full Azurite always starts).</param>
    public static Task<AzuriteProcess> StartNewAsync(CancellationToken cancellationToken = default, bool checkApiVersion = false,
        bool tables = false)
    {
        FindExecutable(tables);
        var azurite = new AzuriteProcess(Directory.CreateTempSubdirectory("dapo-azurite-").FullName, checkApiVersion, tables);
        return ServerProcess.StartNewAsync(azurite, azurite._server, () =>
        {
            azurite.Port = FreePort.Next();
            if (tables) (azurite.TablePort, azurite.QueuePort) = (FreePort.Next(), FreePort.Next());
        }, cancellationToken);
    }

    /// <summary>Starts Azurite again on the same port and folder after <see cref="StopAsync"/>.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default) => _server.StartAsync(cancellationToken);

    /// <summary>
    /// Stops Azurite gracefully (SIGTERM, so it saves its metadata, as a service restart would) and waits for it to
    /// exit; the port then refuses connections until <see cref="StartAsync(CancellationToken)"/>.
    /// </summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _server.StopAsync(cancellationToken);

    /// <summary>Kills Azurite with its whole process tree and deletes its folder.</summary>
    public ValueTask DisposeAsync() => _server.DisposeAsync();

    /// <summary>The last lines Azurite printed, for failure messages.</summary>
    public string RecentOutput => _server.RecentOutput;

    private IReadOnlyList<string> Command(string executable) =>
        new[] { executable, "--loose", "--blobHost", "127.0.0.1", "--blobPort", Port.ToString(), "--location", Location }
            .Concat(HasTables
                ? ["--tableHost", "127.0.0.1", "--tablePort", TablePort.ToString(), "--queueHost", "127.0.0.1", "--queuePort", QueuePort.ToString()]
                : [])
            .Concat(_checkApiVersion ? [] : ["--skipApiVersionCheck"])
            .ToList();
}
