using System.Diagnostics;

namespace Dapo.Testing;

/// <summary>
/// A test server in its own OS process (Azurite, redis-server) on 127.0.0.1 ports, with its data in a temporary
/// folder: started until its ports listen, stopped gracefully (SIGTERM, as a service restart would) and started again
/// on the same ports and folder, killed with its folder deleted on dispose.
/// </summary>
/// <remarks>
/// It runs under a small sh watchdog that ends it when this test process is gone, so even a test host killed with -9
/// leaves no server behind (and its folder is removed then); dispose kills the whole tree at once.
/// </remarks>
public sealed class ServerProcess(string name, string location, Func<IReadOnlyList<string>> command, Func<IReadOnlyList<int>> ports)
    : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    // $1: the test process's pid, $2: the server's folder; the rest: the server's command. Polls both processes and
    // ends the server when either is gone; when the test process died without cleaning up, removes the folder too.
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

    /// <summary>The folder the server stores its data in.</summary>
    public string Location { get; } = location;

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>The last lines the server printed, for failure messages.</summary>
    public string RecentOutput => _output.ToString();

    /// <summary>
    /// Starts a server with a fresh folder, on free ports picked by <paramref name="pickPorts"/> before each try: a port
    /// free when picked can be taken before the server binds it, and then the next try picks others.
    /// </summary>
    public static async Task<T> StartNewAsync<T>(T server, ServerProcess process, Action pickPorts, CancellationToken cancellationToken)
        where T : IAsyncDisposable
    {
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                pickPorts();
                try
                {
                    await process.StartAsync(cancellationToken);
                    return server;
                }
                catch (ServerExitedException) when (attempt < 3)
                {
                    // try other ports
                }
            }
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts the server (again, after <see cref="StopAsync"/>) and waits until every port listens.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (IsRunning) throw new InvalidOperationException($"{name} is already running.");
        var start = new ProcessStartInfo("/bin/sh")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true, // the server gets no terminal to read from
        };
        foreach (var arg in new[] { "-c", Watchdog, $"{name}-watchdog", Environment.ProcessId.ToString(), Location }.Concat(command()))
            start.ArgumentList.Add(arg);
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => _output.Add(e.Data);
        process.ErrorDataReceived += (_, e) => _output.Add(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var deadline = DateTime.UtcNow + StartTimeout;
        var listening = ports();
        while (!await AllListeningAsync(listening, cancellationToken))
        {
            if (process.HasExited)
            {
                await process.WaitForExitAsync(cancellationToken); // flush the output readers
                process.Dispose();
                _process = null;
                throw new ServerExitedException(
                    $"{name} exited with code {process.ExitCode} before listening on 127.0.0.1:{string.Join(", ", listening)}. Output:\n{RecentOutput}");
            }
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{name} did not listen on 127.0.0.1:{string.Join(", ", listening)} within {StartTimeout.TotalSeconds} s. Output:\n{RecentOutput}");
            await Task.Delay(100, cancellationToken);
        }
    }

    private static async Task<bool> AllListeningAsync(IReadOnlyList<int> ports, CancellationToken cancellationToken)
    {
        foreach (var port in ports)
            if (!await FreePort.IsListeningAsync(port, cancellationToken)) return false;
        return true;
    }

    /// <summary>Stops the server gracefully (SIGTERM) and waits for it to exit; its ports then refuse connections.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (_process is not { HasExited: false } process) return;
        using (var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", process.Id.ToString()]) { UseShellExecute = false })!)
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

    /// <summary>Kills the server with its whole process tree and deletes its folder.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_process is { } process)
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            process.Dispose();
            _process = null;
        }
        if (Directory.Exists(Location)) Directory.Delete(Location, recursive: true);
    }

    public sealed class ServerExitedException(string message) : Exception(message);

    /// <summary>The last lines of a process's output (Azurite logs every request; only the tail is of use).</summary>
    private sealed class OutputTail
    {
        private const int Capacity = 50;
        private readonly Queue<string> _lines = new();

        public void Add(string? line)
        {
            if (line is null) return;
            lock (_lines)
            {
                _lines.Enqueue(line);
                if (_lines.Count > Capacity) _lines.Dequeue();
            }
        }

        public override string ToString()
        {
            lock (_lines) return string.Join('\n', _lines);
        }
    }
}
