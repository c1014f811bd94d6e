namespace Dapo.Core.Options;

/// <summary>Options that failed validation; <see cref="Errors"/> holds one message per bad field.</summary>
public sealed class OptionsValidationException : Exception
{
    /// <summary>An exception listing <paramref name="errors"/>.</summary>
    public OptionsValidationException(IReadOnlyList<string> errors)
        : base($"Invalid DAPO options ({errors.Count} problem{(errors.Count == 1 ? "" : "s")}):{Environment.NewLine}  "
               + string.Join(Environment.NewLine + "  ", errors))
        => Errors = errors;

    /// <summary>One message per bad field, each naming the field, the allowed range and the value found.</summary>
    public IReadOnlyList<string> Errors { get; }
}
