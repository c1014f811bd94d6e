namespace Dapo.Testing;

/// <summary>Paths in the repository the tests run from.</summary>
public static class RepositoryPaths
{
    /// <summary>The folder holding Dapo.sln, found upwards from the test assembly.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>Where scripts/setup.sh installs npm tools (git-ignored).</summary>
    public static string Tools => Path.Combine(Root, ".tools");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Dapo.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"No Dapo.sln above {AppContext.BaseDirectory}; run the tests from the repository.");
    }
}
