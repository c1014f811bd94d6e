using System.Text.Json.Nodes;
using Dapo.Grains.Blobs;
using Dapo.Grains.Checkpoints;
using Dapo.Grains.Grains;
using Dapo.Grains.Store;
using Dapo.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Dapo.EndToEnd.Tests;

/// <summary>`dapo-silo train` as a user runs it: one process, the embedded store, interrupted and re-run.</summary>
public sealed class TrainCommandTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);
    private readonly string _root = Directory.CreateTempSubdirectory("dapo-train-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static SiloProcess Train(string runDir, int steps, params string[] extra) =>
        SiloProcess.Start(SiloProcess.SiloDll, ["train", "--run-dir", runDir, "--override", TestRecipes.Tiny(steps), .. extra]);

    private static IClusterStore Store(string runDir) =>
        ClusterStores.Create(new ClusterStoreOptions { Kind = "sqlite", SqlitePath = Path.Combine(runDir, "cluster.db") }, NullLogger.Instance);

    [Fact]
    public async Task Train_runs_to_completion_records_everything_and_a_rerun_reports_it_done()
    {
        var dir = Path.Combine(_root, "demo");
        await using (var train = Train(dir, 4))
        {
            Assert.Equal(0, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.StartsWith("warm-start stopped at its step budget of 150 steps", StringComparison.Ordinal));
            Assert.Contains(train.Lines, l => l.StartsWith("held-out after warm-start: avg@2", StringComparison.Ordinal));
            Assert.Contains(train.Lines, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^step   3/4 .* left$"));
            Assert.Contains(train.Lines, l => l.StartsWith("step   4/4", StringComparison.Ordinal));
            Assert.Contains(train.Lines, l => l.StartsWith("Done: held-out avg@2", StringComparison.Ordinal));
        }
        var metrics = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal([1, 2, 3, 4], metrics.Select(m => (int)m["step"]!));
        foreach (var key in new[] { "critic/accuracy", "actor/entropy", "train/num_gen_batches", "timing/sampling_s", "throughput/tokens_per_s", "cluster/rollout_workers" })
            Assert.All(metrics, m => Assert.True(m.ContainsKey(key), $"metrics lack {key}"));
        Assert.True(metrics[3].ContainsKey("eval/avg@2"));

        await using (var store = Store(dir))
        {
            Assert.Empty(await LedgerAudit.CheckAsync(store, "demo", CancellationToken.None));
            var run = (await store.TransactAsync(s => s.GetRunAsync("demo"), CancellationToken.None))!;
            Assert.Equal((RunStatus.Completed, 4, 4), (run.Status, run.PolicyVersion, run.LatestCheckpoint));
        }
        var checkpoints = new CheckpointStore(new LocalDirectoryBlobStore(Path.Combine(dir, "blobs"), NullLogger<LocalDirectoryBlobStore>.Instance), "demo");
        var listed = await checkpoints.ListAsync(CancellationToken.None);
        Assert.Equal([4, 3, 2], listed.Select(c => c.Step));
        Assert.All(listed, c => Assert.True(c.Complete));
        // Pruned checkpoints leave no empty folders behind.
        Assert.Equal(3, Directory.GetDirectories(Path.Combine(dir, "blobs", "runs", "demo", "checkpoints")).Length);

        await using var again = Train(dir, 4);
        Assert.Equal(0, await again.WaitForExitAsync(Timeout));
        Assert.Contains(again.Lines, l => l.Contains("is already completed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_interrupted_run_resumes_at_its_checkpoint_and_continues_exactly_as_an_uninterrupted_one()
    {
        const int steps = 8;
        var straight = Path.Combine(_root, "straight");
        var interrupted = Path.Combine(_root, "interrupted");
        await using (var train = Train(straight, steps))
            Assert.Equal(0, await train.WaitForExitAsync(Timeout));

        await using (var train = Train(interrupted, steps))
        {
            await train.WaitForLineAsync("step   3/8", Timeout);
            train.Kill();
        }
        int resumedFrom;
        await using (var store = Store(interrupted))
            resumedFrom = (await store.TransactAsync(s => s.GetRunAsync("interrupted"), CancellationToken.None))!.LatestCheckpoint!.Value;
        Assert.InRange(resumedFrom, 3, steps - 1);
        await using (var train = Train(interrupted, steps))
        {
            Assert.Equal(0, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.StartsWith("Resuming run 'interrupted'", StringComparison.Ordinal));
            Assert.Contains(train.Lines, l => l.Contains($"resumed from the checkpoint of step {resumedFrom}", StringComparison.Ordinal));
            Assert.DoesNotContain(train.Lines, l => l.StartsWith($"step {resumedFrom,3}/", StringComparison.Ordinal));
        }

        // The prompts each step drew (dataset index and draw ordinal, in draw order) and how they ended are those of
        // the uninterrupted run; so are the final weights. Prompts of the attempt the kill cut short stay in the ledger,
        // abandoned (or filtered, if they were judged before the kill).
        await using var a = Store(straight);
        await using var b = Store(interrupted);
        Assert.Empty(await LedgerAudit.CheckAsync(b, "interrupted", CancellationToken.None));
        for (var step = 1; step <= steps; step++)
        {
            var s = step;
            var expected = (await a.TransactAsync(x => x.ListPromptsAsync("straight", s), CancellationToken.None))
                .Select(p => (p.DatasetIndex, p.DrawOrdinal, p.Status)).ToList();
            // A step the killed process had started was drawn again after the restart: compare the last attempt.
            var opened = (await b.TransactAsync(x => x.GetStepAsync("interrupted", s), CancellationToken.None))!.OpenedAt;
            var actual = (await b.TransactAsync(x => x.ListPromptsAsync("interrupted", s), CancellationToken.None))
                .Where(p => p.CreatedAt >= opened)
                .Select(p => (p.DatasetIndex, p.DrawOrdinal, p.Status)).ToList();
            Assert.Equal(expected, actual);
        }
        var policyA = File.ReadAllBytes(Path.Combine(straight, "blobs", "runs", "straight", "policy", $"{steps:D8}"));
        var policyB = File.ReadAllBytes(Path.Combine(interrupted, "blobs", "runs", "interrupted", "policy", $"{steps:D8}"));
        Assert.Equal(policyA, policyB);
    }

    [Fact]
    public async Task A_jsonl_dataset_trains_from_given_weights_and_a_malformed_one_is_refused_naming_file_line_and_field()
    {
        // Weights to start from: the policy a short run ends with.
        var first = Path.Combine(_root, "first");
        await using (var train = Train(first, 2))
            Assert.Equal(0, await train.WaitForExitAsync(Timeout));
        var weights = Path.Combine(first, "blobs", "runs", "first", "policy", "00000002");

        var good = Path.Combine(_root, "problems.jsonl");
        File.WriteAllLines(good, Enumerable.Range(0, 80).Select(i => $"{{\"prompt\": \"{i % 9}+{i / 9}=\", \"answer\": \"{i % 9 + i / 9}\"}}"));
        var dir = Path.Combine(_root, "jsonl");
        await using (var train = Train(dir, 2, "--dataset", good, "--init-weights", weights))
        {
            Assert.Equal(0, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.Contains("starting from the weights in", StringComparison.Ordinal));
        }
        await using (var store = Store(dir))
        {
            var prompts = await store.TransactAsync(s => s.ListPromptsAsync("jsonl", 1), CancellationToken.None);
            Assert.NotEmpty(prompts);
            Assert.All(prompts, p => Assert.Matches(@"^Q: \d\+\d=", p.Problem));
        }

        var bad = Path.Combine(_root, "bad.jsonl");
        File.WriteAllLines(bad, ["{\"prompt\": \"1+1=\", \"answer\": \"2\"}", "{\"prompt\": \"2+2=\"}"]);
        var refused = Path.Combine(_root, "refused");
        await using (var train = Train(refused, 2, "--dataset", bad, "--init-weights", weights))
        {
            Assert.Equal(2, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.Contains($"{bad}:2: field 'answer'", StringComparison.Ordinal));
        }
        Assert.False(Directory.Exists(refused), "a refused run leaves nothing behind");
        // The file is read first: its own error shows even without --init-weights, and alone.
        await using (var train = Train(refused, 2, "--dataset", bad))
        {
            Assert.Equal(2, await train.WaitForExitAsync(Timeout));
            Assert.Equal([$"--dataset: {bad}:2: field 'answer': is missing"], train.Lines.Where(l => l.Length > 0).ToArray());
        }
        await using (var train = Train(refused, 2, "--dataset", Path.Combine(_root, "missing.jsonl")))
        {
            Assert.Equal(2, await train.WaitForExitAsync(Timeout));
            Assert.Single(train.Lines, l => l.Length > 0);
            Assert.Contains("there is no file", train.Lines.First());
        }
        Assert.False(Directory.Exists(refused));
        await using (var train = Train(Path.Combine(_root, "no-weights"), 2, "--dataset", good))
        {
            Assert.Equal(2, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.Contains("give InitialWeights (--init-weights)", StringComparison.Ordinal));
        }
        Assert.False(Directory.Exists(Path.Combine(_root, "no-weights")));
    }

    [Fact]
    public async Task The_BLAS_kernel_is_logged_at_start_and_a_forced_fallback_shows()
    {
        await using (var train = Train(Path.Combine(_root, "kernel"), 2))
        {
            var line = await train.WaitForLineAsync("BLAS: OpenBLAS", Timeout);
            Assert.Matches(@"engine: 1 thread\(s\), BLAS: OpenBLAS [0-9.]+, kernel \w+ \((chosen by Dapo|OpenBLAS's own choice)", line);
            train.Kill();
        }
        // OpenBLAS's SSE3 kernel, the one it falls back to on a CPU it does not know.
        await using (var train = SiloProcess.Start(SiloProcess.SiloDll, ["train", "--run-dir", Path.Combine(_root, "fallback"), "--override", TestRecipes.Tiny(2)],
                         new Dictionary<string, string> { ["OPENBLAS_CORETYPE"] = "Prescott" }))
        {
            await train.WaitForLineAsync("kernel Prescott (OPENBLAS_CORETYPE=Prescott from the environment)", Timeout);
            train.Kill();
        }
    }

    [Fact]
    public async Task Bad_input_is_rejected_before_any_work_and_changes_nothing()
    {
        var dir = Path.Combine(_root, "bad");
        await using (var train = SiloProcess.Start(SiloProcess.SiloDll, ["train", "--run-dir", dir, "--override", "{\"Dapo\":{\"GroupSizee\":4}}"]))
        {
            Assert.Equal(2, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.Contains("unknown key 'Dapo.GroupSizee'", StringComparison.Ordinal));
        }
        Assert.False(File.Exists(Path.Combine(dir, "cluster.db")));
        // A malformed appsettings.json: its file, line and column, in one line.
        var config = Directory.CreateDirectory(Path.Combine(_root, "config")).FullName;
        File.WriteAllText(Path.Combine(config, "appsettings.json"), "{\n  \"Silo\": {}\n  \"Store\": {}\n}\n");
        await using (var train = SiloProcess.Start(SiloProcess.SiloDll, ["train", "--run-dir", dir], workingDirectory: config))
        {
            Assert.Equal(2, await train.WaitForExitAsync(Timeout));
            Assert.Equal([$"dapo-silo: {Path.Combine(config, "appsettings.json")}: line 3, column 3: expected ',' or a closing '}}' or ']' after a value, found '\"'"],
                train.Lines.Where(l => l.Length > 0).ToArray());
        }
        Assert.False(Directory.Exists(dir));
        await using (var train = SiloProcess.Start(SiloProcess.SiloDll, ["train", "--run-dir", dir, "--override", "{\"Dapo\":{\"GroupSize\":0}}"]))
        {
            Assert.Equal(2, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.Contains("GroupSize", StringComparison.Ordinal));
        }

        // A run interrupted early, then a command with other options: refused, so the run can still be resumed.
        await using (var train = Train(dir, 2))
        {
            await train.WaitForLineAsync("Training run 'bad'", Timeout);
            train.Kill();
        }
        async Task<string> ContentAsync()
        {
            await using var reader = ClusterStores.Create(new ClusterStoreOptions { Kind = "sqlite", SqlitePath = Path.Combine(dir, "cluster.db"), ReadOnly = true });
            return await reader.TransactAsync(async s =>
            {
                var run = (await s.GetRunAsync("bad"))!;
                var steps = await s.ListStepsAsync("bad", 100);
                var prompts = steps.Count == 0 ? 0 : (await s.ListPromptsAsync("bad", steps[^1].Step)).Count;
                return $"{run} {steps.Count} {prompts}";
            }, CancellationToken.None);
        }
        var before = await ContentAsync();
        await using (var other = Train(dir, 3))
        {
            Assert.Equal(2, await other.WaitForExitAsync(Timeout));
            Assert.Contains(other.Lines, l => l.Contains("was started with another recipe or options; nothing was changed", StringComparison.Ordinal));
        }
        await using var store = Store(dir);
        var run = (await store.TransactAsync(s => s.GetRunAsync("bad"), CancellationToken.None))!;
        Assert.Equal(RunStatus.Running, run.Status);
        Assert.Contains("\"Steps\":2", run.SpecJson);
        Assert.Equal(before, await ContentAsync());
    }
}
