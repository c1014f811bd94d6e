using Dapo.Core.Data;
using Dapo.Core.Options;
using Dapo.Core.Sampling;

namespace Dapo.Cluster.Grains;

/// <summary>
/// What any silo needs to act on a run's grains: its options and its dataset with each example's prompt tokens
/// (prompt draws happen inside store transactions, wherever a group finishes). Built from the run's spec, the same
/// in every silo.
/// </summary>
public sealed class RunContext
{
    public RunContext(string runId, DapoOptions options, IReadOnlyList<PromptExample> dataset, Func<int, int[]> promptTokens,
        ulong seed)
    {
        ArgumentException.ThrowIfNullOrEmpty(runId);
        if (dataset.Count == 0) throw new ArgumentException("The run's dataset is empty.", nameof(dataset));
        RunId = runId;
        Options = options.EnsureValid();
        Dataset = dataset;
        PromptTokens = promptTokens;
        Seed = seed;
        Sampling = DynamicSamplingPolicy.FromOptions(options);
    }

    public string RunId { get; }
    public DapoOptions Options { get; }
    public IReadOnlyList<PromptExample> Dataset { get; }
    /// <summary>The encoded prompt of dataset example i.</summary>
    public Func<int, int[]> PromptTokens { get; }

    /// <summary>Seeds the dataset order and every rollout's randomness.</summary>
    public ulong Seed { get; }

    public DynamicSamplingPolicy Sampling { get; }

    /// <summary>The cursor a new run starts with.</summary>
    public CursorState InitialCursor => new DatasetCursor(Dataset.Count, Seed).State;

    /// <summary>Learner lease name of this run.</summary>
    public string LearnerLease => LeaseNames.Learner(RunId);
}

/// <summary>Names of the leases in the store.</summary>
public static class LeaseNames
{
    public static string Learner(string runId) => $"learner/{runId}";
}
