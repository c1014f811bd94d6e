using Dapo.Grains.Blobs;
using static Dapo.Grains.Tests.Blobs.BlobTestData;

namespace Dapo.Grains.Tests.Blobs;

/// <summary>
/// What every <see cref="IBlobStore"/> must do, run against each backend by a thin subclass that only says how to
/// make a store on a fresh container. Subclasses configure Azure with a 1 MiB single-upload limit and block size and
/// a List Blobs page size of 2, so block uploads, parallel transfers and paging are exercised with small data.
/// </summary>
public abstract class BlobStoreContractTests : IAsyncLifetime
{
    private IBlobStore? _store;

    protected IBlobStore Store => _store ?? throw new InvalidOperationException("InitializeAsync has not run.");

    protected CancellationToken Ct { get; } = Timeout();

    /// <summary>A store on a container that does not exist yet and that no other test uses.</summary>
    protected abstract IBlobStore CreateStore();

    public virtual async Task InitializeAsync()
    {
        _store = CreateStore();
        await _store.EnsureContainerAsync(Ct);
    }

    public virtual Task DisposeAsync() => Task.CompletedTask;

    public static TheoryData<int, bool> Sizes => new()
    {
        { 0, false }, { 0, true },
        { 1, false }, { 1, true },
        { MiB, false }, { MiB, true }, // the single-upload limit exactly
        { MiB + 1, false }, { MiB + 1, true }, // just over: two blocks, the second of one byte
        { 9 * MiB + 5, false }, { 9 * MiB + 5, true }, // ten blocks
    };

    [Theory]
    [MemberData(nameof(Sizes))]
    public async Task Put_then_get_returns_the_same_bytes(int size, bool fromStream)
    {
        var content = Bytes(size, seed: size);
        var name = $"runs/r1/policy/{size}";
        if (fromStream)
            await Store.PutAsync(name, ScriptedStream.Plain(content), Ct);
        else
            await Store.PutAsync(name, content, Ct);

        Assert.Equal(content, await Store.GetAsync(name, Ct));
        await using (var stream = await Store.OpenReadAsync(name, Ct))
        {
            Assert.NotNull(stream);
            var copy = new MemoryStream();
            await stream.CopyToAsync(copy, Ct);
            Assert.Equal(content, copy.ToArray());
        }
        var info = await Store.GetInfoAsync(name, Ct);
        Assert.NotNull(info);
        Assert.Equal(name, info.Name);
        Assert.Equal(size, info.Size);
        Assert.InRange(info.LastModified, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(5));
    }

    [Fact]
    public async Task Put_overwrites_previous_content_both_ways_between_single_and_block_uploads()
    {
        var small = Bytes(100, seed: 1);
        var large = Bytes(3 * MiB + 7, seed: 2);
        const string name = "runs/r1/checkpoints/000001/weights.bin";

        await Store.PutAsync(name, small, Ct);
        await Store.PutAsync(name, large, Ct);
        Assert.Equal(large, await Store.GetAsync(name, Ct));

        await Store.PutAsync(name, small, Ct);
        Assert.Equal(small, await Store.GetAsync(name, Ct));
        var listed = await ListAsync("runs/");
        Assert.Equal([(name, 100L)], listed.Select(b => (b.Name, b.Size)));
    }

    [Fact]
    public async Task Missing_blob_reads_as_null_and_delete_reports_false()
    {
        Assert.Null(await Store.GetAsync("runs/r1/policy/404", Ct));
        Assert.Null(await Store.OpenReadAsync("runs/r1/policy/404", Ct));
        Assert.Null(await Store.GetInfoAsync("runs/r1/policy/404", Ct));
        Assert.False(await Store.DeleteAsync("runs/r1/policy/404", Ct));
    }

