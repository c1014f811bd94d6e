using System.Data.Common;
using System.Runtime.InteropServices;

namespace Dapo.Cluster.Store;

/// <summary>The store's operations in SQL common to SQLite and PostgreSQL, inside one open transaction.</summary>
internal sealed class SqlSession(DbConnection connection, DbTransaction transaction, SqlDialect dialect) : IStoreSession
{
    private const string RunColumns =
        "run_id, spec_json, status, step, policy_version, cursor_json, next_prompt_id, latest_checkpoint, error, created_at, updated_at";
    private const string StepColumns =
        "run_id, step, policy_version, phase, target, accepted, filtered, abandoned, in_flight, draws, generation_rounds, " +
        "surplus_carried, stop_reason, opened_at, sampling_done_at, closed_at";
    private const string PromptColumns =
        "run_id, prompt_id, step, dataset_index, draw_ordinal, problem, ground_truth, prompt_tokens, policy_version, group_size, filled, " +
        "status, reason, accuracy, mean_reward, mean_length, truncated_count, history, created_at, decided_at";
    private const string SlotColumns =
        "run_id, prompt_id, slot, tokens, logprobs, text, score, overlong_penalty, reward, correct, truncated, policy_version, " +
        "worker, submitted_at";
    private const string WorkColumns = "item_id, run_id, step, prompt_id, policy_version, lease_owner, lease_until, attempts, done";
    private const string MemberColumns = "silo_id, host, process_id, roles, status, started_at, heartbeat_at, work_in_hand";

    // ---- Runs ------------------------------------------------------------------------------------------------------

    public Task<RunRow?> GetRunAsync(string runId, bool forUpdate = false) =>
        SingleAsync($"SELECT {RunColumns} FROM dapo_runs WHERE run_id = @run{Lock(forUpdate)}", ReadRun, ("run", runId));

    public Task<IReadOnlyList<RunRow>> ListRunsAsync() =>
        ListAsync($"SELECT {RunColumns} FROM dapo_runs ORDER BY created_at, run_id", ReadRun);

    public Task InsertRunAsync(RunRow r) => ExecuteAsync(
        $"INSERT INTO dapo_runs ({RunColumns}) VALUES (@run, @spec, @status, @step, @version, @cursor, @next, @checkpoint, @error, @created, @updated)",
        RunParameters(r));

    public Task UpdateRunAsync(RunRow r) => ExecuteOneAsync(
        "UPDATE dapo_runs SET spec_json = @spec, status = @status, step = @step, policy_version = @version, cursor_json = @cursor, " +
        "next_prompt_id = @next, latest_checkpoint = @checkpoint, error = @error, updated_at = @updated WHERE run_id = @run",
        RunParameters(r));

    private static (string, object?)[] RunParameters(RunRow r) =>
    [
        ("run", r.RunId), ("spec", r.SpecJson), ("status", r.Status.ToString()), ("step", r.Step), ("version", r.PolicyVersion),
        ("cursor", r.CursorJson), ("next", r.NextPromptId), ("checkpoint", r.LatestCheckpoint), ("error", r.Error),
        ("created", r.CreatedAt), ("updated", r.UpdatedAt),
    ];

    private static RunRow ReadRun(DbDataReader r) => new(
        r.GetString(0), r.GetString(1), Enum.Parse<RunStatus>(r.GetString(2)), Int(r, 3), Int(r, 4), r.GetString(5), Long(r, 6),
        NullableInt(r, 7), NullableString(r, 8), Long(r, 9), Long(r, 10));

    // ---- Steps -----------------------------------------------------------------------------------------------------

    public Task<StepRow?> GetStepAsync(string runId, int step, bool forUpdate = false) =>
        SingleAsync($"SELECT {StepColumns} FROM dapo_steps WHERE run_id = @run AND step = @step{Lock(forUpdate)}", ReadStep,
            ("run", runId), ("step", step));

    public async Task<IReadOnlyList<StepRow>> ListStepsAsync(string runId, int last)
    {
        var rows = await ListAsync($"SELECT {StepColumns} FROM dapo_steps WHERE run_id = @run ORDER BY step DESC LIMIT @last",
            ReadStep, ("run", runId), ("last", last));
        return rows.Reverse().ToList();
    }

