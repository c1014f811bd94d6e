using Dapo.Grains.Blobs;
using Dapo.Grains.Grains;
using Dapo.Grains.Inspection;

namespace Dapo.Grains.Tests.Inspection;

/// <summary>
/// The points the dashboard plots and `watch` lists are those of the steps the run counts finished. The learner
/// writes a step's metrics row before it counts the step, so a row can be ahead of the count (the race that made the
/// dashboard plot one point more than the steps it showed).
/// </summary>
public sealed class InspectorPointsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("dapo-points-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task A_metrics_row_written_before_its_step_is_counted_is_not_plotted_until_the_step_is()
    {
        var blobs = new LocalDirectoryBlobStore(_root);
        for (var step = 1; step <= 3; step++)
            await blobs.PutAsync(MetricsLog.BlobName("r", step), System.Text.Encoding.UTF8.GetBytes($$"""{"step":{{step}},"actor/entropy":0.{{step}}}"""),
                CancellationToken.None);
        await using var session = new InspectionSession(new UnusedReader(), blobs, new ClusterTarget.Embedded(_root), "r");
        var inspector = new Inspector(session);

        // Step 3 is open (its row already written): steps 1 and 2 are finished.
        var open = await inspector.PointsAsync(Run(step: 3), 0, CancellationToken.None);
        Assert.Equal([1, 2], open.Select(p => p.Step));
        Assert.Equal(0.2, open[^1].Entropy);

        var counted = await inspector.PointsAsync(Run(step: 4), 1, CancellationToken.None);
        Assert.Equal([2, 3], counted.Select(p => p.Step));
    }

    private static RunInfo Run(int step) =>
        new("r", "{}", RunStatus.Running, step, step - 1, null, null, 1, "sampling", "", "silo", null, null, 0);

    /// <summary>The points come from blob storage only: no grain state is read.</summary>
    private sealed class UnusedReader : IRunReader
    {
        public string Description => "unused";
        public bool IsHistory => false;
        public Task<IReadOnlyList<string>> ListRunIdsAsync(CancellationToken cancellationToken) => throw new NotSupportedException();
        public Task<RunInfo?> GetRunAsync(string runId, CancellationToken cancellationToken) => throw new NotSupportedException();
        public Task<StepLedger?> GetStepAsync(string runId, int step, CancellationToken cancellationToken) => throw new NotSupportedException();
        public Task<IReadOnlyList<PromptEntry>> ListPromptsAsync(string runId, int step, CancellationToken cancellationToken) => throw new NotSupportedException();
        public Task<PromptGroup?> GetPromptAsync(string runId, int step, long promptId, CancellationToken cancellationToken) => throw new NotSupportedException();
        public Task<IReadOnlyList<SiloInfo>> ListSilosAsync(CancellationToken cancellationToken) => throw new NotSupportedException();
        public Task<IReadOnlyList<RolloutInfo>> ListRolloutsAsync(CancellationToken cancellationToken) => throw new NotSupportedException();
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
