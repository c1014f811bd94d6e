using Dapo.Cluster.Store;

namespace Dapo.Cluster.Grains;

/// <summary>The membership table: silos register, heartbeat, and leave.</summary>
public static class Membership
{
    public static Task RegisterAsync(IClusterStore store, MemberRow member, CancellationToken cancellationToken) =>
        store.TransactAsync(async s =>
        {
            await s.UpsertMemberAsync(member);
            return true;
        }, cancellationToken);

    public static Task HeartbeatAsync(IClusterStore store, string siloId, long now, int workInHand, CancellationToken cancellationToken) =>
        store.TransactAsync(async s =>
        {
            var member = await s.GetMemberAsync(siloId)
                         ?? throw new InvalidOperationException($"Silo {siloId} is not registered.");
            await s.UpsertMemberAsync(member with { HeartbeatAt = now, WorkInHand = workInHand, Status = MemberStatus.Active });
            return true;
        }, cancellationToken);

    public static Task LeaveAsync(IClusterStore store, string siloId, long now, CancellationToken cancellationToken) =>
        store.TransactAsync(async s =>
        {
            var member = await s.GetMemberAsync(siloId);
            if (member is not null) await s.UpsertMemberAsync(member with { Status = MemberStatus.Left, HeartbeatAt = now, WorkInHand = 0 });
            return true;
        }, cancellationToken);

    /// <summary>Silos whose last heartbeat is recent enough to count them alive.</summary>
    public static bool IsAlive(MemberRow member, long now, TimeSpan timeout) =>
        member.Status == MemberStatus.Active && now - member.HeartbeatAt <= timeout.TotalMilliseconds;
}