    public Task UpsertStepAsync(StepRow s) => ExecuteAsync(
        $"INSERT INTO dapo_steps ({StepColumns}) VALUES (@run, @step, @version, @phase, @target, @accepted, @filtered, @abandoned, " +
        "@inflight, @draws, @rounds, @carried, @stop, @opened, @sampled, @closed) ON CONFLICT (run_id, step) DO UPDATE SET " +
        "policy_version = excluded.policy_version, phase = excluded.phase, target = excluded.target, accepted = excluded.accepted, " +
        "filtered = excluded.filtered, abandoned = excluded.abandoned, in_flight = excluded.in_flight, draws = excluded.draws, " +
        "generation_rounds = excluded.generation_rounds, surplus_carried = excluded.surplus_carried, " +
        "stop_reason = excluded.stop_reason, opened_at = excluded.opened_at, sampling_done_at = excluded.sampling_done_at, " +
        "closed_at = excluded.closed_at",
        ("run", s.RunId), ("step", s.Step), ("version", s.PolicyVersion), ("phase", s.Phase.ToString()), ("target", s.Target),
        ("accepted", s.Accepted), ("filtered", s.Filtered), ("abandoned", s.Abandoned), ("inflight", s.InFlight),
        ("draws", s.Draws), ("rounds", s.GenerationRounds), ("carried", s.SurplusCarried), ("stop", s.StopReason),
        ("opened", s.OpenedAt), ("sampled", s.SamplingDoneAt), ("closed", s.ClosedAt));

    private static StepRow ReadStep(DbDataReader r) => new(
        r.GetString(0), Int(r, 1), Int(r, 2), Enum.Parse<StepPhase>(r.GetString(3)), Int(r, 4), Int(r, 5), Int(r, 6), Int(r, 7),
        Int(r, 8), Int(r, 9), Int(r, 10), Int(r, 11), NullableString(r, 12), Long(r, 13), NullableLong(r, 14), NullableLong(r, 15));

    // ---- Prompt grains and slots -------------------------------------------------------------------------------------

    public Task<PromptRow?> GetPromptAsync(string runId, long promptId, bool forUpdate = false) =>
        SingleAsync($"SELECT {PromptColumns} FROM dapo_prompts WHERE run_id = @run AND prompt_id = @prompt{Lock(forUpdate)}",
            ReadPrompt, ("run", runId), ("prompt", promptId));

    public Task<IReadOnlyList<PromptRow>> ListPromptsAsync(string runId, int step, PromptStatus? status = null) =>
        status is null
            ? ListAsync($"SELECT {PromptColumns} FROM dapo_prompts WHERE run_id = @run AND step = @step ORDER BY prompt_id",
                ReadPrompt, ("run", runId), ("step", step))
            : ListAsync($"SELECT {PromptColumns} FROM dapo_prompts WHERE run_id = @run AND step = @step AND status = @status " +
                        "ORDER BY prompt_id", ReadPrompt, ("run", runId), ("step", step), ("status", status.ToString()));

    public Task<IReadOnlyList<PromptRow>> ListOpenPromptsAfterAsync(string runId, int afterStep) =>
        ListAsync($"SELECT {PromptColumns} FROM dapo_prompts WHERE run_id = @run AND step > @step AND status IN ('Sampling', 'Accepted') " +
                  $"ORDER BY prompt_id{Lock(true)}", ReadPrompt, ("run", runId), ("step", afterStep));

    public Task InsertPromptAsync(PromptRow p) => ExecuteAsync(
        $"INSERT INTO dapo_prompts ({PromptColumns}) VALUES (@run, @prompt, @step, @index, @ordinal, @problem, @truth, @tokens, @version, " +
        "@group, @filled, @status, @reason, @accuracy, @mean, @length, @truncated, @history, @created, @decided)", PromptParameters(p));

    public Task UpdatePromptAsync(PromptRow p) => ExecuteOneAsync(
        "UPDATE dapo_prompts SET step = @step, policy_version = @version, filled = @filled, status = @status, reason = @reason, " +
        "accuracy = @accuracy, mean_reward = @mean, mean_length = @length, truncated_count = @truncated, history = @history, " +
        "decided_at = @decided " +
        "WHERE run_id = @run AND prompt_id = @prompt", PromptParameters(p));

    private static (string, object?)[] PromptParameters(PromptRow p) =>
    [
        ("run", p.RunId), ("prompt", p.PromptId), ("step", p.Step), ("index", p.DatasetIndex), ("ordinal", p.DrawOrdinal),
        ("problem", p.Problem),
        ("truth", p.GroundTruth), ("tokens", ToBytes(p.PromptTokens)), ("version", p.PolicyVersion), ("group", p.GroupSize),
        ("filled", p.Filled), ("status", p.Status.ToString()), ("reason", p.Reason), ("accuracy", p.Accuracy),
        ("mean", p.MeanReward), ("length", p.MeanLength), ("truncated", p.TruncatedCount), ("history", p.History),
        ("created", p.CreatedAt), ("decided", p.DecidedAt),
    ];

