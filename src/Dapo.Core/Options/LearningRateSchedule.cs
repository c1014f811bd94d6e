namespace Dapo.Core.Options;

/// <summary>
/// The paper's learning-rate schedule: constant AdamW learning rate after a linear warm-up over the first
/// <see cref="DapoOptions.WarmupSteps"/> rollout steps (<see href="https://arxiv.org/abs/2503.14476"/>, §4.1).
/// </summary>
public static class LearningRateSchedule
{
    /// <summary>
    /// The learning rate of rollout step <paramref name="step"/> (0-based): lr × min(1, (step + 1) / warmup). The
    /// first step trains at lr / warmup and step warmup − 1 reaches the full rate. (verl's
    /// <c>get_constant_schedule_with_warmup</c> uses step / warmup, so its first step has rate 0; we do not waste a
    /// rollout step on a zero update.)
    /// </summary>
    public static double At(int step, double learningRate, int warmupSteps)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        if (warmupSteps == 0) return learningRate;
        return learningRate * Math.Min(1.0, (step + 1.0) / warmupSteps);
    }

    /// <summary>The learning rate of rollout step <paramref name="step"/> under <paramref name="options"/>.</summary>
    public static double At(int step, DapoOptions options) => At(step, options.LearningRate, options.WarmupSteps);
}
