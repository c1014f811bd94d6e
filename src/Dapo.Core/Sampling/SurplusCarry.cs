using Dapo.Core.Options;

namespace Dapo.Core.Sampling;

/// <summary>
/// What to do with accepted groups beyond a step's target (<see cref="SurplusGroupBehavior"/>): verl discards them
/// (it keeps the first target × G trajectories); with <see cref="SurplusGroupBehavior.Carry"/> a surplus group counts
/// toward the next step if its sampling policy is not too stale. A carried group keeps its behaviour log-probabilities
/// as π_old, so its importance ratio is measured against the policy that actually sampled it.
/// </summary>
public static class SurplusCarry
{
    /// <summary>Accepted groups beyond the target (0 if none).</summary>
    public static int Surplus(StepCounters counters) => Math.Max(0, counters.Accepted - counters.Target);

    /// <summary>
    /// Whether a surplus group sampled by policy version <paramref name="groupPolicyVersion"/> may be trained on by
    /// version <paramref name="trainingPolicyVersion"/>: carrying is on and 0 ≤ training − group ≤ max staleness.
    /// </summary>
    public static bool CanCarry(SurplusGroupBehavior behavior, long groupPolicyVersion, long trainingPolicyVersion, int maxStaleness)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxStaleness);
        if (behavior != SurplusGroupBehavior.Carry) return false;
        var staleness = trainingPolicyVersion - groupPolicyVersion;
        return staleness >= 0 && staleness <= maxStaleness;
    }

    /// <summary><see cref="CanCarry(SurplusGroupBehavior, long, long, int)"/> with the settings of <paramref name="options"/>.</summary>
    public static bool CanCarry(DapoOptions options, long groupPolicyVersion, long trainingPolicyVersion)
    {
        ArgumentNullException.ThrowIfNull(options);
        return CanCarry(options.SurplusGroups, groupPolicyVersion, trainingPolicyVersion, options.MaxCarryStaleness);
    }
}