    private static PromptRow ReadPrompt(DbDataReader r) => new(
        r.GetString(0), Long(r, 1), Int(r, 2), Int(r, 3), Long(r, 4), r.GetString(5), r.GetString(6), Ints((byte[])r[7]), Int(r, 8),
        Int(r, 9), Int(r, 10), Enum.Parse<PromptStatus>(r.GetString(11)), r.GetString(12), NullableDouble(r, 13),
        NullableDouble(r, 14), NullableDouble(r, 15), NullableInt(r, 16), r.GetString(17), Long(r, 18), NullableLong(r, 19));

    public async Task<IReadOnlyList<int>> InsertSlotsIfAbsentAsync(IReadOnlyList<SlotRow> slots)
    {
        if (slots.Count == 0) return [];
        // One statement for the group: a round trip per slot would dominate a submission.
        var values = new List<string>();
        var parameters = new List<(string, object?)>();
        for (var i = 0; i < slots.Count; i++)
        {
            var s = slots[i];
            values.Add($"(@run{i}, @prompt{i}, @slot{i}, @tokens{i}, @logprobs{i}, @text{i}, @score{i}, @penalty{i}, @reward{i}, " +
                       $"@correct{i}, @truncated{i}, @version{i}, @worker{i}, @submitted{i})");
            parameters.AddRange([
                ($"run{i}", s.RunId), ($"prompt{i}", s.PromptId), ($"slot{i}", s.Slot), ($"tokens{i}", ToBytes(s.Tokens)),
                ($"logprobs{i}", ToBytes(s.LogProbs)), ($"text{i}", s.Text), ($"score{i}", s.Score), ($"penalty{i}", s.OverlongPenalty),
                ($"reward{i}", s.Reward), ($"correct{i}", s.Correct ? 1 : 0), ($"truncated{i}", s.Truncated ? 1 : 0),
                ($"version{i}", s.PolicyVersion), ($"worker{i}", s.Worker), ($"submitted{i}", s.SubmittedAt),
            ]);
        }
        return await ListAsync($"INSERT INTO dapo_slots ({SlotColumns}) VALUES {string.Join(", ", values)} " +
                               "ON CONFLICT (run_id, prompt_id, slot) DO NOTHING RETURNING slot", r => Int(r, 0), parameters.ToArray());
    }

    public Task<IReadOnlyList<SlotRow>> ListSlotsAsync(string runId, long promptId) =>
        ListAsync($"SELECT {SlotColumns} FROM dapo_slots WHERE run_id = @run AND prompt_id = @prompt ORDER BY slot", ReadSlot,
            ("run", runId), ("prompt", promptId));

    private static SlotRow ReadSlot(DbDataReader r) => new(
        r.GetString(0), Long(r, 1), Int(r, 2), Ints((byte[])r[3]), Floats((byte[])r[4]), r.GetString(5), r.GetDouble(6),
        r.GetDouble(7), r.GetDouble(8), Int(r, 9) != 0, Int(r, 10) != 0, Int(r, 11), r.GetString(12), Long(r, 13));

    // ---- Work queue --------------------------------------------------------------------------------------------------

    public async Task<long> EnqueueWorkAsync(string runId, int step, long promptId, int policyVersion) =>
        Convert.ToInt64(await ScalarAsync(
            "INSERT INTO dapo_work (run_id, step, prompt_id, policy_version, lease_owner, lease_until, attempts, done) " +
            "VALUES (@run, @step, @prompt, @version, NULL, NULL, 0, 0) RETURNING item_id",
            ("run", runId), ("step", step), ("prompt", promptId), ("version", policyVersion)));

    public async Task<IReadOnlyList<WorkItemRow>> LeaseWorkAsync(string worker, int max, long now, long leaseUntil)
    {
        // Pick first (rows locked, others' picks skipped on PostgreSQL), then take the lease in the same transaction.
        var picked = await ListAsync(
            $"SELECT {WorkColumns} FROM dapo_work WHERE done = 0 AND (lease_until IS NULL OR lease_until < @now) " +
            "AND run_id IN (SELECT run_id FROM dapo_runs WHERE status = 'Running') " +
            $"ORDER BY item_id LIMIT @max{dialect.SkipLocked}", ReadWork, ("now", now), ("max", max));
        foreach (var item in picked)
            await ExecuteOneAsync(
                "UPDATE dapo_work SET lease_owner = @worker, lease_until = @until, attempts = attempts + 1 WHERE item_id = @item",
                ("worker", worker), ("until", leaseUntil), ("item", item.ItemId));
        return picked.Select(w => w with { LeaseOwner = worker, LeaseUntil = leaseUntil, Attempts = w.Attempts + 1 }).ToList();
    }

