namespace Dapo.Core.Overlong;

/// <summary>
/// Soft overlong punishment (<see href="https://arxiv.org/abs/2503.14476"/>, eq. 13), a length-aware penalty added
/// to the rule-based reward:
/// <code>
/// R_length(y) = 0                                   if |y| ≤ L_max − L_cache
///             = ((L_max − L_cache) − |y|) / L_cache   if L_max − L_cache &lt; |y| ≤ L_max
///             = −1                                  if L_max &lt; |y|
/// </code>
/// scaled by a penalty factor (verl's <c>overlong_buffer.penalty_factor</c>, 1.0 in the paper). verl computes
/// min(−(|y| − (L_max − L_cache)) / L_cache × factor, 0), which is the same for |y| ≤ L_max (generation never
/// exceeds L_max there).
/// </summary>
public static class OverlongRewardShaping
{
    /// <summary>The (non-positive) penalty for a response of <paramref name="responseLength"/> tokens.</summary>
    /// <param name="responseLength">|y|, response tokens (the stop token included, as the engine counts them).</param>
    /// <param name="maxLength">L_max.</param>
    /// <param name="cacheLength">L_cache, in [1, L_max].</param>
    /// <param name="penaltyFactor">Scale of the penalty (≥ 0).</param>
    public static double Penalty(int responseLength, int maxLength, int cacheLength, double penaltyFactor = 1.0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(responseLength);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cacheLength);
        if (cacheLength > maxLength)
            throw new ArgumentOutOfRangeException(nameof(cacheLength), cacheLength,
                $"The overlong cache ({cacheLength}) must not exceed the maximum length ({maxLength}).");
        if (!(penaltyFactor >= 0)) throw new ArgumentOutOfRangeException(nameof(penaltyFactor), penaltyFactor, "Must be non-negative.");
        var expected = maxLength - cacheLength;
        if (responseLength <= expected) return 0.0;
        if (responseLength <= maxLength) return (double)(expected - responseLength) / cacheLength * penaltyFactor;
        return -1.0 * penaltyFactor;
    }
}
