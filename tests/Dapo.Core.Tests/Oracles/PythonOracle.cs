using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Dapo.Core.Tests.Oracles;

/// <summary>
/// Runs <c>Oracles/math_dapo_oracle.py</c> (copied next to the test assembly) with Debian's <c>/usr/bin/python3</c>:
/// JSON lines in, JSON lines out, all ASCII (non-ASCII and control characters travel as <c>\uXXXX</c> escapes, astral
/// characters as surrogate-pair escapes, which both sides decode to the same code points). A missing interpreter
/// fails the test; it is not a reason to skip the comparison.
/// </summary>
internal static class PythonOracle
{
    public const string Interpreter = "/usr/bin/python3";

    public static string Script => Path.Combine(AppContext.BaseDirectory, "Oracles", "math_dapo_oracle.py");

    /// <summary>Sends <paramref name="requests"/> (one JSON object per line) and returns the reply lines.</summary>
    public static IReadOnlyList<JsonElement> Run(IEnumerable<object> requests, params string[] arguments)
    {
        if (!File.Exists(Interpreter))
            Assert.Fail($"{Interpreter} is missing. The differential reward tests run an oracle in Debian's Python: " +
                        "install python3 (apt-get install -y python3) and run the tests again.");
        if (!File.Exists(Script)) Assert.Fail($"The oracle script is not next to the tests: {Script}.");

        var start = new ProcessStartInfo(Interpreter)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardInputEncoding = new UTF8Encoding(false),
        };
        start.ArgumentList.Add("-I"); // isolated: no user site-packages, no PYTHON* variables
        start.ArgumentList.Add(Script);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {Interpreter}.");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        var sent = 0;
        foreach (var request in requests)
        {
            var line = JsonSerializer.Serialize(request);
            if (line.Any(c => c > 0x7F)) throw new InvalidOperationException($"Request {sent} is not ASCII JSON: {line}");
            process.StandardInput.Write(line);
            process.StandardInput.Write('\n');
            sent++;
        }
        process.StandardInput.Close();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"The Python oracle did not answer {sent} requests within 3 minutes.");
        }
        if (process.ExitCode != 0)
            Assert.Fail($"The Python oracle exited with code {process.ExitCode}:\n{errors.Result}");
        return output.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(Parse).ToList();

        static JsonElement Parse(string line)
        {
            using var document = JsonDocument.Parse(line);
            return document.RootElement.Clone();
        }
    }

    /// <summary>
    /// <paramref name="s"/> as a C#/Python string literal body: printable ASCII as is, backslash and quote escaped,
    /// everything else as <c>\uXXXX</c> or (astral) <c>\UXXXXXXXX</c>; a lone surrogate shows as its own <c>\uXXXX</c>.
    /// </summary>
    public static string Escape(string? s)
    {
        if (s is null) return "null";
        var b = new StringBuilder("\"");
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (char.IsSurrogatePair(s, i))
            {
                b.Append(CultureInfo.InvariantCulture, $"\\U{char.ConvertToUtf32(c, s[i + 1]):X8}");
                i++;
            }
            else if (c == '\\') b.Append("\\\\");
            else if (c == '"') b.Append("\\\"");
            else if (c is >= ' ' and <= '~') b.Append(c);
            else b.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
        }
        return b.Append('"').ToString();
    }

    /// <summary>Whether <paramref name="s"/> holds a surrogate that is not half of a pair (JSON and Python would not
    /// round-trip it the same way, so generated inputs must not).</summary>
    public static bool HasLoneSurrogate(string s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsSurrogatePair(s, i)) i++;
            else if (char.IsSurrogate(s[i])) return true;
        }
        return false;
    }
}
