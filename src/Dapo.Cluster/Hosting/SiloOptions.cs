namespace Dapo.Cluster.Hosting;

/// <summary>Roles a silo hosts.</summary>
[Flags]
public enum SiloRoles
{
    None = 0,
    /// <summary>Competes for each run's learner lease; the holder trains, the others stand by.</summary>
    Learner = 1,
    /// <summary>Stateless rollout workers: lease work, sample, score, submit.</summary>
    Rollout = 2,
}

/// <summary>How a silo behaves (configuration section "Silo"). Durations in .NET TimeSpan format (00:00:05).</summary>
public sealed class SiloOptions
{
    /// <summary>Comma-separated roles: learner, rollout.</summary>
    public string Roles { get; set; } = "learner,rollout";

    /// <summary>This silo's id in the membership table; empty picks host-pid-random.</summary>
    public string Id { get; set; } = "";

    /// <summary>Local directory for per-run metrics files (and, embedded, the store and blobs).</summary>
    public string RunDirectory { get; set; } = "runs";

    /// <summary>Only this run is served (empty: every running run).</summary>
    public string Run { get; set; } = "";

    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A silo whose last heartbeat is older than this no longer counts as alive.</summary>
    public TimeSpan MemberTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long the learner lease lasts unrenewed: a standby takes over after about this long.</summary>
    public TimeSpan LearnerLeaseTtl { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Visibility timeout of leased rollout work: after it, another worker can take the item.</summary>
    public TimeSpan WorkVisibility { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often idle loops look for work (rollout) or for a sampling step's end (learner).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Rollout worker loops in this silo, each with its own copy of the policy.</summary>
    public int RolloutWorkers { get; set; } = 1;

    /// <summary>Most prompt groups a worker leases and samples in one engine batch.</summary>
    public int RolloutBatch { get; set; } = 64;

    /// <summary>The learner checkpoints every this many steps (and after the last).</summary>
    public int CheckpointEvery { get; set; } = 1;

    /// <summary>Complete checkpoints kept; older ones are deleted.</summary>
    public int KeepCheckpoints { get; set; } = 3;

    /// <summary>How long a starting silo tries to reach its store and blob storage before it gives up with an error.</summary>
    public TimeSpan StartupTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Give the silo up after this long without a healthy store or blob storage.</summary>
    public TimeSpan RetryBudget { get; set; } = TimeSpan.FromMinutes(2);

    public SiloRoles ParsedRoles => ParseRoles(Roles, out _);

    public static SiloRoles ParseRoles(string roles, out string? error)
    {
        error = null;
        var parsed = SiloRoles.None;
        foreach (var name in roles.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (name.Equals("learner", StringComparison.OrdinalIgnoreCase)) parsed |= SiloRoles.Learner;
            else if (name.Equals("rollout", StringComparison.OrdinalIgnoreCase)) parsed |= SiloRoles.Rollout;
            else error = $"Silo:Roles has unknown role '{name}': use learner, rollout or both (learner,rollout).";
        }
        if (parsed == SiloRoles.None && error is null) error = "Silo:Roles is empty: use learner, rollout or both (learner,rollout).";
        return parsed;
    }
}

/// <summary>Checks <see cref="SiloOptions"/> at startup; each message names the option and the fix.</summary>
public static class SiloOptionsValidator
{
    public static IReadOnlyList<string> Validate(SiloOptions o)
    {
        var errors = new List<string>();
        SiloOptions.ParseRoles(o.Roles, out var rolesError);
        if (rolesError is not null) errors.Add(rolesError);
        if (string.IsNullOrWhiteSpace(o.RunDirectory)) errors.Add("Silo:RunDirectory is empty: name a local directory for run files.");
        Positive(errors, o.HeartbeatInterval, "HeartbeatInterval");
        Positive(errors, o.LearnerLeaseTtl, "LearnerLeaseTtl");
        Positive(errors, o.WorkVisibility, "WorkVisibility");
        Positive(errors, o.PollInterval, "PollInterval");
        Positive(errors, o.RetryBudget, "RetryBudget");
        Positive(errors, o.StartupTimeout, "StartupTimeout");
        if (o.MemberTimeout <= o.HeartbeatInterval)
            errors.Add($"Silo:MemberTimeout ({o.MemberTimeout}) must exceed Silo:HeartbeatInterval ({o.HeartbeatInterval}).");
        if (o.LearnerLeaseTtl < 3 * o.PollInterval)
            errors.Add($"Silo:LearnerLeaseTtl ({o.LearnerLeaseTtl}) must be at least 3 x Silo:PollInterval ({o.PollInterval}).");
        if (o.RolloutWorkers < 1) errors.Add($"Silo:RolloutWorkers is {o.RolloutWorkers}: use 1 or more.");
        if (o.RolloutBatch < 1) errors.Add($"Silo:RolloutBatch is {o.RolloutBatch}: use 1 or more.");
        if (o.CheckpointEvery < 1) errors.Add($"Silo:CheckpointEvery is {o.CheckpointEvery}: use 1 or more.");
        if (o.KeepCheckpoints < 1) errors.Add($"Silo:KeepCheckpoints is {o.KeepCheckpoints}: use 1 or more.");
        return errors;
    }

    private static void Positive(List<string> errors, TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero) errors.Add($"Silo:{name} is {value}: use a positive duration such as 00:00:05.");
    }
}
