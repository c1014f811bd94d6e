using Dapo.Grains.Inspection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Orleans.Hosting;

namespace Dapo.Grains.Hosting;

/// <summary>How an Orleans client (dapo-client, start-run, tests) finds a cluster's gateways: the membership the silos use.</summary>
public static class ClientClustering
{
    /// <summary>How often a client re-reads the cluster's gateways and grain types.</summary>
    public static readonly TimeSpan RefreshPeriod = TimeSpan.FromSeconds(5);

    public static IClientBuilder UseClusterOf(this IClientBuilder client, ClusterTarget target)
    {
        switch (target)
        {
            case ClusterTarget.Cluster azure:
                client.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (azure.ClusterId, azure.ClusterId));
                client.UseAzureStorageClustering(o => o.TableServiceClient = new Azure.Data.Tables.TableServiceClient(azure.ConnectionString));
                break;
            case ClusterTarget.RedisCluster redis:
                client.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (redis.ClusterId, redis.ClusterId));
                client.UseRedisClustering(o => o.ConfigurationOptions = StackExchange.Redis.ConfigurationOptions.Parse(redis.Configuration));
                break;
            default:
                throw new ArgumentException($"{target} is not a cluster of silos to connect to.", nameof(target));
        }
        return client.RefreshEvery(RefreshPeriod);
    }

    /// <summary>
    /// A long-lived client (watch) learns of silos that join within <paramref name="period"/>, not Orleans' default
    /// minute: their gateways, and their grain types (until then, calls to a grain only they host fail with
    /// ArgumentException).
    /// </summary>
    public static IClientBuilder RefreshEvery(this IClientBuilder client, TimeSpan period)
    {
        client.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = period);
        client.Configure<TypeManagementOptions>(o => o.TypeMapRefreshInterval = period);
        return client;
    }
}
