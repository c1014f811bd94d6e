namespace Dapo.Grains.Hosting;

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

/// <summary>Where the cluster keeps membership, reminders and grain state.</summary>
public enum ClusterStorage
{
    /// <summary>One silo on this machine: localhost clustering, grain state in files under the run directory,
    /// reminders in memory (the embedded default of `train`).</summary>
    Local,
    /// <summary>Azure Storage, named by Blobs:ConnectionString: membership, reminders and grain state in Azure Tables
    /// (Azurite locally and in tests); blobs in its blob service.</summary>
    AzureStorage,
    /// <summary>Redis, named by Redis:ConnectionString: membership, reminders and grain state (Orleans' Redis
    /// providers); blobs in Azure Storage or a directory every silo shares.</summary>
    Redis,
}

/// <summary>How a silo behaves (configuration section "Silo"). Durations in .NET TimeSpan format (00:00:05).</summary>
public sealed class SiloOptions
{
    /// <summary>Comma-separated roles: learner, rollout.</summary>
    public string Roles { get; set; } = "learner,rollout";

    /// <summary>Membership, reminders and grain state: Local (one silo), AzureStorage or Redis.</summary>
    public ClusterStorage Storage { get; set; } = ClusterStorage.Local;

    /// <summary>Orleans cluster and service id: silos and clients with the same id form one cluster.</summary>
    public string ClusterId { get; set; } = "dapo";

    /// <summary>Local directory for per-run metrics files (and, with Local storage, the grain state).</summary>
    public string RunDirectory { get; set; } = "runs";

    /// <summary>With Local storage: the directory of the grain state files (default: RunDirectory/grains).</summary>
    public string GrainStateDirectory { get; set; } = "";

    /// <summary>Only this run is served by this silo's rollout grains (empty: every running run).</summary>
    public string Run { get; set; } = "";

    /// <summary>The address this silo listens on and advertises to the cluster. Loopback unless told otherwise: tests and
    /// local runs never use another address of the machine.</summary>
    public string Address { get; set; } = "127.0.0.1";

    /// <summary>Silo-to-silo port (0: a free one).</summary>
    public int SiloPort { get; set; }

    /// <summary>Client gateway port (0: a free one).</summary>
    public int GatewayPort { get; set; }

    /// <summary>How long a silo waits for a membership probe's answer.</summary>
    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Missed probes after which a silo suspects another.</summary>
    public int MissedProbesLimit { get; set; } = 3;

    /// <summary>Suspicions that declare a silo dead.</summary>
    public int VotesForDeath { get; set; } = 2;

    /// <summary>Period of the learner's keep-running reminder: after its silo dies, the learner starts again on another
    /// learner silo within about this long.</summary>
    public TimeSpan LearnerReminderPeriod { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Visibility timeout of leased rollout work: after it, another rollout grain can take the group.</summary>
    public TimeSpan WorkVisibility { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Rollout grains (devices) of this silo, each with its own copy of the policy.</summary>
    public int RolloutWorkers { get; set; } = 1;

    /// <summary>Most prompt groups a rollout grain leases and samples in one engine batch.</summary>
    public int RolloutBatch { get; set; } = 64;

    /// <summary>The learner checkpoints every this many steps (and after the last).</summary>
    public int CheckpointEvery { get; set; } = 1;

    /// <summary>Complete checkpoints kept; older ones are deleted.</summary>
    public int KeepCheckpoints { get; set; } = 3;

    /// <summary>How long a starting silo tries to reach its storage before it gives up with an error.</summary>
    public TimeSpan StartupTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Give a blob write or read up after this long without healthy blob storage.</summary>
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
        if (!Enum.IsDefined(o.Storage)) errors.Add($"Silo:Storage is {o.Storage}: use Local, AzureStorage or Redis.");
        if (string.IsNullOrWhiteSpace(o.ClusterId) || o.ClusterId.Any(c => !(char.IsAsciiLetterOrDigit(c) || c == '-')))
            errors.Add($"Silo:ClusterId '{o.ClusterId}' must be letters, digits and '-'.");
        if (!System.Net.IPAddress.TryParse(o.Address, out _))
            errors.Add($"Silo:Address '{o.Address}' is not an IP address: use 127.0.0.1 on one machine, the machine's address in a cluster.");
        if (o.SiloPort is < 0 or > 65535) errors.Add($"Silo:SiloPort is {o.SiloPort}: use 0 (a free port) or 1-65535.");
        if (o.GatewayPort is < 0 or > 65535) errors.Add($"Silo:GatewayPort is {o.GatewayPort}: use 0 (a free port) or 1-65535.");
        if (o.SiloPort != 0 && o.SiloPort == o.GatewayPort) errors.Add($"Silo:SiloPort and Silo:GatewayPort are both {o.SiloPort}: use two ports.");
        Positive(errors, o.ProbeTimeout, "ProbeTimeout");
        Positive(errors, o.LearnerReminderPeriod, "LearnerReminderPeriod");
        Positive(errors, o.WorkVisibility, "WorkVisibility");
        Positive(errors, o.RetryBudget, "RetryBudget");
        Positive(errors, o.StartupTimeout, "StartupTimeout");
        if (o.MissedProbesLimit < 1) errors.Add($"Silo:MissedProbesLimit is {o.MissedProbesLimit}: use 1 or more.");
        if (o.VotesForDeath < 1) errors.Add($"Silo:VotesForDeath is {o.VotesForDeath}: use 1 or more.");
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
