using Dapo.Core.Options;

namespace Dapo.Core.Loss;

/// <summary>The knobs of <see cref="DecoupledClipLoss"/> (a subset of <see cref="DapoOptions"/>).</summary>
/// <param name="ClipRatioLow">ε_low (paper 0.2).</param>
/// <param name="ClipRatioHigh">ε_high (paper 0.28; naive GRPO 0.2).</param>
/// <param name="DualClipRatio">Dual-clip c &gt; 1, or null for off.</param>
/// <param name="Aggregation">Loss aggregation mode name (see <see cref="LossAggregations"/>).</param>
/// <param name="LossScaleFactor">Divisor of "seq-mean-token-sum-norm" and "dr-grpo".</param>
/// <param name="KlCoefficient">β of the KL-to-reference term (0: none).</param>
/// <param name="KlEstimator">KL estimator name (see <see cref="KlEstimators"/>).</param>
public sealed record PolicyLossSettings(
    double ClipRatioLow = 0.2,
    double ClipRatioHigh = 0.28,
    double? DualClipRatio = null,
    string Aggregation = LossAggregations.TokenMean,
    double LossScaleFactor = 20480,
    double KlCoefficient = 0,
    string KlEstimator = KlEstimators.LowVarKl)
{
    /// <summary>The loss settings of <paramref name="options"/>.</summary>
    public static PolicyLossSettings FromOptions(DapoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new PolicyLossSettings(options.ClipRatioLow, options.ClipRatioHigh, options.DualClipRatio, options.LossAggregation,
            options.EffectiveLossScaleFactor, options.KlCoefficient, options.KlEstimator);
    }
}
