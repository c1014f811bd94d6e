namespace Dapo.Core.Advantages;

/// <summary>
/// Group-relative advantage (<see href="https://arxiv.org/abs/2503.14476"/>, eq. 9; GRPO):
/// A_i = (R_i − mean(R)) / (std(R) + ε), the same for every token of response i.
/// <para>
/// Std convention: the unbiased sample standard deviation, sqrt(Σ(R_i − mean)² / (G − 1)), because that is what
/// verl's <c>compute_grpo_outcome_advantage</c> computes (<c>torch.std</c> defaults to Bessel's correction), so our
/// advantages match the recipe's bit for bit up to float rounding. For the DAPO ±1 reward with k correct out of G,
/// std = sqrt(4k(G−k) / (G(G−1))).
/// </para>
/// <para>
/// A group of one gets advantage 0: with no other response there is no baseline. (verl instead uses mean 0 and std 1
/// for a singleton, giving R / (1 + ε); dynamic sampling never accepts singletons, so DAPO runs are unaffected.)
/// A group whose rewards are all equal gets 0 for everyone (std 0, numerator 0).
/// </para>
/// <para>With <paramref name="scaleByStd"/> false this is Dr. GRPO (<see href="https://arxiv.org/abs/2503.20783"/>):
/// A_i = R_i − mean(R).</para>
/// </summary>
/// <param name="epsilon">ε in the denominator (verl: 1e-6).</param>
/// <param name="scaleByStd">Divide by std + ε (GRPO) or not (Dr. GRPO).</param>
public sealed class GrpoAdvantage(double epsilon = 1e-6, bool scaleByStd = true) : IAdvantageEstimator
{
    /// <summary>ε in the denominator.</summary>
    public double Epsilon { get; } = epsilon > 0 && double.IsFinite(epsilon)
        ? epsilon
        : throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "Must be positive and finite.");

    /// <summary>Whether the centred reward is divided by std + ε.</summary>
    public bool ScaleByStd { get; } = scaleByStd;

    /// <inheritdoc />
    public void Compute(ReadOnlySpan<double> rewards, Span<double> advantages)
    {
        if (advantages.Length != rewards.Length)
            throw new ArgumentException($"Got room for {advantages.Length} advantages for {rewards.Length} rewards.", nameof(advantages));
        var n = rewards.Length;
        if (n == 0) return;
        if (n == 1)
        {
            advantages[0] = 0.0;
            return;
        }
        var mean = 0.0;
        foreach (var r in rewards) mean += r;
        mean /= n;
        var squares = 0.0;
        foreach (var r in rewards) squares += (r - mean) * (r - mean);
        var scale = ScaleByStd ? 1.0 / (Math.Sqrt(squares / (n - 1)) + Epsilon) : 1.0;
        for (var i = 0; i < n; i++) advantages[i] = (rewards[i] - mean) * scale;
    }
}
