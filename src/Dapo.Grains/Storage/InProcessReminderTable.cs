using Orleans.Runtime;

namespace Dapo.Grains.Storage;

/// <summary>
/// A reminder table held by this process: the embedded silo's (<see cref="Hosting.ClusterStorage.Local"/>), and the
/// one every silo of an in-process test cluster shares, as a real cluster shares Azure Tables or Redis. Orleans'
/// in-memory reminder service keeps its table in a grain instead: a stopping silo deactivates that grain while its
/// reminder service still reads from it, which logged placement errors at the end of every embedded run, and in a
/// test cluster killing the grain's silo would lose every reminder.
/// </summary>
internal sealed class InProcessReminderTable : IReminderTable
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
