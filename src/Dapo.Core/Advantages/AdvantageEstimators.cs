using Dapo.Core.Common;

namespace Dapo.Core.Advantages;

/// <summary>
/// Advantage estimators by name (verl <c>register_adv_est</c>); each entry is a factory taking ε. Register your own
/// with <c>Registry.Register(name, epsilon =&gt; ...)</c>.
/// </summary>
public static class AdvantageEstimators
{
    /// <summary>GRPO: (R − mean) / (std + ε), the paper's eq. 9.</summary>
    public const string Grpo = "grpo";

    /// <summary>Dr. GRPO: R − mean (no std scaling), for ablations.</summary>
    public const string DrGrpo = "dr-grpo";

    /// <summary>The table.</summary>
    public static NamedRegistry<Func<double, IAdvantageEstimator>> Registry { get; } = CreateRegistry();

    /// <summary>The estimator named <paramref name="name"/> with ε = <paramref name="epsilon"/>.</summary>
    public static IAdvantageEstimator Create(string name, double epsilon = 1e-6) => Registry.Get(name)(epsilon);

    /// <summary>
    /// Advantages for consecutive groups of <paramref name="groupSize"/> rewards (responses of prompt k at
    /// k·G .. k·G + G − 1), shape (groups × G).
    /// </summary>
    public static double[] ComputeGroups(IAdvantageEstimator estimator, ReadOnlySpan<double> rewards, int groupSize)
    {
        ArgumentNullException.ThrowIfNull(estimator);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(groupSize);
        if (rewards.Length % groupSize != 0)
            throw new ArgumentException($"{rewards.Length} rewards do not split into groups of {groupSize}.", nameof(rewards));
        var advantages = new double[rewards.Length];
        for (var start = 0; start < rewards.Length; start += groupSize)
            estimator.Compute(rewards.Slice(start, groupSize), advantages.AsSpan(start, groupSize));
        return advantages;
    }

    /// <summary>
    /// Per-sequence advantages repeated over each sequence's tokens, flat in sequence order (the layout of the
    /// engine's scores).
    /// </summary>
    /// <param name="perSequence">A_i, shape (sequences).</param>
    /// <param name="sequenceLengths">|o_i|, shape (sequences).</param>
    /// <returns>Shape (Σ|o_i|).</returns>
    public static float[] ExpandToTokens(ReadOnlySpan<double> perSequence, ReadOnlySpan<int> sequenceLengths)
    {
        if (perSequence.Length != sequenceLengths.Length)
            throw new ArgumentException($"Got {perSequence.Length} advantages for {sequenceLengths.Length} sequences.", nameof(perSequence));
        var total = 0;
        foreach (var length in sequenceLengths)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(length, nameof(sequenceLengths));
            total = checked(total + length);
        }
        var tokens = new float[total];
        var offset = 0;
        for (var i = 0; i < perSequence.Length; i++)
        {
            tokens.AsSpan(offset, sequenceLengths[i]).Fill((float)perSequence[i]);
            offset += sequenceLengths[i];
        }
        return tokens;
    }

    private static NamedRegistry<Func<double, IAdvantageEstimator>> CreateRegistry()
    {
        var registry = new NamedRegistry<Func<double, IAdvantageEstimator>>("advantage estimator");
        registry.Register(Grpo, epsilon => new GrpoAdvantage(epsilon));
        registry.Register(DrGrpo, epsilon => new GrpoAdvantage(epsilon, scaleByStd: false));
        return registry;
    }
}
