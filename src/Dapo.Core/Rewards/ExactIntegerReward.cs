using System.Globalization;
using System.Numerics;

namespace Dapo.Core.Rewards;

/// <summary>
/// A strict reward for synthetic integer tasks: the text after the last "Answer:" of the tail (as in
/// <see cref="DapoMathReward"/>), stripped of whitespace (Python's, as the extraction's), must be a plain integer
/// (optional sign, ASCII digits; no commas, units or LaTeX) equal in value to the ground truth ("007" equals "7").
/// +1 if so, −1 otherwise.
/// </summary>
public sealed class ExactIntegerReward : IRewardFunction
{
    /// <inheritdoc />
    /// <exception cref="ArgumentException">The ground truth is not a plain integer.</exception>
    public RewardResult Score(string response, string groundTruth)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(groundTruth);
        var expected = PythonText.Strip(groundTruth);
        if (!AnswerExtraction.IsPlainInteger(expected))
            throw new ArgumentException(
                $"The exact-integer reward needs an integer ground truth; got '{AnswerExtraction.Describe(groundTruth)}'.",
                nameof(groundTruth));
        var raw = AnswerExtraction.LastAnswer(response) is { } answer ? PythonText.Strip(answer) : null;
        if (raw is null || !AnswerExtraction.IsPlainInteger(raw)) return RewardResult.Wrong(raw);
        var prediction = Parse(raw);
        return prediction == Parse(expected)
            ? RewardResult.Right(prediction.ToString(CultureInfo.InvariantCulture))
            : RewardResult.Wrong(prediction.ToString(CultureInfo.InvariantCulture));
    }

    private static BigInteger Parse(string s) =>
        BigInteger.Parse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
}
