namespace Dapo.Core.Rewards;

/// <summary>
/// A verifiable reward: scores one response against the ground truth. Implementations must be deterministic and
/// thread-safe (rollout workers call them concurrently). Add your own (code execution, other verifiers) and register
/// it in <see cref="RewardFunctions.Registry"/>.
/// </summary>
public interface IRewardFunction
{
    /// <summary>Scores <paramref name="response"/> (decoded text, special tokens removed) against
    /// <paramref name="groundTruth"/>.</summary>
    RewardResult Score(string response, string groundTruth);
}

/// <summary>The outcome of one reward call.</summary>
/// <param name="Score">The rule-based reward (DAPO: +1 correct, −1 otherwise; paper eq. 7).</param>
/// <param name="Correct">Whether the response counts as correct (accuracy; what dynamic sampling filters on).</param>
/// <param name="Prediction">The extracted, normalised answer; null when the response gave none.</param>
public readonly record struct RewardResult(double Score, bool Correct, string? Prediction)
{
    /// <summary>+1 and correct.</summary>
    public static RewardResult Right(string prediction) => new(1.0, true, prediction);

    /// <summary>−1 and wrong, with the answer that was given (null: none).</summary>
    public static RewardResult Wrong(string? prediction) => new(-1.0, false, prediction);
}
