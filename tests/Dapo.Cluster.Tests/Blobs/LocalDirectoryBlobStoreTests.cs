using Dapo.Cluster.Blobs;
using static Dapo.Cluster.Tests.Blobs.BlobTestData;

namespace Dapo.Cluster.Tests.Blobs;

/// <summary>The blob store contract on <see cref="LocalDirectoryBlobStore"/>, plus what only a directory can show.</summary>
public sealed class LocalDirectoryBlobStoreTests : BlobStoreContractTests
{
    private readonly string _temp = Directory.CreateTempSubdirectory("dapo-blobs-").FullName;
    private int _stores;

    protected override IBlobStore CreateStore() =>
        new LocalDirectoryBlobStore(Path.Combine(_temp, $"store{Interlocked.Increment(ref _stores)}"));

    private string Root => ((LocalDirectoryBlobStore)Store).Root;

    public override Task DisposeAsync()
    {
        Directory.Delete(_temp, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Blobs_are_files_under_the_root()
    {
        await Store.PutAsync("runs/r1/policy/3", Bytes(42), Ct);
        Assert.Equal(Bytes(42), await File.ReadAllBytesAsync(Path.Combine(Root, "runs", "r1", "policy", "3"), Ct));
    }

    [Fact]
    public async Task A_failed_write_leaves_no_temporary_file_and_the_old_file_intact()
    {
        var old = Bytes(1000, seed: 1);
        await Store.PutAsync("runs/r1/policy/1", old, Ct);
        await Assert.ThrowsAsync<SourceFailedException>(() =>
            Store.PutAsync("runs/r1/policy/1", ScriptedStream.FailingAt(Bytes(3 * MiB, seed: 2), 2 * MiB), Ct));

        Assert.Equal([Path.Combine(Root, "runs", "r1", "policy", "1")], Directory.GetFiles(Root, "*", SearchOption.AllDirectories));
        Assert.Equal(old, await File.ReadAllBytesAsync(Path.Combine(Root, "runs", "r1", "policy", "1"), Ct));
    }

    [Fact]
    public async Task Temporary_files_left_by_a_crash_are_never_listed()
    {
        await Store.PutAsync("runs/r1/policy/1", Bytes(10), Ct);
        // What a process killed between writing and renaming leaves behind, and a hidden folder.
        await File.WriteAllBytesAsync(Path.Combine(Root, "runs", "r1", "policy", ".2.0123456789abcdef.tmp"), Bytes(5), Ct);
        Directory.CreateDirectory(Path.Combine(Root, "runs", ".trash"));
        await File.WriteAllBytesAsync(Path.Combine(Root, "runs", ".trash", "x"), Bytes(5), Ct);

        Assert.Equal(["runs/r1/policy/1"], (await ListAsync("")).Select(b => b.Name));
        Assert.Equal(["runs/r1/policy/1"], (await ListAsync("runs/r1/policy/")).Select(b => b.Name));
    }

    [Fact]
    public async Task A_reader_keeps_the_old_content_while_a_put_replaces_it()
    {
        await Store.PutAsync("runs/r1/policy/1", Bytes(100_000, seed: 1), Ct);
        await using var reader = await Store.OpenReadAsync("runs/r1/policy/1", Ct);
        await Store.PutAsync("runs/r1/policy/1", Bytes(50, seed: 2), Ct);

        var copy = new MemoryStream();
        await reader!.CopyToAsync(copy, Ct);
        Assert.Equal(Bytes(100_000, seed: 1), copy.ToArray());
        Assert.Equal(Bytes(50, seed: 2), await Store.GetAsync("runs/r1/policy/1", Ct));
    }
}
