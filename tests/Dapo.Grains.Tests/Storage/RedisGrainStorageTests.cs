using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Dapo.Grains.Inspection;
using Dapo.Grains.Tests.Infrastructure;
using Dapo.Testing;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Runtime;
using Orleans.Serialization;
using Orleans.Storage;
using StackExchange.Redis;

namespace Dapo.Grains.Tests.Storage;

/// <summary>
/// The grain storage contract on Orleans' Redis provider configured as a cluster silo on Redis configures it
/// (<see cref="DapoSiloBuilderExtensions.AddRedisGrainState"/>), taken from a running silo; and the history reader of
/// dapo-client (<see cref="RedisGrainStateReader"/>) reading what that provider wrote, with no silo.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class RedisGrainStorageTests(RedisFixture redis) : GrainStorageContractTests
{
    protected override Task<IGrainStorage> CreateStorageAsync() =>
        StorageOfSiloAsync(silo => silo.AddRedisGrainState(new RedisSettings { ConnectionString = redis.ConnectionString }));

    private string ServiceId => Silo!.Silos[0].ServiceProvider.GetRequiredService<Microsoft.Extensions.Options.IOptions<ClusterOptions>>().Value.ServiceId;

    [Fact]
    public async Task The_history_reader_reads_what_the_provider_wrote_under_the_key_it_names_and_nothing_where_nothing_was_written()
    {
        var grain = GrainId.Create("prompt", $"run/{Guid.NewGuid():N}/1");
        var written = new GrainState<PromptState>(GrainStateSamples.Prompt());
        await Storage.WriteStateAsync("prompt", grain, written);

        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        Assert.True(await connection.GetDatabase().KeyExistsAsync(RedisSettings.GrainStateKey(ServiceId, "prompt", grain)));
        using var services = IClusterStore.Serializers();
        var reader = new RedisGrainStateReader(connection.GetDatabase(), ServiceId, new OrleansGrainStorageSerializer(services.GetRequiredService<Serializer>()));
        var read = new GrainState<PromptState>();
        await reader.ReadStateAsync("prompt", grain, read);
        Assert.True(read.RecordExists);
        Assert.Equal(written.ETag, read.ETag);
        Assert.Equal(Json(written.State), Json(read.State));

        var missing = new GrainState<PromptState>();
        await reader.ReadStateAsync("prompt", GrainId.Create("prompt", $"run/{Guid.NewGuid():N}/2"), missing);
        Assert.False(missing.RecordExists);
        Assert.Null(missing.ETag);
        await Assert.ThrowsAsync<NotSupportedException>(() => reader.WriteStateAsync("prompt", grain, read));
    }
}