    [Fact]
    public async Task Delete_removes_the_blob_and_is_idempotent()
    {
        await Store.PutAsync("runs/r1/policy/1", Bytes(10), Ct);
        await Store.PutAsync("runs/r1/policy/2", Bytes(20), Ct);

        Assert.True(await Store.DeleteAsync("runs/r1/policy/1", Ct));
        Assert.False(await Store.DeleteAsync("runs/r1/policy/1", Ct));

        Assert.Null(await Store.GetAsync("runs/r1/policy/1", Ct));
        Assert.Equal(["runs/r1/policy/2"], (await ListAsync("")).Select(b => b.Name));
    }

    [Fact]
    public async Task List_by_prefix_returns_matching_blobs_in_ordinal_order_across_pages()
    {
        string[] names =
        [
            "runs/r1/checkpoints/000010/manifest.json", "runs/r1/checkpoints/000010/weights.bin",
            "runs/r1/checkpoints/000002/manifest.json", "runs/r1/policy/1", "runs/r1/policy/10", "runs/r1/policy/2",
            "runs/r10/policy/1", "runs/r2/policy/1", "other/x",
        ];
        for (var i = 0; i < names.Length; i++)
            await Store.PutAsync(names[i], Bytes(i + 1, seed: i), Ct);

        // Page size 2 on Azure: "runs/r1/" is 6 blobs in 3 pages.
        var r1 = await ListAsync("runs/r1/");
        Assert.Equal(names.Where(n => n.StartsWith("runs/r1/")).Order(StringComparer.Ordinal), r1.Select(b => b.Name));
        Assert.All(r1, b => Assert.Equal(Array.IndexOf(names, b.Name) + 1, b.Size));
        Assert.All(r1, b => Assert.InRange(b.LastModified, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(5)));

        // A plain string prefix: "runs/r1" also matches "runs/r10/…", and a partial segment matches.
        Assert.Equal(7, (await ListAsync("runs/r1")).Count);
        Assert.Equal(
            ["runs/r1/checkpoints/000002/manifest.json", "runs/r1/checkpoints/000010/manifest.json", "runs/r1/checkpoints/000010/weights.bin"],
            (await ListAsync("runs/r1/check")).Select(b => b.Name));
        Assert.Equal(names.Order(StringComparer.Ordinal), (await ListAsync("")).Select(b => b.Name));
        Assert.Empty(await ListAsync("runs/r3/"));
        Assert.Empty(await ListAsync("nothing"));
    }

    [Fact]
    public async Task Concurrent_puts_of_different_blobs_all_land()
    {
        var contents = Enumerable.Range(0, 16).Select(i => Bytes(i * 100_000 + 1, seed: i)).ToArray();
        await Task.WhenAll(contents.Select((c, i) => Store.PutAsync($"runs/r1/slots/{i:D2}", c, Ct)));

        var listed = await ListAsync("runs/r1/slots/");
        Assert.Equal(16, listed.Count);
        for (var i = 0; i < contents.Length; i++)
            Assert.Equal(contents[i], await Store.GetAsync($"runs/r1/slots/{i:D2}", Ct));
    }

    [Fact]
    public async Task Concurrent_overwrites_of_one_blob_leave_exactly_one_whole_version()
    {
        // Block uploads (over 1 MiB on Azure): a mix of two uploads' blocks would match none of the versions. On
        // Azure the first commit discards the other uploads' staged blocks, so those fail with InvalidBlockList; the
        // local store lets the last rename win.
        var versions = Enumerable.Range(0, 4).Select(i => Bytes(2 * MiB + 3, seed: 100 + i)).ToArray();
        var puts = versions.Select(v => Store.PutAsync("runs/r1/policy/latest", ScriptedStream.Plain(v), Ct)).ToArray();
        try
        {
            await Task.WhenAll(puts);
        }
        catch (BlobStorageException e) when (e.ErrorCode == BlobErrorCodes.InvalidBlockList)
        {
            // checked below, per put
        }

        var succeeded = versions.Where((_, i) => puts[i].IsCompletedSuccessfully).ToList();
        Assert.NotEmpty(succeeded);
        Assert.All(puts.Where(p => !p.IsCompletedSuccessfully), p =>
            Assert.Equal(BlobErrorCodes.InvalidBlockList, Assert.IsType<BlobStorageException>(p.Exception!.InnerException).ErrorCode));
        var final = await Store.GetAsync("runs/r1/policy/latest", Ct);
        Assert.Contains(succeeded, v => v.AsSpan().SequenceEqual(final));
    }

