using Dapo.Core.Options;
using Dapo.Core.Rewards;

namespace Dapo.Core.Sampling;

/// <summary>
/// Dynamic sampling (<see href="https://arxiv.org/abs/2503.14476"/>, §3.2, eq. 11: keep only groups with
/// 0 &lt; |{o_i correct}| &lt; G) as a pure policy: it judges finished groups and, from a step's
/// <see cref="StepCounters"/>, decides whether to draw more prompts, wait, or stop. It holds no state, so any process
/// (a prompt grain, the learner) can ask it and get the same answer.
/// <para>
/// Budget. verl samples in generation rounds of <c>gen_batch_size</c> prompts (= target × over-sampling factor) and
/// fails after <c>max_num_gen_batches</c> rounds. Here a round is that many draws:
/// <see cref="RoundSize"/> = ceil(target × factor), and a step may draw at most
/// <see cref="MaxDraws"/> = MaxGenerationRounds × RoundSize prompts, the same prompt budget as verl. Within it,
/// refills are sized to the deficit rather than a whole round (verl always draws a whole round): prompts are drawn
/// only when even the optimistic outcome (every group in flight accepted) would miss the target, and then
/// ceil(deficit × factor) of them. So a decision never exceeds the cap, every refill draws at least one prompt, and a
/// step ends after at most MaxDraws draws once its groups have finished.
/// </para>
/// <para>
/// With dynamic sampling off every group is accepted and the step draws exactly the target (factor 1, one round).
/// </para>
/// </summary>
public sealed class DynamicSamplingPolicy
{
    /// <summary>A policy with explicit settings (see <see cref="DapoOptions"/> for their meaning and defaults).</summary>
    public DynamicSamplingPolicy(
        bool enabled = true,
        double overSamplingFactor = 3.0,
        int maxGenerationRounds = 10,
        GenerationCapBehavior atCap = GenerationCapBehavior.Fail,
        FilterMetric filterMetric = FilterMetric.Accuracy)
    {
        if (!(overSamplingFactor >= 1) || !double.IsFinite(overSamplingFactor))
            throw new ArgumentOutOfRangeException(nameof(overSamplingFactor), overSamplingFactor, "Must be at least 1 and finite.");
        ArgumentOutOfRangeException.ThrowIfLessThan(maxGenerationRounds, 1);
        if (!Enum.IsDefined(atCap)) throw new ArgumentOutOfRangeException(nameof(atCap), atCap, "Unknown behaviour.");
        if (!Enum.IsDefined(filterMetric)) throw new ArgumentOutOfRangeException(nameof(filterMetric), filterMetric, "Unknown metric.");
        Enabled = enabled;
        OverSamplingFactor = enabled ? overSamplingFactor : 1.0;
        MaxGenerationRounds = enabled ? maxGenerationRounds : 1;
        AtCap = atCap;
        FilterMetric = filterMetric;
    }

    /// <summary>The policy described by <paramref name="options"/>.</summary>
    public static DynamicSamplingPolicy FromOptions(DapoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new DynamicSamplingPolicy(options.DynamicSampling, options.OverSamplingFactor, options.MaxGenerationRounds,
            options.AtGenerationCap, options.FilterMetric);
    }

    /// <summary>Whether uninformative groups are filtered.</summary>
    public bool Enabled { get; }

    /// <summary>Prompts drawn per needed group (1 when disabled).</summary>
    public double OverSamplingFactor { get; }

    /// <summary>Rounds of <see cref="RoundSize"/> draws a step may use (1 when disabled).</summary>
    public int MaxGenerationRounds { get; }

    /// <summary>What happens at the cap.</summary>
    public GenerationCapBehavior AtCap { get; }

    /// <summary>What "all equal" compares.</summary>
    public FilterMetric FilterMetric { get; }

