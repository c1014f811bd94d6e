using System.Text;
using Dapo.Grains.Blobs;
using Dapo.Grains.Hosting;
using Dapo.Testing;
using Xunit.Abstractions;

namespace Dapo.EndToEnd.Tests;

/// <summary>
/// A cluster whose every silo is its own OS process, on Azure Storage (Azurite: membership, reminders and grain state
/// in tables, blobs in a container) and on Redis (Orleans' Redis providers; blobs in a directory the silos share):
/// elastic scale-out and scale-in, the faults a cluster lives through, and the client reading it live and as history.
/// After each, the step ledger's invariants must hold (<see cref="Dapo.Grains.Grains.LedgerAudit"/> through an Orleans
/// client of the cluster).
/// </summary>
public abstract class ClusterTests(ITestOutputHelper output)
{
    protected static readonly TimeSpan Long = TimeSpan.FromMinutes(3);

    // Enough work per step (8 prompts x G 8, refills) that a step lasts a while on one core per silo, and steps enough
    // that a silo killed (or storage stopped) after step 3 or 4 still has a dozen to come in on a loaded machine.
    private static readonly string Recipe = TestRecipes.Tiny(steps: 16, group: 8, batch: 8, evaluateEvery: 0);
    // Silos joining mid-run need steps left when they are up: a step takes about a second, and starting a silo took
    // up to a minute on the busy 2-core machine during the full suite.
    private const int LongSteps = 150;
    private static readonly string LongRecipe = TestRecipes.Tiny(steps: LongSteps, group: 8, batch: 8, evaluateEvery: 0);

    /// <summary>A run on the collection's shared storage, with a cluster id (and blob container) of its own.</summary>
    private protected abstract ClusterRun NewRun(IReadOnlyDictionary<string, string>? environment = null);

    /// <summary>Storage of the test's own, to stop and start: the shared one must stay up for the other tests.</summary>
    private protected abstract Task<(IRestartableServer Server, TestStorage Storage)> StartOwnStorageAsync();


    private protected static async Task AssertSoundAsync(ClusterRun run)
    {
        var problems = await run.AuditAsync();
        Assert.True(problems.Count == 0, string.Join("\n", problems) + "\n" + run.SiloOutput());
    }

