using System.Text.Json;
using Dapo.Grains.Grains;
using Dapo.Grains.Storage;
using Orleans.Runtime;
using Orleans.Storage;
using Orleans.TestingHost;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;

namespace Dapo.Grains.Tests.Storage;

/// <summary>
/// What every grain storage the Dapo grains run on must do (<see cref="IGrainStorage"/> as the grains use it): a
/// missing grain reads as a new state, our state classes survive a write and a read, a write or clear from a stale
/// version is refused with <see cref="InconsistentStateException"/> and changes nothing, and a cleared grain reads as
/// missing. Run against each provider by a subclass that only provides it.
/// </summary>
public abstract class GrainStorageContractTests : IAsyncLifetime
{
    private static int _grains;

    protected IGrainStorage Storage { get; private set; } = null!;

    /// <summary>The provider under test, ready to use.</summary>
    protected abstract Task<IGrainStorage> CreateStorageAsync();

    public virtual async Task InitializeAsync() => Storage = await CreateStorageAsync();

    public virtual async Task DisposeAsync()
    {
        if (Silo is not null) await Silo.DisposeAsync();
    }

    /// <summary>The one-silo cluster of <see cref="StorageOfSiloAsync"/>, if a provider is taken from one.</summary>
    protected InProcessTestCluster? Silo { get; private set; }

