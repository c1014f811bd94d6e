namespace Dapo.Cluster.Store;

/// <summary>
/// The cluster store: every grain method is one <see cref="TransactAsync{T}"/>, so a crash at any instant leaves
/// either all of a transition or none of it. SQLite (embedded) and PostgreSQL (cluster) implement it with the same
/// SQL and pass the same contract tests.
/// </summary>
public interface IClusterStore : IAsyncDisposable
{
    /// <summary>What the store is, for logs, with secrets redacted.</summary>
    string Description { get; }

    /// <summary>Creates or migrates the schema to the version this program knows. Refuses a newer schema.</summary>
    Task MigrateAsync(CancellationToken cancellationToken);

    /// <summary>For readers that must not migrate (the client): throws a clear error unless the store holds a
    /// schema this program can read.</summary>
    Task VerifySchemaAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Runs <paramref name="work"/> in one serialisable transaction, committed when it returns. Transient failures
    /// (a restarting server, a lock conflict) roll back and run it again, with back-off, for up to the store's retry
    /// budget; <paramref name="work"/> must therefore have no effects outside the session.
    /// </summary>
    Task<T> TransactAsync<T>(Func<IStoreSession, Task<T>> work, CancellationToken cancellationToken);
}

/// <summary>Reads and writes inside one transaction. "ForUpdate" reads lock the row until the transaction ends.</summary>
public interface IStoreSession
{
    // Runs
    Task<RunRow?> GetRunAsync(string runId, bool forUpdate = false);
    Task<IReadOnlyList<RunRow>> ListRunsAsync();
    Task InsertRunAsync(RunRow run);
    Task UpdateRunAsync(RunRow run);

    // Steps
    Task<StepRow?> GetStepAsync(string runId, int step, bool forUpdate = false);
    Task<IReadOnlyList<StepRow>> ListStepsAsync(string runId, int last);
    /// <summary>Inserts the step, or replaces it when it exists (a step reopened after a restart).</summary>
    Task UpsertStepAsync(StepRow step);

    // Prompt grains and their slots
    Task<PromptRow?> GetPromptAsync(string runId, long promptId, bool forUpdate = false);
    Task<IReadOnlyList<PromptRow>> ListPromptsAsync(string runId, int step, PromptStatus? status = null);
    /// <summary>Prompts of steps after <paramref name="afterStep"/> that are still sampling or accepted.</summary>
    Task<IReadOnlyList<PromptRow>> ListOpenPromptsAfterAsync(string runId, int afterStep);
    Task InsertPromptAsync(PromptRow prompt);
    Task UpdatePromptAsync(PromptRow prompt);
    /// <summary>Inserts the slots not submitted before (exactly-once); returns the slot indices it inserted.</summary>
    Task<IReadOnlyList<int>> InsertSlotsIfAbsentAsync(IReadOnlyList<SlotRow> slots);
    Task<IReadOnlyList<SlotRow>> ListSlotsAsync(string runId, long promptId);

    // Work queue
    Task<long> EnqueueWorkAsync(string runId, int step, long promptId, int policyVersion);
    /// <summary>Leases up to <paramref name="max"/> items of running runs that are not done and not leased (or
    /// whose lease expired), oldest first, until <paramref name="leaseUntil"/>.</summary>
    Task<IReadOnlyList<WorkItemRow>> LeaseWorkAsync(string worker, int max, long now, long leaseUntil);
    Task<WorkItemRow?> GetWorkItemAsync(long itemId);
    Task CompleteWorkAsync(long itemId);
    /// <summary>Marks every open item of the prompt done (its grain ended).</summary>
    Task CompleteWorkForPromptAsync(string runId, long promptId);
    /// <summary>Gives back the worker's unfinished leases so another worker can take them now.</summary>
    Task<int> ReleaseWorkAsync(string worker);
    Task<IReadOnlyList<WorkItemRow>> ListWorkAsync(string? runId, bool openOnly);

    // Leases
    Task<LeaseRow?> GetLeaseAsync(string name, bool forUpdate = false);
    Task UpsertLeaseAsync(LeaseRow lease);

    // Membership
    Task UpsertMemberAsync(MemberRow member);
    Task<MemberRow?> GetMemberAsync(string siloId);
    Task<IReadOnlyList<MemberRow>> ListMembersAsync();

    // Learner state
    Task UpsertLearnerAsync(LearnerRow learner);
    Task<LearnerRow?> GetLearnerAsync(string runId);

    // Metrics
    Task UpsertMetricsAsync(MetricsRow metrics);
    Task<IReadOnlyList<MetricsRow>> ListMetricsAsync(string runId, int afterStep);
}