    [Fact]
    public async Task One_learner_and_two_rollout_silos_complete_the_run_while_rollout_silos_come_and_go()
    {
        await using var run = NewRun();
        await run.JoinAsync("learner-1", "learner");
        // rollout-1 leases a whole step's draw at once, so that it holds groups most of a step, to give back when stopped.
        var first = run.Join("rollout-1", "rollout", new Dictionary<string, string> { ["DAPO_Silo__RolloutBatch"] = "8" });
        run.Join("rollout-2", "rollout");
        await run.StartRunAsync(LongRecipe);
        var started = await run.WaitForStepAsync(3, Long);

        // Scale out: a third rollout silo receives work within seconds.
        run.Join("rollout-3", "rollout");
        var waited = await run.WaitForWorkByAsync("rollout-3", TimeSpan.FromSeconds(60));
        output.WriteLine($"rollout-3 submitted its first group {waited.TotalSeconds:F1}s after it was started");

        // Scale in: a rollout silo stopped (SIGTERM) while it holds leased groups gives them back and leaves.
        // Frozen while it holds them, so that the stop reaches it before it could finish the batch. That is still a
        // race: on a busy machine the batch can end between the check and the freeze, or before the stop reaches
        // the grain after it thaws. Then the silo leaves with nothing to give back, and a new one is tried (3 at most).
        string? returned = null;
        for (var attempt = 1; attempt <= 3 && returned is null; attempt++)
        {
            var name = attempt == 1 ? "rollout-1" : $"rollout-1-{attempt}";
            var victim = attempt == 1 ? first : run.Join(name, "rollout", new Dictionary<string, string> { ["DAPO_Silo__RolloutBatch"] = "8" });
            await run.WaitUntilHoldingAsync(Long, name);
            victim.Pause();
            victim.Terminate();
            victim.Resume();
            Assert.Equal(0, await victim.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            returned = victim.Lines.FirstOrDefault(l => l.Contains("returned", StringComparison.Ordinal) && l.Contains("leased group", StringComparison.Ordinal));
            if (returned is null) output.WriteLine($"attempt {attempt}: {name} finished its batch before the stop reached it:\n{victim.Tail(5)}");
        }
        Assert.True(returned is not null, $"no stopped rollout silo said it returned its leases in 3 attempts:\n{run.SiloOutput()}");
        output.WriteLine(returned);
        var done = await run.WaitForCompletionAsync(Long);
        Assert.Equal(LongSteps + 1, done.Step);
        // Silos leaving gracefully leave the learner alone: it was never restarted from a checkpoint (with Orleans'
        // default grain directory it was, whenever the leaving silo held its directory entry).
        Assert.True(done.Epoch == started.Epoch, $"the learner restarted: epoch {started.Epoch} became {done.Epoch}\n{run.SiloOutput()}");
        await AssertSoundAsync(run);
    }

    [Fact]
    public async Task The_client_reads_a_live_cluster_through_its_grains_and_the_finished_runs_history_once_every_silo_has_stopped()
    {
        await using var run = NewRun();
        var learner = await run.JoinAsync("learner-1", "learner");
        var rollout = run.Join("rollout-1", "rollout");
        await run.StartRunAsync(TestRecipes.Tiny(steps: 4));
        await run.WaitForStepAsync(2, Long);
        var at = run.ClusterArguments;

        // Live: the grains answer, and the silos are those of the cluster.
        var live = (await ClientProcess.RunAsync(["status", "--json", .. at])).Json;
        Assert.Equal("live", (string?)live["mode"]);
        var grains = await run.GrainsAsync();
        var info = (await grains.GetGrain<Dapo.Grains.ILearnerGrain>(run.RunId).GetAsync())!;
        Assert.True((int)live["runs"]![0]!["step"]! <= info.Step, live.ToJsonString());
        Assert.Equal(2, live["silos"]!.AsArray().Count(s => (bool)s!["alive"]!));

        var done = await run.WaitForCompletionAsync(Long);
        var liveSteps = (await ClientProcess.RunAsync(["steps", "--json", .. at])).Json;
        var liveDone = (await ClientProcess.RunAsync(["status", "--json", .. at])).Json;
        foreach (var silo in new[] { learner, rollout })
        {
            silo.Terminate();
            Assert.Equal(0, await silo.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        }

        // History: no silo is listed active, so the client reads the grain state table at once (no gateway timeout),
        // and it says so; the ledgers are those the grains answered live.
        foreach (var command in new[] { ["status"], ["steps"], ["metrics"], ["checkpoints"], new[] { "grain", "learner" } })
        {
            var started = DateTime.UtcNow;
            var result = await ClientProcess.RunAsync([.. command, .. at]);
            Assert.True(result.ExitCode == 0, result.ToString());
            Assert.True(result.Stdout.Contains("history, no silo running"), result.ToString());
            Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(8), $"{string.Join(' ', command)} took {DateTime.UtcNow - started}");
        }
        var history = (await ClientProcess.RunAsync(["status", "--json", .. at])).Json;
        Assert.Equal("history", (string?)history["mode"]);
        Assert.Equal("completed", (string?)history["runs"]![0]!["status"]);
        foreach (var field in new[] { "status", "step", "completedSteps", "totalSteps", "policyVersion", "latestCheckpoint" })
            Assert.Equal(liveDone["runs"]![0]![field]!.ToJsonString(), history["runs"]![0]![field]!.ToJsonString());
        Assert.Equal(done.PolicyVersion, (int)history["runs"]![0]!["policyVersion"]!);
        var historySteps = (await ClientProcess.RunAsync(["steps", "--json", .. at])).Json;
        Assert.Equal(liveSteps["steps"]!.ToJsonString(), historySteps["steps"]!.ToJsonString());
        var checkpoints = (await ClientProcess.RunAsync(["checkpoints", "--json", .. at])).Json;
        Assert.Contains(checkpoints["checkpoints"]!.AsArray(), c => (bool)c!["latest"]! && (int)c["step"]! == done.LatestCheckpoint);
    }

    [Fact]
    public async Task Killing_a_rollout_silo_mid_step_loses_nothing()
    {
        await using var run = NewRun();
        await run.JoinAsync("learner-1", "learner");
        // rollout-1 leases a whole step's draw at once, so that it holds groups most of a step.
        var rollouts = new Dictionary<string, SiloProcess>
        {
            ["rollout-1"] = run.Join("rollout-1", "rollout", new Dictionary<string, string> { ["DAPO_Silo__RolloutBatch"] = "8" }),
            ["rollout-2"] = run.Join("rollout-2", "rollout"),
        };
        await run.StartRunAsync(Recipe);
        await run.WaitForStepAsync(3, Long);
        // Kill one while it holds leased groups, so they must come back through the visibility timeout. Either will
        // do: on a fast machine the 7 steps left last a few seconds, and one silo may get little of the work.
        var (victim, held) = await run.WaitUntilHoldingAsync(Long, [.. rollouts.Keys]);
        rollouts[victim].Kill();
        output.WriteLine($"killed {victim} while it held {held.InHand} leased group(s) of policy version {held.PolicyVersion}");
        await run.WaitForCompletionAsync(Long);
        await AssertSoundAsync(run);
    }

    [Fact]
    public async Task Killing_the_learners_silo_hands_the_run_to_a_standby_learner_silo_that_resumes_from_the_latest_checkpoint()
    {
        // Short membership timings: the dead silo is declared dead within seconds, and the learner's reminder
        // (every 5 s) starts it again on the standby.
        await using var run = NewRun(new Dictionary<string, string>
        {
            ["DAPO_Silo__ProbeTimeout"] = "00:00:01", ["DAPO_Silo__MissedProbesLimit"] = "2", ["DAPO_Silo__VotesForDeath"] = "1",
        });
        var silos = new Dictionary<string, SiloProcess>
        {
            ["learner-1"] = await run.JoinAsync("learner-1", "learner"),
            ["learner-2"] = await run.JoinAsync("learner-2", "learner"),
        };
        run.Join("rollout-1", "rollout");
        await run.StartRunAsync(Recipe);
        var before = await run.WaitForStepAsync(4, Long);
        var victim = silos.Keys.SingleOrDefault(name => run.Names(before.Silo, name))
                     ?? throw new InvalidOperationException($"The learner runs on {before.Silo}, neither learner silo.\n{run.SiloOutput()}");
        var successor = silos.Keys.Single(name => name != victim);
        silos[victim].Kill();
        output.WriteLine($"killed {victim} (the learner's silo) at step {before.Step}");
        var resumed = await silos[successor].WaitForLineAsync("resumed from the checkpoint of step", Long);
        output.WriteLine(resumed);
        var done = await run.WaitForCompletionAsync(Long);
        await AssertSoundAsync(run);
        Assert.True(run.Names(done.Silo, successor), $"the run completed on {done.Silo}, not on {successor}");
        Assert.True(done.Epoch > before.Epoch, $"epoch {done.Epoch} after the takeover, {before.Epoch} before");
    }

    [Fact]
    public async Task Stopping_and_restarting_the_storage_mid_step_does_not_stop_the_run()
    {
        var (storage, kind) = await StartOwnStorageAsync();
        await using var _ = storage;
        await using var run = ClusterRun.Create(kind, "restarted");
        await run.JoinAsync("learner-1", "learner");
        run.Join("rollout-1", "rollout");
        await run.StartRunAsync(Recipe);
        await run.WaitForStepAsync(3, Long);
        var during = await run.WaitForAsync(r => r.Phase == "sampling", Long, "sampling");
        await storage.StopAsync();
        // Long enough for grain state writes, blob writes and membership updates of both silos to fail.
        await Task.Delay(TimeSpan.FromSeconds(6));
        await storage.StartAsync();
        output.WriteLine($"storage was stopped for 6 s during step {during.Step}");
        await run.WaitForCompletionAsync(Long);
        await AssertSoundAsync(run);
    }
}

[Collection(ClusterCollection.Name)]
public sealed class AzuriteClusterTests(AzuriteFixture azurite, ITestOutputHelper output) : ClusterTests(output)
{
    private protected override ClusterRun NewRun(IReadOnlyDictionary<string, string>? environment = null) =>
        ClusterRun.Create(TestStorage.Azure(azurite.ConnectionString), azurite.NewContainerName("run"), environment);

