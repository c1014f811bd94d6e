namespace Dapo.Core.Rewards;

/// <summary>
/// The DAPO rule-based reward (<see href="https://arxiv.org/abs/2503.14476"/>, eq. 7): R = +1 if the response's
/// final answer is equivalent to the ground truth, −1 otherwise (a response without an answer is −1). "Equivalent"
/// is verl's <c>math_dapo.compute_score</c> in its default (Minerva) mode: the last "Answer:" line of the response's
/// tail (<see cref="AnswerExtraction"/>), and prediction and ground truth both passed through
/// <see cref="MathAnswerNormalizer.Normalize"/> and compared as strings. Python's string semantics included
/// (whitespace, case folding, code points; see <see cref="AnswerExtraction"/> and <see cref="MathAnswerNormalizer"/>):
/// the tests compare this type with an independent Python oracle of verl's rule on thousands of generated inputs.
/// <para>
/// One deliberate difference: a response without an "Answer:" line in its tail is −1, with no prediction. verl
/// instead normalises the placeholder "[INVALID]" as if it were the answer and compares it with the ground truth,
/// so it scores such a response +1 when the ground truth itself normalises to "[INVALID]" (e.g. "[INVALID]",
/// "$[INVALID]$", "\boxed{[INVALID]}"), and reports "[INVALID]" as the prediction. We do not: a response that
/// gave no answer cannot be right, whatever the dataset holds, and a null prediction keeps "no answer" apart from
/// an answer for maj@k.
/// </para>
/// </summary>
public sealed class DapoMathReward : IRewardFunction
{
    /// <summary>A reward that searches the last <paramref name="tailLength"/> characters of each response.</summary>
    public DapoMathReward(int tailLength = AnswerExtraction.DefaultTailLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tailLength);
        TailLength = tailLength;
    }

    /// <summary>Characters at the end of the response that are searched for the answer.</summary>
    public int TailLength { get; }

    /// <inheritdoc />
    public RewardResult Score(string response, string groundTruth)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(groundTruth);
        var raw = AnswerExtraction.LastAnswer(response, TailLength);
        if (raw is null) return RewardResult.Wrong(null);
        var prediction = MathAnswerNormalizer.Normalize(raw);
        return prediction == MathAnswerNormalizer.Normalize(groundTruth)
            ? RewardResult.Right(prediction)
            : RewardResult.Wrong(prediction);
    }
}
