namespace Dapo.Core.Data.Synthetic;

/// <summary>Which side of the fixed train / held-out partition a problem is on.</summary>
public enum SyntheticSplit
{
    /// <summary>For training (about 90% of all problems).</summary>
    Train,

    /// <summary>For evaluation only (about 10%); never produced for <see cref="Train"/>.</summary>
    HeldOut,
}

/// <summary>A generated arithmetic problem with a worked solution.</summary>
/// <param name="Id">Stable id from the level and the problem text.</param>
/// <param name="Level">Difficulty level (see <see cref="SyntheticMathTask.Levels"/>).</param>
/// <param name="Problem">The question, e.g. "12+7*3" or a short word problem.</param>
/// <param name="Solution">One line per operation and a final "Answer: N", e.g. "7*3=21\n12+21=33\nAnswer: 33"
/// (the supervised warm-start target; the reward reads its last line).</param>
/// <param name="Answer">N, a non-negative integer.</param>
public sealed record SyntheticProblem(string Id, int Level, string Problem, string Solution, string Answer)
{
    /// <summary>As a dataset example (data source "synthetic-L{level}").</summary>
    public PromptExample ToExample() => new(Id, Problem, Answer, $"synthetic-L{Level}");
}

/// <summary>One difficulty level of the synthetic task.</summary>
/// <param name="Level">1 (easiest) to 5.</param>
/// <param name="Description">What its problems look like.</param>
/// <param name="Example">A problem of the level.</param>
public sealed record SyntheticLevel(int Level, string Description, string Example);
