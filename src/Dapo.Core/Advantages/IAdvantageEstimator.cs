namespace Dapo.Core.Advantages;

/// <summary>Turns the rewards of one prompt's group of responses into one advantage per response (outcome
/// supervision: every token of response i gets advantage A_i).</summary>
public interface IAdvantageEstimator
{
    /// <summary>Writes the advantage of each response of a group.</summary>
    /// <param name="rewards">R_1..R_G of one group, shape (G).</param>
    /// <param name="advantages">Output, shape (G).</param>
    void Compute(ReadOnlySpan<double> rewards, Span<double> advantages);
}
