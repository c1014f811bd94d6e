using System.Diagnostics;
using System.Text.Json;

namespace Dapo.Torch.Tests.HuggingFace;

/// <summary>
/// Runs <c>HuggingFace/torch_peer.py</c> (copied next to the test assembly) with Debian's <c>/usr/bin/python3</c> and
/// its python3-torch, which <c>./dapo.sh test</c> installs. A missing interpreter or torch fails the test: the peer is
/// what the format is checked against.
/// </summary>
internal static class TorchPeer
{
    private const string Interpreter = "/usr/bin/python3";

    private static string Script => Path.Combine(AppContext.BaseDirectory, "HuggingFace", "torch_peer.py");

    /// <summary>Runs the peer with <paramref name="arguments"/> and parses the JSON it prints.</summary>
    public static JsonElement Run(params string[] arguments)
    {
        if (!File.Exists(Interpreter)) Assert.Fail($"{Interpreter} is missing: install python3 and python3-torch (scripts/setup.sh --test).");
        var start = new ProcessStartInfo(Interpreter) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("-I");  // isolated: no user site-packages, no PYTHON* variables
        start.ArgumentList.Add(Script);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"The PyTorch peer did not finish within 2 minutes: {string.Join(' ', arguments)}");
        }
        if (process.ExitCode != 0)
            Assert.Fail($"The PyTorch peer exited with code {process.ExitCode} (is python3-torch installed? scripts/setup.sh --test):\n{errors.Result}");
        using var document = JsonDocument.Parse(output.Result);
        return document.RootElement.Clone();
    }

    public static float[] Floats(JsonElement array) => array.EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();
}
