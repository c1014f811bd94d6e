namespace Dapo.Silo;

/// <summary>
/// One process at a time works in a directory: an exclusive lock (flock on Linux) on a file in it, held while the
/// stream is open. The system drops it when the process ends, however it ends: a killed process leaves no stale lock.
/// </summary>
internal static class DirectoryLock
{
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
