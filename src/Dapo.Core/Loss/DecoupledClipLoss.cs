namespace Dapo.Core.Loss;

/// <summary>
/// DAPO's policy objective (<see href="https://arxiv.org/abs/2503.14476"/>, eq. 8 with Clip-Higher, eq. 10), as a
/// loss to minimise, per token t of response i:
/// <code>
/// r_t  = exp(clamp(log π_θ(o_t) − log π_old(o_t), −20, 20))          (clamp as verl, for stability)
/// ℓ_t  = max(−Â_t r_t, −Â_t clip(r_t, 1 − ε_low, 1 + ε_high))        (= −min(r Â, clip(r) Â))
/// ℓ_t  = min(ℓ_t, −Â_t c)   if dual-clip c is on and Â_t &lt; 0      (Ye et al. 2019; verl)
/// L    = Σ_t w_t ℓ_t  [+ β Σ_t w_t KL_t]                             (w: the aggregation mode, eq. 12 for DAPO)
/// </code>
/// It returns L, the coefficients dL/d log π_θ(o_t) = w_t dℓ_t/d log π_θ(o_t) that the engine's backward takes, and
/// diagnostics. dℓ/dlogp is −Â r where the unclipped term is chosen and the log-ratio is within [−20, 20] (bounds
/// included, as torch.clamp's backward, <see cref="TorchClamp"/>), and 0 where the clipped or dual-clip term is
/// chosen (constant in θ there) — the gradient autograd gives for verl's <c>compute_policy_loss_vanilla</c>.
/// <para>
/// The GRPO baseline differs only in settings: ε_high = ε_low, "seq-mean-token-mean", and an optional β &gt; 0 KL
/// term to a reference policy (needs <see cref="PolicyLossBatch.ReferenceLogProbs"/>).
/// </para>
/// </summary>
public sealed class DecoupledClipLoss
{
    /// <summary>Bound of the log-ratio before exp, as verl's <c>torch.clamp(negative_approx_kl, -20, 20)</c>.</summary>
    public const double LogRatioClamp = 20.0;

    private readonly ILossAggregation _aggregation;
    private readonly IKlEstimator? _kl;

    /// <summary>A loss with <paramref name="settings"/>; names are resolved now, so a bad name fails here.</summary>
    public DecoupledClipLoss(PolicyLossSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (!(settings.ClipRatioLow > 0 && settings.ClipRatioLow < 1))
            throw new ArgumentOutOfRangeException(nameof(settings), $"ClipRatioLow must be in (0, 1); got {settings.ClipRatioLow}.");
        if (!(settings.ClipRatioHigh > 0) || !double.IsFinite(settings.ClipRatioHigh))
            throw new ArgumentOutOfRangeException(nameof(settings), $"ClipRatioHigh must be positive; got {settings.ClipRatioHigh}.");
        if (settings.DualClipRatio is { } c && !(c > 1))
            throw new ArgumentOutOfRangeException(nameof(settings), $"DualClipRatio must be greater than 1; got {c}.");
        if (!(settings.KlCoefficient >= 0))
            throw new ArgumentOutOfRangeException(nameof(settings), $"KlCoefficient must be non-negative; got {settings.KlCoefficient}.");
        Settings = settings;
        _aggregation = LossAggregations.Get(settings.Aggregation);
        _kl = settings.KlCoefficient > 0 ? KlEstimators.Get(settings.KlEstimator) : null;
    }

    /// <summary>The settings.</summary>
    public PolicyLossSettings Settings { get; }

    /// <summary>The aggregation mode in use.</summary>
    public ILossAggregation Aggregation => _aggregation;

    /// <summary>Token weights w_t of <paramref name="batch"/> under this loss's aggregation.</summary>
    public double[] TokenWeights(PolicyLossBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return LossAggregations.TokenWeights(_aggregation, batch.SequenceLengths.Span, batch.LossMask.Span, Settings.LossScaleFactor);
    }

    /// <summary>The loss of a whole mini-batch.</summary>
    public PolicyLossResult Compute(PolicyLossBatch batch) => Compute(batch, TokenWeights(batch));

