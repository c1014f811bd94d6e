using Dapo.Grains.Blobs;
using Dapo.Grains.Checkpoints;
using Dapo.Grains.Grains;
using Dapo.Grains.Store;
using Dapo.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Dapo.EndToEnd.Tests;

/// <summary>
/// One run on a real cluster: a PostgreSQL database and an Azurite container of its own, silos started as separate
/// processes with short timeouts (so takeovers happen in seconds), and helpers that watch the run through the store.
/// </summary>
internal sealed class ClusterRun : IAsyncDisposable
{
    private readonly List<SiloProcess> _silos = [];
    private readonly string _runDirectory = Directory.CreateTempSubdirectory("dapo-cluster-").FullName;

    private ClusterRun(string storeConnection, string blobConnection, string container, string runId)
    {
        StoreConnection = storeConnection;
        BlobConnection = blobConnection;
        Container = container;
        RunId = runId;
        Store = ClusterStores.Create(new ClusterStoreOptions { Kind = "postgres", ConnectionString = storeConnection }, NullLogger.Instance);
    }

    public string StoreConnection { get; }
    public string BlobConnection { get; }
    public string Container { get; }
    public string RunId { get; }
    public IClusterStore Store { get; }

    /// <summary>Creates the run with `start-run` (as an operator would).</summary>
    public static async Task<ClusterRun> StartAsync(PostgresFixture postgres, string blobConnection, string container, string recipeOverrides,
        string recipe = "dapo")
    {
        var run = new ClusterRun(await postgres.Server.CreateDatabaseAsync(), blobConnection, container, "cluster-run");
        await using var start = SiloProcess.Start(SiloProcess.SiloDll,
            ["start-run", "--run", run.RunId, "--recipe", recipe, "--override", recipeOverrides, .. run.ClusterArguments]);
        var code = await start.WaitForExitAsync(TimeSpan.FromMinutes(1));
        if (code != 0) throw new InvalidOperationException($"start-run failed ({code}):\n{start.Output}");
        return run;
    }

    private string[] ClusterArguments => ["--store", StoreConnection, "--blobs", BlobConnection, "--container", Container];

    /// <summary>Starts a silo with <paramref name="roles"/> (`join`).</summary>
    public SiloProcess Join(string siloId, string roles)
    {
        var silo = SiloProcess.Start(SiloProcess.SiloDll,
            ["join", "--roles", roles, "--silo-id", siloId, "--run-dir", _runDirectory, .. ClusterArguments],
            new Dictionary<string, string>
            {
                ["DAPO_Silo__LearnerLeaseTtl"] = "00:00:03",
                ["DAPO_Silo__WorkVisibility"] = "00:00:04",
                ["DAPO_Silo__HeartbeatInterval"] = "00:00:00.500",
                ["DAPO_Silo__MemberTimeout"] = "00:00:03",
                ["DAPO_Silo__RolloutBatch"] = "8",
                ["DAPO_Blobs__MaxRetries"] = "1",
                ["DAPO_Blobs__RetryDelay"] = "00:00:00.200",
                ["DAPO_Blobs__NetworkTimeout"] = "00:00:05",
            });
        _silos.Add(silo);
        return silo;
    }

    public Task<RunRow> RunAsync() => Store.TransactAsync(async s => (await s.GetRunAsync(RunId))!, CancellationToken.None);

    /// <summary>Waits until the run's store row satisfies <paramref name="condition"/>.</summary>
    public async Task<RunRow> WaitForAsync(Func<RunRow, bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var run = await RunAsync();
            if (condition(run)) return run;
            if (run.Status == RunStatus.Failed) throw new InvalidOperationException($"The run failed while waiting for {what}: {run.Error}\n{SiloOutput()}");
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Not {what} within {timeout}: run at step {run.Step}, {run.Status}.\n{SiloOutput()}");
            await Task.Delay(200);
        }
    }

    public Task<RunRow> WaitForStepAsync(int step, TimeSpan timeout) => WaitForAsync(r => r.Step >= step, timeout, $"at step {step}");

    public Task<RunRow> WaitForCompletionAsync(TimeSpan timeout) => WaitForAsync(r => r.Status == RunStatus.Completed, timeout, "completed");

    /// <summary>Waits until some slot was submitted by a worker of <paramref name="siloId"/>; returns how long it took.</summary>
    public async Task<TimeSpan> WaitForWorkByAsync(string siloId, TimeSpan timeout)
    {
        var started = DateTime.UtcNow;
        while (true)
        {
            var run = await RunAsync();
            var worked = await Store.TransactAsync(async s =>
            {
                for (var step = Math.Max(1, run.Step - 1); step <= run.Step; step++)
                    foreach (var p in await s.ListPromptsAsync(RunId, step))
                        if ((await s.ListSlotsAsync(RunId, p.PromptId)).Any(x => x.Worker.StartsWith(siloId + "/", StringComparison.Ordinal)))
                            return true;
                return false;
            }, CancellationToken.None);
            if (worked) return DateTime.UtcNow - started;
            if (DateTime.UtcNow - started > timeout) throw new TimeoutException($"{siloId} got no work within {timeout}.\n{SiloOutput()}");
            await Task.Delay(200);
        }
    }

    /// <summary>The silo holding the run's learner lease now.</summary>
    public async Task<LeaseRow?> LearnerLeaseAsync() =>
        await Store.TransactAsync(s => s.GetLeaseAsync(LeaseNames.Learner(RunId)), CancellationToken.None);

    public Task<IReadOnlyList<string>> AuditAsync() => LedgerAudit.CheckAsync(Store, RunId, CancellationToken.None);

    public CheckpointStore Checkpoints(IBlobStore blobs) => new(blobs, RunId);

    public string SiloOutput() => string.Join("\n", _silos.Select(s => $"--- silo {s.Id} (exited {s.HasExited}):\n{s.Tail(25)}"));

    public async ValueTask DisposeAsync()
    {
        foreach (var silo in _silos) await silo.DisposeAsync();
        await Store.DisposeAsync();
        Directory.Delete(_runDirectory, recursive: true);
    }
}