    [Fact]
    public async Task A_put_whose_source_fails_leaves_the_previous_content_and_lists_nothing_new()
    {
        var old = Bytes(1000, seed: 1);
        await Store.PutAsync("runs/r1/checkpoints/000001/weights.bin", old, Ct);

        // Fails after 2.5 MiB: on Azure two blocks are staged by then, but never committed.
        var replacement = Bytes(4 * MiB, seed: 2);
        await Assert.ThrowsAsync<SourceFailedException>(() => Store.PutAsync("runs/r1/checkpoints/000001/weights.bin",
            ScriptedStream.FailingAt(replacement, 5 * MiB / 2), Ct));
        await Assert.ThrowsAsync<SourceFailedException>(() => Store.PutAsync("runs/r1/checkpoints/000001/optimizer.bin",
            ScriptedStream.FailingAt(replacement, 5 * MiB / 2), Ct));
        await Assert.ThrowsAsync<SourceFailedException>(() => Store.PutAsync("runs/r1/checkpoints/000001/small.bin",
            ScriptedStream.FailingAt(replacement, 10), Ct));

        Assert.Equal(old, await Store.GetAsync("runs/r1/checkpoints/000001/weights.bin", Ct));
        Assert.Null(await Store.GetAsync("runs/r1/checkpoints/000001/optimizer.bin", Ct));
        var listed = await ListAsync("");
        Assert.Equal([("runs/r1/checkpoints/000001/weights.bin", 1000L)], listed.Select(b => (b.Name, b.Size)));
    }