    public Task<WorkItemRow?> GetWorkItemAsync(long itemId) =>
        SingleAsync($"SELECT {WorkColumns} FROM dapo_work WHERE item_id = @item", ReadWork, ("item", itemId));

    public Task CompleteWorkAsync(long itemId) =>
        ExecuteAsync("UPDATE dapo_work SET done = 1, lease_until = NULL WHERE item_id = @item", ("item", itemId));

    public Task CompleteWorkForPromptAsync(string runId, long promptId) => ExecuteAsync(
        "UPDATE dapo_work SET done = 1, lease_until = NULL WHERE run_id = @run AND prompt_id = @prompt AND done = 0",
        ("run", runId), ("prompt", promptId));

    public Task<int> ReleaseWorkAsync(string worker) => ExecuteAsync(
        "UPDATE dapo_work SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = @worker AND done = 0", ("worker", worker));

    public Task<IReadOnlyList<WorkItemRow>> ListWorkAsync(string? runId, bool openOnly) => ListAsync(
        $"SELECT {WorkColumns} FROM dapo_work WHERE (CAST(@run AS TEXT) IS NULL OR run_id = @run) AND (@open = 0 OR done = 0) ORDER BY item_id",
        ReadWork, ("run", runId), ("open", openOnly ? 1 : 0));

    private static WorkItemRow ReadWork(DbDataReader r) => new(
        Long(r, 0), r.GetString(1), Int(r, 2), Long(r, 3), Int(r, 4), NullableString(r, 5), NullableLong(r, 6), Int(r, 7),
        Int(r, 8) != 0);

    // ---- Leases ------------------------------------------------------------------------------------------------------

    public Task<LeaseRow?> GetLeaseAsync(string name, bool forUpdate = false) =>
        SingleAsync($"SELECT name, owner, epoch, expires_at FROM dapo_leases WHERE name = @name{Lock(forUpdate)}",
            r => new LeaseRow(r.GetString(0), r.GetString(1), Long(r, 2), Long(r, 3)), ("name", name));

    public Task UpsertLeaseAsync(LeaseRow l) => ExecuteAsync(
        "INSERT INTO dapo_leases (name, owner, epoch, expires_at) VALUES (@name, @owner, @epoch, @expires) " +
        "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, epoch = excluded.epoch, expires_at = excluded.expires_at",
        ("name", l.Name), ("owner", l.Owner), ("epoch", l.Epoch), ("expires", l.ExpiresAt));

    // ---- Membership --------------------------------------------------------------------------------------------------

    public Task UpsertMemberAsync(MemberRow m) => ExecuteAsync(
        $"INSERT INTO dapo_members ({MemberColumns}) VALUES (@silo, @host, @pid, @roles, @status, @started, @heartbeat, @work) " +
        "ON CONFLICT (silo_id) DO UPDATE SET host = excluded.host, process_id = excluded.process_id, roles = excluded.roles, " +
        "status = excluded.status, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, " +
        "work_in_hand = excluded.work_in_hand",
        ("silo", m.SiloId), ("host", m.Host), ("pid", m.ProcessId), ("roles", m.Roles), ("status", m.Status.ToString()),
        ("started", m.StartedAt), ("heartbeat", m.HeartbeatAt), ("work", m.WorkInHand));

    public Task<MemberRow?> GetMemberAsync(string siloId) =>
        SingleAsync($"SELECT {MemberColumns} FROM dapo_members WHERE silo_id = @silo", ReadMember, ("silo", siloId));

    public Task<IReadOnlyList<MemberRow>> ListMembersAsync() =>
        ListAsync($"SELECT {MemberColumns} FROM dapo_members ORDER BY started_at, silo_id", ReadMember);

    private static MemberRow ReadMember(DbDataReader r) => new(
        r.GetString(0), r.GetString(1), Int(r, 2), r.GetString(3), Enum.Parse<MemberStatus>(r.GetString(4)), Long(r, 5), Long(r, 6),
        Int(r, 7));

    // ---- Learner state -----------------------------------------------------------------------------------------------

