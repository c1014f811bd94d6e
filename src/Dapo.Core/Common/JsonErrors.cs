using System.Text.Json;
using System.Text.RegularExpressions;

namespace Dapo.Core.Common;

/// <summary>
/// System.Text.Json's errors said in our words, for users: where (line and column, or the field) and what was
/// expected, without the serializer's internals ("LineNumber: 0 | BytePositionInLine: 1", CLR type names).
/// </summary>
public static partial class JsonErrors
{
    /// <summary>"line 1, column 7: expected a value (...), found '}'" or "field 'Steps': expected a whole number".</summary>
    /// <param name="error">The serializer's or reader's error.</param>
    /// <param name="oneLine">The JSON was one line (a JSONL record, an option): give the column only.</param>
    public static string Describe(JsonException error, bool oneLine = false)
    {
        ArgumentNullException.ThrowIfNull(error);
        var message = Internals().Replace(error.Message, "").Trim();
        if (Conversion().Match(message) is { Success: true } conversion)
        {
            var field = string.IsNullOrEmpty(error.Path) || error.Path == "$" ? "the document" : $"field '{error.Path.TrimStart('$', '.')}'";
            return TypeInWords(conversion.Groups[1].Value) is { } expected
                ? $"{field}: expected {expected}"
                : $"{field}: the value is of the wrong kind for this field"; // a positional record names itself, not the field's type
        }
        var column = (error.BytePositionInLine ?? 0) + 1;
        var where = error.LineNumber is not { } line ? "" : oneLine && line == 0 ? $"column {column}: " : $"line {line + 1}, column {column}: ";
        return where + SyntaxInWords(message);
    }

    private static string SyntaxInWords(string message)
    {
        Match m;
        if ((m = InvalidStartOfValue().Match(message)).Success)
            return $"expected a value (a number, a string in double quotes, true, false, null, {{...}} or [...]), found {m.Groups[1].Value}";
        if ((m = InvalidStartOfName().Match(message)).Success) return $"expected a field name in double quotes, found {m.Groups[1].Value}";
        if ((m = AfterName().Match(message)).Success) return $"expected ':' after the field name, found {m.Groups[1].Value}";
        if ((m = AfterValue().Match(message)).Success) return $"expected the end of the JSON, found {m.Groups[1].Value} after it";
        if ((m = BetweenValues().Match(message)).Success) return $"expected ',' or a closing '}}' or ']' after a value, found {m.Groups[1].Value}";
        if ((m = Literal().Match(message)).Success) return $"expected {m.Groups[2].Value}, found {m.Groups[1].Value}";
        if ((m = InString().Match(message)).Success) return $"the character {m.Groups[1].Value} must be escaped inside a string";
        if (message.Contains("trailing comma", StringComparison.Ordinal)) return "a comma before a closing '}' or ']' is not allowed";
        if (message.Contains("reached end of data", StringComparison.Ordinal)) return "the JSON ends before it is complete";
        if (message.Contains("does not contain any JSON tokens", StringComparison.Ordinal)) return "expected JSON, found nothing";
        return message.TrimEnd('.');
    }

    /// <summary>A CLR type (a conversion failed to it) in a user's words: "a whole number"; null when it has none.</summary>
    internal static string? TypeInWords(string clrType)
    {
        var type = NullableType().Match(clrType) is { Success: true } nullable ? nullable.Groups[1].Value : clrType;
        return type switch
        {
            "System.Int32" or "System.Int64" => "a whole number",
            "System.UInt64" or "System.UInt32" => "a whole number, 0 or more",
            "System.Double" or "System.Single" or "System.Decimal" => "a number",
            "System.Boolean" => "true or false",
            "System.String" => "a string in double quotes",
            _ when EnumNamed(type) is { } e => "one of " + string.Join(", ", Enum.GetNames(e).Select(n => $"\"{n}\"")),
            _ when type.StartsWith("System.Collections.Generic.", StringComparison.Ordinal) || type.EndsWith("[]", StringComparison.Ordinal) => "a list [...]",
            _ => null,
        };
    }

    /// <summary>The enum type of that full name among the loaded assemblies (the field's own, since it is being read).</summary>
    private static Type? EnumNamed(string fullName) =>
        AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetType(fullName, throwOnError: false)).FirstOrDefault(t => t is { IsEnum: true });

    [GeneratedRegex(@"\s*(Path: \S*\s*\|\s*)?LineNumber: \d+ \| BytePositionInLine: \d+\.?")]
    private static partial Regex Internals();

    [GeneratedRegex(@"could not be converted to ([^\s.][^\s]*?)\.?(\s|$)")]
    private static partial Regex Conversion();

    [GeneratedRegex(@"^System\.Nullable`1\[\[?([^,\]]+)")]
    private static partial Regex NullableType();

    [GeneratedRegex(@"^('.*?') is an invalid start of a value")]
    private static partial Regex InvalidStartOfValue();

    [GeneratedRegex(@"^('.*?') is an invalid start of a property name")]
    private static partial Regex InvalidStartOfName();

    [GeneratedRegex(@"^('.*?') is invalid after a property name")]
    private static partial Regex AfterName();

    [GeneratedRegex(@"^('.*?') is invalid after a single JSON value")]
    private static partial Regex AfterValue();

    [GeneratedRegex(@"^('.*?') is invalid after a value\.")]
    private static partial Regex BetweenValues();

    [GeneratedRegex(@"^('.*?') is an invalid JSON literal\. Expected the literal ('.*?')")]
    private static partial Regex Literal();

    [GeneratedRegex(@"^('.*?') is invalid within a JSON string")]
    private static partial Regex InString();
}
