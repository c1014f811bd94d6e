namespace Dapo.Core.Loss;

/// <summary>
/// <c>torch.clamp(x, min, max)</c> as verl uses it inside its losses, with the gradient autograd gives it: the
/// gradient passes where min ≤ x ≤ max, bounds included, and is 0 strictly outside (checked with torch 1.13:
/// d clamp(x, −20, 20)/dx is 1 at x = ±20 and 0 at the next float beyond). Our losses hand the engine dL/dlogp
/// computed by hand, so they need this rule wherever verl clamps.
/// </summary>
internal static class TorchClamp
{
    /// <summary>clamp(<paramref name="x"/>, <paramref name="min"/>, <paramref name="max"/>).</summary>
    public static double Value(double x, double min, double max) => Math.Clamp(x, min, max);

    /// <summary>d clamp(x, min, max) / dx: 1 where min ≤ x ≤ max, else 0 (NaN: 0).</summary>
    public static double Gradient(double x, double min, double max) => x >= min && x <= max ? 1.0 : 0.0;
}
