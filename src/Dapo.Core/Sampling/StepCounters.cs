namespace Dapo.Core.Sampling;

/// <summary>
/// The dynamic-sampling ledger of one rollout step: everything <see cref="DynamicSamplingPolicy.Decide"/> looks at.
/// </summary>
/// <param name="Target">Informative groups the step needs (the prompt batch size).</param>
/// <param name="Accepted">Groups accepted so far (carried groups included).</param>
/// <param name="InFlight">Prompts drawn whose groups have not finished yet.</param>
/// <param name="Draws">Prompts drawn so far in this step (finished, filtered and in flight; carried groups
/// excluded).</param>
public readonly record struct StepCounters(int Target, int Accepted, int InFlight, int Draws)
{
    /// <summary>Throws if the counters cannot describe a real step.</summary>
    public void Validate()
    {
        if (Target < 1) throw new ArgumentOutOfRangeException(nameof(Target), Target, "A step needs a target of at least one group.");
        if (Accepted < 0) throw new ArgumentOutOfRangeException(nameof(Accepted), Accepted, "Must be non-negative.");
        if (InFlight < 0) throw new ArgumentOutOfRangeException(nameof(InFlight), InFlight, "Must be non-negative.");
        if (Draws < InFlight)
            throw new ArgumentOutOfRangeException(nameof(Draws), Draws, $"Fewer draws than prompts in flight ({InFlight}).");
    }
}

/// <summary>Whether a finished group is used for training.</summary>
public enum GroupVerdict
{
    /// <summary>Informative: its responses disagree, so it has non-zero advantages.</summary>
    Accepted,

    /// <summary>Uninformative: every response has the same value (accuracy 0 or 1); dropped.</summary>
    Filtered,
}

/// <summary>What the step should do next.</summary>
public enum SamplingAction
{
    /// <summary>Draw <see cref="SamplingDecision.Prompts"/> more prompts.</summary>
    Refill,

    /// <summary>Draw nothing; wait for groups in flight.</summary>
    Wait,

    /// <summary>Stop sampling; see <see cref="SamplingDecision.Reason"/>.</summary>
    Stop,
}

/// <summary>Why sampling stopped.</summary>
public enum StopReason
{
    /// <summary>Not stopped.</summary>
    None,

    /// <summary>The step has its target of accepted groups; train on exactly <see cref="StepCounters.Target"/>.</summary>
    TargetMet,

    /// <summary>The generation cap was reached; train on the groups accepted so far.</summary>
    CapReachedTrainOnAccepted,

    /// <summary>The generation cap was reached and the step cannot train (configured to fail, or nothing accepted).</summary>
    CapReachedFail,
}

/// <summary>One decision of <see cref="DynamicSamplingPolicy.Decide"/>.</summary>
/// <param name="Action">Refill, wait or stop.</param>
/// <param name="Prompts">With <see cref="SamplingAction.Refill"/>: how many prompts to draw (≥ 1); otherwise 0.</param>
/// <param name="Reason">With <see cref="SamplingAction.Stop"/>: why; otherwise <see cref="StopReason.None"/>.</param>
public readonly record struct SamplingDecision(SamplingAction Action, int Prompts, StopReason Reason)
{
    /// <summary>Draw <paramref name="prompts"/> prompts.</summary>
    public static SamplingDecision Refill(int prompts) => new(SamplingAction.Refill, prompts, StopReason.None);

    /// <summary>Wait for groups in flight.</summary>
    public static SamplingDecision Wait { get; } = new(SamplingAction.Wait, 0, StopReason.None);

    /// <summary>Stop for <paramref name="reason"/>.</summary>
    public static SamplingDecision Stop(StopReason reason) => new(SamplingAction.Stop, 0, reason);

    /// <summary>Whether the step goes on to train (stopped with the target met, or at the cap with
    /// train-on-accepted).</summary>
    public bool CanTrain => Reason is StopReason.TargetMet or StopReason.CapReachedTrainOnAccepted;
}
