using Dapo.Grains.Blobs;
using static Dapo.Grains.Tests.Blobs.BlobTestData;

namespace Dapo.Grains.Tests.Blobs;

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

    [Fact]
    public async Task Deleting_the_last_blob_of_a_folder_removes_the_folders_it_empties_but_never_the_root()
    {
        await Store.PutAsync("runs/r1/checkpoints/00000001/state.bin", Bytes(10), Ct);
        await Store.PutAsync("runs/r1/checkpoints/00000001/manifest.json", Bytes(10), Ct);
        await Store.PutAsync("runs/r1/checkpoints/00000002/state.bin", Bytes(10), Ct);
        await Store.PutAsync("runs/r1/policy/00000001", Bytes(10), Ct);

        // What pruning does: the checkpoint of step 1 goes, manifest first.
        await Store.DeleteAsync("runs/r1/checkpoints/00000001/manifest.json", Ct);
        Assert.True(Directory.Exists(Path.Combine(Root, "runs", "r1", "checkpoints", "00000001"))); // state.bin is still there
        await Store.DeleteAsync("runs/r1/checkpoints/00000001/state.bin", Ct);
        Assert.Equal(["00000002"], Directory.GetDirectories(Path.Combine(Root, "runs", "r1", "checkpoints")).Select(Path.GetFileName));

        // Every blob gone: every folder gone, the root stays (an empty container, as on Azure).
        await Store.DeleteAsync("runs/r1/checkpoints/00000002/state.bin", Ct);
        await Store.DeleteAsync("runs/r1/policy/00000001", Ct);
        Assert.True(Directory.Exists(Root));
        Assert.Empty(Directory.GetFileSystemEntries(Root));
        await Store.PutAsync("runs/r1/policy/00000002", Bytes(10), Ct);
        Assert.Equal(["runs/r1/policy/00000002"], (await ListAsync("")).Select(b => b.Name));
    }

    [Fact]
    public async Task Empty_folders_left_by_older_versions_are_never_listed_and_take_puts_and_deletes()
    {
        // A run directory pruned by a version that left the folders behind.
        Directory.CreateDirectory(Path.Combine(Root, "runs", "r1", "checkpoints", "00000001"));
        Directory.CreateDirectory(Path.Combine(Root, "runs", "r1", "checkpoints", "00000002"));
        Directory.CreateDirectory(Path.Combine(Root, "runs", "r1", "policy"));

        Assert.Empty(await ListAsync(""));
        Assert.Empty(await ListAsync("runs/r1/checkpoints/"));
        await Store.PutAsync("runs/r1/checkpoints/00000002/state.bin", Bytes(10), Ct);
        Assert.True(await Store.TryCreateAsync("runs/r1/policy/00000002", Bytes(10), Ct));
        Assert.Equal(["runs/r1/checkpoints/00000002/state.bin", "runs/r1/policy/00000002"], (await ListAsync("")).Select(b => b.Name));

        Assert.True(await Store.DeleteAsync("runs/r1/checkpoints/00000002/state.bin", Ct));
        // Its own folder goes; the old empty sibling is left as it was, and so their parent.
        Assert.Equal(["00000001"], Directory.GetDirectories(Path.Combine(Root, "runs", "r1", "checkpoints")).Select(Path.GetFileName));
    }

    [Fact]
    public async Task Puts_into_a_folder_that_concurrent_deletes_keep_emptying_always_land()
    {
        // A delete removes the folder it empties; a put into that folder at the same moment must still land.
        for (var i = 0; i < 200; i++)
        {
            var createOnly = i % 2 == 1;
            await Store.PutAsync("runs/r1/checkpoints/00000001/state.bin", Bytes(10), Ct);
            var delete = Task.Run(() => Store.DeleteAsync("runs/r1/checkpoints/00000001/state.bin", Ct));
            var put = Task.Run(() => createOnly
                ? Store.TryCreateAsync("runs/r1/checkpoints/00000001/meta.json", Bytes(20), Ct)
                : Store.PutAsync("runs/r1/checkpoints/00000001/meta.json", Bytes(20), Ct));
            await Task.WhenAll(delete, put);
            Assert.Equal(Bytes(20), await Store.GetAsync("runs/r1/checkpoints/00000001/meta.json", Ct));
            Assert.True(await Store.DeleteAsync("runs/r1/checkpoints/00000001/meta.json", Ct));
        }
        Assert.Empty(Directory.GetFileSystemEntries(Root));
    }

    [Fact]
    public async Task A_lost_create_leaves_no_temporary_file()
    {
        Assert.True(await Store.TryCreateAsync("runs/r1/policy/1", Bytes(10, seed: 1), Ct));
        Assert.False(await Store.TryCreateAsync("runs/r1/policy/1", Bytes(10, seed: 2), Ct));
        Assert.False(await Store.TryCreateAsync("runs/r1/policy/1", ScriptedStream.Plain(Bytes(3 * MiB, seed: 2)), Ct));

        Assert.Equal([Path.Combine(Root, "runs", "r1", "policy", "1")], Directory.GetFiles(Root, "*", SearchOption.AllDirectories));
        Assert.Equal(Bytes(10, seed: 1), await File.ReadAllBytesAsync(Path.Combine(Root, "runs", "r1", "policy", "1"), Ct));
    }
}
