using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Grains.Storage;
using Dapo.Grains.Tests.Infrastructure;
using Dapo.Testing;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime;
using Orleans.Storage;

namespace Dapo.Grains.Tests.Storage;

/// <summary>
/// The grain storage contract on <see cref="TableGrainStorage"/> against Azurite, configured as a cluster silo
/// configures it (<see cref="DapoSiloBuilderExtensions.AddTableGrainState"/>) and taken from a running silo; and what
/// only this provider does: batches, states too large for an entity, keys the table refuses.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class TableGrainStorageTests(AzuriteFixture azurite) : GrainStorageContractTests
{
    private string _container = "";

    protected override Task<IGrainStorage> CreateStorageAsync()
    {
        _container = azurite.NewContainerName("dapo");
        return StorageOfSiloAsync(silo => silo.AddTableGrainState(azurite.ConnectionString, _container));
    }

    private TableClient Table => new TableServiceClient(azurite.ConnectionString).GetTableClient(TableGrainStorage.TableNameFor($"{_container}grains"));

    private BlobContainerClient Overflow => new BlobServiceClient(azurite.ConnectionString).GetBlobContainerClient($"{_container}-grains");

    private async Task<List<string>> OverflowBlobsAsync(GrainId grain, string stateName)
    {
        var (partition, row) = TableGrainStorage.KeysOf(stateName, grain);
        var names = new List<string>();
        await foreach (var blob in Overflow.GetBlobsAsync(Azure.Storage.Blobs.Models.BlobTraits.None, Azure.Storage.Blobs.Models.BlobStates.None, $"{partition}/{row}/", CancellationToken.None)) names.Add(blob.Name);
        return names;
    }

    /// <summary>A prompt state of about <paramref name="tokens"/> response tokens: a real model's long responses.</summary>
    private static PromptState LargePrompt(int tokens)
    {
        var state = GrainStateSamples.Prompt();
        var slot = state.Group!.Slots[0];
        state.Group = state.Group with { Slots = [slot with { Tokens = Enumerable.Range(0, tokens).ToArray() }] };
        return state;
    }

    [Fact]
    public async Task Reading_before_the_first_write_finds_no_state_and_creates_neither_the_table_nor_the_overflow_container()
    {
        var storage = await CreateStorageAsync();
        var state = new GrainState<PromptState>();
        await storage.ReadStateAsync("prompt", GrainId.Create("prompt", "run/1/1"), state);
        Assert.False(state.RecordExists);
        Assert.Null(state.ETag);
        // A reader of history (dapo-client) uses the provider on storage no silo wrote: reading writes nothing.
        Assert.False((await Overflow.ExistsAsync()).Value);
        var tables = new List<string>();
        await foreach (var table in new TableServiceClient(azurite.ConnectionString).QueryAsync(t => t.Name == Table.Name)) tables.Add(table.Name);
        Assert.Empty(tables);

        await storage.WriteStateAsync("prompt", GrainId.Create("prompt", "run/1/1"), new GrainState<PromptState>(GrainStateSamples.Prompt()));
        await storage.ReadStateAsync("prompt", GrainId.Create("prompt", "run/1/1"), state);
        Assert.True(state.RecordExists);
    }

    [Fact]
    public async Task A_step_s_prompts_written_together_are_committed_in_batches_each_on_its_own_etag()
    {
        var run = $"run-{Guid.NewGuid():N}";
        var grains = Enumerable.Range(0, 150).Select(i => GrainId.Create("prompt", $"{run}/3/{i}")).ToList();
        var first = grains.Select(_ => new Handle<PromptState> { State = GrainStateSamples.Prompt() }).ToList();
        await Task.WhenAll(grains.Select((g, i) => Storage.WriteStateAsync("prompt", g, first[i])));
        Assert.All(first, s => Assert.NotNull(s.ETag));

        // All in one partition; then 150 writes at once (more than one transaction holds), three of them stale.
        Assert.Single(grains.Select(g => TableGrainStorage.KeysOf("prompt", g).Partition).Distinct());
        var stale = new[] { 7, 70, 140 };
        var second = grains.Select((_, i) => new Handle<PromptState>
        {
            State = new PromptState { Group = GrainStateSamples.Prompt().Group! with { Reason = $"second {i}" } },
            ETag = stale.Contains(i) ? "W/\"datetime'2000-01-01T00%3A00%3A00.0000000Z'\"" : first[i].ETag,
        }).ToList();
        var writes = grains.Select((g, i) => Storage.WriteStateAsync("prompt", g, second[i])).ToList();
        await Task.WhenAll(writes.Select(async w => { try { await w; } catch (InconsistentStateException) { } }));

        for (var i = 0; i < grains.Count; i++)
        {
            var read = new Handle<PromptState>();
            await Storage.ReadStateAsync("prompt", grains[i], read);
            if (stale.Contains(i))
            {
                Assert.IsType<InconsistentStateException>(writes[i].Exception!.InnerException);
                Assert.Equal(first[i].ETag, read.ETag);
                Assert.Equal(GrainStateSamples.Prompt().Group!.Reason, read.State.Group!.Reason);
            }
            else
            {
                Assert.True(writes[i].IsCompletedSuccessfully);
                Assert.Equal(second[i].ETag, read.ETag);
                Assert.Equal($"second {i}", read.State.Group!.Reason);
            }
        }
    }

    [Fact]
    public async Task A_partition_whose_writes_are_committed_is_dropped_so_a_long_run_s_steps_do_not_accumulate()
    {
        var storage = Assert.IsType<TableGrainStorage>(Storage);
        var run = $"run-{Guid.NewGuid():N}";
        // 40 steps of 5 prompts each: 40 partitions, written at once; then written again, after they were dropped.
        var grains = Enumerable.Range(1, 40).SelectMany(step => Enumerable.Range(0, 5).Select(i => GrainId.Create("prompt", $"{run}/{step}/{i}"))).ToList();
        var handles = grains.Select(_ => new Handle<PromptState> { State = GrainStateSamples.Prompt() }).ToList();
        foreach (var reason in new[] { "first", "second" })
        {
            foreach (var handle in handles) handle.State = new PromptState { Group = GrainStateSamples.Prompt().Group! with { Reason = reason } };
            var writes = grains.Select((g, i) => Storage.WriteStateAsync("prompt", g, handles[i])).ToList();
            // While they commit, the partitions are held (each a round trip to the table at least).
            var all = Task.WhenAll(writes);
            var held = 0;
            while (!all.IsCompleted)
            {
                held = Math.Max(held, storage.PartitionsHeld);
                await Task.Delay(1);
            }
            await all;
            Assert.InRange(held, 1, 40);
            // A committer drops its partition just after its last write completes.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (storage.PartitionsHeld > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
            Assert.Equal(0, storage.PartitionsHeld);
            var read = new Handle<PromptState>();
            await Storage.ReadStateAsync("prompt", grains[^1], read);
            Assert.Equal(reason, read.State.Group!.Reason);
        }
    }

    [Fact]
    public async Task A_state_too_large_for_an_entity_is_kept_in_one_blob_and_the_ones_it_replaces_are_deleted()
    {
        var grain = GrainId.Create("prompt", $"run-{Guid.NewGuid():N}/1/5");
        var large = new Handle<PromptState> { State = LargePrompt(300_000) };
        await Storage.WriteStateAsync("prompt", grain, large);
        var firstBlob = Assert.Single(await OverflowBlobsAsync(grain, "prompt"));

        var read = new Handle<PromptState>();
        await Storage.ReadStateAsync("prompt", grain, read);
        Assert.Equal(large.ETag, read.ETag);
        Assert.Equal(300_000, read.State.Group!.Slots[0].Tokens.Length);
        Assert.Equal(299_999, read.State.Group.Slots[0].Tokens[^1]);

        // Larger again: a new blob, the old one deleted.
        read.State = LargePrompt(400_000);
        await Storage.WriteStateAsync("prompt", grain, read);
        var secondBlob = Assert.Single(await OverflowBlobsAsync(grain, "prompt"));
        Assert.NotEqual(firstBlob, secondBlob);

        // A stale write of a large state is refused and leaves no blob behind.
        await Assert.ThrowsAsync<InconsistentStateException>(() => Storage.WriteStateAsync("prompt", grain, large));
        Assert.Equal([secondBlob], await OverflowBlobsAsync(grain, "prompt"));

        // Small again: back in the entity, no blob left; cleared: nothing left.
        read.State = GrainStateSamples.Prompt();
        await Storage.WriteStateAsync("prompt", grain, read);
        Assert.Empty(await OverflowBlobsAsync(grain, "prompt"));
        var small = new Handle<PromptState>();
        await Storage.ReadStateAsync("prompt", grain, small);
        Assert.Equal(GrainStateSamples.Prompt().Group!.Reason, small.State.Group!.Reason);

        read.State = LargePrompt(300_000);
        await Storage.WriteStateAsync("prompt", grain, read);
        await Storage.ClearStateAsync("prompt", grain, read);
        Assert.Empty(await OverflowBlobsAsync(grain, "prompt"));
    }

    [Fact]
    public async Task A_state_just_under_the_entity_limit_is_split_across_properties_of_one_entity()
    {
        var grain = GrainId.Create("prompt", $"run-{Guid.NewGuid():N}/1/6");
        // Several 64 KiB properties, under the inline limit.
        var state = new Handle<PromptState> { State = LargePrompt(700_000 / 5) };
        await Storage.WriteStateAsync("prompt", grain, state);

        var (partition, row) = TableGrainStorage.KeysOf("prompt", grain);
        var entity = (await Table.GetEntityAsync<TableEntity>(partition, row)).Value;
        Assert.True(entity.Keys.Count(k => k.StartsWith("Data", StringComparison.Ordinal)) > 5);
        Assert.Empty(await OverflowBlobsAsync(grain, "prompt"));
        var read = new Handle<PromptState>();
        await Storage.ReadStateAsync("prompt", grain, read);
        Assert.Equal(state.State.Group!.Slots[0].Tokens, read.State.Group!.Slots[0].Tokens);
    }

    [Fact]
    public async Task Keys_with_characters_the_table_refuses_are_stored_and_kept_apart()
    {
        var keys = new[] { "run #1?/a\\b/7", "run %231%3F/a\\b/7", "run|x/7", "run/x|7" };
        foreach (var key in keys)
            await Storage.WriteStateAsync("step", GrainId.Create("step", key), new Handle<StepState> { State = new StepState() });
        Assert.Equal(keys.Length, keys.Select(k => TableGrainStorage.KeysOf("step", GrainId.Create("step", k))).Distinct().Count());
        foreach (var key in keys)
        {
            var read = new Handle<StepState>();
            await Storage.ReadStateAsync("step", GrainId.Create("step", key), read);
            Assert.True(read.RecordExists, key);
        }
    }
}