    /// <summary>Draws in one generation round: ceil(target × factor).</summary>
    public int RoundSize(int target)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(target, 1);
        return ClampToInt(Math.Ceiling(target * OverSamplingFactor));
    }

    /// <summary>The most prompts a step with <paramref name="target"/> may draw: rounds × round size.</summary>
    public int MaxDraws(int target) => ClampToInt((double)MaxGenerationRounds * RoundSize(target));

    /// <summary>Generation rounds used so far: ceil(draws / round size) (a metric of the step).</summary>
    public int GenerationRounds(StepCounters counters)
    {
        var round = RoundSize(counters.Target);
        return (int)((counters.Draws + (long)round - 1) / round);
    }

    /// <summary>Accept or filter a finished group by the configured metric (accuracy or shaped reward).</summary>
    public GroupVerdict Judge(ReadOnlySpan<ResponseOutcome> group)
    {
        if (group.IsEmpty) throw new ArgumentException("A group has at least one response.", nameof(group));
        if (!Enabled) return GroupVerdict.Accepted;
        Span<double> values = group.Length <= 256 ? stackalloc double[group.Length] : new double[group.Length];
        for (var i = 0; i < group.Length; i++)
            values[i] = FilterMetric == FilterMetric.Accuracy ? (group[i].Correct ? 1.0 : 0.0) : group[i].Reward;
        return Judge(values);
    }

    /// <summary>
    /// Accept or filter by per-response metric values: filtered when all are equal (verl keeps a group when
    /// <c>np.std(values) &gt; 0</c>; exact equality is what that test means, without float noise). A group of one is
    /// filtered: its advantage is 0, it carries no signal (verl keeps singletons).
    /// </summary>
    public GroupVerdict Judge(ReadOnlySpan<double> metricValues)
    {
        if (metricValues.IsEmpty) throw new ArgumentException("A group has at least one response.", nameof(metricValues));
        if (!Enabled) return GroupVerdict.Accepted;
        return AllEqual(metricValues) ? GroupVerdict.Filtered : GroupVerdict.Accepted;
    }

    /// <summary>
    /// The next move of a step with <paramref name="counters"/>:
    /// <list type="number">
    /// <item>Accepted ≥ Target: stop, target met (groups still in flight become surplus).</item>
    /// <item>deficit = Target − Accepted − InFlight ≤ 0: wait (the groups in flight could still meet the target).</item>
    /// <item>Draws ≥ MaxDraws: wait while groups are in flight, then stop at the cap (train on what was accepted, or
    /// fail, per <see cref="AtCap"/>; fail when nothing was accepted).</item>
    /// <item>Otherwise refill min(ceil(deficit × factor), MaxDraws − Draws) prompts.</item>
    /// </list>
    /// </summary>
    public SamplingDecision Decide(StepCounters counters)
    {
        counters.Validate();
        if (counters.Accepted >= counters.Target) return SamplingDecision.Stop(StopReason.TargetMet);
        var deficit = counters.Target - counters.Accepted - counters.InFlight;
        if (deficit <= 0) return SamplingDecision.Wait;
        var budget = MaxDraws(counters.Target) - counters.Draws;
        if (budget <= 0)
        {
            if (counters.InFlight > 0) return SamplingDecision.Wait;
            return SamplingDecision.Stop(AtCap == GenerationCapBehavior.TrainOnAccepted && counters.Accepted > 0
                ? StopReason.CapReachedTrainOnAccepted
                : StopReason.CapReachedFail);
        }
        var wanted = ClampToInt(Math.Ceiling(deficit * OverSamplingFactor));
        return SamplingDecision.Refill(Math.Min(wanted, budget));
    }

    /// <summary>The error for a step that stopped with <see cref="StopReason.CapReachedFail"/>.</summary>
    public string CapReachedMessage(StepCounters counters) =>
        $"Dynamic sampling reached its cap of {MaxGenerationRounds} generation round(s) ({counters.Draws} of at most " +
        $"{MaxDraws(counters.Target)} prompts drawn) with {counters.Accepted} of {counters.Target} informative groups. " +
        "The data may be too difficult or too easy for the policy; raise MaxGenerationRounds or OverSamplingFactor, " +
        "or set AtGenerationCap to TrainOnAccepted.";

    /// <summary>Whether every value equals the first.</summary>
    public static bool AllEqual(ReadOnlySpan<double> values)
    {
        for (var i = 1; i < values.Length; i++)
            if (!values[i].Equals(values[0])) return false;
        return true;
    }

    private static int ClampToInt(double value) => value >= int.MaxValue ? int.MaxValue : (int)value;
}
