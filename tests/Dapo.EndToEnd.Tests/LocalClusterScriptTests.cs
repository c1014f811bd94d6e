using System.Text.Json.Nodes;
using Dapo.Grains.Grains;
using Dapo.Grains.Inspection;
using Dapo.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit.Abstractions;

namespace Dapo.EndToEnd.Tests;

/// <summary>
/// deploy/local/cluster.sh as a user runs it: the storage, a learner silo and its standby, rollout silos, a run; rollout
/// silos scaled 1 → 3 → 1 while the run goes on; the run completes with a sound ledger; `down` leaves no process.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class LocalClusterScriptTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string Script = Path.Combine(RepositoryPaths.Root, "deploy", "local", "cluster.sh");
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(3);
    private const string Run = "local-run";
    // Enough steps that silos started mid-run (up to a minute on the busy machine) still find work.
    private const int Steps = 100;
    private readonly string _directory = Directory.CreateTempSubdirectory("dapo-local-cluster-").FullName;

    private Dictionary<string, string> Environment => new()
    {
        ["DAPO_CLUSTER_DIR"] = _directory,
        // Short leases and small batches, as in the other cluster tests: a stopped silo's work moves on quickly.
        ["DAPO_Silo__WorkVisibility"] = "00:00:05",
        ["DAPO_Silo__RolloutBatch"] = "2",
        ["DAPO_Silo__StartupTimeout"] = "00:01:00",
    };

    private async Task<ClientResult> ClusterAsync(params string[] arguments)
    {
        var result = await ClientProcess.RunProgramAsync(Script, arguments, Environment, TimeSpan.FromMinutes(4));
        output.WriteLine($"$ cluster.sh {string.Join(' ', arguments.Select(a => a.Length > 60 ? a[..60] + "…" : a))} → {result.ExitCode}\n{result.Stdout}{result.Stderr}");
        return result;
    }

    /// <summary>Polls a client command until its view satisfies <paramref name="condition"/>; a call that fails (the
    /// machine is busy, a silo is joining) is tried again until the deadline.</summary>
    private async Task<JsonNode> WaitForAsync(Func<JsonNode, bool> condition, string what, params string[] arguments)
    {
        var deadline = DateTime.UtcNow + Long;
        var last = "";
        while (true)
        {
            var result = await ClusterAsync(["client", .. arguments, "--json"]);
            if (result.ExitCode == 0 && condition(result.Json)) return result.Json;
            last = result.ExitCode == 0 ? result.Json.ToJsonString() : result.ToString();
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"not {what} within {Long}: {last}\n{Logs()}");
            await Task.Delay(1000);
        }
    }

    private string Logs() => string.Join("\n", Directory.GetFiles(Path.Combine(_directory, "logs"), "*.log")
        .Select(f => $"--- {Path.GetFileName(f)}:\n{string.Join("\n", File.ReadLines(f).TakeLast(15))}"));

    [Theory]
    [InlineData("azurite")]
    [InlineData("redis")]
    public async Task Up_brings_a_learner_a_standby_and_rollout_silos_and_scale_moves_rollouts_1_3_1_while_the_run_completes(string storage)
    {
        try
        {
            var up = await ClusterAsync("up", "--storage", storage, "--rollouts", "1", "--run", Run,
                "--override", TestRecipes.Tiny(steps: Steps, group: 8, batch: 8, evaluateEvery: 0));
            Assert.True(up.ExitCode == 0, up + Logs());
            Assert.Contains("joined learner-2 (standby)", up.Stdout);
            var status = await ClusterAsync("status");
            foreach (var silo in new[] { "learner-1", "learner-2", "rollout-1", "storage" })
                Assert.Contains($"{silo}: running", status.Stdout);

            // Scaled out as soon as the run samples, so that the new silos join with most of the run ahead of them
            // (joining took up to a minute on the busy 2-core machine).
            await WaitForAsync(v => (int)v["runs"]![0]!["completedSteps"]! >= 1, "at step 1", "status");
            var three = await ClusterAsync("scale", "rollout", "3");
            Assert.True(three.ExitCode == 0, three + Logs());
            // Three rollout grains, each on its own silo, all sampled for the run: the new ones got work while it ran.
            var rollouts = await WaitForAsync(v => v["rollouts"]!.AsArray().Count(r => (long)r!["groupsSubmitted"]! > 0) == 3,
                "three rollout silos working", "grain", "rollout");
            Assert.Equal(3, rollouts["rollouts"]!.AsArray().Select(r => (string?)r!["silo"]).Distinct().Count());

            var one = await ClusterAsync("scale", "rollout", "1");
            Assert.True(one.ExitCode == 0, one + Logs());
            Assert.Contains("stopped rollout-3", one.Stdout);
            Assert.Contains("stopped rollout-2", one.Stdout);
            var done = await WaitForAsync(v => (string?)v["runs"]![0]!["status"] == "completed", "completed", "status");
            Assert.Equal(Steps, (int)done["runs"]![0]!["completedSteps"]!);
            Assert.Equal(3, done["silos"]!.AsArray().Count(s => (bool)s!["alive"]!));  // two learner silos and rollout-1

            var args = (await ClusterAsync("args")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var problems = await AuditAsync(args);
            Assert.True(problems.Count == 0, string.Join("\n", problems) + "\n" + Logs());
        }
        finally
        {
            var down = await ClusterAsync("down");
            Assert.True(down.ExitCode == 0, down.ToString());
        }
        Assert.Empty(Directory.GetFiles(Path.Combine(_directory, "pids")));
    }

    /// <summary>The ledger audit through an Orleans client of the cluster the script's options name.</summary>
    private static async Task<IReadOnlyList<string>> AuditAsync(string[] args)
    {
        string Value(string option) => args[Array.IndexOf(args, option) + 1];
        ClusterTarget target = args.Contains("--redis")
            ? new ClusterTarget.RedisCluster(Value("--redis"), Value("--cluster-id"))
            : new ClusterTarget.Cluster(Value("--storage"), "dapo", Value("--cluster-id"));
        using var host = await ClusterRun.ConnectAsync(target);
        try
        {
            return await LedgerAudit.CheckAsync(host.Services.GetRequiredService<IClusterClient>(), Run);
        }
        finally
        {
            await host.StopAsync();
        }
    }

    public void Dispose()
    {
        if (System.Environment.GetEnvironmentVariable("DAPO_KEEP_TEST_LOGS") != "1") Directory.Delete(_directory, recursive: true);
    }
}
