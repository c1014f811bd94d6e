using Dapo.Core.Common;
using Dapo.Core.Options;
using Dapo.Core.Rewards;
using Dapo.Core.Sampling;

namespace Dapo.Core.Tests;

public class DynamicSamplingTests
{
    // target 4, factor 3, 2 rounds: round size ceil(4 × 3) = 12 draws, cap 2 × 12 = 24 draws.
    private static readonly DynamicSamplingPolicy Policy = new(overSamplingFactor: 3, maxGenerationRounds: 2);

    [Fact]
    public void Budget_is_rounds_of_target_times_factor()
    {
        Assert.Equal(12, Policy.RoundSize(4));
        Assert.Equal(24, Policy.MaxDraws(4));
        Assert.Equal(6, new DynamicSamplingPolicy(overSamplingFactor: 1.3).RoundSize(4)); // ceil(4 × 1.3 = 5.2) = 6
    }

    [Theory]
    [InlineData(0, 0, 0, SamplingAction.Refill, 12)] // a fresh step draws one round
    [InlineData(1, 5, 12, SamplingAction.Wait, 0)] // 1 + 5 in flight could still reach 4
    [InlineData(2, 1, 12, SamplingAction.Refill, 3)] // deficit 4 − 2 − 1 = 1 → ceil(1 × 3)
    [InlineData(3, 0, 22, SamplingAction.Refill, 2)] // deficit 1 wants 3, only 24 − 22 = 2 left
    [InlineData(3, 2, 24, SamplingAction.Wait, 0)] // cap reached but groups still in flight
    [InlineData(4, 3, 15, SamplingAction.Stop, 0)] // target met; the 3 in flight become surplus
    [InlineData(6, 0, 15, SamplingAction.Stop, 0)]
    public void Decisions_for_hand_picked_counters(int accepted, int inFlight, int draws, SamplingAction action, int prompts)
    {
        var decision = Policy.Decide(new StepCounters(4, accepted, inFlight, draws));
        Assert.Equal(action, decision.Action);
        Assert.Equal(prompts, decision.Prompts);
        if (action == SamplingAction.Stop) Assert.Equal(StopReason.TargetMet, decision.Reason);
    }

    [Fact]
    public void At_the_cap_it_fails_or_trains_on_what_was_accepted()
    {
        var counters = new StepCounters(4, 3, 0, 24);
        var fail = Policy.Decide(counters);
        Assert.Equal(StopReason.CapReachedFail, fail.Reason);
        Assert.False(fail.CanTrain);
        Assert.Contains("3 of 4 informative groups", Policy.CapReachedMessage(counters));

        var lenient = new DynamicSamplingPolicy(overSamplingFactor: 3, maxGenerationRounds: 2, atCap: GenerationCapBehavior.TrainOnAccepted);
        var train = lenient.Decide(counters);
        Assert.Equal(StopReason.CapReachedTrainOnAccepted, train.Reason);
        Assert.True(train.CanTrain);
        // nothing accepted: nothing to train on, so it fails anyway
        Assert.Equal(StopReason.CapReachedFail, lenient.Decide(new StepCounters(4, 0, 0, 24)).Reason);
    }

    [Fact]
    public void Generation_rounds_count_draws_in_round_units()
    {
        Assert.Equal(0, Policy.GenerationRounds(new StepCounters(4, 0, 0, 0)));
        Assert.Equal(1, Policy.GenerationRounds(new StepCounters(4, 0, 0, 12)));
        Assert.Equal(2, Policy.GenerationRounds(new StepCounters(4, 0, 0, 13)));
    }

    [Fact]
    public void Disabled_it_draws_exactly_the_target_and_accepts_everything()
    {
        var off = DynamicSamplingPolicy.FromOptions(DapoOptions.NaiveGrpo());
        Assert.Equal(SamplingDecision.Refill(4), off.Decide(new StepCounters(4, 0, 0, 0)));
        Assert.Equal(SamplingDecision.Wait, off.Decide(new StepCounters(4, 1, 3, 4)));
        Assert.Equal(StopReason.TargetMet, off.Decide(new StepCounters(4, 4, 0, 4)).Reason);
        Assert.Equal(GroupVerdict.Accepted, off.Judge([1.0, 1.0, 1.0]));
    }