    private protected override async Task<(IRestartableServer Server, TestStorage Storage)> StartOwnStorageAsync()
    {
        var storage = await AzuriteProcess.StartNewAsync(tables: true);
        return (storage, TestStorage.Azure(storage.ConnectionString));
    }

    [Fact]
    public async Task Bad_storage_and_options_are_rejected_in_one_line_before_any_work_and_change_nothing()
    {
        await using var run = NewRun();
        var quick = new Dictionary<string, string> { ["DAPO_Silo__StartupTimeout"] = "00:00:03" };
        static void AssertOneLineError(int expectedCode, (int Code, string Output) result, string expected)
        {
            Assert.True(result.Code == expectedCode, $"exit {result.Code}, expected {expectedCode}:\n{result.Output}");
            Assert.False(result.Output.Contains("   at ", StringComparison.Ordinal), $"a stack trace:\n{result.Output}");
            var errors = result.Output.Split('\n').Where(l => l.StartsWith("dapo-silo:", StringComparison.Ordinal) ||
                                                                l.StartsWith("Invalid configuration:", StringComparison.Ordinal)).ToList();
            Assert.True(errors.Count == 1 && errors[0].Contains(expected, StringComparison.Ordinal),
                $"expected one error line with '{expected}':\n{result.Output}");
            Assert.DoesNotContain(AzuriteProcess.AccountKey[..20], result.Output);
        }

        // Storage nothing listens on.
        var nowhere = $"DefaultEndpointsProtocol=http;AccountName={AzuriteProcess.AccountName};AccountKey={AzuriteProcess.AccountKey};" +
                      $"BlobEndpoint=http://127.0.0.1:{FreePort.Next()}/{AzuriteProcess.AccountName};TableEndpoint=http://127.0.0.1:{FreePort.Next()}/{AzuriteProcess.AccountName}";
        AssertOneLineError(1, await run.RunCommandAsync(["join", "--roles", "rollout", "--storage", nowhere, "--cluster-id", run.ClusterId], quick),
            "dapo-silo: the silo could not start");
        // A connection string that is not one.
        AssertOneLineError(2, await run.RunCommandAsync(["join", "--roles", "rollout", "--storage", "Account=dapo;no equals sign here"], quick),
            "ConnectionString");
        // Options that cannot work.
        AssertOneLineError(2, await run.RunCommandAsync(["join", "--roles", "rollout", .. run.ClusterArguments],
            new Dictionary<string, string> { ["DAPO_Silo__RolloutBatch"] = "0" }), "Silo:RolloutBatch is 0");
        AssertOneLineError(2, await run.RunCommandAsync(["join", "--roles", "learner,bogus", .. run.ClusterArguments]), "Silo:Roles has unknown role 'bogus'");

        // start-run of an existing run with another spec: refused, and the run keeps its spec.
        await run.JoinAsync("silo-1", "learner,rollout");
        await run.StartRunAsync(TestRecipes.Tiny(3));
        var blobs = new AzureBlobStore(new Azure.Storage.Blobs.BlobServiceClient(run.ConnectionString).GetBlobContainerClient(run.Container));
        var spec = await blobs.GetAsync(RunResources.SpecBlob(run.RunId), CancellationToken.None);
        var other = await run.RunCommandAsync(["start-run", "--run", run.RunId, "--override", TestRecipes.Tiny(3, evaluateEvery: 3), .. run.ClusterArguments]);
        Assert.Equal(2, other.Code);
        Assert.Contains("nothing was changed", other.Output);
        Assert.Single(other.Output.Split('\n'), l => l.Trim().Length > 0);
        Assert.Equal(spec, await blobs.GetAsync(RunResources.SpecBlob(run.RunId), CancellationToken.None));
        Assert.Contains("\"Steps\":3", Encoding.UTF8.GetString(spec!));
        var done = await run.WaitForCompletionAsync(Long);
        Assert.Contains("\"Steps\":3", done.SpecJson);

        // ... but with more steps, and nothing else changed, the completed run trains on to them.
        var longer = await run.RunCommandAsync(["start-run", "--run", run.RunId, "--override", TestRecipes.Tiny(5), .. run.ClusterArguments]);
        Assert.True(longer.Code == 0, longer.Output);
        Assert.Contains("is running at step 4", longer.Output);
        done = await run.WaitForCompletionAsync(Long);
        Assert.Equal(6, done.Step);
        Assert.Contains("\"Steps\":5", Encoding.UTF8.GetString((await blobs.GetAsync(RunResources.SpecBlob(run.RunId), CancellationToken.None))!));
        await AssertSoundAsync(run);
    }
}

[Collection(ClusterCollection.Name)]
public sealed class RedisClusterTests(RedisFixture redis, ITestOutputHelper output) : ClusterTests(output)
{
    private protected override ClusterRun NewRun(IReadOnlyDictionary<string, string>? environment = null) =>
        ClusterRun.Create(TestStorage.Redis(redis.ConnectionString), "run", environment);

