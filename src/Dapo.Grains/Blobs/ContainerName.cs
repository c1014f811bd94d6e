namespace Dapo.Grains.Blobs;

/// <summary>Azure's rule for container names: 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit.</summary>
public static class ContainerName
{
    /// <summary>Null when <paramref name="name"/> is a valid container name, else what is wrong with it.</summary>
    public static string? Problem(string? name)
    {
        if (string.IsNullOrEmpty(name))
            return "is empty";
        if (name.Length is < 3 or > 63)
            return $"has {name.Length} characters where 3 to 63 are allowed";
        if (name.Any(c => !(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-')))
            return "may hold only lowercase letters, digits and '-'";
        if (name[0] == '-' || name[^1] == '-')
            return "must start and end with a letter or digit";
        if (name.Contains("--", StringComparison.Ordinal))
            return "may not contain '--'";
        return null;
    }

    /// <summary>Throws <see cref="ArgumentException"/> when <paramref name="name"/> is not a valid container name.</summary>
    public static void Validate(string name, string paramName = "container")
    {
        if (Problem(name) is { } problem)
            throw new ArgumentException($"Container name '{name}' {problem} (3-63 lowercase letters, digits and single hyphens).", paramName);
    }
}
