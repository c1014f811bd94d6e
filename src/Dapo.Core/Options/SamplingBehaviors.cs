using System.Text.Json.Serialization;

namespace Dapo.Core.Options;

/// <summary>What a step does when dynamic sampling reaches its cap on generation rounds before it has the target
/// number of informative groups.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<GenerationCapBehavior>))]
public enum GenerationCapBehavior
{
    /// <summary>Stop the run with an error, as verl's DAPO recipe does ("Generated too many. Please check if your data
    /// are too difficult.").</summary>
    Fail,

    /// <summary>Train on the groups accepted so far (a smaller batch); fail only if none was accepted.</summary>
    TrainOnAccepted,
}

/// <summary>What happens to accepted groups beyond the step's target (groups that finish after the target is met).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SurplusGroupBehavior>))]
public enum SurplusGroupBehavior
{
    /// <summary>Drop them, as verl does (<c>batch = batch[:traj_bsz]</c>).</summary>
    Discard,

    /// <summary>Count them toward the next step if their policy is at most
    /// <see cref="DapoOptions.MaxCarryStaleness"/> versions older than the one that will train on them.</summary>
    Carry,
}

/// <summary>Which per-response value dynamic sampling compares when it filters uninformative groups.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<FilterMetric>))]
public enum FilterMetric
{
    /// <summary>Correctness (verl's DAPO recipe, <c>filter_groups.metric=acc</c>; the paper's "accuracy equal to 1
    /// or 0", eq. 11).</summary>
    Accuracy,

    /// <summary>The shaped reward (rule score plus overlong penalty; verl <c>seq_final_reward</c>).</summary>
    Reward,
}