    private protected override async Task<(IRestartableServer Server, TestStorage Storage)> StartOwnStorageAsync()
    {
        var storage = await RedisProcess.StartNewAsync();
        return (storage, TestStorage.Redis(storage.ConnectionString));
    }

    [Fact]
    public async Task A_Redis_that_does_not_answer_or_a_cluster_without_blob_storage_is_refused_in_one_line()
    {
        await using var run = NewRun();
        var quick = new Dictionary<string, string> { ["DAPO_Silo__StartupTimeout"] = "00:00:03" };
        var nowhere = await run.RunCommandAsync(["join", "--roles", "rollout", "--redis", $"127.0.0.1:{FreePort.Next()}", "--blob-dir", run.BlobDirectory,
            "--cluster-id", run.ClusterId], quick);
        Assert.True(nowhere.Code == 1, nowhere.Output);
        Assert.Single(nowhere.Output.Split('\n'), l => l.StartsWith("dapo-silo: the silo could not start", StringComparison.Ordinal));
        Assert.DoesNotContain("   at ", nowhere.Output);

        var noBlobs = await run.RunCommandAsync(["join", "--roles", "rollout", "--redis", redis.ConnectionString, "--cluster-id", run.ClusterId]);
        Assert.True(noBlobs.Code == 2, noBlobs.Output);
        Assert.Contains("Silo:Storage is Redis: blobs", noBlobs.Output);
        var malformed = await run.RunCommandAsync(["join", "--roles", "rollout", "--redis", "127.0.0.1:6379,bogus=1", "--blob-dir", run.BlobDirectory]);
        Assert.True(malformed.Code == 2, malformed.Output);
        Assert.Contains("Redis:ConnectionString", malformed.Output);

        var client = await ClientProcess.RunAsync(["status", "--redis", $"127.0.0.1:{FreePort.Next()}", "--blob-dir", run.BlobDirectory],
            new Dictionary<string, string> { ["DAPO_Client__ConnectTimeout"] = "00:00:03" });
        Assert.True(client.ExitCode == 4, client.ToString());
        Assert.StartsWith("dapo-client: cannot reach cluster 'dapo': Redis 127.0.0.1:", Assert.Single(client.StderrLines));
    }
}
