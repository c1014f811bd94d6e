using Dapo.Grains.Store;
using Dapo.Testing;

namespace Dapo.EndToEnd.Tests;

/// <summary>`dapo-client` on a cluster: PostgreSQL and Azurite, a learner silo and a second (rollout) silo.</summary>
[Collection(ClusterCollection.Name)]
public sealed class ClientClusterTests(PostgresFixture postgres, AzuriteFixture azurite)
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(3);
    private const int Steps = 6;

    [Fact]
    public async Task The_client_sees_a_killed_silo_fall_silent_and_new_checkpoints_and_changes_nothing()
    {
        await using var run = await ClusterRun.StartAsync(postgres, azurite.ConnectionString, azurite.NewContainerName("client"),
            TestRecipes.Tiny(Steps, evaluateEvery: 0));
        string[] at = ["--store", run.StoreConnection, "--blobs", run.BlobConnection, "--container", run.Container];
        // The client counts a silo alive by the cluster's own setting (ClusterRun gives its silos 3 s).
        var environment = new Dictionary<string, string> { ["DAPO_Silo__MemberTimeout"] = "00:00:03" };
        Task<ClientResult> Client(params string[] arguments) => ClientProcess.RunAsync([.. arguments, .. at], environment);

        run.Join("learner-1", "learner,rollout");
        var victim = run.Join("rollout-2", "rollout");
        await ClientTests.PollAsync(() => Client("status", "--json"), r => r.ExitCode == 0 && Active(r).Contains("learner-1") && Active(r).Contains("rollout-2"));
        var checkpointsBefore = (await Client("checkpoints", "--json")).Json["checkpoints"]!.AsArray().Select(c => (int)c!["step"]!).ToList();
        await run.WaitForStepAsync(2, Long);

        // kill -9: the silo cannot say goodbye; its heartbeat ages until it no longer counts as alive.
        victim.Kill();
        var age1 = HeartbeatAge(await Client("status", "--json"), "rollout-2");
        var gone = await ClientTests.PollAsync(() => Client("status", "--json"), r => r.ExitCode == 0 && !Active(r).Contains("rollout-2"));
        var age2 = HeartbeatAge(gone, "rollout-2");
        Assert.True(age2 > age1, $"heartbeat age {age2} ms after {age1} ms");
        Assert.Contains("learner-1", Active(gone));
        var silo = (await Client("grain", "rollout", "rollout-2", "--json")).Json["silo"]!;
        Assert.Equal(("silent", false), ((string)silo["state"]!, (bool)silo["alive"]!));
        Assert.True((long)silo["heartbeatAgeMs"]! >= age2);

        await run.WaitForCompletionAsync(Long);
        var status = (await Client("status", "--json")).Json["runs"]![0]!;
        Assert.Equal(("completed", Steps), ((string)status["status"]!, (int)status["completedSteps"]!));

        // A new checkpoint in Azure blob storage, complete and latest.
        var checkpoints = (await Client("checkpoints", "--json")).Json["checkpoints"]!.AsArray();
        var latest = checkpoints.Single(c => (bool)c!["latest"]!)!;
        Assert.Equal((Steps, "ok"), ((int)latest["step"]!, (string)latest["checksum"]!));
        Assert.DoesNotContain(Steps, checkpointsBefore);

        // Prompt grains and the slots of an accepted group, as the store holds them.
        var prompts = (await Client("prompts", "--step", "1", "--json")).Json["prompts"]!.AsArray();
        var stored = await run.Store.TransactAsync(s => s.ListPromptsAsync(run.RunId, 1), CancellationToken.None);
        Assert.Equal(stored.Select(p => (p.PromptId, p.Status.ToString().ToLowerInvariant(), p.Filled)),
            prompts.Select(p => ((long)p!["promptId"]!, (string)p["status"]!, (int)p["filled"]!)));
        var accepted = stored.First(p => p.Status == PromptStatus.Accepted);
        var grain = (await Client("grain", "prompt", $"{run.RunId}/{accepted.PromptId}", "--json")).Json;
        Assert.True((bool)grain["trainedOn"]!);
        ClientTests.AssertSlotsEqual(await run.Store.TransactAsync(s => s.ListSlotsAsync(run.RunId, accepted.PromptId), CancellationToken.None), grain);

        // Read-only on PostgreSQL too: the database refuses the client's writes; every command leaves the rows as they were.
        var before = await ClientTests.RowCountsAsync(run.Store, run.RunId);
        foreach (var command in ClientTests.EveryCommand(grain["key"]!.ToString(), "learner-1"))
        {
            var result = await Client([.. command, "--json"]);
            Assert.True(result.ExitCode == 0, result.ToString());
        }
        Assert.Equal(before, await ClientTests.RowCountsAsync(run.Store, run.RunId));
    }

    private static IReadOnlyList<string> Active(ClientResult status) =>
        status.Json["activeSilos"]!.AsArray().Select(s => (string)s!).ToList();

    private static long HeartbeatAge(ClientResult status, string silo) =>
        (long)status.Json["silos"]!.AsArray().Single(s => (string)s!["siloId"]! == silo)!["heartbeatAgeMs"]!;
}
