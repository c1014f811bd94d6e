namespace Dapo.Testing;

/// <summary>
/// One redis-server for the whole test run, shared by the test classes of a collection that names it. Clusters keep
/// apart by their cluster id (every key of Orleans' Redis providers starts with it). Do not stop this one; a test
/// that needs an outage starts its own <see cref="RedisProcess"/>.
/// </summary>
public sealed class RedisFixture : IAsyncLifetime
{
    private RedisProcess? _redis;

    public RedisProcess Redis => _redis ?? throw new InvalidOperationException("Redis has not started.");

    public string ConnectionString => Redis.ConnectionString;

    public async Task InitializeAsync() => _redis = await RedisProcess.StartNewAsync();

    public async Task DisposeAsync()
    {
        if (_redis is not null) await _redis.DisposeAsync();
    }
}
