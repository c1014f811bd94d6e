namespace Dapo.Core.Data.Synthetic;

/// <summary>The synthetic task families by name, for recipes: "math" (<see cref="SyntheticMathTask"/>, short worked
/// solutions), "chain" (<see cref="SyntheticChainTask"/>, solutions that grow with the level) and "chain-mixed" (the
/// same problems, solutions whose length the policy chooses: <see cref="SyntheticChainTask.GenerateMixed"/>) and "sum"
/// (<see cref="SyntheticSumTask"/>, sums added in any order: many right solutions).</summary>
public static class SyntheticTasks
{
    /// <summary>Multi-step arithmetic, short worked solutions (the demo's task).</summary>
    public const string Math = "math";

    /// <summary>Running sums, solutions that grow with the level.</summary>
    public const string Chain = "chain";

    /// <summary>Running sums whose worked solutions do one or two operations a line.</summary>
    public const string ChainMixed = "chain-mixed";

    /// <summary>Sums of digits added in any order.</summary>
    public const string Sum = "sum";

    /// <summary>The known task names.</summary>
    public static IReadOnlyList<string> Names { get; } = [Math, Chain, ChainMixed, Sum];

    /// <summary>The easiest and hardest level of <paramref name="task"/>.</summary>
    /// <exception cref="KeyNotFoundException">Unknown task; the message lists the known ones.</exception>
    public static (int Min, int Max) Levels(string task) => task switch
    {
        Math => (SyntheticMathTask.MinLevel, SyntheticMathTask.MaxLevel),
        Chain or ChainMixed => (SyntheticChainTask.MinLevel, SyntheticChainTask.MaxLevel),
        Sum => (SyntheticSumTask.MinLevel, SyntheticSumTask.MaxLevel),
        _ => throw Unknown(task),
    };

    /// <summary><paramref name="count"/> distinct problems of <paramref name="task"/>'s <paramref name="level"/> in
    /// <paramref name="split"/>, deterministic from <paramref name="seed"/>.</summary>
    public static IReadOnlyList<SyntheticProblem> Generate(string task, int level, SyntheticSplit split, int count, ulong seed) => task switch
    {
        Math => SyntheticMathTask.Generate(level, split, count, seed),
        Chain => SyntheticChainTask.Generate(level, split, count, seed),
        ChainMixed => SyntheticChainTask.GenerateMixed(level, split, count, seed),
        Sum => SyntheticSumTask.Generate(level, split, count, seed),
        _ => throw Unknown(task),
    };

    private static KeyNotFoundException Unknown(string task) =>
        new($"Unknown synthetic task '{task}'; known: {string.Join(", ", Names)}.");
}
