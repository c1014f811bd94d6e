using Dapo.Core.Common;

namespace Dapo.Core.Loss;

/// <summary>
/// A per-token estimator of KL(π_θ ‖ π_ref) from the sampled token's log-probabilities (Schulman, "Approximating KL
/// divergence", 2020), with its derivative in log π_θ so the loss can hand the engine dL/dlogp. Only the GRPO
/// baseline uses a KL term; DAPO removes it (<see href="https://arxiv.org/abs/2503.14476"/>, §2.3).
/// </summary>
public interface IKlEstimator
{
    /// <summary>The estimate for one token.</summary>
    double Value(double logProb, double referenceLogProb);

    /// <summary>d Value / d logProb.</summary>
    double Derivative(double logProb, double referenceLogProb);
}

/// <summary>k1: log π − log π_ref (verl "kl" / "k1"). Unbiased, high variance, can be negative.</summary>
public sealed class K1Estimator : IKlEstimator
{
    /// <inheritdoc />
    public double Value(double logProb, double referenceLogProb) => logProb - referenceLogProb;

    /// <inheritdoc />
    public double Derivative(double logProb, double referenceLogProb) => 1.0;
}

/// <summary>|log π − log π_ref| (verl "abs").</summary>
public sealed class AbsEstimator : IKlEstimator
{
    /// <inheritdoc />
    public double Value(double logProb, double referenceLogProb) => Math.Abs(logProb - referenceLogProb);

    /// <inheritdoc />
    public double Derivative(double logProb, double referenceLogProb) => Math.Sign(logProb - referenceLogProb);
}

/// <summary>k2: ½ (log π − log π_ref)² (verl "mse" / "k2").</summary>
public sealed class K2Estimator : IKlEstimator
{
    /// <inheritdoc />
    public double Value(double logProb, double referenceLogProb) => 0.5 * (logProb - referenceLogProb) * (logProb - referenceLogProb);

    /// <inheritdoc />
    public double Derivative(double logProb, double referenceLogProb) => logProb - referenceLogProb;
}

/// <summary>
/// k3 (verl "low_var_kl" / "k3", the GRPO default): with d = clamp(log π_ref − log π, −20, 20),
/// k3 = clamp(e^d − d − 1, −10, 10). Non-negative, low variance. Its derivative in log π is 1 − e^d times the
/// gradients of both clamps, as autograd gives through torch.clamp (<see cref="TorchClamp"/>): it passes on the
/// bounds (d = ±20, k3 = 10) and is 0 strictly beyond them. In practice the outer clamp decides: k3 reaches 10 at
/// d ≈ 2.6 and d ≈ −11.0, well inside ±20.
/// </summary>
public sealed class K3Estimator : IKlEstimator
{
    // verl's bounds: torch.clamp(kl, min=-20, max=20), then torch.clamp(kld, min=-10, max=10).
    private const double LogRatioBound = 20.0, ValueBound = 10.0;

    /// <inheritdoc />
    public double Value(double logProb, double referenceLogProb)
    {
        var d = TorchClamp.Value(referenceLogProb - logProb, -LogRatioBound, LogRatioBound);
        return TorchClamp.Value(Math.Exp(d) - d - 1.0, -ValueBound, ValueBound);
    }

    /// <inheritdoc />
    public double Derivative(double logProb, double referenceLogProb)
    {
        // k3(d(logProb)): dk3/dd = e^d − 1, dd/dlogProb = −1, each clamp passing its gradient on [min, max].
        var raw = referenceLogProb - logProb;
        var d = TorchClamp.Value(raw, -LogRatioBound, LogRatioBound);
        var k = Math.Exp(d) - d - 1.0;
        return (1.0 - Math.Exp(d)) * TorchClamp.Gradient(raw, -LogRatioBound, LogRatioBound)
               * TorchClamp.Gradient(k, -ValueBound, ValueBound);
    }
}

/// <summary>The KL estimators by name (verl <c>kl_loss_type</c> names, with their k-aliases).</summary>
public static class KlEstimators
{
    /// <summary>Schulman's k3, verl's default for the GRPO KL loss.</summary>
    public const string LowVarKl = "low_var_kl";

    /// <summary>The table: "kl"/"k1", "abs", "mse"/"k2", "low_var_kl"/"k3".</summary>
    public static NamedRegistry<IKlEstimator> Registry { get; } = CreateRegistry();

    /// <summary>The estimator named <paramref name="name"/>.</summary>
    public static IKlEstimator Get(string name) => Registry.Get(name);

    private static NamedRegistry<IKlEstimator> CreateRegistry()
    {
        var registry = new NamedRegistry<IKlEstimator>("KL estimator");
        IKlEstimator k1 = new K1Estimator(), k2 = new K2Estimator(), k3 = new K3Estimator();
        registry.Register("kl", k1);
        registry.Register("k1", k1);
        registry.Register("abs", new AbsEstimator());
        registry.Register("mse", k2);
        registry.Register("k2", k2);
        registry.Register(LowVarKl, k3);
        registry.Register("k3", k3);
        return registry;
    }
}