    public Task UpsertLearnerAsync(LearnerRow l) => ExecuteAsync(
        "INSERT INTO dapo_learners (run_id, silo_id, epoch, phase, step, detail, updated_at) " +
        "VALUES (@run, @silo, @epoch, @phase, @step, @detail, @updated) ON CONFLICT (run_id) DO UPDATE SET silo_id = excluded.silo_id, " +
        "epoch = excluded.epoch, phase = excluded.phase, step = excluded.step, detail = excluded.detail, updated_at = excluded.updated_at",
        ("run", l.RunId), ("silo", l.SiloId), ("epoch", l.Epoch), ("phase", l.Phase), ("step", l.Step), ("detail", l.Detail),
        ("updated", l.UpdatedAt));

    public Task<LearnerRow?> GetLearnerAsync(string runId) => SingleAsync(
        "SELECT run_id, silo_id, epoch, phase, step, detail, updated_at FROM dapo_learners WHERE run_id = @run",
        r => new LearnerRow(r.GetString(0), r.GetString(1), Long(r, 2), r.GetString(3), Int(r, 4), r.GetString(5), Long(r, 6)),
        ("run", runId));

    // ---- Metrics -----------------------------------------------------------------------------------------------------

    public Task UpsertMetricsAsync(MetricsRow m) => ExecuteAsync(
        "INSERT INTO dapo_metrics (run_id, step, json, created_at) VALUES (@run, @step, @json, @created) " +
        "ON CONFLICT (run_id, step) DO UPDATE SET json = excluded.json, created_at = excluded.created_at",
        ("run", m.RunId), ("step", m.Step), ("json", m.Json), ("created", m.CreatedAt));

    public Task<IReadOnlyList<MetricsRow>> ListMetricsAsync(string runId, int afterStep) => ListAsync(
        "SELECT run_id, step, json, created_at FROM dapo_metrics WHERE run_id = @run AND step > @step ORDER BY step",
        r => new MetricsRow(r.GetString(0), Int(r, 1), r.GetString(2), Long(r, 3)), ("run", runId), ("step", afterStep));

    // ---- Plumbing ----------------------------------------------------------------------------------------------------

    private string Lock(bool forUpdate) => forUpdate ? dialect.ForUpdate : "";

    private DbCommand Command(string sql, (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            var p = command.CreateParameter();
            p.ParameterName = name;
            p.Value = value ?? DBNull.Value;
            command.Parameters.Add(p);
        }
        return command;
    }

    private async Task<int> ExecuteAsync(string sql, params (string, object?)[] parameters)
    {
        await using var command = Command(sql, parameters);
        return await command.ExecuteNonQueryAsync();
    }

    /// <summary>An update that must hit exactly one row: the row was read (and locked) earlier in the transaction.</summary>
    private async Task ExecuteOneAsync(string sql, params (string, object?)[] parameters)
    {
        var rows = await ExecuteAsync(sql, parameters);
        if (rows != 1) throw new InvalidOperationException($"Expected to update one row, updated {rows}: {sql[..Math.Min(60, sql.Length)]}…");
    }

    private async Task<object?> ScalarAsync(string sql, params (string, object?)[] parameters)
    {
        await using var command = Command(sql, parameters);
        return await command.ExecuteScalarAsync();
    }

    private async Task<T?> SingleAsync<T>(string sql, Func<DbDataReader, T> read, params (string, object?)[] parameters) where T : class
    {
        await using var command = Command(sql, parameters);
        await using var reader = await command.ExecuteReaderAsync();
        return await reader.ReadAsync() ? read(reader) : null;
    }

    private async Task<IReadOnlyList<T>> ListAsync<T>(string sql, Func<DbDataReader, T> read, params (string, object?)[] parameters)
    {
        await using var command = Command(sql, parameters);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<T>();
        while (await reader.ReadAsync()) rows.Add(read(reader));
        return rows;
    }

    // SQLite gives 64-bit integers for every INTEGER column, PostgreSQL 32-bit for INTEGER and 64-bit for BIGINT.
    private static int Int(DbDataReader r, int i) => Convert.ToInt32(r.GetValue(i));
    private static long Long(DbDataReader r, int i) => Convert.ToInt64(r.GetValue(i));
    private static int? NullableInt(DbDataReader r, int i) => r.IsDBNull(i) ? null : Int(r, i);
    private static long? NullableLong(DbDataReader r, int i) => r.IsDBNull(i) ? null : Long(r, i);
    private static double? NullableDouble(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetDouble(i);
    private static string? NullableString(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    // Token ids and log-probabilities are stored as little-endian 32-bit arrays.
    internal static byte[] ToBytes<T>(T[] values) where T : struct => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
    internal static int[] Ints(byte[] bytes) => MemoryMarshal.Cast<byte, int>(bytes).ToArray();
    internal static float[] Floats(byte[] bytes) => MemoryMarshal.Cast<byte, float>(bytes).ToArray();
}
