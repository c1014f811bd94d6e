using Dapo.Cluster.Store;

namespace Dapo.Cluster.Grains;

/// <summary>A lease held: the epoch fences every write of its holder (a deposed holder's writes are refused).</summary>
public sealed record LeaseHandle(string Name, string Owner, long Epoch);

/// <summary>The lease was taken by someone else: the holder must stop acting on what it guarded.</summary>
public sealed class LeaseLostException(string name, string owner, string? holder)
    : Exception($"Lease {name} is no longer held by {owner}{(holder is null ? "" : $" (held by {holder})")}.");

/// <summary>Named leases in the store: a singleton (the learner of a run) is whoever holds its lease.</summary>
public static class Leases
{
    /// <summary>Takes the lease if it is free, expired or already ours; null when someone else holds it.</summary>
    public static Task<LeaseHandle?> TryAcquireAsync(IClusterStore store, string name, string owner, TimeSpan ttl, long now,
        CancellationToken cancellationToken) =>
        store.TransactAsync(async s =>
        {
            var lease = await s.GetLeaseAsync(name, forUpdate: true);
            if (lease is not null && lease.Owner != owner && lease.ExpiresAt > now) return null;
            // A new holder gets a new epoch; a holder renewing its own live lease keeps it.
            var epoch = lease is not null && lease.Owner == owner && lease.ExpiresAt > now ? lease.Epoch : (lease?.Epoch ?? 0) + 1;
            await s.UpsertLeaseAsync(new LeaseRow(name, owner, epoch, now + (long)ttl.TotalMilliseconds));
            return new LeaseHandle(name, owner, epoch);
        }, cancellationToken);

    /// <summary>Extends a held lease; throws <see cref="LeaseLostException"/> when someone else took it (see <see cref="VerifyAsync"/>).</summary>
    public static Task RenewAsync(IClusterStore store, LeaseHandle handle, TimeSpan ttl, long now, CancellationToken cancellationToken) =>
        store.TransactAsync(async s =>
        {
            await VerifyAsync(s, handle, now, forUpdate: true);
            await s.UpsertLeaseAsync(new LeaseRow(handle.Name, handle.Owner, handle.Epoch, now + (long)ttl.TotalMilliseconds));
            return true;
        }, cancellationToken);

    /// <summary>Gives the lease up now (graceful shutdown), so a standby takes over without waiting for expiry.</summary>
    public static Task ReleaseAsync(IClusterStore store, LeaseHandle handle, CancellationToken cancellationToken) =>
        store.TransactAsync(async s =>
        {
            var lease = await s.GetLeaseAsync(handle.Name, forUpdate: true);
            if (lease is not null && lease.Owner == handle.Owner && lease.Epoch == handle.Epoch)
                await s.UpsertLeaseAsync(lease with { ExpiresAt = 0 });
            return true;
        }, cancellationToken);

    /// <summary>
    /// Inside a transaction: throws unless <paramref name="handle"/> still holds its lease. The epoch decides, not the
    /// expiry: whoever takes a lease raises its epoch, so a lease that lapsed but that nobody took since is still its
    /// holder's, and nobody acted under it meanwhile. A holder slowed past its renewal (a loaded machine) keeps its
    /// work instead of starting over; expiry only lets a standby take the lease.
    /// </summary>
    public static async Task VerifyAsync(IStoreSession s, LeaseHandle handle, long now, bool forUpdate = false)
    {
        var lease = await s.GetLeaseAsync(handle.Name, forUpdate);
        if (lease is null || lease.Owner != handle.Owner || lease.Epoch != handle.Epoch)
            throw new LeaseLostException(handle.Name, handle.Owner, lease?.ExpiresAt > now ? lease.Owner : null);
    }
}
