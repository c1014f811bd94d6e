namespace Dapo.Cluster.Store;

/// <summary>
/// The store's schema as numbered migrations, written once for both databases: <see cref="SqlDialect"/> fills in the
/// few types that differ. A store applies the migrations it has not applied yet, in order, and refuses to open a
/// schema newer than it knows.
/// </summary>
internal static class Schema
{
    public static readonly IReadOnlyList<string> Migrations =
    [
        // 1: runs, step ledger, prompt grains and slots, work queue, leases, membership, metrics.
        """
        CREATE TABLE dapo_runs (
            run_id TEXT PRIMARY KEY,
            spec_json TEXT NOT NULL,
            status TEXT NOT NULL,
            step INTEGER NOT NULL,
            policy_version INTEGER NOT NULL,
            cursor_json TEXT NOT NULL,
            next_prompt_id BIGINT NOT NULL,
            latest_checkpoint INTEGER NULL,
            error TEXT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL);
        CREATE TABLE dapo_steps (
            run_id TEXT NOT NULL,
            step INTEGER NOT NULL,
            policy_version INTEGER NOT NULL,
            phase TEXT NOT NULL,
            target INTEGER NOT NULL,
            accepted INTEGER NOT NULL,
            filtered INTEGER NOT NULL,
            abandoned INTEGER NOT NULL,
            in_flight INTEGER NOT NULL,
            draws INTEGER NOT NULL,
            generation_rounds INTEGER NOT NULL,
            surplus_carried INTEGER NOT NULL,
            stop_reason TEXT NULL,
            opened_at BIGINT NOT NULL,
            sampling_done_at BIGINT NULL,
            closed_at BIGINT NULL,
            PRIMARY KEY (run_id, step));
        CREATE TABLE dapo_prompts (
            run_id TEXT NOT NULL,
            prompt_id BIGINT NOT NULL,
            step INTEGER NOT NULL,
            dataset_index INTEGER NOT NULL,
            draw_ordinal BIGINT NOT NULL,
            problem TEXT NOT NULL,
            ground_truth TEXT NOT NULL,
            prompt_tokens {BLOB} NOT NULL,
            policy_version INTEGER NOT NULL,
            group_size INTEGER NOT NULL,
            filled INTEGER NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            accuracy {REAL} NULL,
            mean_reward {REAL} NULL,
            mean_length {REAL} NULL,
            truncated_count INTEGER NULL,
            history TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            decided_at BIGINT NULL,
            PRIMARY KEY (run_id, prompt_id));
        CREATE INDEX dapo_prompts_by_step ON dapo_prompts (run_id, step, status);
        CREATE TABLE dapo_slots (
            run_id TEXT NOT NULL,
            prompt_id BIGINT NOT NULL,
            slot INTEGER NOT NULL,
            tokens {BLOB} NOT NULL,
            logprobs {BLOB} NOT NULL,
            text TEXT NOT NULL,
            score {REAL} NOT NULL,
            overlong_penalty {REAL} NOT NULL,
            reward {REAL} NOT NULL,
            correct INTEGER NOT NULL,
            truncated INTEGER NOT NULL,
            policy_version INTEGER NOT NULL,
            worker TEXT NOT NULL,
            submitted_at BIGINT NOT NULL,
            PRIMARY KEY (run_id, prompt_id, slot));
        CREATE TABLE dapo_work (
            item_id {IDENTITY},
            run_id TEXT NOT NULL,
            step INTEGER NOT NULL,
            prompt_id BIGINT NOT NULL,
            policy_version INTEGER NOT NULL,
            lease_owner TEXT NULL,
            lease_until BIGINT NULL,
            attempts INTEGER NOT NULL,
            done INTEGER NOT NULL);
        CREATE INDEX dapo_work_open ON dapo_work (done, item_id);
        CREATE TABLE dapo_leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            epoch BIGINT NOT NULL,
            expires_at BIGINT NOT NULL);
        CREATE TABLE dapo_members (
            silo_id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            process_id INTEGER NOT NULL,
            roles TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at BIGINT NOT NULL,
            heartbeat_at BIGINT NOT NULL,
            work_in_hand INTEGER NOT NULL);
        CREATE TABLE dapo_metrics (
            run_id TEXT NOT NULL,
            step INTEGER NOT NULL,
            json TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            PRIMARY KEY (run_id, step));
        """,
        // 2: what each run's learner is doing, for the client console.
        """
        CREATE TABLE dapo_learners (
            run_id TEXT PRIMARY KEY,
            silo_id TEXT NOT NULL,
            epoch BIGINT NOT NULL,
            phase TEXT NOT NULL,
            step INTEGER NOT NULL,
            detail TEXT NOT NULL,
            updated_at BIGINT NOT NULL);
        """,
    ];

    public static int Version => Migrations.Count;
}

/// <summary>What differs between SQLite and PostgreSQL in our SQL.</summary>
internal sealed record SqlDialect(string Name, string Blob, string Real, string Identity, string ForUpdate, string SkipLocked)
{
    public static readonly SqlDialect Sqlite = new("SQLite", "BLOB", "REAL", "INTEGER PRIMARY KEY AUTOINCREMENT", "", "");

    public static readonly SqlDialect Postgres = new("PostgreSQL", "BYTEA", "DOUBLE PRECISION",
        "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", " FOR UPDATE", " FOR UPDATE SKIP LOCKED");

    public string Render(string sql) =>
        sql.Replace("{BLOB}", Blob).Replace("{REAL}", Real).Replace("{IDENTITY}", Identity);
}
