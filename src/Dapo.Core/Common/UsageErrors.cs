using System.Text.RegularExpressions;

namespace Dapo.Core.Common;

/// <summary>
/// The command-line parser's errors in a user's words: System.CommandLine names the CLR type a value failed to
/// convert to ("as expected type 'System.Nullable`1[System.Int32]'"), where a user wants the kind of value.
/// </summary>
public static partial class UsageErrors
{
    /// <summary>"Cannot parse argument 'abc' for option '--steps' as a whole number."; any other message as it is.</summary>
    public static string Describe(string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return ExpectedType().Replace(message, m => JsonErrors.TypeInWords(m.Groups[1].Value) is { } kind ? $"as {kind}" : m.Value);
    }

    [GeneratedRegex(@"as expected type '([^']+)'")]
    private static partial Regex ExpectedType();
}
