using Dapo.Core.Common;

namespace Dapo.Core.Tests;

public sealed class UsageErrorsTests
{
    [Theory]
    [InlineData("Cannot parse argument 'abc' for option '--steps' as expected type 'System.Nullable`1[System.Int32]'.",
        "Cannot parse argument 'abc' for option '--steps' as a whole number.")]
    [InlineData("Cannot parse argument 'x' for option '--interval' as expected type 'System.Double'.",
        "Cannot parse argument 'x' for option '--interval' as a number.")]
    [InlineData("Cannot parse argument '-1' for option '--seed' as expected type 'System.UInt64'.",
        "Cannot parse argument '-1' for option '--seed' as a whole number, 0 or more.")]
    // A type without words, and any other message, stay as they are.
    [InlineData("Cannot parse argument 'x' for option '--at' as expected type 'System.Uri'.",
        "Cannot parse argument 'x' for option '--at' as expected type 'System.Uri'.")]
    [InlineData("Unrecognized command or argument 'nope'.", "Unrecognized command or argument 'nope'.")]
    public void The_CLR_type_a_value_failed_to_convert_to_is_said_as_the_kind_of_value(string message, string expected) =>
        Assert.Equal(expected, UsageErrors.Describe(message));
}
