namespace Dapo.Core.Tests;

internal static class TestUtil
{
    public static void Close(double expected, double actual, double tolerance = 1e-9, string? what = null)
    {
        if (double.IsNaN(actual) || Math.Abs(expected - actual) > tolerance)
            Assert.Fail($"{what ?? "value"}: expected {expected:R} ± {tolerance:G3}, got {actual:R} (off by {Math.Abs(expected - actual):G3}).");
    }
}