    /// <summary>
    /// The Dapo grain storage of a running one-silo cluster configured by <paramref name="configure"/>: a provider as a
    /// cluster silo builds it (its options, serializer and lifecycle), not one made by hand.
    /// </summary>
    protected async Task<IGrainStorage> StorageOfSiloAsync(Action<ISiloBuilder> configure)
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((_, silo) => configure(silo));
        Silo = builder.Build();
        await Silo.DeployAsync();
        return Silo.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>(GrainStorage.Name);
    }

    /// <summary>A grain id not used before in this test run (keys with '/' as the grains' keys have).</summary>
    protected static GrainId NewGrain(string type) =>
        GrainId.Create(type, $"run-{Guid.NewGuid():N}/{Interlocked.Increment(ref _grains)}");

    private async Task<Handle<T>> ReadAsync<T>(string stateName, GrainId grain) where T : notnull, new()
    {
        var state = new Handle<T>();
        await Storage.ReadStateAsync(stateName, grain, state);
        return state;
    }

    /// <summary>States are compared by their JSON: our state classes hold records with lists (reference equality).</summary>
    protected static string Json<T>(T value) => JsonSerializer.Serialize(value, FileGrainStorage.Json);

    [Fact]
    public async Task A_grain_never_written_reads_as_a_new_state_without_record_or_etag()
    {
        var state = await ReadAsync<StepState>("step", NewGrain("step"));

        Assert.False(state.RecordExists);
        Assert.Null(state.ETag);
        Assert.NotNull(state.State);
        Assert.Null(state.State.Ledger);
        Assert.Empty(state.State.Prompts);
    }

    [Fact]
    public async Task Every_state_class_of_the_grains_round_trips()
    {
        await RoundTripAsync("learner", GrainStateSamples.Learner());
        await RoundTripAsync("step", GrainStateSamples.Step());
        await RoundTripAsync("prompt", GrainStateSamples.Prompt());
        await RoundTripAsync("registry", GrainStateSamples.Registry());
    }

    private async Task RoundTripAsync<T>(string stateName, T value) where T : notnull, new()
    {
        var grain = NewGrain(stateName);
        var written = new Handle<T> { State = value };
        await Storage.WriteStateAsync(stateName, grain, written);
        Assert.True(written.RecordExists);
        Assert.NotNull(written.ETag);

        var read = await ReadAsync<T>(stateName, grain);
        Assert.True(read.RecordExists);
        Assert.Equal(written.ETag, read.ETag);
        Assert.Equal(Json(value), Json(read.State));
    }

    [Fact]
    public async Task A_write_from_a_stale_version_is_refused_and_the_stored_state_is_unchanged()
    {
        var grain = NewGrain("learner");
        var first = new Handle<LearnerState> { State = new LearnerState { SpecJson = "{}", Epoch = 1 } };
        await Storage.WriteStateAsync("learner", grain, first);

        // Two activations read the same version (a membership change); the new one raises the epoch first.
        var newer = await ReadAsync<LearnerState>("learner", grain);
        var older = await ReadAsync<LearnerState>("learner", grain);
        newer.State.Epoch = 2;
        await Storage.WriteStateAsync("learner", grain, newer);

        older.State.Epoch = 7;
        var staleTag = older.ETag;
        await Assert.ThrowsAsync<InconsistentStateException>(() => Storage.WriteStateAsync("learner", grain, older));
        var stored = await ReadAsync<LearnerState>("learner", grain);
        Assert.Equal(2, stored.State.Epoch);
        Assert.Equal(newer.ETag, stored.ETag);
        Assert.NotEqual(staleTag, stored.ETag);

        // Read again, the deposed one's write goes through: the refusal was about the version, not the grain.
        stored.State.Epoch = 3;
        await Storage.WriteStateAsync("learner", grain, stored);
        Assert.Equal(3, (await ReadAsync<LearnerState>("learner", grain)).State.Epoch);
    }

    [Fact]
    public async Task Of_two_writes_from_one_version_at_the_same_moment_one_wins_and_the_other_is_refused()
    {
        var grain = NewGrain("learner");
        await Storage.WriteStateAsync("learner", grain, new Handle<LearnerState> { State = new LearnerState { SpecJson = "{}", Epoch = 1 } });
        var a = await ReadAsync<LearnerState>("learner", grain);
        var b = await ReadAsync<LearnerState>("learner", grain);
        a.State.Epoch = 2;
        b.State.Epoch = 3;

        // Both at once, beside writes of other grains (an embedded silo commits writes that arrive together as one batch).
        var others = Enumerable.Range(0, 16).Select(i => (Grain: NewGrain("prompt"), State: new Handle<PromptState> { State = GrainStateSamples.Prompt() })).ToList();
        var writes = new[] { Storage.WriteStateAsync("learner", grain, a), Storage.WriteStateAsync("learner", grain, b) }
            .Concat(others.Select(o => Storage.WriteStateAsync("prompt", o.Grain, o.State))).ToList();
        await Task.WhenAll(writes.Select(async w => { try { await w; } catch (InconsistentStateException) { } }));

        Assert.Equal(1, writes.Take(2).Count(w => w.IsCompletedSuccessfully));
        var loser = writes[0].IsCompletedSuccessfully ? writes[1] : writes[0];
        Assert.IsType<InconsistentStateException>(loser.Exception!.InnerException);
        var winner = writes[0].IsCompletedSuccessfully ? a : b;
        var stored = await ReadAsync<LearnerState>("learner", grain);
        Assert.Equal(winner.State.Epoch, stored.State.Epoch);
        Assert.Equal(winner.ETag, stored.ETag);
        foreach (var (other, state) in others)
        {
            var read = await ReadAsync<PromptState>("prompt", other);
            Assert.Equal(Json(state.State), Json(read.State));
            Assert.Equal(state.ETag, read.ETag);
        }
    }

    [Fact]
    public async Task Creating_a_state_that_another_writer_created_first_is_refused()
    {
        var grain = NewGrain("prompt");
        var winner = new Handle<PromptState> { State = GrainStateSamples.Prompt() };
        var loser = new Handle<PromptState> { State = new PromptState() };
        await Storage.WriteStateAsync("prompt", grain, winner);

        await Assert.ThrowsAsync<InconsistentStateException>(() => Storage.WriteStateAsync("prompt", grain, loser));
        Assert.Equal(Json(winner.State), Json((await ReadAsync<PromptState>("prompt", grain)).State));
    }

    [Fact]
    public async Task A_cleared_grain_reads_as_missing_and_a_stale_clear_is_refused()
    {
        var grain = NewGrain("registry");
        var state = new Handle<RunRegistryState> { State = GrainStateSamples.Registry() };
        await Storage.WriteStateAsync("registry", grain, state);
        var stale = await ReadAsync<RunRegistryState>("registry", grain);
        state.State.Runs.Clear();
        await Storage.WriteStateAsync("registry", grain, state);

        await Assert.ThrowsAsync<InconsistentStateException>(() => Storage.ClearStateAsync("registry", grain, stale));
        Assert.True((await ReadAsync<RunRegistryState>("registry", grain)).RecordExists);

        await Storage.ClearStateAsync("registry", grain, state);
        Assert.False(state.RecordExists);
        var read = await ReadAsync<RunRegistryState>("registry", grain);
        Assert.False(read.RecordExists);
        Assert.Empty(read.State.Runs);

        // The grain can be written again from what the clear left.
        state.State = GrainStateSamples.Registry();
        await Storage.WriteStateAsync("registry", grain, state);
        Assert.Equal(Json(GrainStateSamples.Registry()), Json((await ReadAsync<RunRegistryState>("registry", grain)).State));
    }

    [Fact]
    public async Task Grains_with_the_same_key_under_different_state_names_or_types_are_separate()
    {
        var key = $"run-{Guid.NewGuid():N}/1";
        await Storage.WriteStateAsync("step", GrainId.Create("step", key), new Handle<StepState> { State = GrainStateSamples.Step() });

        Assert.False((await ReadAsync<StepState>("prompt", GrainId.Create("step", key))).RecordExists);
        Assert.False((await ReadAsync<StepState>("step", GrainId.Create("learner", key))).RecordExists);
    }

    /// <summary>The grain state handle Orleans passes to a provider.</summary>
    protected sealed class Handle<T> : IGrainState<T> where T : notnull, new()
    {
        [System.Diagnostics.CodeAnalysis.AllowNull]
        public T State { get; set; } = new();
        public string? ETag { get; set; }
        public bool RecordExists { get; set; }
    }
}

