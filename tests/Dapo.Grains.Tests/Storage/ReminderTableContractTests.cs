using Dapo.Grains.Hosting;
using Dapo.Grains.Storage;
using Dapo.Grains.Tests.Infrastructure;
using Dapo.Testing;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.Runtime;
using Orleans.TestingHost;

namespace Dapo.Grains.Tests.Storage;

/// <summary>
/// What the reminder table under a Dapo silo must do for the learner's keep-running reminder to fire on another silo
/// after its own dies: a row reads back by grain and by name, a new write replaces it under a new ETag, removal with a
/// stale ETag is refused and keeps the row, and a range read returns exactly the rows whose grains hash into it (a
/// silo reads its share of the ring; begin after end wraps around). Each table is taken from a running one-silo
/// cluster configured as a Dapo silo of that storage configures it. Other tests may share the table, so each test
/// looks only at its own grains.
/// </summary>
public abstract class ReminderTableContractTests : IAsyncLifetime
{
    private InProcessTestCluster _silo = null!;

    protected IReminderTable Table { get; private set; } = null!;

    /// <summary>Configures the silo's reminder service and table, as AddDapo does for the storage under test.</summary>
    protected abstract void ConfigureReminders(ISiloBuilder silo);

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((_, silo) => ConfigureReminders(silo));
        _silo = builder.Build();
        await _silo.DeployAsync();
        Table = _silo.Silos[0].ServiceProvider.GetRequiredService<IReminderTable>();
    }

    public Task DisposeAsync() => _silo.DisposeAsync().AsTask();

    private static GrainId NewGrain() => GrainId.Create("learner", $"run-{Guid.NewGuid():N}");

    private static ReminderEntry Entry(GrainId grain, string name, int minutes) => new()
    {
        GrainId = grain, ReminderName = name, Period = TimeSpan.FromMinutes(minutes),
        StartAt = new DateTime(2026, 12, 4, 12, 0, 0, DateTimeKind.Utc),
    };

    [Fact]
    public async Task A_row_reads_back_by_grain_and_name_and_a_new_write_replaces_it_under_a_new_etag()
    {
        var grain = NewGrain();
        var first = await Table.UpsertRow(Entry(grain, "keep-running", 1));
        Assert.False(string.IsNullOrEmpty(first));

        var row = await Table.ReadRow(grain, "keep-running");
        Assert.NotNull(row);
        Assert.Equal((grain, "keep-running", TimeSpan.FromMinutes(1), first), (row.GrainId, row.ReminderName, row.Period, row.ETag));
        Assert.Equal(Entry(grain, "", 1).StartAt, row.StartAt.ToUniversalTime());
        Assert.Null(await Table.ReadRow(grain, "another"));
        Assert.Null(await Table.ReadRow(NewGrain(), "keep-running"));

        var second = await Table.UpsertRow(Entry(grain, "keep-running", 2));
        Assert.NotEqual(first, second);
        var rows = (await Table.ReadRows(grain)).Reminders;
        var only = Assert.Single(rows);
        Assert.Equal((TimeSpan.FromMinutes(2), second), (only.Period, only.ETag));
    }

    [Fact]
    public async Task Removal_with_a_stale_etag_is_refused_and_keeps_the_row_and_with_the_current_one_removes_it()
    {
        var grain = NewGrain();
        var stale = await Table.UpsertRow(Entry(grain, "keep-running", 1));
        var current = await Table.UpsertRow(Entry(grain, "keep-running", 1));

        Assert.False(await Table.RemoveRow(grain, "keep-running", stale!));
        Assert.NotNull(await Table.ReadRow(grain, "keep-running"));

        Assert.True(await Table.RemoveRow(grain, "keep-running", current!));
        Assert.Null(await Table.ReadRow(grain, "keep-running"));
        Assert.Empty((await Table.ReadRows(grain)).Reminders);
        Assert.False(await Table.RemoveRow(grain, "keep-running", current!));
    }

    [Fact]
    public async Task A_range_read_returns_exactly_the_rows_whose_grains_hash_into_it_wrapping_past_the_end_of_the_ring()
    {
        var grains = Enumerable.Range(0, 8).Select(_ => NewGrain()).OrderBy(g => g.GetUniformHashCode()).ToList();
        foreach (var grain in grains) await Table.UpsertRow(Entry(grain, "keep-running", 1));
        var hash = grains.Select(g => g.GetUniformHashCode()).ToList();

        async Task<List<GrainId>> Read(uint begin, uint end) =>
            (await Table.ReadRows(begin, end)).Reminders.Select(r => r.GrainId).Where(grains.Contains).OrderBy(g => g.GetUniformHashCode()).ToList();

        // (begin, end]: the row at begin is out, the row at end is in.
        Assert.Equal(grains[3..6], await Read(hash[2], hash[5]));
        Assert.Equal([.. grains[..3], .. grains[6..]], await Read(hash[5], hash[2]));
        // One silo owns the whole ring: begin == end.
        Assert.Equal(grains, await Read(hash[0], hash[0]));
    }
}

/// <summary>The embedded silo's table (<see cref="ClusterStorage.Local"/>).</summary>
public sealed class InProcessReminderTableTests : ReminderTableContractTests
{
    protected override void ConfigureReminders(ISiloBuilder silo) => silo.UseInProcessReminderTable();
}

/// <summary>Orleans' Azure Table reminders against Azurite (<see cref="ClusterStorage.AzureStorage"/>).</summary>
[Collection(AzuriteCollection.Name)]
public sealed class AzureTableReminderTableTests(AzuriteFixture azurite) : ReminderTableContractTests
{
    protected override void ConfigureReminders(ISiloBuilder silo) =>
        silo.UseAzureTableReminderService(o => o.TableServiceClient = new Azure.Data.Tables.TableServiceClient(azurite.ConnectionString));
}

/// <summary>Orleans' Redis reminders (<see cref="ClusterStorage.Redis"/>).</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisReminderTableTests(RedisFixture redis) : ReminderTableContractTests
{
    protected override void ConfigureReminders(ISiloBuilder silo) =>
        silo.UseRedisReminderService(o => o.ConfigurationOptions = new RedisSettings { ConnectionString = redis.ConnectionString }.Options());
}
