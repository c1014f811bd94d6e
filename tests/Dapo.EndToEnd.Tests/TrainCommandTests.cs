using System.Text.Json.Nodes;
using Dapo.Grains;
using Dapo.Grains.Blobs;
using Dapo.Grains.Checkpoints;
using Dapo.Grains.Hosting;
using Dapo.Testing;
using Dapo.Torch;

namespace Dapo.EndToEnd.Tests;

/// <summary>
/// An uninterrupted run, trained once for the tests that compare an interrupted run with it; steps enough that a kill
/// after step 3 comes before the run's end on a loaded machine.
/// </summary>
public sealed class UninterruptedRun : IAsyncLifetime
{
    public const int Steps = 12;
    private readonly string _root = System.IO.Directory.CreateTempSubdirectory("dapo-straight-").FullName;

    public string Directory => Path.Combine(_root, "straight");

    public async Task InitializeAsync()
    {
        await using var train = TrainCommandTests.Train(Directory, Steps);
        var code = await train.WaitForExitAsync(TrainCommandTests.Timeout);
        if (code != 0) throw new InvalidOperationException($"The uninterrupted run failed ({code}):\n{train.Output}");
    }

    public Task DisposeAsync()
    {
        System.IO.Directory.Delete(_root, recursive: true);
        return Task.CompletedTask;
    }
}