/// <summary>State values with every member set, as the grains write them.</summary>
internal static class GrainStateSamples
{
    private static readonly PromptEntry Entry = new(3, 17, 42, 1042, 2, PromptStatus.Accepted, "accepted: accuracy 0.5", 4, 0.5, 12.5, 4,
        CarryOut: true, Opening: 2);

    private static readonly StepLedger Ledger = new("run-a", 3, 2, StepPhase.Training, 4, 4, 2, 1, 0, 7, 2, 1, "TargetMet", 5, 2,
        1_700_000_000_000, 1_700_000_001_000, null);

    public static LearnerState Learner() => new()
    {
        SpecJson = """{"Steps":6}""", Status = RunStatus.Running, Step = 3, PolicyVersion = 2, LatestCheckpoint = 2, Error = null,
        Epoch = 5, CursorJson = """{"epoch":0,"position":12}""", Carry = [Entry], StartAccuracy = 0.25, LatestAccuracy = 0.375,
        CreatedAt = 1_700_000_000_000, UpdatedAt = 1_700_000_002_000,
    };

    public static StepState Step() => new()
    {
        Ledger = Ledger, Prompts = [Entry, Entry with { PromptId = 18, Status = PromptStatus.Filtered, CarryOut = false, Decided = null }],
        CursorJson = """{"epoch":0,"position":19}""", NextPromptId = 19, Decisions = 5, MaxEpoch = 5,
    };

    public static PromptState Prompt() => new()
    {
        Group = new PromptGroup(new WorkItem("run-a", 3, 17, 42, 1042, 2), 2,
            new List<SlotResult>
            {
                new(0, [5, 6, 7], [-0.5f, -1.25f, -0.125f], "12", 1, 0, true, false, "silo/0"),
                new(1, [5, 8], [-2f, -0.75f], "13", -1, -0.5, false, true, "silo/1"),
            },
            PromptStatus.Accepted, "accepted: accuracy 0.5", "2026-01-01T00:00:00Z drawn: step 3\n"),
    };

    public static RunRegistryState Registry() => new()
    {
        Runs = { ["run-a"] = new ActiveRun("run-a", RunStatus.Running, 3, 2, 5), ["run-b"] = new ActiveRun("run-b", RunStatus.Completed, 7, 6, 1) },
    };
}
