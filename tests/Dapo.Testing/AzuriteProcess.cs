using System.Diagnostics;

namespace Dapo.Testing;

/// <summary>
/// One Azurite in its own OS process, bound to 127.0.0.1 on free ports, storing under a temporary folder that is
/// deleted on dispose: the blob service, and with <c>tables</c> the table service too (an Orleans cluster on Azure
/// Storage keeps membership and reminders in tables). It can be stopped and started again on the same port and folder, to make
/// storage unavailable in the middle of a test.
/// </summary>
/// <remarks>
/// Azurite is installed by scripts/setup.sh (./dapo.sh setup or ./dapo.sh test) into .tools/azurite. It runs under a
/// small sh watchdog that ends it when this test process is gone, so even a test host killed with -9 leaves no
/// Azurite behind; dispose kills the whole tree at once.
/// </remarks>
public sealed class AzuriteProcess : IAsyncDisposable
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

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    // $1: the test process's pid, $2: Azurite's folder; the rest: the azurite command. Polls both processes and
    // ends Azurite when either is gone; when the test process died without cleaning up, removes the folder too.
    private const string Watchdog = """
        parent=$1; location=$2; shift 2
        "$@" &
        child=$!
        trap 'kill -TERM $child 2>/dev/null; wait $child; exit 0' TERM
        while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
        kill -TERM $child 2>/dev/null
        wait $child
        kill -0 "$parent" 2>/dev/null || rm -rf "$location"
        """;

    private readonly OutputTail _output = new();
    private Process? _process;

    private readonly bool _checkApiVersion;

    private AzuriteProcess(string location, bool checkApiVersion, bool tables)
    {
        Location = location;
        _checkApiVersion = checkApiVersion;
        HasTables = tables;
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
    public string Location { get; }

    public bool IsRunning => _process is { HasExited: false };

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
    public static async Task<AzuriteProcess> StartNewAsync(CancellationToken cancellationToken = default, bool checkApiVersion = false,
        bool tables = false)
    {
        var executable = FindExecutable(tables);
        var location = Directory.CreateTempSubdirectory("dapo-azurite-").FullName;
        var azurite = new AzuriteProcess(location, checkApiVersion, tables);
        try
        {
            // The port is free when picked but could be taken before Azurite binds it: then try another.
            for (var attempt = 1; ; attempt++)
            {
                azurite.Port = FreePort.Next();
                if (tables) (azurite.TablePort, azurite.QueuePort) = (FreePort.Next(), FreePort.Next());
                try
                {
                    await azurite.StartAsync(executable, cancellationToken);
                    return azurite;
                }
                catch (AzuriteExitedException) when (attempt < 3)
                {
                    // try the next port
                }
            }
        }
        catch
        {
            await azurite.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts Azurite again on the same port and folder after <see cref="StopAsync"/>.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (IsRunning)
            throw new InvalidOperationException("Azurite is already running.");
        return StartAsync(FindExecutable(HasTables), cancellationToken);
    }

    /// <summary>
    /// Stops Azurite gracefully (SIGTERM, so it saves its metadata, as a service restart would) and waits for it to
    /// exit; the port then refuses connections until <see cref="StartAsync(CancellationToken)"/>.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (_process is not { HasExited: false } process)
            return;
        using (var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", process.Id.ToString()])
               { UseShellExecute = false })!)
            await kill.WaitForExitAsync(cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(15));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true); // it did not stop in time; the test still needs it gone
            await process.WaitForExitAsync(cancellationToken);
        }
        process.Dispose();
        _process = null;
    }

    /// <summary>Kills Azurite with its whole process tree and deletes its folder.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_process is { } process)
        {
            if (!process.HasExited)
                process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            process.Dispose();
            _process = null;
        }
        if (Directory.Exists(Location))
            Directory.Delete(Location, recursive: true);
    }

    /// <summary>The last lines Azurite printed, for failure messages.</summary>
    public string RecentOutput => _output.ToString();

    private async Task StartAsync(string executable, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("/bin/sh")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true, // Azurite gets no terminal to read from
        };
        foreach (var arg in new[] { "-c", Watchdog, "azurite-watchdog", Environment.ProcessId.ToString(), Location, executable,
                     "--loose", "--blobHost", "127.0.0.1", "--blobPort", Port.ToString(), "--location", Location }
                     .Concat(HasTables
                         ? ["--tableHost", "127.0.0.1", "--tablePort", TablePort.ToString(), "--queueHost", "127.0.0.1", "--queuePort", QueuePort.ToString()]
                         : [])
                     .Concat(_checkApiVersion ? [] : ["--skipApiVersionCheck"]))
            start.ArgumentList.Add(arg);
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => _output.Add(e.Data);
        process.ErrorDataReceived += (_, e) => _output.Add(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var deadline = DateTime.UtcNow + StartTimeout;
        while (!await FreePort.IsListeningAsync(Port, cancellationToken) || (HasTables && !await FreePort.IsListeningAsync(TablePort, cancellationToken)))
        {
            if (process.HasExited)
            {
                await process.WaitForExitAsync(cancellationToken); // flush the output readers
                process.Dispose();
                _process = null;
                throw new AzuriteExitedException(
                    $"Azurite exited with code {process.ExitCode} before listening on 127.0.0.1:{Port}{(HasTables ? $" and {TablePort}" : "")}. Output:\n{RecentOutput}");
            }
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException(
                    $"Azurite did not listen on 127.0.0.1:{Port} within {StartTimeout.TotalSeconds} s. Output:\n{RecentOutput}");
            await Task.Delay(100, cancellationToken);
        }
    }

    private sealed class AzuriteExitedException(string message) : Exception(message);

    /// <summary>The last lines of a process's output (Azurite logs every request; only the tail is of use).</summary>
    private sealed class OutputTail
    {
        private const int Capacity = 50;
        private readonly Queue<string> _lines = new();

        public void Add(string? line)
        {
            if (line is null)
                return;
            lock (_lines)
            {
                _lines.Enqueue(line);
                if (_lines.Count > Capacity)
                    _lines.Dequeue();
            }
        }

        public override string ToString()
        {
            lock (_lines)
                return string.Join('\n', _lines);
        }
    }
}
