using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Dapo.Testing;

/// <summary>
/// A dapo-silo run as a separate OS process, as a user would run it: its output collected line by line (and, when
/// given a log file, written there as it comes, so a failed test leaves each process's whole log), waited on by
/// pattern, stopped gracefully (SIGTERM) or killed (kill -9). Disposing kills what is left.
/// </summary>
public sealed partial class SiloProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly SemaphoreSlim _lineArrived = new(0);
    private readonly StreamWriter? _log;

    private SiloProcess(Process process, string? logFile)
    {
        _process = process;
        LogFile = logFile;
        if (logFile is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(logFile))!);
            _log = new StreamWriter(logFile, append: true) { AutoFlush = true };
        }
        _process.OutputDataReceived += (_, e) => Add(e.Data);
        _process.ErrorDataReceived += (_, e) => Add(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The silo executable built with the tests' configuration.</summary>
    public static string SiloDll => ProgramDll("silo", "dapo-silo");

    public static string ProgramDll(string folder, string assembly)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
        var path = Path.Combine(RepositoryPaths.Root, folder, "bin", configuration, "net10.0", $"{assembly}.dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"{path} is not built; build the solution first (./dapo.sh test does).");
    }

    /// <summary>
    /// Starts <c>dotnet dll args</c> in <paramref name="workingDirectory"/> with extra environment variables (an empty
    /// value takes the variable out of what the process inherits); its output also goes to <paramref name="logFile"/>
    /// when given.
    /// </summary>
    public static SiloProcess Start(string dll, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null,
        string? workingDirectory = null, string? logFile = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        start.ArgumentList.Add(dll);
        foreach (var a in arguments) start.ArgumentList.Add(a);
        // Several processes share two cores in these tests: one intra-op thread each keeps them from fighting.
        start.Environment["DAPO_THREADS"] = "1";
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            if (value.Length == 0) start.Environment.Remove(key);
            else start.Environment[key] = value;
        }
        return new SiloProcess(Process.Start(start) ?? throw new InvalidOperationException($"Could not start {dll}."), logFile);
    }

    public int Id => _process.Id;

    /// <summary>Where the process's output is written as it comes, if anywhere.</summary>
    public string? LogFile { get; }
    public bool HasExited => _process.HasExited;
    public IReadOnlyCollection<string> Lines => _lines.ToArray();
    public string Output => string.Join(Environment.NewLine, _lines);

    /// <summary>Waits for a line containing <paramref name="text"/>; fails with the output so far if it does not come.</summary>
    public async Task<string> WaitForLineAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var seen = 0;
        while (true)
        {
            var lines = _lines.ToArray();
            for (; seen < lines.Length; seen++)
                if (lines[seen].Contains(text, StringComparison.Ordinal)) return lines[seen];
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                throw new TimeoutException($"No line with '{text}' within {timeout} from process {Id} (exited: {HasExited}). Output:\n{Tail()}");
            await _lineArrived.WaitAsync(left < TimeSpan.FromMilliseconds(200) ? left : TimeSpan.FromMilliseconds(200));
        }
    }

    /// <summary>Waits for the process to end; returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"Process {Id} did not exit within {timeout}. Output:\n{Tail()}");
        }
        return _process.ExitCode;
    }

    /// <summary>SIGTERM: the graceful stop a service manager sends.</summary>
    public void Terminate() => kill(_process.Id, 15);

    /// <summary>Freezes the process (SIGSTOP): whatever it holds stays held until <see cref="Resume"/>.</summary>
    public void Pause() => kill(_process.Id, 19);

    /// <summary>Lets a paused process run again (SIGCONT), with the signals sent meanwhile pending.</summary>
    public void Resume() => kill(_process.Id, 18);

    /// <summary>kill -9: the process dies at once, with whatever it held.</summary>
    public void Kill()
    {
        if (kill(_process.Id, 9) != 0 && !_process.HasExited)
            throw new InvalidOperationException($"kill -9 {_process.Id} failed (errno {Marshal.GetLastPInvokeError()}).");
    }

    public string Tail(int lines = 60) => string.Join(Environment.NewLine, _lines.TakeLast(lines));

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
        // Waits for the output readers too, so the log file is complete before it is closed.
        await _process.WaitForExitAsync();
        _process.Dispose();
        lock (_lines) _log?.Dispose();
    }

    private void Add(string? line)
    {
        if (line is null) return;
        _lines.Enqueue(line);
        lock (_lines)
        {
            try { _log?.WriteLine(line); }
            catch (ObjectDisposedException) { /* a line after dispose: kept in memory only */ }
        }
        _lineArrived.Release();
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
