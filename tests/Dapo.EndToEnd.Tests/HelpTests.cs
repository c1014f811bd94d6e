using System.Diagnostics;
using Dapo.Testing;

namespace Dapo.EndToEnd.Tests;

/// <summary>Every entry point answers --help with its usage and exit code 0, and an unknown name with a list of the known ones.</summary>
public sealed class HelpTests
{
    private static async Task<(int Code, string Output)> RunAsync(string file, params string[] arguments)
    {
        if (file.StartsWith("./", StringComparison.Ordinal)) file = Path.Combine(RepositoryPaths.Root, file[2..]);
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = RepositoryPaths.Root };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await process.WaitForExitAsync(cancel.Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    private static string Bench => SiloProcess.ProgramDll(Path.Combine("bench", "Dapo.Bench"), "Dapo.Bench");

    public static TheoryData<string[], string> Helps => new()
    {
        { ["./dapo.sh", "--help"], "bench [NAME]" },
        { ["./dapo.sh", "help"], "client COMMAND" },
        { ["dotnet", "{silo}", "--help"], "start-run" },
        { ["dotnet", "{silo}", "train", "--help"], "--dataset" },
        { ["dotnet", "{silo}", "experiments", "--help"], "--out" },
        { ["dotnet", "{client}", "--help"], "checkpoints" },
        { ["dotnet", "{client}", "watch", "--help"], "--interval" },
        { ["dotnet", "{bench}", "--help"], "control-plane" },
        { ["dotnet", "{bench}", "engine", "--help"], "--quick" },
    };

    [Theory]
    [MemberData(nameof(Helps))]
    public async Task Help_prints_the_usage_and_exits_0(string[] command, string expected)
    {
        // Each program's path only when the command names it: one that is not built fails its own cases only.
        var arguments = command.Skip(1).Select(a => a switch
        {
            "{silo}" => SiloProcess.SiloDll,
            "{client}" => ClientProcess.Dll,
            "{bench}" => Bench,
            _ => a,
        }).ToArray();
        var (code, output) = await RunAsync(command[0], arguments);
        Assert.True(code == 0, $"exit {code}: {output}");
        Assert.Contains(expected, output);
        Assert.Contains("usage", output, StringComparison.OrdinalIgnoreCase);
    }

    public static TheoryData<string[], string, string> UsageErrors => new()
    {
        { ["{silo}", "train", "--steps", "abc"], "dapo-silo: Cannot parse argument 'abc' for option '--steps' as a whole number.", "dapo-silo: see `dapo-silo train --help`" },
        { ["{silo}", "train", "--progress-after", "x"], "dapo-silo: Cannot parse argument 'x' for option '--progress-after' as a number.", "dapo-silo: see `dapo-silo train --help`" },
        { ["{silo}", "train", "--progress-after", "-1"], "dapo-silo: --progress-after must be 0 or more seconds.", "dapo-silo: see `dapo-silo train --help`" },
        { ["{silo}", "nope"], "dapo-silo: Unrecognized command or argument 'nope'.", "dapo-silo: see `dapo-silo --help`" },
        { ["{client}", "steps", "--last", "x"], "dapo-client: Cannot parse argument 'x' for option '--last' as a whole number.", "dapo-client: see `dapo-client steps --help`" },
        { ["{client}", "metrics", "--last", "x"], "dapo-client: Cannot parse argument 'x' for option '--last' as a whole number.", "dapo-client: see `dapo-client metrics --help`" },
        { ["{client}", "watch", "--interval", "x"], "dapo-client: Cannot parse argument 'x' for option '--interval' as a number.", "dapo-client: see `dapo-client watch --help`" },
        { ["{client}", "watch", "--frames", "0"], "dapo-client: --frames must be 1 or more", "dapo-client: see `dapo-client watch --help`" },
    };

    [Theory]
    [MemberData(nameof(UsageErrors))]
    public async Task A_usage_error_is_one_line_naming_the_option_and_where_to_look_with_exit_code_2(string[] command, string error, string see)
    {
        var arguments = command.Select(a => a switch { "{silo}" => SiloProcess.SiloDll, "{client}" => ClientProcess.Dll, _ => a }).ToArray();
        var (code, output) = await RunAsync("dotnet", arguments);
        Assert.True(code == 2, $"exit {code}: {output}");
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(error, lines);
        Assert.Equal(see, lines[^1]);
        Assert.DoesNotContain("   at ", output);  // no stack trace
        Assert.DoesNotContain("Usage:", output);  // nor the whole help
    }

    [Fact]
    public async Task Unknown_names_are_refused_with_the_known_ones()
    {
        var (code, output) = await RunAsync("./dapo.sh", "nope");
        Assert.Equal((2, true), (code, output.Contains("unknown command 'nope'")));
        (code, output) = await RunAsync("dotnet", Bench, "nope");
        Assert.Equal(2, code);
        Assert.Contains("known: engine, real-model, control-plane", output);
    }
}
