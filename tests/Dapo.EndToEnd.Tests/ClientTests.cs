using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Dapo.Grains.Store;
using Dapo.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Dapo.EndToEnd.Tests;

/// <summary>
/// `dapo-client` as a user runs it, on a live embedded run of `dapo-silo train`: its --json output must reflect the
/// run as the store holds it, and nothing it does may change the run directory.
/// </summary>
public sealed class ClientTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);
    private const int Steps = 8;
    private readonly string _root = Directory.CreateTempSubdirectory("dapo-client-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static Task<ClientResult> Client(params string[] arguments) => ClientProcess.RunAsync(arguments);

    [Fact]
    public async Task The_client_follows_a_live_embedded_run_shows_what_the_learner_trained_on_and_writes_nothing()
    {
        var dir = Path.Combine(_root, "demo");
        string[] at = ["--run-dir", dir];

        // Before the run exists: one clear line, a non-zero exit code.
        var early = await Client(["status", .. at, "--json"]);
        Assert.Equal(3, early.ExitCode);
        Assert.Equal("", early.Stdout);
        Assert.Contains($"there is no run directory {dir}", Assert.Single(early.StderrLines));

        await using var train = SiloProcess.Start(SiloProcess.SiloDll, ["train", .. at, "--override", TestRecipes.Tiny(Steps, evaluateEvery: 0)]);
        var first = await PollAsync(() => Client(["status", .. at, "--json"]), r => r.ExitCode == 0 && r.Json["runs"]!.AsArray().Count == 1, train);
        var firstRun = first.Json["runs"]![0]!;
        Assert.Equal("demo", (string)firstRun["runId"]!);
        Assert.EndsWith("(read-only)", (string)first.Json["store"]!);
        var firstCheckpoints = await Client(["checkpoints", .. at, "--json"]);
        var checkpointsBefore = firstCheckpoints.Json["checkpoints"]!.AsArray().Select(c => (int)c!["step"]!).ToList();
        // Follows the metrics from the start of the run until it ends.
        var follow = Client(["metrics", .. at, "--follow", "--json"]);

        Assert.Equal(0, await train.WaitForExitAsync(Timeout));

        // The step advanced, and the run is complete.
        var run = (await Client(["status", .. at, "--json"])).Json["runs"]![0]!;
        Assert.Equal("completed", (string)run["status"]!);
        Assert.Equal(Steps, (int)run["completedSteps"]!);
        Assert.True((int)run["step"]! > (int)firstRun["step"]!, $"step {run["step"]} after {firstRun["step"]}");
        Assert.Equal(Steps, (int)run["step"]!); // an ended run's step is its last one
        Assert.Equal(Steps, (int)run["latestCheckpoint"]!);

        // The step ledger: every step trained on its target of accepted groups.
        var steps = (await Client(["steps", .. at, "--last", "100", "--json"])).Json["steps"]!.AsArray();
        Assert.Equal(Enumerable.Range(1, Steps), steps.Select(s => (int)s!["step"]!));
        Assert.All(steps, s => Assert.Equal(("done", (int)s!["target"]!), ((string)s["phase"]!, (int)s["accepted"]!)));

        // Prompt grains: the statuses and slot counts the store holds.
        await using var store = ClusterStores.Create(
            new ClusterStoreOptions { Kind = "sqlite", SqlitePath = Path.Combine(dir, "cluster.db"), ReadOnly = true }, NullLogger.Instance);
        const int step = 2;
        var prompts = (await Client(["prompts", .. at, "--step", $"{step}", "--json"])).Json;
        var stored = await store.TransactAsync(s => s.ListPromptsAsync("demo", step), CancellationToken.None);
        Assert.Equal(stored.Select(p => ($"demo/{p.PromptId}", p.Status.ToString().ToLowerInvariant(), p.Filled)),
            prompts["prompts"]!.AsArray().Select(p => ((string)p!["key"]!, (string)p["status"]!, (int)p["filled"]!)));
        var target = (int)steps[step - 1]!["target"]!;
        Assert.Equal(target, (int)prompts["counts"]!["accepted"]!);
        Assert.All(prompts["prompts"]!.AsArray().Where(p => (string)p!["status"]! is "accepted" or "filtered"),
            p => Assert.Equal((int)p!["groupSize"]!, (int)p["filled"]!));
        var accepted = (await Client(["prompts", .. at, "--step", $"{step}", "--status", "accepted", "--json"])).Json["prompts"]!.AsArray();
        Assert.Equal(target, accepted.Count);
        Assert.All(accepted, p => Assert.Equal("accepted", (string)p!["status"]!));

        // `grain prompt`: exactly the slots of an accepted group the learner trained on.
        var key = (string)accepted[0]!["key"]!;
        var grain = (await Client(["grain", "prompt", key, .. at, "--json"])).Json;
        Assert.True((bool)grain["trainedOn"]!);
        AssertSlotsEqual(await store.TransactAsync(s => s.ListSlotsAsync("demo", (long)grain["promptId"]!), CancellationToken.None), grain);
        Assert.Contains(grain["history"]!.AsArray(), h => (string)h!["event"]! == "accepted");

        // A checkpoint newer than any seen at the start; the latest is complete.
        var checkpoints = (await Client(["checkpoints", .. at, "--json"])).Json["checkpoints"]!.AsArray();
        var latest = checkpoints.Single(c => (bool)c!["latest"]!)!;
        Assert.Equal((Steps, true, "ok"), ((int)latest["step"]!, (bool)latest["complete"]!, (string)latest["checksum"]!));
        Assert.True(checkpointsBefore.Count == 0 || checkpointsBefore.Max() < Steps, $"checkpoints at the start: {string.Join(",", checkpointsBefore)}");

        // Metrics: a row per step; --follow printed each row once, in order, and stopped when the run ended.
        var metrics = (await Client(["metrics", .. at, "--json"])).Json["metrics"]!.AsArray();
        Assert.Equal(Enumerable.Range(1, Steps), metrics.Select(m => (int)m!["step"]!));
        var followed = await follow;
        Assert.Equal(0, followed.ExitCode);
        Assert.Equal(Enumerable.Range(1, Steps), followed.JsonLines.Select(m => (int)m["step"]!));

        var learner = (await Client(["grain", "learner", .. at, "--json"])).Json;
        Assert.Equal(("done", Steps, Steps), ((string)learner["state"]!["phase"]!, (int)learner["state"]!["step"]!, (int)learner["latestCheckpoint"]!));
        var silo = (string)(await Client(["status", .. at, "--json"])).Json["silos"]![0]!["siloId"]!;
        var rollout = (await Client(["grain", "rollout", silo, .. at, "--json"])).Json;
        Assert.Equal(("left", false), ((string)rollout["silo"]!["state"]!, (bool)rollout["silo"]!["alive"]!));
        var frames = await Client(["watch", .. at, "--json", "--frames", "2", "--interval", "0.1"]);
        Assert.Equal(["demo", "demo"], frames.JsonLines.Select(f => (string)f["run"]!["runId"]!));

        // Clear errors: one line on stderr, a non-zero exit code, nothing on stdout.
        await AssertFailsAsync(2, "malformed prompt key 'demo/x'", ["grain", "prompt", "demo/x", .. at]);
        await AssertFailsAsync(3, "run 'nope' does not exist", ["steps", "--run", "nope", .. at, "--json"]);
        await AssertFailsAsync(3, "prompt grain demo/999999 does not exist", ["grain", "prompt", "demo/999999", .. at]);

        // Read-only: every command, as tables and as JSON, leaves the store and the blobs as they were.
        var before = await SnapshotAsync(dir, store);
        foreach (var command in EveryCommand(key, silo))
        {
            foreach (var json in new[] { false, true })
            {
                var result = await Client([.. command, .. at, .. json ? new[] { "--json" } : []]);
                Assert.True(result.ExitCode == 0, result.ToString());
                // Output to a pipe is plain text: no colour, no bold.
                Assert.False(result.Stdout.Contains('\u001b') || result.Stderr.Contains('\u001b'), $"escape codes in {result}");
            }
        }
        Assert.Equal(before, await SnapshotAsync(dir, store));
    }

    [Fact]
    public async Task An_unreachable_store_or_a_missing_run_directory_is_one_clear_line()
    {
        var refused = await Client("status", "--store", $"Host=127.0.0.1;Port={FreePort.Next()};Username=dapo;Password=secret;Database=dapo", "--json");
        Assert.Equal(4, refused.ExitCode);
        var line = Assert.Single(refused.StderrLines);
        Assert.StartsWith("dapo-client: cannot reach PostgreSQL 127.0.0.1:", line);
        Assert.DoesNotContain("secret", line);

        var notRun = await Client("steps", "--run-dir", _root);
        Assert.Equal(3, notRun.ExitCode);
        Assert.Contains("holds no cluster.db", Assert.Single(notRun.StderrLines));

        var both = await Client("status", "--run-dir", _root, "--store", "Host=127.0.0.1");
        Assert.Equal(2, both.ExitCode);
        Assert.Contains("not both", Assert.Single(both.StderrLines));
    }

    internal static IEnumerable<string[]> EveryCommand(string promptKey, string silo) =>
    [
        ["status"], ["steps"], ["prompts", "--step", "1"], ["grain", "prompt", promptKey], ["grain", "learner"], ["grain", "rollout", silo],
        ["metrics"], ["checkpoints"], ["watch", "--frames", "1"],
    ];

    /// <summary>The slots in `grain prompt --json` are the store's, field for field.</summary>
    internal static void AssertSlotsEqual(IReadOnlyList<SlotRow> expected, JsonNode grain)
    {
        var slots = grain["slots"]!.AsArray();
        Assert.Equal((int)grain["groupSize"]!, slots.Count);
        Assert.Equal(expected.Count, slots.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            var (e, a) = (expected[i], slots[i]!);
            Assert.Equal(e.Slot, (int)a["slot"]!);
            Assert.Equal(e.Tokens, a["tokens"]!.AsArray().Select(t => (int)t!));
            Assert.Equal(e.LogProbs, a["logProbs"]!.AsArray().Select(t => (float)t!));
            Assert.Equal(e.Tokens.Length, (int)a["length"]!);
            Assert.Equal(e.Text, (string)a["text"]!);
            Assert.Equal((e.Score, e.OverlongPenalty, e.Reward), ((double)a["score"]!, (double)a["overlongPenalty"]!, (double)a["reward"]!));
            Assert.Equal((e.Correct, e.Truncated), ((bool)a["correct"]!, (bool)a["truncated"]!));
            Assert.Equal((e.PolicyVersion, e.Worker), ((int)a["policyVersion"]!, (string)a["worker"]!));
        }
    }

    private static async Task AssertFailsAsync(int exitCode, string message, string[] arguments)
    {
        var result = await ClientProcess.RunAsync(arguments);
        Assert.True(result.ExitCode == exitCode, result.ToString());
        Assert.Equal("", result.Stdout);
        Assert.Contains(message, Assert.Single(result.StderrLines));
    }

    /// <summary>Runs the client until its result satisfies <paramref name="done"/> (the run may not have started yet).</summary>
    internal static async Task<ClientResult> PollAsync(Func<Task<ClientResult>> run, Func<ClientResult, bool> done, SiloProcess? silo = null)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            var result = await run();
            if (done(result)) return result;
            if (DateTime.UtcNow > deadline || silo is { HasExited: true })
                throw new TimeoutException($"Not seen within {Timeout}: {result}\n{silo?.Tail()}");
            await Task.Delay(100);
        }
    }

    /// <summary>The store file's bytes and time, every blob's size and time, and the row counts.</summary>
    private static async Task<string> SnapshotAsync(string dir, IClusterStore store)
    {
        var snapshot = new StringBuilder();
        var db = Path.Combine(dir, "cluster.db");
        snapshot.AppendLine($"cluster.db {Convert.ToHexString(SHA256.HashData(await File.ReadAllBytesAsync(db)))} {File.GetLastWriteTimeUtc(db):O}");
        foreach (var file in Directory.EnumerateFiles(Path.Combine(dir, "blobs"), "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            snapshot.AppendLine($"{file} {new FileInfo(file).Length} {File.GetLastWriteTimeUtc(file):O}");
        snapshot.AppendLine(await RowCountsAsync(store, "demo"));
        return snapshot.ToString();
    }

    internal static Task<string> RowCountsAsync(IClusterStore store, string runId) =>
        store.TransactAsync(async s =>
        {
            var steps = await s.ListStepsAsync(runId, int.MaxValue);
            var prompts = 0;
            foreach (var step in steps) prompts += (await s.ListPromptsAsync(runId, step.Step)).Count;
            return $"runs {(await s.ListRunsAsync()).Count}, steps {steps.Count}, prompts {prompts}, work {(await s.ListWorkAsync(null, false)).Count}, " +
                   $"members {(await s.ListMembersAsync()).Count}, metrics {(await s.ListMetricsAsync(runId, 0)).Count}, run {await s.GetRunAsync(runId)}";
        }, CancellationToken.None);
}
