using Dapo.Cluster.Blobs;
using Dapo.Cluster.Grains;
using Dapo.Cluster.Store;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Dapo.Cluster.Hosting;

/// <summary>This silo's id and roles.</summary>
public sealed class SiloIdentity(IOptions<SiloOptions> options)
{
    public string Id { get; } = string.IsNullOrWhiteSpace(options.Value.Id)
        ? $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}"
        : options.Value.Id;

    public SiloRoles Roles { get; } = options.Value.ParsedRoles;
}

/// <summary>
/// Registers the silo in the membership table before the host starts its roles, heartbeats while it runs (with the
/// work in its hands), and marks it as left when it stops.
/// </summary>
public sealed partial class MembershipService(
    IClusterStore store, IBlobStore blobs, SiloIdentity silo, IOptions<SiloOptions> options, IServiceProvider services,
    TimeProvider time, ILogger<MembershipService> logger) : BackgroundService
{
    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // Blocks start-up on purpose: a silo that cannot reach its store or blob storage must not start its roles,
        // and must say so quickly rather than retry for the whole retry budget.
        using (var startup = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            startup.CancelAfter(options.Value.StartupTimeout);
            await Reach($"the cluster store ({store.Description})", () => store.MigrateAsync(startup.Token), startup, cancellationToken);
            await Reach($"blob storage ({blobs.Description})", () => blobs.EnsureContainerAsync(startup.Token), startup, cancellationToken);
        }
        var now = Now;
        await Membership.RegisterAsync(store, new MemberRow(silo.Id, Environment.MachineName, Environment.ProcessId,
            silo.Roles.ToString().ToLowerInvariant().Replace(" ", ""), MemberStatus.Active, now, now, 0), cancellationToken);
        LogJoined(logger, silo.Id, silo.Roles.ToString(), store.Description);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var rollout = services.GetService<RolloutService>();
        using var timer = new PeriodicTimer(options.Value.HeartbeatInterval, time);
        while (await WaitAsync(timer, stoppingToken))
            await Membership.HeartbeatAsync(store, silo.Id, Now, rollout?.WorkInHand ?? 0, stoppingToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await Membership.LeaveAsync(store, silo.Id, Now, cancellationToken);
        LogLeft(logger, silo.Id);
    }

    private async Task Reach(string what, Func<Task> call, CancellationTokenSource startup, CancellationToken cancellationToken)
    {
        try
        {
            await call();
        }
        catch (Exception e) when (startup.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new InvalidOperationException(
                $"Cannot reach {what} within {options.Value.StartupTimeout.TotalSeconds:F0} s; check the connection string and that the " +
                $"server is up (last error: {(e is OperationCanceledException { InnerException: { } failure } ? failure : e).Message}).", e);
        }
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken token)
    {
        try
        {
            return await timer.WaitForNextTickAsync(token);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Silo {Silo} joined with roles {Roles} on {Store}")]
    private static partial void LogJoined(ILogger logger, string silo, string roles, string store);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Silo {Silo} left")]
    private static partial void LogLeft(ILogger logger, string silo);
}
