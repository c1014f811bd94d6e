using Dapo.Core.Options;
using Dapo.Core.Overlong;

namespace Dapo.Core.Rewards;

/// <summary>Everything the algorithm needs to know about one finished response.</summary>
/// <param name="Score">Rule-based reward (eq. 7), before shaping.</param>
/// <param name="OverlongPenalty">Soft overlong punishment (eq. 13), ≤ 0; 0 when the punishment is off.</param>
/// <param name="Correct">Accuracy of the response.</param>
/// <param name="Length">Response tokens.</param>
/// <param name="Truncated">True when the response hit the length limit before a stop token.</param>
/// <param name="Prediction">The extracted, normalised answer (null: none), for maj@k.</param>
public readonly record struct ResponseOutcome(
    double Score, double OverlongPenalty, bool Correct, int Length, bool Truncated, string? Prediction = null)
{
    /// <summary>The reward the advantage is computed from: score plus overlong penalty.</summary>
    public double Reward => Score + OverlongPenalty;
}

/// <summary>Scores a finished response: reward function plus, if on, the soft overlong punishment.</summary>
public sealed class ResponseScorer
{
    private readonly IRewardFunction _reward;
    private readonly DapoOptions _options;

    /// <summary>A scorer with an explicit reward function.</summary>
    public ResponseScorer(IRewardFunction reward, DapoOptions options)
    {
        _reward = reward ?? throw new ArgumentNullException(nameof(reward));
        _options = (options ?? throw new ArgumentNullException(nameof(options))).EnsureValid();
    }

    /// <summary>A scorer using the reward function named in <paramref name="options"/>.</summary>
    public ResponseScorer(DapoOptions options) : this(RewardFunctions.Get(options.RewardFunction), options) { }

    /// <summary>Scores one response.</summary>
    /// <param name="responseText">Decoded response, special tokens removed.</param>
    /// <param name="groundTruth">The reference answer.</param>
    /// <param name="responseTokens">|y| in tokens.</param>
    /// <param name="truncated">Whether generation stopped at the length limit.</param>
    public ResponseOutcome Score(string responseText, string groundTruth, int responseTokens, bool truncated)
    {
        var result = _reward.Score(responseText, groundTruth);
        var penalty = _options.OverlongPunishment
            ? OverlongRewardShaping.Penalty(responseTokens, _options.MaxResponseLength, _options.OverlongCacheLength,
                _options.OverlongPenaltyFactor)
            : 0.0;
        return new ResponseOutcome(result.Score, penalty, result.Correct, responseTokens, truncated, result.Prediction);
    }
}