    /// <summary>
    /// The loss of <paramref name="batch"/> with given token weights — for a micro-batch, pass the slice of the whole
    /// mini-batch's <see cref="TokenWeights"/>; the results of the micro-batches then add up to the mini-batch's.
    /// </summary>
    public PolicyLossResult Compute(PolicyLossBatch batch, ReadOnlySpan<double> tokenWeights)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (tokenWeights.Length != batch.TokenCount)
            throw new ArgumentException($"Got {tokenWeights.Length} weights for {batch.TokenCount} tokens.", nameof(tokenWeights));
        if (_kl is not null && batch.ReferenceLogProbs is null)
            throw new ArgumentException("KlCoefficient > 0 needs the reference policy's log-probabilities in the batch.", nameof(batch));

        var logProbs = batch.LogProbs.Span;
        var oldLogProbs = batch.OldLogProbs.Span;
        var advantages = batch.Advantages.Span;
        var mask = batch.LossMask.Span;
        var reference = batch.ReferenceLogProbs is { } r ? r.Span : default;
        var low = 1.0 - Settings.ClipRatioLow;
        var high = 1.0 + Settings.ClipRatioHigh;
        var dual = Settings.DualClipRatio;
        var beta = Settings.KlCoefficient;

        var coefficients = new float[batch.TokenCount];
        double pgLoss = 0, klLoss = 0, klSum = 0, ratioSum = 0, refKlSum = 0, upClippedProbabilitySum = 0;
        int tokens = 0, clippedUpper = 0, clippedLower = 0, dualClipped = 0;
        for (var t = 0; t < batch.TokenCount; t++)
        {
            if (!mask[t]) continue;
            tokens++;
            var w = tokenWeights[t];
            double a = advantages[t];
            var rawLogRatio = (double)logProbs[t] - oldLogProbs[t];
            var logRatio = TorchClamp.Value(rawLogRatio, -LogRatioClamp, LogRatioClamp);
            var ratio = Math.Exp(logRatio);
            // d ratio / d logp: ratio inside the clamp and on its bounds, 0 outside (autograd through torch.clamp).
            var ratioGrad = ratio * TorchClamp.Gradient(rawLogRatio, -LogRatioClamp, LogRatioClamp);
            klSum += -logRatio;
            ratioSum += ratio;

            var unclipped = -a * ratio;
            var clipped = -a * Math.Clamp(ratio, low, high);
            double loss, grad;
            if (clipped > unclipped)
            {
                // The clipped term is chosen only when the ratio is outside [low, high]: constant there.
                loss = clipped;
                grad = 0.0;
                if (a > 0)
                {
                    clippedUpper++;
                    upClippedProbabilitySum += Math.Exp(oldLogProbs[t]);
                }
                else clippedLower++;
            }
            else
            {
                loss = unclipped;
                grad = -a * ratioGrad;
            }
            if (dual is { } c && a < 0 && loss > -a * c)
            {
                loss = -a * c;
                grad = 0.0;
                dualClipped++;
            }
            pgLoss += w * loss;
            var coefficient = w * grad;

            if (_kl is not null)
            {
                var k = _kl.Value(logProbs[t], reference[t]);
                refKlSum += k;
                klLoss += w * k;
                coefficient += beta * w * _kl.Derivative(logProbs[t], reference[t]);
            }
            coefficients[t] = (float)coefficient;
        }

        var diagnostics = tokens == 0
            ? PolicyLossDiagnostics.Empty
            : new PolicyLossDiagnostics(tokens, (double)(clippedUpper + clippedLower) / tokens, (double)clippedUpper / tokens,
                (double)clippedLower / tokens, (double)dualClipped / tokens, klSum / tokens, ratioSum / tokens, refKlSum / tokens,
                clippedUpper > 0 ? upClippedProbabilitySum / clippedUpper : 0);
        return new PolicyLossResult(pgLoss + beta * klLoss, pgLoss, klLoss, coefficients, diagnostics);
    }
}
