using Dapo.Grains.Blobs;
using Dapo.Testing;
using Xunit.Abstractions;

namespace Dapo.EndToEnd.Tests;

/// <summary>
/// A cluster on PostgreSQL and Azurite, every silo its own OS process: elastic scale-out and scale-in, and the
/// faults a cluster lives through. After each, the step ledger's invariants must hold.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterTests(PostgresFixture postgres, AzuriteFixture azurite, ITestOutputHelper output)
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(3);

    // Enough work per step (8 prompts x G 8, refills) that a step lasts a while on one core per silo.
    private static readonly string Recipe = TestRecipes.Tiny(steps: 10, group: 8, batch: 8, evaluateEvery: 0);

    private Task<ClusterRun> StartRunAsync(string? blobConnection = null) =>
        ClusterRun.StartAsync(postgres, blobConnection ?? azurite.ConnectionString, azurite.NewContainerName("run"), Recipe);

    private async Task AssertSoundAsync(ClusterRun run)
    {
        var problems = await run.AuditAsync();
        Assert.True(problems.Count == 0, string.Join("\n", problems) + "\n" + run.SiloOutput());
    }

    [Fact]
    public async Task One_learner_and_two_rollout_silos_complete_the_run_while_rollout_silos_come_and_go()
    {
        await using var run = await StartRunAsync();
        run.Join("learner-1", "learner");
        var first = run.Join("rollout-1", "rollout");
        run.Join("rollout-2", "rollout");
        await run.WaitForStepAsync(3, Long);

        // Scale out: a third rollout silo receives work within seconds.
        run.Join("rollout-3", "rollout");
        var waited = await run.WaitForWorkByAsync("rollout-3", TimeSpan.FromSeconds(30));
        output.WriteLine($"rollout-3 submitted its first group {waited.TotalSeconds:F1}s after it was started");

        // Scale in: a rollout silo stopped mid-run returns its work and leaves; the run does not stall.
        first.Terminate();
        Assert.Equal(0, await first.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains(first.Lines, l => l.Contains("Silo rollout-1 left", StringComparison.Ordinal));
        await run.WaitForCompletionAsync(Long);
        await AssertSoundAsync(run);
        var members = await run.Store.TransactAsync(s => s.ListMembersAsync(), CancellationToken.None);
        Assert.Equal(Dapo.Grains.Store.MemberStatus.Left, members.Single(m => m.SiloId == "rollout-1").Status);
    }

    [Fact]
    public async Task Killing_a_rollout_silo_mid_step_loses_nothing()
    {
        await using var run = await StartRunAsync();
        run.Join("learner-1", "learner");
        var victim = run.Join("rollout-1", "rollout");
        run.Join("rollout-2", "rollout");
        await run.WaitForStepAsync(3, Long);
        // Kill it while it holds leased work, so its items must come back through the visibility timeout.
        await WaitUntilAsync(async () => (await run.Store.TransactAsync(s => s.ListWorkAsync(run.RunId, openOnly: true), CancellationToken.None))
            .Any(w => w.LeaseOwner?.StartsWith("rollout-1/", StringComparison.Ordinal) == true), TimeSpan.FromSeconds(60));
        victim.Kill();
        await run.WaitForCompletionAsync(Long);
        await AssertSoundAsync(run);
    }

    [Fact]
    public async Task Killing_the_learner_hands_the_run_to_a_standby_that_resumes_from_the_latest_checkpoint()
    {
        await using var run = await StartRunAsync();
        var first = run.Join("learner-1", "learner");
        var standby = run.Join("learner-2", "learner");
        run.Join("rollout-1", "rollout");
        await run.WaitForStepAsync(4, Long);
        var holder = (await run.LearnerLeaseAsync())!;
        var (victim, successor) = holder.Owner == "learner-1" ? (first, standby) : (standby, first);
        victim.Kill();
        var resumed = await successor.WaitForLineAsync("resumed from the checkpoint of step", Long);
        output.WriteLine(resumed);
        await run.WaitForCompletionAsync(Long);
        await AssertSoundAsync(run);
        var lease = (await run.LearnerLeaseAsync())!;
        Assert.NotEqual(holder.Owner, lease.Owner);
        Assert.True(lease.Epoch > holder.Epoch);
    }

    [Fact]
    public async Task A_learner_stopped_with_SIGTERM_releases_its_lease_and_a_standby_continues()
    {
        await using var run = await StartRunAsync();
        var first = run.Join("learner-1", "learner");
        await first.WaitForLineAsync("Silo learner-1 leads run", Long);
        var standby = run.Join("learner-2", "learner");
        run.Join("rollout-1", "rollout");
        await run.WaitForStepAsync(3, Long);
        first.Terminate();
        Assert.Equal(0, await first.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(first.Lines, l => l.Contains("Silo learner-1 left", StringComparison.Ordinal));
        await standby.WaitForLineAsync("Silo learner-2 leads run", Long);
        await run.WaitForCompletionAsync(Long);
        await AssertSoundAsync(run);
        Assert.Equal("learner-2", (await run.LearnerLeaseAsync())!.Owner);
    }

    [Fact]
    public async Task Restarting_PostgreSQL_mid_run_does_not_stop_the_run()
    {
        await using var run = await StartRunAsync();
        run.Join("learner-1", "learner");
        run.Join("rollout-1", "rollout");
        await run.WaitForStepAsync(3, Long);
        await postgres.Server.StopAsync();
        // Longer than the learner lease (3 s here): the learner finds its lease lapsed when the server is back and
        // must win it again rather than crash on its interrupted renewal.
        await Task.Delay(TimeSpan.FromSeconds(8));
        await postgres.Server.StartServerAsync();
        await run.WaitForCompletionAsync(Long);
        await AssertSoundAsync(run);
    }

    [Fact]
    public async Task Blob_storage_outage_while_a_step_publishes_and_checkpoints_is_retried_and_latest_stays_complete()
    {
        await using var storage = await AzuriteProcess.StartNewAsync();
        await using var run = await StartRunAsync(storage.ConnectionString);
        var learner = run.Join("learner-1", "learner");
        var rollout = run.Join("rollout-1", "rollout");
        await run.WaitForStepAsync(3, Long);
        const string blobFailure = "failed (attempt";
        static int Failures(SiloProcess silo) => silo.Lines.Count(l => l.Contains(blobFailure, StringComparison.Ordinal));
        for (var attempt = 1; Failures(learner) == 0; attempt++)
        {
            // Stop storage mid-step, once the rollouts hold the step's policy, so that the learner's next write (the
            // step's policy and checkpoint) meets the outage. Azurite's graceful stop takes a moment, so the step
            // can still end first; then the rollouts meet the outage fetching the next policy and wait it out, the
            // learner has nothing to write, and the test starts storage again and tries the next step.
            var step = (await run.RunAsync()).Step;
            await WaitUntilAsync(async () => await run.Store.TransactAsync(s => s.GetStepAsync(run.RunId, step), CancellationToken.None)
                is { } row && row.Accepted + row.Filtered > 0, Long);
            var rolloutFailures = Failures(rollout);
            await storage.StopAsync();
            await WaitUntilAsync(() => Task.FromResult(Failures(learner) > 0 || Failures(rollout) > rolloutFailures), Long);
            if (Failures(learner) > 0) break;
            Assert.True(attempt < 4, $"The rollouts met the blob outage first at every try.\n{run.SiloOutput()}");
            output.WriteLine($"step {step}: the rollouts met the outage first; again at the next step");
            await storage.StartAsync();
            await run.WaitForStepAsync(step + 1, Long);
        }
        var failure = learner.Lines.First(l => l.Contains(blobFailure, StringComparison.Ordinal));
        output.WriteLine(failure);
        var stoppedAt = (await run.RunAsync()).Step;
        await Task.Delay(TimeSpan.FromSeconds(2));
        await storage.StartAsync();
        await learner.WaitForLineAsync("on attempt", Long);
        await run.WaitForCompletionAsync(Long);
        await AssertSoundAsync(run);

        var blobs = BlobStoreFactory.Create(new BlobStorageOptions
        {
            Kind = BlobStoreKind.Azure, ConnectionString = storage.ConnectionString, Container = run.Container,
        });
        var checkpoints = await run.Checkpoints(blobs).ListAsync(CancellationToken.None);
        Assert.All(checkpoints, c => Assert.True(c.Complete, $"checkpoint {c.Step}: {c.Problem}"));
        var latest = await run.Checkpoints(blobs).LatestAsync(null, CancellationToken.None);
        Assert.Equal(10, latest!.Meta.Step);
        output.WriteLine($"storage stopped at step {stoppedAt}; checkpoints now: {string.Join(", ", checkpoints.Select(c => c.Step))}");
    }

    [Fact]
    public async Task Bad_connection_strings_and_options_are_rejected_before_any_work_and_change_nothing()
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        var quick = new Dictionary<string, string> { ["DAPO_Silo__StartupTimeout"] = "00:00:02" };
        async Task<(int Code, string Output)> RunAsync(params string[] args)
        {
            await using var process = SiloProcess.Start(SiloProcess.SiloDll, args, quick);
            var code = await process.WaitForExitAsync(TimeSpan.FromMinutes(1));
            return (code, process.Output);
        }

        var unreachable = await RunAsync("join", "--roles", "rollout", "--store", $"Host=127.0.0.1;Port={FreePort.Next()};Username=dapo;Database=x",
            "--blobs", azurite.ConnectionString);
        Assert.Equal(1, unreachable.Code);
        Assert.Contains("Cannot reach the cluster store (PostgreSQL 127.0.0.1:", unreachable.Output);

        var noBlobs = await RunAsync("join", "--roles", "rollout", "--store", database,
            "--blobs", $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:{FreePort.Next()}/devstoreaccount1");
        Assert.Equal(1, noBlobs.Code);
        Assert.Contains("Cannot reach blob storage", noBlobs.Output);
        Assert.DoesNotContain("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq", noBlobs.Output);

        var roles = await RunAsync("join", "--roles", "learner,bogus", "--store", database, "--blobs", azurite.ConnectionString);
        Assert.Equal(2, roles.Code);
        Assert.Contains("Silo:Roles has unknown role 'bogus'", roles.Output);

        var malformed = await RunAsync("start-run", "--run", "r", "--store", "Host=127.0.0.1;Port=notanumber", "--blobs", azurite.ConnectionString);
        Assert.Equal(2, malformed.Code);
        Assert.Contains("Store:ConnectionString is malformed", malformed.Output);

        Assert.Equal(0, (await RunAsync("start-run", "--run", "r", "--override", TestRecipes.Tiny(3), "--store", database, "--blobs", azurite.ConnectionString)).Code);
        var other = await RunAsync("start-run", "--run", "r", "--override", TestRecipes.Tiny(5), "--store", database, "--blobs", azurite.ConnectionString);
        Assert.Equal(2, other.Code);
        Assert.Contains("nothing was changed", other.Output);
        await using var store = Dapo.Grains.Store.ClusterStores.Create(new Dapo.Grains.Store.ClusterStoreOptions { Kind = "postgres", ConnectionString = database });
        var run = (await store.TransactAsync(s => s.GetRunAsync("r"), CancellationToken.None))!;
        Assert.Contains("\"Steps\":3", run.SpecJson);
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Condition not met within {timeout}.");
            await Task.Delay(50);
        }
    }
}
