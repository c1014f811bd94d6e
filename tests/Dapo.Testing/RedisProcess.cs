namespace Dapo.Testing;

/// <summary>
/// One redis-server in its own OS process on 127.0.0.1 and a free port, its data in a temporary folder (append-only
/// file on, so that a stop and start keeps the cluster's state, as a restarted Redis service with persistence would).
/// Debian's redis-server, installed by scripts/setup.sh --test; it runs as a <see cref="ServerProcess"/>.
/// </summary>
public sealed class RedisProcess : IRestartableServer
{
    public const string Executable = "/usr/bin/redis-server";

    private readonly ServerProcess _server;

    private RedisProcess(string location)
    {
        _server = new ServerProcess("redis", location, () =>
            [Executable, "--bind", "127.0.0.1", "--port", Port.ToString(), "--dir", Location, "--appendonly", "yes", "--save", "",
             "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning"], () => [Port]);
    }

    public int Port { get; private set; }

    public string Location => _server.Location;

    /// <summary>The StackExchange.Redis configuration string of this server.</summary>
    public string ConnectionString => $"127.0.0.1:{Port}";

    public string RecentOutput => _server.RecentOutput;

    /// <summary>Starts redis-server on a free port with a fresh folder and waits until it listens.</summary>
    public static Task<RedisProcess> StartNewAsync(CancellationToken cancellationToken = default)
    {
        if (!File.Exists(Executable))
            throw new InvalidOperationException($"redis-server is not installed ({Executable} is missing). Run ./dapo.sh test, which installs Debian's redis-server.");
        var redis = new RedisProcess(Directory.CreateTempSubdirectory("dapo-redis-").FullName);
        return ServerProcess.StartNewAsync(redis, redis._server, () => redis.Port = FreePort.Next(), cancellationToken);
    }

    /// <summary>Starts it again on the same port and folder after <see cref="StopAsync"/>: the data is back.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default) => _server.StartAsync(cancellationToken);

    /// <summary>Stops it gracefully (SIGTERM: it writes its append-only file) and waits for it to exit.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _server.StopAsync(cancellationToken);

    public ValueTask DisposeAsync() => _server.DisposeAsync();
}
