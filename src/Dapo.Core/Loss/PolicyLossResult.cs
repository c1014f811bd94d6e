namespace Dapo.Core.Loss;

/// <summary>The value of the policy loss on a mini-batch, its gradient in the log-probabilities, and diagnostics.</summary>
/// <param name="Loss">The total loss: <paramref name="PolicyGradientLoss"/> + β · <paramref name="KlLoss"/>.</param>
/// <param name="PolicyGradientLoss">The clipped surrogate, aggregated (verl <c>actor/pg_loss</c>).</param>
/// <param name="KlLoss">The aggregated KL-to-reference estimate (0 without a reference or with β = 0).</param>
/// <param name="Coefficients">dLoss/d logp_new per token, shape (T), for <c>ScoreResult.Backward</c>; 0 for masked
/// tokens.</param>
/// <param name="Diagnostics">Clip fractions, approximate KL, mean ratio.</param>
public sealed record PolicyLossResult(
    double Loss, double PolicyGradientLoss, double KlLoss, float[] Coefficients, PolicyLossDiagnostics Diagnostics);

/// <summary>
/// Named diagnostics of one policy-loss evaluation; every fraction and mean is over the unmasked tokens.
/// </summary>
/// <param name="TokenCount">Unmasked tokens the means are over.</param>
/// <param name="ClipFraction">Tokens whose clipped term was chosen, i.e. the ratio left [1 − ε_low, 1 + ε_high] in
/// the direction the advantage pushes (verl <c>actor/pg_clipfrac</c>). Equals upper + lower.</param>
/// <param name="ClipFractionUpper">Tokens clipped at 1 + ε_high (Â &gt; 0, r &gt; 1 + ε_high): where Clip-Higher
/// acts.</param>
/// <param name="ClipFractionLower">Tokens clipped at 1 − ε_low (Â &lt; 0, r &lt; 1 − ε_low).</param>
/// <param name="DualClipFraction">Tokens whose loss was capped by dual-clip (Â &lt; 0 and −Â·c below the clipped
/// loss; verl <c>actor/pg_clipfrac_lower</c>, which despite its name is this); 0 when dual-clip is off.</param>
/// <param name="ApproxKl">mean(log π_old − log π_new) with the clamped log-ratio, the k1 estimate of
/// KL(π_old ‖ π_new) on the sampled tokens (verl <c>actor/ppo_kl</c>).</param>
/// <param name="MeanRatio">mean(r_t), r_t = exp(clamp(log π_new − log π_old, −20, 20)).</param>
/// <param name="ReferenceKl">mean of the KL-to-reference estimate per token (0 without a reference).</param>
/// <param name="UpClippedProbability">Mean π_old(o_t) of the tokens clipped at 1 + ε_high (0 when none was): the
/// paper's Figure 3a. Clip-Higher is meant for low-probability tokens ("exploration" tokens, π_old &lt; 0.2 in the
/// paper's runs), which the symmetric bound keeps from growing; on likely tokens a higher bound sharpens the policy
/// instead.</param>
public sealed record PolicyLossDiagnostics(
    int TokenCount,
    double ClipFraction,
    double ClipFractionUpper,
    double ClipFractionLower,
    double DualClipFraction,
    double ApproxKl,
    double MeanRatio,
    double ReferenceKl,
    double UpClippedProbability)
{
    /// <summary>Diagnostics of no tokens.</summary>
    public static PolicyLossDiagnostics Empty { get; } = new(0, 0, 0, 0, 0, 0, 0, 0, 0);

    /// <summary>Token-weighted combination (e.g. of the micro-batches of one mini-batch, or the mini-batches of a step).</summary>
    public static PolicyLossDiagnostics Merge(IEnumerable<PolicyLossDiagnostics> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        long tokens = 0;
        double clip = 0, upper = 0, lower = 0, dual = 0, kl = 0, ratio = 0, refKl = 0, upClippedProbability = 0;
        foreach (var p in parts)
        {
            tokens += p.TokenCount;
            clip += p.ClipFraction * p.TokenCount;
            upper += p.ClipFractionUpper * p.TokenCount;
            lower += p.ClipFractionLower * p.TokenCount;
            dual += p.DualClipFraction * p.TokenCount;
            kl += p.ApproxKl * p.TokenCount;
            ratio += p.MeanRatio * p.TokenCount;
            refKl += p.ReferenceKl * p.TokenCount;
            // A mean over the up-clipped tokens: weighted by how many each part clipped.
            upClippedProbability += p.UpClippedProbability * p.ClipFractionUpper * p.TokenCount;
        }
        if (tokens == 0) return Empty;
        return new PolicyLossDiagnostics(checked((int)tokens), clip / tokens, upper / tokens, lower / tokens, dual / tokens,
            kl / tokens, ratio / tokens, refKl / tokens, upper > 0 ? upClippedProbability / upper : 0);
    }

    /// <summary>The diagnostics under verl-style metric names.</summary>
    public IReadOnlyDictionary<string, double> ToMetrics() => new Dictionary<string, double>
    {
        ["actor/pg_clipfrac"] = ClipFraction,
        ["actor/pg_clipfrac_upper"] = ClipFractionUpper,
        ["actor/pg_clipped_upper_prob"] = UpClippedProbability,
        ["actor/pg_clipfrac_lower_bound"] = ClipFractionLower,
        ["actor/pg_clipfrac_dual"] = DualClipFraction,
        ["actor/ppo_kl"] = ApproxKl,
        ["actor/ratio_mean"] = MeanRatio,
        ["actor/kl_ref"] = ReferenceKl,
    };
}
