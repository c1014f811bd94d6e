namespace Dapo.Grains.Blobs;

/// <summary>
/// The one rule for blob names, shared by every store so a name valid on one is valid on all: a file path on Linux
/// and Windows and a blob name on Azure that needs no escaping.
/// </summary>
public static class BlobName
{
    /// <summary>Azure's limit on a blob name.</summary>
    public const int MaxLength = 1024;

    /// <summary>A common file-system limit on one path component.</summary>
    public const int MaxSegmentLength = 255;

    /// <summary>Throws <see cref="ArgumentException"/> saying what is wrong with <paramref name="name"/>, if anything.</summary>
    public static void Validate(string name, string paramName = "name")
    {
        ArgumentNullException.ThrowIfNull(name, paramName);
        if (name.Length == 0)
            throw new ArgumentException("Blob name is empty; use a name like 'runs/{run}/policy/{version}'.", paramName);
        if (name.Length > MaxLength)
            throw new ArgumentException($"Blob name is {name.Length} characters long; the limit is {MaxLength}.", paramName);
        if (name[0] == '/')
            throw new ArgumentException($"Blob name '{name}' starts with '/'; names are relative, like 'runs/r1/policy/3'.", paramName);
        if (name[^1] == '/')
            throw new ArgumentException($"Blob name '{name}' ends with '/'; a blob name ends with its last segment.", paramName);
        CheckCharacters(name, paramName);
        foreach (var segment in name.Split('/'))
            CheckSegment(name, segment, paramName);
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> if <paramref name="prefix"/> could not start a valid name. Empty is
    /// allowed (everything); a trailing '/' and a partial last segment are allowed.
    /// </summary>
    public static void ValidatePrefix(string prefix, string paramName = "prefix")
    {
        ArgumentNullException.ThrowIfNull(prefix, paramName);
        if (prefix.Length == 0)
            return;
        if (prefix.Length > MaxLength)
            throw new ArgumentException($"Blob prefix is {prefix.Length} characters long; the limit is {MaxLength}.", paramName);
        if (prefix[0] == '/')
            throw new ArgumentException($"Blob prefix '{prefix}' starts with '/'; prefixes are relative, like 'runs/r1/'.", paramName);
        CheckCharacters(prefix, paramName);
        var segments = prefix.Split('/');
        // Every complete segment must be valid; the last one may be partial (or empty after a trailing '/').
        for (var i = 0; i < segments.Length - 1; i++)
            CheckSegment(prefix, segments[i], paramName);
        if (segments[^1].StartsWith('.'))
            throw new ArgumentException($"Blob prefix '{prefix}' has a segment starting with '.'; no blob name has one.", paramName);
    }

    private static void CheckCharacters(string value, string paramName)
    {
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/'))
            {
                var shown = char.IsControl(c) || char.IsWhiteSpace(c) ? $"U+{(int)c:X4}" : $"'{c}'";
                throw new ArgumentException(
                    $"Blob name '{value}' has {shown} at position {i}; use only ASCII letters, digits, '-', '_', '.' and '/' between segments.",
                    paramName);
            }
        }
    }

    private static void CheckSegment(string value, string segment, string paramName)
    {
        if (segment.Length == 0)
            throw new ArgumentException($"Blob name '{value}' has an empty segment ('//'); separate segments with a single '/'.", paramName);
        if (segment is "." or "..")
            throw new ArgumentException($"Blob name '{value}' has a '{segment}' segment; relative segments are not allowed.", paramName);
        // Leading dots are reserved for the local store's temporary files; trailing dots are dropped by Windows and
        // discouraged by Azure.
        if (segment[0] == '.' || segment[^1] == '.')
            throw new ArgumentException($"Blob name '{value}' has segment '{segment}' starting or ending with '.'; move the dot inside the segment.", paramName);
        if (segment.Length > MaxSegmentLength)
            throw new ArgumentException($"Blob name '{value}' has a segment of {segment.Length} characters; the limit is {MaxSegmentLength}.", paramName);
    }
}
