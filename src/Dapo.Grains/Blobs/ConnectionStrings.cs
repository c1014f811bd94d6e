using System.Text.RegularExpressions;

namespace Dapo.Grains.Blobs;

/// <summary>Makes Key=Value;… connection strings (Azure Storage and the like) safe to log.</summary>
public static partial class ConnectionStrings
{
    private static readonly string[] SecretWords = ["key", "password", "pwd", "secret", "signature", "token", "sig"];

    /// <summary>
    /// <paramref name="connectionString"/> with the value of every secret-looking key (AccountKey,
    /// SharedAccessSignature, Password, Pwd, …) and every <c>sig=</c> URL parameter replaced by <c>***</c>; a
    /// segment that is not Key=Value is replaced whole, since it could be a pasted key (see <see cref="IsSettingName"/>).
    /// Null or empty gives "".
    /// </summary>
    public static string Redact(string? connectionString)
    {
        if (string.IsNullOrEmpty(connectionString))
            return "";
        var segments = connectionString.Split(';');
        for (var i = 0; i < segments.Length; i++)
        {
            var segment = segments[i];
            if (segment.Trim().Length == 0)
                continue;
            var eq = segment.IndexOf('=');
            var key = eq > 0 ? segment[..eq].Trim() : "";
            if (!IsSettingName(key))
            {
                segments[i] = "***";
                continue;
            }
            segments[i] = SecretWords.Any(w => key.Contains(w, StringComparison.OrdinalIgnoreCase))
                ? $"{key}=***"
                : SignatureParameter().Replace(segment, "${name}***"); // a SAS pasted into a URL
        }
        return string.Join(';', segments);
    }

    /// <summary>
    /// The settings of <paramref name="connectionString"/> by key (case-insensitive), values trimmed. Throws
    /// <see cref="FormatException"/> for a segment that is not Key=Value or a key given twice; the message names the
    /// segment's position or the key, never a value.
    /// </summary>
    public static Dictionary<string, string> Settings(string connectionString)
    {
        var settings = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var segments = connectionString.Split(';');
        for (var i = 0; i < segments.Length; i++)
        {
            var segment = segments[i].Trim();
            if (segment.Length == 0)
                continue;
            // Split at the first '=' only: base64 keys end in '='. The segment itself is never shown: it may be a key.
            var eq = segment.IndexOf('=');
            var key = eq > 0 ? segment[..eq].Trim() : "";
            if (!IsSettingName(key))
                throw new FormatException($"The connection string's segment {i + 1} is not of the form Key=Value.");
            if (!settings.TryAdd(key, segment[(eq + 1)..].Trim()))
                throw new FormatException($"The connection string sets '{key}' twice; keep one.");
        }
        return settings;
    }

    /// <summary>
    /// Whether <paramref name="key"/> looks like a setting name (letters, digits, spaces, '_', '-', '.'); base64 key
    /// material with '/' or '+' in it does not, so a pasted "abc/def==" is not taken for a setting "abc/def".
    /// </summary>
    internal static bool IsSettingName(string key) =>
        key.Length > 0 && key.All(c => char.IsAsciiLetterOrDigit(c) || c is ' ' or '_' or '-' or '.');

    [GeneratedRegex("(?<name>[?&]sig=)[^&;]*", RegexOptions.IgnoreCase)]
    private static partial Regex SignatureParameter();
}
