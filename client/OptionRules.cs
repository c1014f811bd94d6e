using System.CommandLine;

namespace Dapo.Client;

/// <summary>Range checks on option values, in the parser's errors (one line each, exit code 2).</summary>
internal static class OptionRules
{
    /// <summary>Refuses a value of <paramref name="option"/> that <paramref name="isBad"/>, with <paramref name="message"/>.
    /// A value that is not a <typeparamref name="T"/> at all is left to the parser's own error: reading it here throws.</summary>
    public static void Refuse<T>(this Option<T> option, Func<T, bool> isBad, string message) => option.Validators.Add(r =>
    {
        T value;
        try
        {
            value = r.GetValueOrDefault<T>()!;
        }
        catch (InvalidOperationException)
        {
            return;
        }
        if (isBad(value)) r.AddError(message);
    });
}
