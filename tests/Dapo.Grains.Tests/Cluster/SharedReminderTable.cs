using Orleans.Runtime;

namespace Dapo.Grains.Tests.Cluster;

/// <summary>
/// A reminder table in this process shared by every silo of a test cluster, as Azure Tables are shared by a real
/// cluster. Orleans' in-memory reminder service keeps its table in one grain on one silo: killing that silo would lose
/// every reminder, and the learner-silo fault test would then prove nothing about the learner's reminder.
/// </summary>
internal sealed class SharedReminderTable : IReminderTable
{
    private readonly Dictionary<(GrainId Grain, string Name), ReminderEntry> _rows = new();

    public Task Init() => Task.CompletedTask;

    public Task<ReminderTableData> ReadRows(GrainId grainId)
    {
        lock (_rows) return Task.FromResult(new ReminderTableData(_rows.Values.Where(r => r.GrainId == grainId).Select(Copy).ToList()));
    }

    /// <summary>Rows whose grain hashes into the ring range (begin, end], wrapping around; begin == end is the whole ring.</summary>
    public Task<ReminderTableData> ReadRows(uint begin, uint end)
    {
        bool InRange(uint hash) => begin < end ? hash > begin && hash <= end : hash > begin || hash <= end;
        lock (_rows)
            return Task.FromResult(new ReminderTableData(_rows.Values.Where(r => InRange(r.GrainId.GetUniformHashCode())).Select(Copy).ToList()));
    }

    public Task<ReminderEntry?> ReadRow(GrainId grainId, string reminderName)
    {
        lock (_rows) return Task.FromResult(_rows.TryGetValue((grainId, reminderName), out var row) ? Copy(row) : null);
    }

    public Task<string?> UpsertRow(ReminderEntry entry)
    {
        var row = Copy(entry);
        row.ETag = Guid.NewGuid().ToString("N");
        lock (_rows) _rows[(row.GrainId, row.ReminderName)] = row;
        return Task.FromResult<string?>(row.ETag);
    }

    public Task<bool> RemoveRow(GrainId grainId, string reminderName, string eTag)
    {
        lock (_rows)
            return Task.FromResult(_rows.TryGetValue((grainId, reminderName), out var row) && row.ETag == eTag && _rows.Remove((grainId, reminderName)));
    }

    public Task TestOnlyClearTable()
    {
        lock (_rows) _rows.Clear();
        return Task.CompletedTask;
    }

    private static ReminderEntry Copy(ReminderEntry e) =>
        new() { GrainId = e.GrainId, ReminderName = e.ReminderName, StartAt = e.StartAt, Period = e.Period, ETag = e.ETag };
}
