namespace Dapo.Silo;

/// <summary>
/// One process at a time works in a directory: an exclusive lock (flock on Linux) on a file in it, held while the
/// stream is open. The system drops it when the process ends, however it ends: a killed process leaves no stale lock.
/// </summary>
internal static class DirectoryLock
{
    /// <summary>Creates <paramref name="directory"/> (and its parents) to work in; false, after saying why, when it
    /// cannot be one (a file in its place or on its path, no permission). <paramref name="role"/> names it for the user,
    /// with the option that gave it.</summary>
    public static bool TryCreate(string directory, string role)
    {
        try
        {
            Directory.CreateDirectory(directory);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"Cannot use {directory} as {role}: {e.Message}");
            return false;
        }
    }

    /// <summary>The lock, to dispose when done; null when another process holds it.</summary>
    public static FileStream? TryTake(string directory, string file)
    {
        try
        {
            return new FileStream(Path.Combine(directory, file), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            return null;
        }
    }
}
