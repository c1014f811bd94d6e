namespace Dapo.Testing;

/// <summary>Paths in the repository the tests run from.</summary>
public static class RepositoryPaths
{
    /// <summary>The folder holding the solution (Dapo.Orleans.sln), found upwards from the test assembly.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>Where scripts/setup.sh installs npm tools (git-ignored).</summary>
    public static string Tools => Path.Combine(Root, ".tools");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Dapo.Orleans.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"No Dapo.Orleans.sln above {AppContext.BaseDirectory}; run the tests from the repository.");
    }
}
