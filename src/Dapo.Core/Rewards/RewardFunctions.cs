using Dapo.Core.Common;

namespace Dapo.Core.Rewards;

/// <summary>The reward functions by name. Register your own with <c>Registry.Register(name, instance)</c>.</summary>
public static class RewardFunctions
{
    /// <summary>The DAPO math rule, <see cref="DapoMathReward"/>.</summary>
    public const string DapoMath = "dapo-math";

    /// <summary>Plain integer equality for synthetic tasks, <see cref="ExactIntegerReward"/>.</summary>
    public const string ExactInteger = "exact-integer";

    /// <summary>The table; <see cref="NamedRegistry{T}.Get"/> fails listing the known names.</summary>
    public static NamedRegistry<IRewardFunction> Registry { get; } = CreateRegistry();

    /// <summary>The reward function named <paramref name="name"/>.</summary>
    public static IRewardFunction Get(string name) => Registry.Get(name);

    private static NamedRegistry<IRewardFunction> CreateRegistry()
    {
        var registry = new NamedRegistry<IRewardFunction>("reward function");
        registry.Register(DapoMath, new DapoMathReward());
        registry.Register(ExactInteger, new ExactIntegerReward());
        return registry;
    }
}