/// <summary>
/// `dapo-silo train` as a user runs it: one process, one embedded silo, grain state in files under the run directory,
/// interrupted and re-run. What the run stored is read after its process exits, through the grains of an in-process
/// silo over the same files (<see cref="RunStateReader"/>).
/// </summary>
public sealed class TrainCommandTests(UninterruptedRun straight) : IDisposable, IClassFixture<UninterruptedRun>
{
    internal static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);
    private readonly string _root = Directory.CreateTempSubdirectory("dapo-train-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    internal static SiloProcess Train(string runDir, int steps, params string[] extra) =>
        SiloProcess.Start(SiloProcess.SiloDll, ["train", "--run-dir", runDir, "--override", TestRecipes.Tiny(steps), .. extra]);

    /// <summary>Keys of a metrics row that depend on the machine's speed or the clock, not on what was trained.</summary>
    private static bool IsTiming(string key) => key.StartsWith("timing/", StringComparison.Ordinal) ||
                                                key.StartsWith("throughput/", StringComparison.Ordinal) || key == "time";

    /// <summary>The metrics rows of a run without their timing keys, one JSON text per row (keys sorted).</summary>
    private static List<string> MetricsWithoutTimings(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Where(l => l.Length > 0).Select(l =>
        {
            var row = JsonNode.Parse(l)!.AsObject();
            return new JsonObject(row.Where(p => !IsTiming(p.Key)).OrderBy(p => p.Key, StringComparer.Ordinal)
                .Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone()))).ToJsonString();
        }).ToList();

    /// <summary>
    /// The prompts each step drew (dataset index and draw ordinal, in draw order) and how they ended, in the step's
    /// last opening: a step the killed process had started was drawn again after the restart.
    /// </summary>
    private static async Task<List<string>> DrawsAsync(string runDir, int steps)
    {
        await using var reader = await RunStateReader.OpenAsync(runDir);
        var draws = new List<string>();
        for (var step = 1; step <= steps; step++)
        {
            var ledger = await reader.StepAsync(step) ?? throw new InvalidOperationException($"{runDir}: step {step} was never opened.");
            Assert.Equal(StepPhase.Done, ledger.Phase);
            draws.AddRange((await reader.PromptsAsync(step)).Where(p => p.Opening == ledger.Opening)
                .Select(p => $"step {step}: #{p.DatasetIndex} draw {p.DrawOrdinal} {p.Status}"));
        }
        return draws;
    }

    private static byte[] Policy(string runDir, int version) =>
        File.ReadAllBytes(Path.Combine(runDir, "blobs", "runs", Path.GetFileName(runDir), "policy", $"{version:D8}"));

    private static CheckpointStore Checkpoints(string runDir) =>
        new(new LocalDirectoryBlobStore(Path.Combine(runDir, "blobs")), Path.GetFileName(runDir));

    /// <summary>Asserts an interrupted run, re-run to its end, trained exactly what the uninterrupted one did.</summary>
    private async Task AssertSameAsUninterruptedAsync(string runDir)
    {
        const int steps = UninterruptedRun.Steps;
        Assert.Equal(await DrawsAsync(straight.Directory, steps), await DrawsAsync(runDir, steps));
        // Every step once, with the figures of the uninterrupted run: the rows of steps done again were replaced.
        Assert.Equal(MetricsWithoutTimings(straight.Directory), MetricsWithoutTimings(runDir));
        Assert.Equal(Policy(straight.Directory, steps), Policy(runDir, steps));
        await using var reader = await RunStateReader.OpenAsync(runDir);
        Assert.Empty(await reader.AuditAsync());
        Assert.Equal(RunStatus.Completed, (await reader.RunAsync()).Status);
    }

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
            AssertNoErrorLogged(train);
        }
        var metrics = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal([1, 2, 3, 4], metrics.Select(m => (int)m["step"]!));
        foreach (var key in new[] { "critic/accuracy", "actor/entropy", "train/num_gen_batches", "timing/sampling_s", "timing/grains_s", "timing/blob_s",
                     "throughput/tokens_per_s", "cluster/rollout_workers" })
            Assert.All(metrics, m => Assert.True(m.ContainsKey(key), $"metrics lack {key}"));
        Assert.True(metrics[3].ContainsKey("eval/avg@2"));

        // The grain state files of a real run: one folder per state name, then per grain type.
        Assert.True(File.Exists(Path.Combine(dir, "grains", "learner", "learner", "demo.state")));
        Assert.Equal(["learner", "prompt", "registry", "step"], Directory.GetDirectories(Path.Combine(dir, "grains")).Select(Path.GetFileName).Order());
        Assert.False(File.Exists(Path.Combine(dir, "silo.json")), "the silo's gateway file is removed when it stops");
        await using (var reader = await RunStateReader.OpenAsync(dir))
        {
            Assert.Empty(await reader.AuditAsync());
            var run = await reader.RunAsync();
            Assert.Equal((RunStatus.Completed, 4, 4, 5), (run.Status, run.PolicyVersion, run.LatestCheckpoint, run.Step));
            for (var step = 1; step <= 4; step++)
                Assert.Equal(StepPhase.Done, (await reader.StepAsync(step))!.Phase);
        }
        var listed = await Checkpoints(dir).ListAsync(CancellationToken.None);
        Assert.Equal([4, 3, 2], listed.Select(c => c.Step));
        Assert.All(listed, c => Assert.True(c.Complete));
        // Pruned checkpoints leave no empty folders behind.
        Assert.Equal(3, Directory.GetDirectories(Path.Combine(dir, "blobs", "runs", "demo", "checkpoints")).Length);

        await using var again = Train(dir, 4);
        Assert.Equal(0, await again.WaitForExitAsync(Timeout));
        Assert.Contains(again.Lines, l => l.Contains("is already completed", StringComparison.Ordinal));
        AssertNoErrorLogged(again);
    }

    /// <summary>A run that went well logs no error, its silo's start and stop included.</summary>
    private static void AssertNoErrorLogged(SiloProcess train) =>
        Assert.DoesNotContain(train.Lines, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\d\d:\d\d:\d\d (fail|crit): "));

    [Fact]
    public async Task An_interrupted_run_resumes_at_its_checkpoint_and_continues_exactly_as_an_uninterrupted_one()
    {
        const int steps = UninterruptedRun.Steps;
        var interrupted = Path.Combine(_root, "interrupted");
        await using (var train = Train(interrupted, steps))
        {
            await train.WaitForLineAsync($"step   3/{steps}", Timeout);
            train.Kill();
            await train.WaitForExitAsync(Timeout);
        }
        await using (var reader = await RunStateReader.OpenAsync(interrupted))
        {
            var run = await reader.RunAsync();
            Assert.Equal(RunStatus.Running, run.Status);
            // The kill may cut a step short: the ledger is sound all the same.
            Assert.Empty(await reader.AuditAsync());
        }
        // The newest complete checkpoint: a step's checkpoint is written while the next step samples, so the kill may
        // come before the printed step's checkpoint is complete, or between its write and the learner's state naming it.
        var resumedFrom = (await Checkpoints(interrupted).LatestAsync(null, CancellationToken.None))!.Meta.Step;
        Assert.InRange(resumedFrom, 2, steps - 1);
        await using (var train = Train(interrupted, steps))
        {
            Assert.Equal(0, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.StartsWith("Resuming run 'interrupted'", StringComparison.Ordinal));
            Assert.Contains(train.Lines, l => l.Contains($"resumed from the checkpoint of step {resumedFrom}", StringComparison.Ordinal));
            Assert.DoesNotContain(train.Lines, l => l.StartsWith($"step {resumedFrom,3}/", StringComparison.Ordinal));
            Assert.Contains(train.Lines, l => l.StartsWith($"step {steps,3}/{steps}", StringComparison.Ordinal));
            Assert.Contains(train.Lines, l => l.StartsWith("Done: held-out avg@2", StringComparison.Ordinal));
        }
        await AssertSameAsUninterruptedAsync(interrupted);
    }

    [Fact]
    public async Task A_second_train_on_a_run_that_is_training_is_refused_and_changes_nothing()
    {
        var dir = Path.Combine(_root, "busy");
        await using var first = Train(dir, 500);
        await first.WaitForLineAsync("step   2/500", Timeout);
        var silo = File.ReadAllText(EmbeddedSiloFile.PathIn(dir));
        await using (var second = Train(dir, 500))
        {
            Assert.Equal(2, await second.WaitForExitAsync(Timeout));
            Assert.Contains(second.Lines, l => l.StartsWith($"Run 'busy' in {dir} is being trained by another process (pid {first.Id}); nothing was changed.",
                StringComparison.Ordinal));
            Assert.DoesNotContain(second.Lines, l => l.StartsWith("Resuming", StringComparison.Ordinal));
        }
        // The first trains on, undisturbed: its silo's file is still its own, and it reaches later steps.
        Assert.False(first.HasExited);
        Assert.Equal(silo, File.ReadAllText(EmbeddedSiloFile.PathIn(dir)));
        var reached = int.Parse(first.Lines.Last(l => l.StartsWith("step ", StringComparison.Ordinal))[5..8], System.Globalization.CultureInfo.InvariantCulture);
        await first.WaitForLineAsync($"step {reached + 2,3}/500", Timeout);
        // Killed, it leaves no lock behind: the same command resumes it.
        first.Kill();
        await first.WaitForExitAsync(Timeout);
        await using (var again = Train(dir, 500))
        {
            await again.WaitForLineAsync("Resuming run 'busy'", Timeout);
            again.Kill();
        }
        await using var reader = await RunStateReader.OpenAsync(dir);
        Assert.Empty(await reader.AuditAsync());
    }

    [Fact]
    public async Task A_completed_run_given_more_steps_trains_on_exactly_as_one_started_with_them()
    {
        const int steps = UninterruptedRun.Steps;
        var shorter = Path.Combine(_root, "shorter");
        await using (var train = Train(shorter, steps / 2))
            Assert.Equal(0, await train.WaitForExitAsync(Timeout));
        await using (var train = Train(shorter, steps))
        {
            Assert.Equal(0, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.StartsWith($"Training further, to {steps} steps, run 'shorter'", StringComparison.Ordinal));
            Assert.Contains(train.Lines, l => l.Contains($"resumed from the checkpoint of step {steps / 2}", StringComparison.Ordinal));
            Assert.DoesNotContain(train.Lines, l => l.StartsWith($"step {steps / 2,3}/", StringComparison.Ordinal));
            Assert.Contains(train.Lines, l => l.StartsWith($"step {steps,3}/{steps}", StringComparison.Ordinal));
            AssertNoErrorLogged(train);
        }
        // The step the shorter run ended on was evaluated and checkpointed in both (evaluations every 2 steps).
        await AssertSameAsUninterruptedAsync(shorter);

        // Fewer steps than it has: the finished run is reported, as it is.
        await using (var train = Train(shorter, steps / 2))
        {
            Assert.Equal(0, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.Contains("was trained with another recipe or options than these", StringComparison.Ordinal));
            Assert.Contains(train.Lines, l => l.Contains("is already completed", StringComparison.Ordinal));
        }
        await using var reader = await RunStateReader.OpenAsync(shorter);
        var run = await reader.RunAsync();
        Assert.Equal((RunStatus.Completed, steps + 1), (run.Status, run.Step));
    }

    [Fact]
    public async Task A_corrupt_newest_checkpoint_is_skipped_and_the_run_resumes_from_the_one_before_exactly_as_an_uninterrupted_one()
    {
        const int steps = UninterruptedRun.Steps;
        var dir = Path.Combine(_root, "corrupt");
        // A run that ends early and is then trained further resumes from its newest checkpoint, as a killed one does;
        // ending it by its steps rather than by a kill keeps a loaded machine from racing the kill to the run's end.
        await using (var train = Train(dir, steps - 3))
            Assert.Equal(0, await train.WaitForExitAsync(Timeout));
        var complete = (await Checkpoints(dir).ListAsync(CancellationToken.None)).Where(c => c.Complete).Select(c => c.Step).Order().ToList();
        Assert.True(complete.Count >= 2, $"complete checkpoints: {string.Join(", ", complete)}");
        var (newest, older) = (complete[^1], complete[^2]);
        Assert.Equal((steps - 3, steps - 4), (newest, older));
        var state = Path.Combine(dir, "blobs", "runs", "corrupt", "checkpoints", $"{newest:D8}", "state.bin");
        var bytes = File.ReadAllBytes(state);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.WriteAllBytes(state, bytes);

        await using (var train = Train(dir, steps))
        {
            Assert.Equal(0, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.Contains($"skipping the checkpoint of step {newest}", StringComparison.Ordinal));
            Assert.Contains(train.Lines, l => l.Contains($"resumed from the checkpoint of step {older}", StringComparison.Ordinal));
            Assert.Contains(train.Lines, l => l.StartsWith("Done: held-out avg@2", StringComparison.Ordinal));
        }
        await AssertSameAsUninterruptedAsync(dir);
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
        await using (var reader = await RunStateReader.OpenAsync(dir))
        {
            var prompts = await reader.PromptsAsync(1);
            Assert.NotEmpty(prompts);
            var resources = await reader.ResourcesAsync();
            Assert.All(prompts, p => Assert.Matches(@"^Q: \d\+\d=", resources.ProblemText(p.DatasetIndex)));
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
        // Weights that are not the engine's: refused from their header, before the run starts.
        var garbage = Path.Combine(_root, "garbage.weights");
        File.WriteAllBytes(garbage, new byte[1000]);
        await using (var train = Train(refused, 2, "--init-weights", garbage))
        {
            Assert.Equal(2, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.Contains($"InitialWeights: {garbage} is not a file of policy weights", StringComparison.Ordinal));
        }
        Assert.False(Directory.Exists(refused));
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
        // Without the variable, whatever this machine's environment sets: Dapo's own choice, or OpenBLAS's.
        await using (var train = SiloProcess.Start(SiloProcess.SiloDll, ["train", "--run-dir", Path.Combine(_root, "kernel"), "--override", TestRecipes.Tiny(2)],
                         new Dictionary<string, string> { [OpenBlasKernel.Variable] = "" }))
        {
            var line = await train.WaitForLineAsync("BLAS: OpenBLAS", Timeout);
            Assert.Matches(@"engine: 1 thread\(s\), BLAS: OpenBLAS [0-9.]+, kernel \w+ \((chosen by Dapo|OpenBLAS's own choice)", line);
            train.Kill();
        }
        // OpenBLAS's SSE3 kernel, the one it falls back to on a CPU it does not know.
        await using (var train = SiloProcess.Start(SiloProcess.SiloDll, ["train", "--run-dir", Path.Combine(_root, "fallback"), "--override", TestRecipes.Tiny(2)],
                         new Dictionary<string, string> { [OpenBlasKernel.Variable] = "Prescott" }))
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
        Assert.False(Directory.Exists(dir), "a refused run leaves nothing behind");
        // A run directory that cannot be one (a file in its place, or on its path): named, in one line.
        var file = Path.Combine(_root, "a-file");
        File.WriteAllText(file, "kept");
        foreach (var notADirectory in new[] { file, Path.Combine(file, "run") })
        {
            await using var train = SiloProcess.Start(SiloProcess.SiloDll, ["train", "--run-dir", notADirectory]);
            Assert.Equal(2, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.StartsWith($"Cannot use {notADirectory} as the run directory (--run-dir): ", StringComparison.Ordinal));
            Assert.DoesNotContain(train.Lines, l => l.Contains("   at ", StringComparison.Ordinal));
        }
        Assert.Equal("kept", File.ReadAllText(file));
        // A malformed appsettings.json: its file, line and column, in one line.
        var config = Directory.CreateDirectory(Path.Combine(_root, "config")).FullName;
        File.WriteAllText(Path.Combine(config, "appsettings.json"), "{\n  \"Silo\": {}\n  \"Blobs\": {}\n}\n");
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
        // A device this machine's engine does not have: refused before the silo starts, not when the learner builds the model.
        if (!Dapo.Torch.TorchEngine.CudaAvailable)
        {
            await using var train = SiloProcess.Start(SiloProcess.SiloDll, ["train", "--run-dir", dir, "--override", "{\"Model\":{\"Device\":\"Cuda\"}}"]);
            Assert.Equal(2, await train.WaitForExitAsync(Timeout));
            Assert.Contains(train.Lines, l => l.Contains("this machine's engine has no CUDA device", StringComparison.Ordinal));
        }
        Assert.False(Directory.Exists(dir));

        // A run interrupted early, then a command with other options: refused, so the run can still be resumed. (Steps
        // enough that a loaded machine cannot finish the run before the kill comes.)
        await using (var train = Train(dir, 500))
        {
            // The run exists once the learner started it (its warm-start follows).
            await train.WaitForLineAsync("no checkpoint: supervised warm-start first", Timeout);
            train.Kill();
            await train.WaitForExitAsync(Timeout);
        }
        IReadOnlyDictionary<string, string> Stored() => new[] { "grains", "blobs" }
            .SelectMany(d => DirectorySnapshot.Take(Path.Combine(dir, d)).Select(f => KeyValuePair.Create(Path.Combine(d, f.Key), f.Value)))
            .ToDictionary();
        var before = Stored();
        Assert.NotEmpty(before);
        await using (var other = Train(dir, 500, "--seed", "7"))
        {
            Assert.Equal(2, await other.WaitForExitAsync(Timeout));
            Assert.Contains(other.Lines, l => l.Contains("was started with another recipe or options; nothing was changed", StringComparison.Ordinal));
        }
        Assert.Equal(before, Stored());
        await using var reader = await RunStateReader.OpenAsync(dir);
        var run = await reader.RunAsync();
        Assert.Equal(RunStatus.Running, run.Status);
        Assert.Contains("\"Steps\":500", run.SpecJson);
    }
}
