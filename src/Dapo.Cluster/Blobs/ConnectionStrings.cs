namespace Dapo.Cluster.Blobs;

/// <summary>Makes Key=Value;… connection strings (Azure Storage, Npgsql, …) safe to log.</summary>
public static class ConnectionStrings
{
    private static readonly string[] SecretWords = ["key", "password", "pwd", "secret", "signature", "token", "sig"];

    /// <summary>
    /// <paramref name="connectionString"/> with the value of every secret-looking key (AccountKey,
    /// SharedAccessSignature, Password, Pwd, …) replaced by <c>***</c>; a segment that is not Key=Value is
    /// replaced whole, since it could be a pasted key (see <see cref="IsSettingName"/>). Null or empty gives "".
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
            if (SecretWords.Any(w => key.Contains(w, StringComparison.OrdinalIgnoreCase)))
                segments[i] = $"{key}=***";
        }
        return string.Join(';', segments);
    }

    /// <summary>
    /// Whether <paramref name="key"/> looks like a setting name (letters, digits, spaces, '_', '-', '.'); base64 key
    /// material with '/' or '+' in it does not, so a pasted "abc/def==" is not taken for a setting "abc/def".
    /// </summary>
    internal static bool IsSettingName(string key) =>
        key.Length > 0 && key.All(c => char.IsAsciiLetterOrDigit(c) || c is ' ' or '_' or '-' or '.');
}
