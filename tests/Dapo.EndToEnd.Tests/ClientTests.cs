using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Dapo.Grains;
using Dapo.Grains.Blobs;
using Dapo.Grains.Checkpoints;
using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Grains.Storage;
using Dapo.Testing;
using Orleans;
using Orleans.Runtime;

namespace Dapo.EndToEnd.Tests;

/// <summary>
/// `dapo-client` as a user runs it, on an embedded run of `dapo-silo train`: live through the running silo's
/// gateway, then on the finished run's history with no silo. Its --json output must agree with the grain state the
/// silo stored (read here from the grain state files directly), and nothing it does may change the run directory.
/// </summary>
public sealed class ClientTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);
    private const int Steps = 8;
    private const int LiveSteps = 1000;
    private readonly string _root = Directory.CreateTempSubdirectory("dapo-client-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static Task<ClientResult> Client(params string[] arguments) => ClientProcess.RunAsync(arguments);

    [Fact]
    public async Task The_client_reads_a_live_embedded_run_through_its_silo_and_then_its_history_once_the_silo_stops()
    {
        var dir = Path.Combine(_root, "live");
        string[] at = ["--run-dir", dir];
        var grains = new GrainFiles(Path.Combine(dir, "grains"));

        // Before the run exists: one clear line, a non-zero exit code.
        var early = await Client(["status", .. at, "--json"]);
        Assert.Equal(3, early.ExitCode);
        Assert.Equal("", early.Stdout);
        Assert.Contains($"there is no run directory {dir}", Assert.Single(early.StderrLines));
        // A file where the run directory should be: a usage error, naming it.
        var file = Path.Combine(_root, "a-file");
        File.WriteAllText(file, "");
        var notADirectory = await Client(["status", "--run-dir", file]);
        Assert.Equal(2, notADirectory.ExitCode);
        Assert.Equal($"dapo-client: --run-dir: {file} is a file, not the directory of a `./dapo.sh train` run", Assert.Single(notADirectory.StderrLines));

        // Far more steps than the checks below take: the run is live throughout them, and stopped afterwards.
        await using var train = SiloProcess.Start(SiloProcess.SiloDll, ["train", .. at, "--override", TestRecipes.Tiny(LiveSteps, evaluateEvery: 0)]);
        // Live: the silo's gateway answers once it runs; wait until two steps are done, so there is a ledger to compare.
        var first = await PollAsync(() => Client(["status", .. at, "--json"]),
            r => r.ExitCode == 0 && (string)r.Json["mode"]! == "live" && r.Json["runs"]!.AsArray() is [{ } run] && (int)run["completedSteps"]! >= 2, train);
        var firstRun = first.Json["runs"]![0]!;
        Assert.Equal(("live", "running", LiveSteps), ((string)firstRun["runId"]!, (string)firstRun["status"]!, (int)firstRun["totalSteps"]!));
        Assert.Contains("live", (string)first.Json["source"]!);
        Assert.EndsWith("(read-only)", (string)first.Json["source"]!);
        // Follows the metrics from here until the silo stops: the client then reads the history, and ends. It runs
        // through all the checks below, so it gets the test's timeout, not one command's.
        var follow = ClientProcess.RunAsync(["metrics", .. at, "--follow", "--json"], timeout: Timeout);

        // The silo: one, active, running the learner and the rollout grains the client lists.
        var silo = Assert.Single((await Client(["silos", .. at, "--json"])).Json["silos"]!.AsArray())!;
        Assert.Equal(("active", true), ((string)silo["status"]!, (bool)silo["alive"]!));
        Assert.Equal(["live"], silo["learners"]!.AsArray().Select(l => (string)l!));
        var rollouts = (await Client(["grain", "rollout", .. at, "--json"])).Json["rollouts"]!.AsArray();
        Assert.NotEmpty(rollouts);
        Assert.All(rollouts, r => Assert.StartsWith((string)silo["address"]! + "/", (string)r!["key"]!));
        Assert.Equal(rollouts.Count, (int)silo["rolloutGrains"]!);
        var one = (await Client(["grain", "rollout", (string)rollouts[0]!["key"]!, .. at, "--json"])).Json["rollouts"]!.AsArray();
        Assert.Equal((string)rollouts[0]!["key"]!, (string)Assert.Single(one)!["key"]!);

        // Live answers about steps the learner finished agree with their stored state (a done step no longer changes).
        var liveSteps = (await Client(["steps", .. at, "--last", "100", "--json"])).Json;
        Assert.Equal("live", (string)liveSteps["mode"]!);
        var done = liveSteps["steps"]!.AsArray().Where(s => (string)s!["phase"]! == "done").ToList();
        Assert.Contains(done, s => (int)s!["step"]! == 1);
        foreach (var step in done) AssertStepEqual(await grains.StepAsync("live", (int)step!["step"]!), step!);
        await AssertPromptsAsync(grains, "live", ["prompts", .. at, "--step", "1", "--json"], 1);
        var accepted = (await Client(["prompts", .. at, "--step", "1", "--status", "accepted", "--json"])).Json["prompts"]!.AsArray();
        var key = (string)accepted[0]!["key"]!;
        await AssertPromptGrainAsync(grains, key, ["grain", "prompt", key, .. at, "--json"]);
        var learner = (await Client(["grain", "learner", .. at, "--json"])).Json;
        Assert.Equal(("live", "running"), ((string)learner["mode"]!, (string)learner["runStatus"]!));
        Assert.Equal(1L, (long)learner["state"]!["epoch"]!);  // a new run's learner, started once
        Assert.NotEqual("", (string)learner["state"]!["silo"]!);
        var frames = await Client(["watch", .. at, "--json", "--frames", "2", "--interval", "0.1"]);
        Assert.Equal(["live", "live"], frames.JsonLines.Select(f => (string)f["run"]!["runId"]!));
        Assert.All(frames.JsonLines, f => Assert.Equal(("live", true), ((string)f["mode"]!, (int)f["rolloutGrains"]! > 0)));
        Assert.True(!train.HasExited, "the run ended before the live checks did: give it more steps");

        // A graceful stop: the silo leaves, the run stays "running" in its learner's state, to be resumed.
        train.Terminate();
        await train.WaitForExitAsync(Timeout);
        var followed = await follow;
        Assert.True(followed.ExitCode == 0, followed.ToString());
        var stopped = await grains.LearnerAsync("live");
        Assert.Equal(RunStatus.Running, stopped.Status);
        Assert.Equal(Enumerable.Range(1, stopped.Step - 1), followed.JsonLines.Select(m => (int)m["step"]!));

        var status = (await Client(["status", .. at, "--json"])).Json;
        Assert.Equal("history", (string)status["mode"]!);
        var run = status["runs"]![0]!;
        Assert.Equal(("running", stopped.Step, stopped.Step - 1, "stopped"),
            ((string)run["status"]!, (int)run["step"]!, (int)run["completedSteps"]!, (string)run["learner"]!["phase"]!));
        var steps = (await Client(["steps", .. at, "--last", "1000", "--json"])).Json["steps"]!.AsArray();
        // The step it stopped in, unless it stopped between finishing a step and opening the next.
        Assert.InRange(steps.Count, stopped.Step - 1, stopped.Step);
        Assert.Equal(Enumerable.Range(1, steps.Count), steps.Select(s => (int)s!["step"]!));
        foreach (var step in steps) AssertStepEqual(await grains.StepAsync("live", (int)step!["step"]!), step!);
    }

    [Fact]
    public async Task The_client_reads_a_finished_embedded_run_from_its_history_as_the_grains_stored_it_and_writes_nothing()
    {
        var dir = Path.Combine(_root, "demo");
        string[] at = ["--run-dir", dir];
        var grains = new GrainFiles(Path.Combine(dir, "grains"));
        await using (var train = SiloProcess.Start(SiloProcess.SiloDll, ["train", .. at, "--override", TestRecipes.Tiny(Steps, evaluateEvery: 0)]))
            Assert.Equal(0, await train.WaitForExitAsync(Timeout));

        // History: no silo runs; what the client shows is the learner's stored state.
        var status = (await Client(["status", .. at, "--json"])).Json;
        Assert.Equal("history", (string)status["mode"]!);
        Assert.Contains("history", (string)status["source"]!);
        Assert.Empty(status["silos"]!.AsArray());
        var run = status["runs"]![0]!;
        var learner = await grains.LearnerAsync("demo");
        Assert.Equal((RunStatus.Completed, Steps + 1, Steps, (int?)Steps), (learner.Status, learner.Step, learner.PolicyVersion, learner.LatestCheckpoint));
        Assert.Equal(("demo", "completed", Steps, Steps, Steps), ((string)run["runId"]!, (string)run["status"]!, (int)run["completedSteps"]!,
            (int)run["step"]!, (int)run["policyVersion"]!));
        Assert.Equal((Steps, "done", learner.Epoch), ((int)run["latestCheckpoint"]!, (string)run["learner"]!["phase"]!, (long)run["learner"]!["epoch"]!));
        var historyLearner = (await Client(["grain", "learner", .. at, "--json"])).Json;
        Assert.Equal(("history", "done", Steps), ((string)historyLearner["mode"]!, (string)historyLearner["state"]!["phase"]!,
            (int)historyLearner["latestCheckpoint"]!));
        Assert.Equal(learner.StartAccuracy, (double?)historyLearner["state"]!["startAccuracy"]);

        // The step ledger: every step as its step grain stored it, each trained on its target of accepted groups.
        var steps = (await Client(["steps", .. at, "--last", "100", "--json"])).Json["steps"]!.AsArray();
        Assert.Equal(Enumerable.Range(1, Steps), steps.Select(s => (int)s!["step"]!));
        foreach (var step in steps) AssertStepEqual(await grains.StepAsync("demo", (int)step!["step"]!), step!);
        Assert.All(steps, s => Assert.Equal(("done", (int)s!["target"]!), ((string)s["phase"]!, (int)s["accepted"]!)));
        var stepGrain = (await Client(["grain", "step", "demo/2", .. at, "--json"])).Json;
        AssertStepEqual(await grains.StepAsync("demo", 2), stepGrain["ledger"]!);

        // Prompts and a prompt grain: the statuses, slots and decisions the grains stored.
        const int promptStep = 2;
        var prompts = await AssertPromptsAsync(grains, "demo", ["prompts", .. at, "--step", $"{promptStep}", "--json"], promptStep);
        var target = (int)steps[promptStep - 1]!["target"]!;
        Assert.Equal(target, (int)prompts["counts"]!["accepted"]!);
        var accepted = (await Client(["prompts", .. at, "--step", $"{promptStep}", "--status", "accepted", "--json"])).Json["prompts"]!.AsArray();
        Assert.Equal(target, accepted.Count);
        Assert.All(accepted, p => Assert.Equal("accepted", (string)p!["status"]!));
        var key = (string)accepted[0]!["key"]!;
        var grain = await AssertPromptGrainAsync(grains, key, ["grain", "prompt", key, .. at, "--json"]);
        Assert.True((bool)grain["trainedOn"]!);
        Assert.Contains(grain["history"]!.AsArray(), h => (string)h!["event"]! == "judged");
        Assert.False(string.IsNullOrEmpty((string?)grain["problem"]), "the prompt's text from the run's dataset");

        // Checkpoints: what the checkpoint store lists, the latest the learner's.
        var checkpoints = (await Client(["checkpoints", .. at, "--json"])).Json["checkpoints"]!.AsArray();
        var listed = await new CheckpointStore(new LocalDirectoryBlobStore(Path.Combine(dir, "blobs")), "demo").ListAsync(CancellationToken.None);
        Assert.Equal(listed.Select(c => (c.Step, c.Size, c.Complete)),
            checkpoints.Select(c => ((int)c!["step"]!, (long)c["sizeBytes"]!, (bool)c["complete"]!)));
        var latest = checkpoints.Single(c => (bool)c!["latest"]!)!;
        Assert.Equal((Steps, true, "ok"), ((int)latest["step"]!, (bool)latest["complete"]!, (string)latest["checksum"]!));

        // Metrics: a row per step, the learner's rows; --follow on an ended run prints them and ends.
        var metrics = (await Client(["metrics", .. at, "--json"])).Json["metrics"]!.AsArray();
        Assert.Equal(Enumerable.Range(1, Steps), metrics.Select(m => (int)m!["step"]!));
        var stored = await File.ReadAllLinesAsync(Path.Combine(dir, "metrics.jsonl"));
        Assert.Equal(stored.Select(l => JsonNode.Parse(l)!.ToJsonString()), metrics.Select(m => m!.ToJsonString()));
        var followed = await Client(["metrics", .. at, "--follow", "--json"]);
        Assert.Equal(Enumerable.Range(1, Steps), followed.JsonLines.Select(m => (int)m["step"]!));
        var frames = await Client(["watch", .. at, "--json", "--frames", "2", "--interval", "0.1"]);
        Assert.Equal(2, frames.JsonLines.Count);
        Assert.All(frames.JsonLines, f => Assert.Equal(("history", "completed"), ((string)f["mode"]!, (string)f["run"]!["status"]!)));

        // Clear errors: one line on stderr, a non-zero exit code, nothing on stdout.
        await AssertFailsAsync(2, "malformed prompt key 'demo/x'", ["grain", "prompt", "demo/x", .. at]);
        await AssertFailsAsync(3, "run 'nope' does not exist", ["steps", "--run", "nope", .. at, "--json"]);
        await AssertFailsAsync(3, "prompt grain demo/2/999999 does not exist", ["grain", "prompt", "demo/2/999999", .. at]);
        await AssertFailsAsync(3, "run 'demo' has no step 99", ["grain", "step", "demo/99", .. at]);
        await AssertFailsAsync(3, "rollout grains keep no state", ["grain", "rollout", .. at]);

        // Read-only: every command, as tables and as JSON, leaves every file of the run directory as it was.
        var before = Snapshot(dir);
        foreach (var command in EveryCommand(key))
        {
            foreach (var json in new[] { false, true })
            {
                var result = await Client([.. command, .. at, .. json ? new[] { "--json" } : []]);
                Assert.True(result.ExitCode == 0, result.ToString());
                // Output to a pipe is plain text: no colour, no bold.
                Assert.False(result.Stdout.Contains('\u001b') || result.Stderr.Contains('\u001b'), $"escape codes in {result}");
            }
        }
        Assert.Equal(before, Snapshot(dir));
    }

    [Fact]
    public async Task An_unreachable_cluster_or_a_missing_run_directory_is_one_clear_line()
    {
        const string key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
        var connection = $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};" +
                         $"BlobEndpoint=http://127.0.0.1:{FreePort.Next()}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{FreePort.Next()}/devstoreaccount1";
        var started = DateTime.UtcNow;
        var refused = await ClientProcess.RunAsync(["status", "--storage", connection, "--json"],
            new Dictionary<string, string> { ["DAPO_Client__ConnectTimeout"] = "00:00:05" });
        Assert.True(refused.ExitCode == 4, refused.ToString());
        Assert.Equal("", refused.Stdout);
        var line = Assert.Single(refused.StderrLines);
        Assert.StartsWith("dapo-client: cannot reach cluster 'dapo'", line);
        Assert.DoesNotContain(key, line);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(40), $"took {DateTime.UtcNow - started}");

        // An embedded run whose silo.json names a gateway that does not answer (its process is alive: this one).
        var stale = Path.Combine(_root, "stale");
        Directory.CreateDirectory(stale);
        new EmbeddedSiloFile("dapo-embedded", FreePort.Next(), Environment.ProcessId).Write(stale);
        var gone = await Client("status", "--run-dir", stale);
        Assert.True(gone.ExitCode == 4, gone.ToString());
        Assert.StartsWith($"dapo-client: cannot reach the silo of {stale}", Assert.Single(gone.StderrLines));

        var notRun = await Client("steps", "--run-dir", _root);
        Assert.Equal(3, notRun.ExitCode);
        Assert.Contains("holds no grains/ and no running silo", Assert.Single(notRun.StderrLines));

        var both = await Client("status", "--run-dir", _root, "--storage", connection);
        Assert.Equal(2, both.ExitCode);
        Assert.Contains("not both", Assert.Single(both.StderrLines));
    }

    internal static IEnumerable<string[]> EveryCommand(string promptKey) =>
    [
        ["status"], ["silos"], ["steps"], ["prompts", "--step", "1"], ["grain", "prompt", promptKey], ["grain", "step", "1"], ["grain", "learner"],
        ["metrics"], ["metrics", "--follow"], ["checkpoints"], ["watch", "--frames", "1"],
    ];

    /// <summary>`prompts --json` lists the step grain's prompts with their prompt grains' slot counts; returns the view.</summary>
    private static async Task<JsonNode> AssertPromptsAsync(GrainFiles grains, string run, string[] arguments, int step)
    {
        var view = (await Client(arguments)).Json;
        var entries = (await grains.StepStateAsync(run, step)).Prompts;
        var expected = new List<(string, string, int)>();
        foreach (var p in entries)
            expected.Add((GrainKeys.Prompt(run, p.Step, p.PromptId), p.Status.ToString().ToLowerInvariant(),
                (await grains.PromptOrNullAsync(run, p.Step, p.PromptId))?.Slots.Count ?? 0));
        Assert.Equal(expected, view["prompts"]!.AsArray().Select(p => ((string)p!["key"]!, (string)p["status"]!, (int)p["filled"]!)));
        Assert.All(view["prompts"]!.AsArray().Where(p => (string)p!["status"]! is "accepted" or "filtered"),
            p => Assert.Equal((int)p!["groupSize"]!, (int)p["filled"]!));
        return view;
    }

    /// <summary>`grain prompt --json` is the prompt grain's stored group: status, reason, every slot; returns the view.</summary>
    private static async Task<JsonNode> AssertPromptGrainAsync(GrainFiles grains, string key, string[] arguments)
    {
        var grain = (await Client(arguments)).Json;
        var (run, step, id) = GrainKeys.ParsePrompt(key);
        var group = await grains.PromptAsync(run, step, id);
        Assert.Equal((key, group.Status.ToString().ToLowerInvariant(), group.Reason), ((string)grain["key"]!, (string)grain["status"]!, (string)grain["reason"]!));
        AssertSlotsEqual(group, grain);
        return grain;
    }

    /// <summary>A step of `steps --json` is the step grain's ledger, field for field.</summary>
    private static void AssertStepEqual(StepLedger e, JsonNode a)
    {
        Assert.Equal((e.Step, e.Phase.ToString().ToLowerInvariant(), e.PolicyVersion, e.Target, e.Accepted, e.Filtered, e.Abandoned),
            ((int)a["step"]!, (string)a["phase"]!, (int)a["policyVersion"]!, (int)a["target"]!, (int)a["accepted"]!, (int)a["filtered"]!,
                (int)a["abandoned"]!));
        Assert.Equal((e.InFlight, e.Draws, e.GenerationRounds, e.SurplusCarried, e.StopReason, e.Opening, e.OpenedAt, e.ClosedAt),
            ((int)a["inFlight"]!, (int)a["draws"]!, (int)a["generationRounds"]!, (int)a["surplusCarried"]!, (string?)a["stopReason"],
                (int)a["opening"]!, (long)a["openedAt"]!, (long?)a["closedAt"]));
    }

    /// <summary>The slots in `grain prompt --json` are the prompt grain's, field for field.</summary>
    private static void AssertSlotsEqual(PromptGroup expected, JsonNode grain)
    {
        var slots = grain["slots"]!.AsArray();
        Assert.Equal(expected.GroupSize, (int)grain["groupSize"]!);
        Assert.Equal(expected.Slots.Count, slots.Count);
        for (var i = 0; i < expected.Slots.Count; i++)
        {
            var (e, a) = (expected.Slots[i], slots[i]!);
            Assert.Equal(e.Slot, (int)a["slot"]!);
            Assert.Equal(e.Tokens, a["tokens"]!.AsArray().Select(t => (int)t!));
            Assert.Equal(e.LogProbs, a["logProbs"]!.AsArray().Select(t => (float)t!));
            Assert.Equal(e.Tokens.Length, (int)a["length"]!);
            Assert.Equal(e.Text, (string)a["text"]!);
            Assert.Equal((e.Score, e.OverlongPenalty, e.Reward), ((double)a["score"]!, (double)a["overlongPenalty"]!, (double)a["reward"]!));
            Assert.Equal((e.Correct, e.Truncated, e.Worker), ((bool)a["correct"]!, (bool)a["truncated"]!, (string)a["worker"]!));
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
            await Task.Delay(200);
        }
    }

    /// <summary>Every file of the run directory (grain state, blobs, metrics.jsonl) with its content's hash and its time, and every folder.</summary>
    private static string Snapshot(string dir)
    {
        var snapshot = new StringBuilder();
        foreach (var folder in Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            snapshot.AppendLine(folder);
        foreach (var file in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            snapshot.AppendLine($"{file} {Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)))} {File.GetLastWriteTimeUtc(file):O}");
        return snapshot.ToString();
    }

    /// <summary>The grain state an embedded silo stored, read as the silo reads it (its FileGrainStorage).</summary>
    private sealed class GrainFiles(string directory)
    {
        private readonly FileGrainStorage _storage = new(directory);

        public async Task<LearnerState> LearnerAsync(string run) =>
            await ReadAsync<LearnerState>("learner", "learner", run) ?? throw new InvalidOperationException($"No learner state for {run}.");

        public async Task<StepState> StepStateAsync(string run, int step) =>
            await ReadAsync<StepState>("step", "step", GrainKeys.Step(run, step)) ?? throw new InvalidOperationException($"No state for step {step}.");

        public async Task<StepLedger> StepAsync(string run, int step) => (await StepStateAsync(run, step)).Ledger!;

        public async Task<PromptGroup?> PromptOrNullAsync(string run, int step, long promptId) =>
            (await ReadAsync<PromptState>("prompt", "prompt", GrainKeys.Prompt(run, step, promptId)))?.Group;

        public async Task<PromptGroup> PromptAsync(string run, int step, long promptId) =>
            await PromptOrNullAsync(run, step, promptId) ?? throw new InvalidOperationException($"No group for prompt {step}/{promptId}.");

        private async Task<T?> ReadAsync<T>(string stateName, string grainType, string key) where T : class, new()
        {
            var state = new GrainState<T>();
            await _storage.ReadStateAsync(stateName, GrainId.Create(grainType, key), state);
            return state.RecordExists ? state.State : null;
        }
    }
}
