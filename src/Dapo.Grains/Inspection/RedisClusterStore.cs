using System.Text.Json;
using Dapo.Grains.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime;
using Orleans.Serialization;
using Orleans.Storage;
using StackExchange.Redis;

namespace Dapo.Grains.Inspection;

/// <summary>
/// What a cluster on Redis keeps there, read without a silo: Orleans' membership hash (one field per silo
/// incarnation, its entry as JSON with the silo's status), and the grain state hashes the silos wrote with Orleans'
/// Redis provider. Reads only.
/// </summary>
public sealed class RedisClusterStore(ClusterTarget.RedisCluster target, TimeSpan timeout) : IClusterStore
{
    public async Task<int> ActiveSilosAsync(CancellationToken cancellationToken)
    {
        await using var redis = await ConnectAsync(cancellationToken);
        var entries = await Guard(() => redis.GetDatabase().HashGetAllAsync(RedisSettings.MembershipKey(target.ClusterId, target.ClusterId)));
        return entries.Count(e => e.Name != "Version" && IsActive(e.Value));
    }

    public async Task<HistoryRunReader> HistoryAsync(string description, CancellationToken cancellationToken)
    {
        var redis = await ConnectAsync(cancellationToken);
        var services = IClusterStore.Serializers();
        var reader = new RedisGrainStateReader(redis.GetDatabase(), target.ClusterId, new OrleansGrainStorageSerializer(services.GetRequiredService<Serializer>()));
        return new HistoryRunReader(reader, $"Redis {RedisSettings.Redact(target.Configuration)}", description, null,
            "silos joining the cluster resume it (`dapo-silo join --redis ...`)", new Owned(redis, services));
    }

    /// <summary>Whether a membership entry (Orleans' MembershipEntry as JSON) has the status Active, by name or number.</summary>
    private static bool IsActive(RedisValue entry)
    {
        try
        {
            using var json = JsonDocument.Parse(entry.ToString());
            return json.RootElement.TryGetProperty("Status", out var status) &&
                   (status.ValueKind == JsonValueKind.String ? status.GetString() == nameof(SiloStatus.Active) : status.GetInt32() == (int)SiloStatus.Active);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private async Task<ConnectionMultiplexer> ConnectAsync(CancellationToken cancellationToken)
    {
        var options = ConfigurationOptions.Parse(target.Configuration);
        options.ConnectTimeout = (int)timeout.TotalMilliseconds;
        options.SyncTimeout = options.AsyncTimeout = (int)timeout.TotalMilliseconds;
        options.ConnectRetry = 1;
        options.AbortOnConnectFail = true;
        try
        {
            return await ConnectionMultiplexer.ConnectAsync(options).WaitAsync(timeout + timeout, cancellationToken);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            throw new InspectionException(ExitCodes.Unavailable,
                $"cannot reach cluster '{target.ClusterId}': Redis {RedisSettings.Redact(target.Configuration)} did not answer: {e.Message.Split('\n')[0].Trim()}", e);
        }
    }

    private async Task<T> Guard<T>(Func<Task<T>> read)
    {
        try
        {
            return await read();
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            throw new InspectionException(ExitCodes.Unavailable, $"cluster '{target.ClusterId}': Redis did not answer: {e.Message.Split('\n')[0].Trim()}", e);
        }
    }

    private sealed class Owned(ConnectionMultiplexer redis, ServiceProvider services) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await redis.DisposeAsync();
            await services.DisposeAsync();
        }
    }
}

/// <summary>
/// Grain state as Orleans' Redis provider stores it (a hash per grain at <see cref="RedisSettings.GrainStateKey"/>
/// with fields "etag" and "data", the data the provider's serializer wrote), read without a silo. It only reads.
/// </summary>
public sealed class RedisGrainStateReader(IDatabase database, string serviceId, IGrainStorageSerializer serializer) : IGrainStorage
{
    private static readonly RedisValue[] Fields = ["etag", "data"];

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var values = await database.HashGetAsync(RedisSettings.GrainStateKey(serviceId, stateName, grainId), Fields);
        var data = values[1].IsNullOrEmpty ? null : (byte[]?)values[1];
        grainState.ETag = values[0].IsNull ? null : values[0].ToString();
        grainState.State = data is null ? Activator.CreateInstance<T>() : serializer.Deserialize<T>(new BinaryData(data));
        grainState.RecordExists = data is not null;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        throw new NotSupportedException("A reader of history does not write grain state.");

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
        throw new NotSupportedException("A reader of history does not clear grain state.");
}