    [Fact]
    public void Judges_by_accuracy_or_by_shaped_reward()
    {
        // All wrong, one of them with an overlong penalty: accuracy all equal, rewards not.
        ResponseOutcome[] group = [new(-1, 0, false, 10, false), new(-1, -0.5, false, 90, false)];
        Assert.Equal(GroupVerdict.Filtered, Policy.Judge(group));
        Assert.Equal(GroupVerdict.Accepted, new DynamicSamplingPolicy(filterMetric: FilterMetric.Reward).Judge(group));
        ResponseOutcome[] mixed = [new(1, 0, true, 10, false), new(-1, 0, false, 10, false)];
        Assert.Equal(GroupVerdict.Accepted, Policy.Judge(mixed));
    }

    [Fact]
    public void A_group_with_all_equal_values_is_always_filtered()
    {
        var rng = new DeterministicRandom(3);
        for (var trial = 0; trial < 1000; trial++)
        {
            var g = rng.NextInt(1, 64);
            var value = rng.NextInt(3) switch { 0 => 1.0, 1 => 0.0, _ => rng.NextDouble() * 4 - 2 };
            Assert.Equal(GroupVerdict.Filtered, Policy.Judge(Enumerable.Repeat(value, g).ToArray()));
            if (g >= 2)
            {
                var values = Enumerable.Repeat(value, g).ToArray();
                values[rng.NextInt(g)] = value + 1;
                Assert.Equal(GroupVerdict.Accepted, Policy.Judge(values));
            }
        }
    }

    [Fact]
    public void Never_exceeds_the_cap_and_always_terminates()
    {
        // Simulate steps: groups finish in random order and are accepted with a random probability (0 to 1).
        var rng = new DeterministicRandom(5);
        for (var trial = 0; trial < 400; trial++)
        {
            var policy = new DynamicSamplingPolicy(
                enabled: rng.NextInt(5) != 0,
                overSamplingFactor: 1 + rng.NextDouble() * 3,
                maxGenerationRounds: rng.NextInt(1, 6),
                atCap: rng.NextInt(2) == 0 ? GenerationCapBehavior.Fail : GenerationCapBehavior.TrainOnAccepted);
            var target = rng.NextInt(1, 40);
            var acceptance = rng.NextInt(4) == 0 ? 0.0 : rng.NextDouble();
            var carried = rng.NextInt(3) == 0 ? rng.NextInt(0, target - 1) : 0;
            var counters = new StepCounters(target, carried, 0, 0);
            var maxDraws = policy.MaxDraws(target);
            var decisions = 0;
            while (true)
            {
                Assert.True(++decisions <= 2 * maxDraws + 2, $"trial {trial}: no end after {decisions} decisions");
                var decision = policy.Decide(counters);
                if (decision.Action == SamplingAction.Stop)
                {
                    if (decision.Reason == StopReason.TargetMet) Assert.True(counters.Accepted >= target);
                    else Assert.Equal(0, counters.InFlight);
                    break;
                }
                if (decision.Action == SamplingAction.Refill)
                {
                    Assert.True(decision.Prompts >= 1);
                    Assert.True(counters.Draws + decision.Prompts <= maxDraws, $"trial {trial}: over the cap");
                    counters = counters with { Draws = counters.Draws + decision.Prompts, InFlight = counters.InFlight + decision.Prompts };
                }
                else
                {
                    Assert.True(counters.InFlight > 0, "waiting with nothing in flight would never end");
                    var accepted = !policy.Enabled || rng.NextDouble() < acceptance;
                    counters = counters with { InFlight = counters.InFlight - 1, Accepted = counters.Accepted + (accepted ? 1 : 0) };
                }
            }
        }
    }

    [Fact]
    public void Counters_that_cannot_happen_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Policy.Decide(new StepCounters(0, 0, 0, 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Policy.Decide(new StepCounters(4, 0, 5, 3)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicSamplingPolicy(maxGenerationRounds: 0));
    }

    [Fact]
    public void Surplus_groups_carry_only_when_fresh_enough()
    {
        Assert.Equal(2, SurplusCarry.Surplus(new StepCounters(4, 6, 0, 10)));
        Assert.Equal(0, SurplusCarry.Surplus(new StepCounters(4, 3, 0, 10)));
        Assert.False(SurplusCarry.CanCarry(SurplusGroupBehavior.Discard, 5, 6, 1));
        Assert.True(SurplusCarry.CanCarry(SurplusGroupBehavior.Carry, 5, 6, 1)); // one version old
        Assert.False(SurplusCarry.CanCarry(SurplusGroupBehavior.Carry, 5, 7, 1)); // two versions old
        Assert.False(SurplusCarry.CanCarry(SurplusGroupBehavior.Carry, 7, 6, 1)); // from the future
        Assert.True(SurplusCarry.CanCarry(new DapoOptions { SurplusGroups = SurplusGroupBehavior.Carry, MaxCarryStaleness = 2 }, 5, 7));
    }
}
