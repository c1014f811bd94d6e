using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Dapo.Testing;

/// <summary>What one run of dapo-client printed, and how it ended.</summary>
public sealed record ClientResult(IReadOnlyList<string> Arguments, int ExitCode, string Stdout, string Stderr)
{
    /// <summary>Stdout as one JSON document (a --json command); fails with the whole output when it is not.</summary>
    public JsonNode Json
    {
        get
        {
            if (ExitCode != 0) throw new InvalidOperationException($"{this} failed.");
            return JsonNode.Parse(Stdout) ?? throw new InvalidOperationException($"{this} printed no JSON.");
        }
    }

    /// <summary>Stdout as one JSON object per line (metrics --follow --json, watch --json).</summary>
    public IReadOnlyList<JsonObject> JsonLines =>
        Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    public IReadOnlyList<string> StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public override string ToString() =>
        $"dapo-client {string.Join(' ', Arguments)} (exit {ExitCode})\n--- stdout:\n{Stdout}\n--- stderr:\n{Stderr}";
}

/// <summary>
/// dapo-client run as a user runs it, as a separate OS process: stdout and stderr kept apart (stdout is the JSON of
/// --json), the exit code returned. Its output goes to pipes, so it must come without escape codes. Runs in a directory of its own so no appsettings.json of the caller applies.
/// </summary>
public static class ClientProcess
{
    /// <summary>The client executable built with the tests' configuration.</summary>
    public static string Dll => SiloProcess.ProgramDll("client", "dapo-client");

    private static readonly string WorkingDirectory = Directory.CreateTempSubdirectory("dapo-client-cwd-").FullName;

    public static Task<ClientResult> RunAsync(IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string>? environment = null,
        TimeSpan? timeout = null) =>
        RunProgramAsync("dotnet", [Dll, .. arguments], environment, timeout, WorkingDirectory);

    /// <summary>Any program (a script of the repository) run the same way: output kept apart, exit code returned.</summary>
    public static async Task<ClientResult> RunProgramAsync(string program, IReadOnlyList<string> arguments,
        IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null, string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? WorkingDirectory,
        };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {program}.");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(1));
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not exit within {timeout}:\n{await stdout}\n{await stderr}");
        }
        return new ClientResult(arguments, process.ExitCode, await stdout, await stderr);
    }
}
