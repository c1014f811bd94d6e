using Dapo.Grains.Blobs;
using Dapo.Grains.Checkpoints;
using Dapo.Grains.Tests.Infrastructure;
using Dapo.Core.Data;
using Dapo.Testing;
using Dapo.Torch;
using Microsoft.Extensions.Logging.Abstractions;

namespace Dapo.Grains.Tests.Checkpoints;

/// <summary>Checkpoints in blob storage: data first, manifest last, and "latest" only ever a complete one.</summary>
public sealed class CheckpointStoreTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("dapo-ckpt-").FullName;
    private static readonly CancellationToken None = CancellationToken.None;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    internal static Checkpoint Make(int step, int size = 1000) => new(
        new CheckpointMeta(step, step, new CursorState(100, 7, true, 0, step), 7, "{\"spec\":1}", DateTimeOffset.UnixEpoch),
        NativeBytes.CopyOf(Bytes(step, size)));

    internal static byte[] Bytes(int step, int size = 1000) => Enumerable.Range(0, size).Select(i => (byte)(i * 31 + step)).ToArray();

    private IBlobStore Local() => new LocalDirectoryBlobStore(_root, NullLogger<LocalDirectoryBlobStore>.Instance);

    [Fact]
    public async Task The_newest_complete_checkpoint_is_latest_and_round_trips()
    {
        var store = new CheckpointStore(Local(), "r");
        Assert.Null(await store.LatestAsync(null, None));
        await store.WriteAsync(Make(1), None);
        await store.WriteAsync(Make(2), None);
        var latest = (await store.LatestAsync(null, None))!;
        Assert.Equal(2, latest.Meta.Step);
        Assert.Equal(Bytes(2), latest.TrainingState.ToArray());
        Assert.Equal(new CursorState(100, 7, true, 0, 2), latest.Meta.Cursor);
        Assert.Equal([2, 1], (await store.ListAsync(None)).Select(c => c.Step));
    }

    [Fact]
    public async Task A_training_state_past_2_GB_is_written_and_read_without_a_managed_array()
    {
        // Qwen2.5-0.5B's training state is 5.9 GB; 2.2 GB is past what one managed array holds (Array.MaxLength).
        const long size = (2L << 30) + (200L << 20);
        var store = new CheckpointStore(Local(), "r");
        using var state = await NativeBytes.ReadAsync(new GeneratedStream(size, seed: 11), size, None);
        await store.WriteAsync(new Checkpoint(Make(4).Meta, state.Share()), None);

        using var latest = (await store.LatestAsync(null, None))!;
        Assert.Equal(size, latest.TrainingState.Length);
        await using var expected = new GeneratedStream(size, seed: 11);
        Assert.True(await latest.TrainingState.ContentEqualsAsync(expected, None));
        Assert.Equal(size, (await store.ListAsync(None)).Single().Size - (await Local().GetInfoAsync("runs/r/checkpoints/00000004/meta.json", None))!.Size
            - (await Local().GetInfoAsync("runs/r/checkpoints/00000004/manifest.json", None))!.Size);
        Assert.Contains("OpenRead", Assert.Throws<InvalidOperationException>(() => latest.TrainingState.ToArray()).Message);
    }

    [Fact]
    public async Task A_checkpoint_without_manifest_or_with_a_bad_checksum_is_never_latest()
    {
        var blobs = Local();
        var store = new CheckpointStore(blobs, "r");
        await store.WriteAsync(Make(1), None);
        // A torn write: the data of step 2 but no manifest.
        await blobs.PutAsync("runs/r/checkpoints/00000002/state.bin", Bytes(2), None);
        // Step 3 complete, then its data damaged.
        await store.WriteAsync(Make(3), None);
        await blobs.PutAsync("runs/r/checkpoints/00000003/state.bin", new byte[10], None);

        var skipped = new List<(int, string)>();
        var latest = await store.LatestAsync((step, problem) => skipped.Add((step, problem)), None);
        Assert.Equal(1, latest!.Meta.Step);
        Assert.Equal([(3, "state.bin does not match its checksum"), (2, "no manifest (incomplete write)")], skipped);
        var listed = await store.ListAsync(None);
        Assert.Equal([false, false, true], listed.Select(c => c.Complete));
    }

    [Fact]
    public async Task Pruning_keeps_the_newest_complete_checkpoints_and_recent_policies()
    {
        var blobs = Local();
        var store = new CheckpointStore(blobs, "r");
        for (var step = 0; step <= 5; step++)
        {
            await store.WriteAsync(Make(step), None);
            Assert.Equal(PolicyPublication.Created, await store.PublishPolicyAsync(step, NativeBytes.CopyOf([1, 2, (byte)step]), None));
        }
        await store.PruneAsync(keep: 2, keepPoliciesFrom: 4, None);
        Assert.Equal([5, 4], (await store.ListAsync(None)).Select(c => c.Step));
        Assert.Null(await store.GetPolicyAsync(3, None));
        Assert.Equal([1, 2, 4], (await store.GetPolicyAsync(4, None))!.ToArray());
        // Pruning leaves no empty folders behind in the local store.
        Assert.Equal(["00000004", "00000005"],
            Directory.GetDirectories(Path.Combine(_root, "runs", "r", "checkpoints")).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task A_policy_version_is_published_once_and_a_second_publication_learns_whose_it_is()
    {
        var store = new CheckpointStore(Local(), "r");
        Assert.Equal(PolicyPublication.Created, await store.PublishPolicyAsync(3, NativeBytes.CopyOf([1, 2, 3]), None));
        // The same weights again: a retry of that publication, or the same step computed again.
        Assert.Equal(PolicyPublication.AlreadyPublished, await store.PublishPolicyAsync(3, NativeBytes.CopyOf([1, 2, 3]), None));
        // Other weights: another learner's version, which the publication does not touch.
        Assert.Equal(PolicyPublication.Conflict, await store.PublishPolicyAsync(3, NativeBytes.CopyOf([9, 9]), None));
        Assert.Equal([1, 2, 3], (await store.GetPolicyAsync(3, None))!.ToArray());

        await store.ReplacePolicyAsync(3, NativeBytes.CopyOf([9, 9]), None);
        Assert.Equal([9, 9], (await store.GetPolicyAsync(3, None))!.ToArray());
    }

    [Fact]
    public async Task Two_learners_publishing_one_version_at_once_never_both_win()
    {
        for (var version = 1; version <= 20; version++)
        {
            var first = new CheckpointStore(Local(), "r");
            var second = new CheckpointStore(Local(), "r");
            var v = version;
            var outcomes = await Task.WhenAll(
                Task.Run(() => first.PublishPolicyAsync(v, NativeBytes.CopyOf(Enumerable.Repeat((byte)1, 100_000).ToArray()), None)),
                Task.Run(() => second.PublishPolicyAsync(v, NativeBytes.CopyOf(Enumerable.Repeat((byte)2, 100_000).ToArray()), None)));
            Assert.Equal([PolicyPublication.Created, PolicyPublication.Conflict], outcomes.Order());
            var winner = (byte)(Array.IndexOf(outcomes, PolicyPublication.Created) + 1);
            Assert.All((await first.GetPolicyAsync(v, None))!.ToArray(), b => Assert.Equal(winner, b));
        }
    }
}

/// <summary>Blob storage going away in the middle of a checkpoint, on a real Azurite.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class CheckpointOutageTests
{
    [Fact]
    public async Task A_checkpoint_cut_off_by_an_outage_fails_cleanly_leaves_latest_complete_and_succeeds_when_retried()
    {
        await using var azurite = await AzuriteProcess.StartNewAsync();
        var options = new BlobStorageOptions
        {
            Kind = BlobStoreKind.Azure, ConnectionString = azurite.ConnectionString, Container = "ckpt",
            MaxRetries = 1, RetryDelay = TimeSpan.FromMilliseconds(50), NetworkTimeout = TimeSpan.FromSeconds(5),
        };
        var blobs = BlobStoreFactory.Create(options);
        await blobs.EnsureContainerAsync(CancellationToken.None);
        var store = new CheckpointStore(blobs, "r");
        await store.WriteAsync(CheckpointStoreTests.Make(1), CancellationToken.None);

        // Storage stops right after the checkpoint's data is written, before its manifest.
        var failing = new StopAfterFirstPut(blobs, azurite);
        var error = await Assert.ThrowsAnyAsync<IOException>(() =>
            new CheckpointStore(failing, "r").WriteAsync(CheckpointStoreTests.Make(2, size: 200_000), CancellationToken.None));
        Assert.Contains("127.0.0.1", error.Message);
        await azurite.StartAsync();

        Assert.Equal(1, (await store.LatestAsync(null, CancellationToken.None))!.Meta.Step);
        await store.WriteAsync(CheckpointStoreTests.Make(2, size: 200_000), CancellationToken.None);
        Assert.Equal(2, (await store.LatestAsync(null, CancellationToken.None))!.Meta.Step);
    }

    /// <summary>Stops Azurite after the first successful put through it.</summary>
    private sealed class StopAfterFirstPut(IBlobStore inner, AzuriteProcess azurite) : IBlobStore
    {
        private bool _stopped;
        public string Description => inner.Description;
        public Task EnsureContainerAsync(CancellationToken ct) => inner.EnsureContainerAsync(ct);
        public async Task PutAsync(string name, ReadOnlyMemory<byte> content, CancellationToken ct)
        {
            await inner.PutAsync(name, content, ct);
            if (_stopped) return;
            _stopped = true;
            await azurite.StopAsync(ct);
        }
        public Task PutAsync(string name, Stream content, CancellationToken ct) => inner.PutAsync(name, content, ct);
        public Task<bool> TryCreateAsync(string name, ReadOnlyMemory<byte> content, CancellationToken ct) => inner.TryCreateAsync(name, content, ct);
        public Task<bool> TryCreateAsync(string name, Stream content, CancellationToken ct) => inner.TryCreateAsync(name, content, ct);
        public Task<byte[]?> GetAsync(string name, CancellationToken ct) => inner.GetAsync(name, ct);
        public Task<Stream?> OpenReadAsync(string name, CancellationToken ct) => inner.OpenReadAsync(name, ct);
        public Task<BlobInfo?> GetInfoAsync(string name, CancellationToken ct) => inner.GetInfoAsync(name, ct);
        public IAsyncEnumerable<BlobInfo> ListAsync(string prefix, CancellationToken ct) => inner.ListAsync(prefix, ct);
        public Task<bool> DeleteAsync(string name, CancellationToken ct) => inner.DeleteAsync(name, ct);
    }
}