    [Fact]
    public async Task A_put_cancelled_midway_throws_and_leaves_the_previous_content()
    {
        var old = Bytes(1000, seed: 1);
        await Store.PutAsync("runs/r1/policy/1", old, Ct);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var stream = new ScriptedStream(Bytes(4 * MiB, seed: 2), 5 * MiB / 2, () =>
        {
            cancel.Cancel();
            return Task.CompletedTask;
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Store.PutAsync("runs/r1/policy/1", stream, cancel.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Store.PutAsync("runs/r1/policy/2", Bytes(10), cancel.Token));

        Assert.Equal(old, await Store.GetAsync("runs/r1/policy/1", Ct));
        Assert.Equal(["runs/r1/policy/1"], (await ListAsync("")).Select(b => b.Name));
    }

    public static TheoryData<int, bool> CreateSizes => new()
    {
        { 10, false }, { 10, true },
        { 3 * MiB + 7, false }, { 3 * MiB + 7, true }, // block uploads on Azure: the condition is on the commit
    };

    [Theory]
    [MemberData(nameof(CreateSizes))]
    public async Task A_create_only_put_writes_a_new_blob_and_never_replaces_one(int size, bool fromStream)
    {
        var first = Bytes(size, seed: 1);
        var second = Bytes(size, seed: 2);
        Task<bool> Create(byte[] content) => fromStream
            ? Store.TryCreateAsync("runs/r1/policy/00000001", ScriptedStream.Plain(content), Ct)
            : Store.TryCreateAsync("runs/r1/policy/00000001", content, Ct);

        Assert.True(await Create(first));
        Assert.False(await Create(second));
        Assert.False(await Create(first));

        Assert.Equal(first, await Store.GetAsync("runs/r1/policy/00000001", Ct));
        Assert.Equal([("runs/r1/policy/00000001", (long)size)], (await ListAsync("")).Select(b => (b.Name, b.Size)));
    }

    [Fact]
    public async Task A_create_only_put_loses_to_a_plain_put_and_wins_again_after_a_delete()
    {
        await Store.PutAsync("runs/r1/policy/1", Bytes(100, seed: 1), Ct);
        Assert.False(await Store.TryCreateAsync("runs/r1/policy/1", Bytes(50, seed: 2), Ct));
        Assert.Equal(Bytes(100, seed: 1), await Store.GetAsync("runs/r1/policy/1", Ct));

        Assert.True(await Store.DeleteAsync("runs/r1/policy/1", Ct));
        Assert.True(await Store.TryCreateAsync("runs/r1/policy/1", Bytes(50, seed: 2), Ct));
        Assert.Equal(Bytes(50, seed: 2), await Store.GetAsync("runs/r1/policy/1", Ct));

        // A plain put still replaces what a create-only put wrote.
        await Store.PutAsync("runs/r1/policy/1", Bytes(70, seed: 3), Ct);
        Assert.Equal(Bytes(70, seed: 3), await Store.GetAsync("runs/r1/policy/1", Ct));
    }

    [Theory]
    [InlineData(1000)]
    [InlineData(2 * MiB + 3)] // block uploads on Azure: every creator stages blocks, one commit wins
    public async Task Concurrent_create_only_puts_of_one_name_have_exactly_one_winner_whose_whole_content_is_stored(int size)
    {
        for (var round = 0; round < 3; round++)
        {
            var name = $"runs/r1/policy/{round:D8}";
            var versions = Enumerable.Range(0, 4).Select(i => Bytes(size, seed: 10 * round + i)).ToArray();
            // Each on its own thread, from a stream, so the creators really overlap.
            var creates = versions.Select(v => Task.Run(() => Store.TryCreateAsync(name, ScriptedStream.Plain(v), Ct))).ToArray();
            var won = await Task.WhenAll(creates);

            Assert.Equal(1, won.Count(w => w));
            Assert.Equal(versions[Array.IndexOf(won, true)], await Store.GetAsync(name, Ct));
        }
        Assert.Equal(3, (await ListAsync("runs/")).Count);
    }

    [Fact]
    public async Task A_create_only_put_whose_source_fails_creates_nothing()
    {
        // Fails after 2.5 MiB: on Azure two blocks are staged by then, but never committed.
        await Assert.ThrowsAsync<SourceFailedException>(() => Store.TryCreateAsync("runs/r1/policy/1",
            ScriptedStream.FailingAt(Bytes(4 * MiB, seed: 2), 5 * MiB / 2), Ct));
        // Fails before anything is sent.
        await Assert.ThrowsAsync<SourceFailedException>(() => Store.TryCreateAsync("runs/r1/policy/2",
            ScriptedStream.FailingAt(Bytes(100, seed: 2), 10), Ct));

        Assert.Empty(await ListAsync(""));
        Assert.Null(await Store.GetAsync("runs/r1/policy/1", Ct));
        Assert.True(await Store.TryCreateAsync("runs/r1/policy/2", Bytes(10), Ct));
        // A plain put writes the name whatever a failed upload left; create-only puts then find it taken.
        await Store.PutAsync("runs/r1/policy/1", Bytes(20), Ct);
        Assert.False(await Store.TryCreateAsync("runs/r1/policy/1", Bytes(30), Ct));
        Assert.Equal(Bytes(20), await Store.GetAsync("runs/r1/policy/1", Ct));
    }

    [Fact]
    public async Task Ensure_container_is_idempotent_and_keeps_blobs()
    {
        await Store.PutAsync("runs/r1/policy/1", Bytes(10), Ct);
        await Store.EnsureContainerAsync(Ct);
        Assert.Equal(Bytes(10), await Store.GetAsync("runs/r1/policy/1", Ct));
    }

    [Fact]
    public async Task Operations_on_a_container_never_created_fail_with_ContainerNotFound()
    {
        var store = CreateStore();
        var failures = new List<BlobStorageException>
        {
            await Assert.ThrowsAsync<BlobStorageException>(() => store.PutAsync("a/b", Bytes(10), Ct)),
            await Assert.ThrowsAsync<BlobStorageException>(() => store.PutAsync("a/b", ScriptedStream.Plain(Bytes(3 * MiB)), Ct)),
            await Assert.ThrowsAsync<BlobStorageException>(() => store.TryCreateAsync("a/b", Bytes(10), Ct)),
            await Assert.ThrowsAsync<BlobStorageException>(() => store.GetAsync("a/b", Ct)),
            await Assert.ThrowsAsync<BlobStorageException>(() => store.OpenReadAsync("a/b", Ct)),
            await Assert.ThrowsAsync<BlobStorageException>(() => store.GetInfoAsync("a/b", Ct)),
            await Assert.ThrowsAsync<BlobStorageException>(() => store.DeleteAsync("a/b", Ct)),
            await Assert.ThrowsAsync<BlobStorageException>(() => ListAsync(store, "a/")),
        };
        Assert.All(failures, e =>
        {
            Assert.Equal(BlobErrorCodes.ContainerNotFound, e.ErrorCode);
            Assert.Contains("EnsureContainerAsync", e.Message);
            Assert.False(e.IsTransient);
        });
    }

    public static TheoryData<string, string> InvalidNames => new()
    {
        { "", "empty" },
        { "/runs/r1", "starts with '/'" },
        { "runs/r1/", "ends with '/'" },
        { "runs//r1", "empty segment" },
        { "runs/../secrets", "'..' segment" },
        { "runs/./r1", "'.' segment" },
        { "runs/r 1", "U+0020" },
        { "runs\\r1", "'\\'" },
        { "runs/r1/é", "'é'" },
        { "runs/.hidden", "starting or ending with '.'" },
        { "runs/r1.", "starting or ending with '.'" },
        { new string('a', 1025), "limit is 1024" },
        { "a/" + new string('b', 256), "limit is 255" },
    };

    [Theory]
    [MemberData(nameof(InvalidNames))]
    public async Task Invalid_names_are_rejected_before_any_io(string name, string reason)
    {
        async Task Check(Func<Task> action)
        {
            var e = await Assert.ThrowsAsync<ArgumentException>(action);
            Assert.Contains(reason, e.Message);
            Assert.Equal("name", e.ParamName);
        }

        await Check(() => Store.PutAsync(name, Bytes(1), Ct));
        await Check(() => Store.PutAsync(name, new MemoryStream(Bytes(1)), Ct));
        await Check(() => Store.TryCreateAsync(name, Bytes(1), Ct));
        await Check(() => Store.TryCreateAsync(name, new MemoryStream(Bytes(1)), Ct));
        await Check(() => Store.GetAsync(name, Ct));
        await Check(() => Store.OpenReadAsync(name, Ct));
        await Check(() => Store.GetInfoAsync(name, Ct));
        await Check(() => Store.DeleteAsync(name, Ct));
        Assert.Empty(await ListAsync(""));
    }

    [Theory]
    [InlineData("/runs")]
    [InlineData("runs//")]
    [InlineData("runs/../")]
    [InlineData("runs/.tmp")]
    [InlineData("runs?x")]
    public async Task Invalid_prefixes_are_rejected(string prefix)
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => ListAsync(prefix));
        Assert.Equal("prefix", e.ParamName);
    }

    protected Task<List<BlobInfo>> ListAsync(string prefix) => ListAsync(Store, prefix);

    private async Task<List<BlobInfo>> ListAsync(IBlobStore store, string prefix)
    {
        var blobs = new List<BlobInfo>();
        await foreach (var blob in store.ListAsync(prefix, Ct))
            blobs.Add(blob);
        return blobs;
    }
}
