using Orleans.Runtime;
using StackExchange.Redis;

namespace Dapo.Grains.Hosting;

/// <summary>
/// The Redis of a cluster on Redis (configuration section "Redis"): membership, reminders and grain state with
/// Orleans' Redis providers. Log it only through <see cref="Redacted"/>: the configuration may hold a password.
/// </summary>
public sealed class RedisSettings
{
    public const string SectionName = "Redis";

    /// <summary>A StackExchange.Redis configuration string: "host:port", with options such as ",password=…,ssl=true".</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Freshly parsed options: each Orleans provider connects its own multiplexer with its own copy.</summary>
    public ConfigurationOptions Options() => ConfigurationOptions.Parse(ConnectionString!);

    /// <summary>The configuration without its password: safe to print.</summary>
    public string Redacted => Redact(ConnectionString);

    public static string Redact(string? connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString)) return "(none)";
        try
        {
            return ConfigurationOptions.Parse(connectionString).ToString(includePassword: false);
        }
        catch (ArgumentException)
        {
            return "(not a Redis configuration)";
        }
    }

    /// <summary>What is wrong with the settings, in one line naming the setting; null when they can be used.</summary>
    public string? Validate()
    {
        if (string.IsNullOrWhiteSpace(ConnectionString))
            return "Silo:Storage is Redis: give the Redis configuration, e.g. 127.0.0.1:6379 (--redis, Redis:ConnectionString or DAPO_Redis__ConnectionString).";
        try
        {
            return Options().EndPoints.Count == 0 ? $"Redis:ConnectionString '{Redacted}' names no host: use host:port, e.g. 127.0.0.1:6379." : null;
        }
        catch (ArgumentException e)
        {
            return $"Redis:ConnectionString is not a Redis configuration ({e.Message.Split('\n')[0]}): use host:port[,password=...], e.g. 127.0.0.1:6379.";
        }
    }

    /// <summary>
    /// The key of a grain's state: a hash with its ETag and the Orleans serializer's bytes (Orleans' Redis provider),
    /// the same as the provider's own default; named here because a reader of history reads it without a silo.
    /// </summary>
    public static RedisKey GrainStateKey(string serviceId, string stateName, GrainId grain) => $"{serviceId}/state/{grain}/{stateName}";

    /// <summary>The hash of Orleans' Redis membership (its default key): a "Version" field and a field per silo.</summary>
    public static RedisKey MembershipKey(string serviceId, string clusterId) => $"{serviceId}/members/{clusterId}";
}
