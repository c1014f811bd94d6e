using Dapo.Core.Advantages;
using Dapo.Core.Common;
using Dapo.Core.Data;
using Dapo.Core.Loss;
using Dapo.Core.Rewards;
using Dapo.Core.Text;

namespace Dapo.Core.Tests;

public class RegistryTests
{
    [Fact]
    public void Unknown_name_fails_listing_the_known_names()
    {
        var e = Assert.Throws<KeyNotFoundException>(() => LossAggregations.Get("token-sum-mean"));
        Assert.Contains("'token-sum-mean'", e.Message);
        foreach (var name in new[] { "token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm", "dr-grpo" })
            Assert.Contains(name, e.Message);
    }

    [Fact]
    public void Registering_a_taken_name_fails_and_keeps_the_first_entry()
    {
        var registry = new NamedRegistry<string>("thing");
        registry.Register("a", "first");
        var e = Assert.Throws<InvalidOperationException>(() => registry.Register("a", "second"));
        Assert.Contains("'a'", e.Message);
        Assert.Equal("first", registry.Get("a"));
    }

    [Fact]
    public void Names_are_sorted_and_lookups_are_case_sensitive()
    {
        var registry = new NamedRegistry<string>("thing");
        registry.Register("b", "1");
        registry.Register("a", "2");
        Assert.Equal(["a", "b"], registry.Names);
        Assert.False(registry.Contains("A"));
    }

    [Fact]
    public void Built_in_tables_hold_the_documented_entries()
    {
        // other tests may register more rewards in the shared table
        Assert.Subset(RewardFunctions.Registry.Names.ToHashSet(), new HashSet<string> { "dapo-math", "exact-integer" });
        Assert.Equal(["dr-grpo", "grpo"], AdvantageEstimators.Registry.Names);
        Assert.Equal(["abs", "k1", "k2", "k3", "kl", "low_var_kl", "mse"], KlEstimators.Registry.Names);
        Assert.Equal(["dapo", "raw", "short"], PromptTemplates.Registry.Names);
        Assert.Equal(["char"], Tokenizers.Registry.Names);
        Assert.Same(KlEstimators.Get("k3"), KlEstimators.Get("low_var_kl"));
    }

    [Fact]
    public void A_user_reward_can_be_registered_and_found()
    {
        var name = "test-always-right-" + Guid.NewGuid();
        RewardFunctions.Registry.Register(name, new AlwaysRight());
        Assert.Equal(1.0, RewardFunctions.Get(name).Score("anything", "x").Score);
    }

    private sealed class AlwaysRight : IRewardFunction
    {
        public RewardResult Score(string response, string groundTruth) => RewardResult.Right(response);
    }
}
