using System.Diagnostics;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Dapo.Testing;

namespace Dapo.EndToEnd.Tests;

/// <summary>
/// deploy/container/Dockerfile agrees with the repository (there is no Docker on these machines to build it): its
/// stages, every path it copies, the projects it publishes and the program it runs, and the libtorch it installs.
/// </summary>
public sealed class ContainerImageTests
{
    private static readonly string Dockerfile = Path.Combine(RepositoryPaths.Root, "deploy", "container", "Dockerfile");

    /// <summary>The Dockerfile's instructions, continuation lines joined and comments dropped.</summary>
    private static List<(string Instruction, string Arguments)> Instructions()
    {
        var text = Regex.Replace(File.ReadAllText(Dockerfile), @"\\\r?\n", " ");
        return text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.Split(' ', 2) is var parts ? (parts[0].ToUpperInvariant(), parts.Length > 1 ? parts[1].Trim() : "") : default)
            .ToList();
    }

    [Fact]
    public void Two_stages_build_then_runtime_and_the_runtime_copies_only_from_the_build()
    {
        var stages = Instructions().Where(i => i.Instruction == "FROM").Select(i => i.Arguments.Split(" AS ", StringSplitOptions.TrimEntries)).ToList();
        Assert.Equal(["build", "runtime"], stages.Select(s => s[^1]));
        Assert.All(stages, s => Assert.StartsWith("debian:", s[0]));

        var stage = "";
        foreach (var (instruction, arguments) in Instructions())
        {
            if (instruction == "FROM") stage = arguments.Split(" AS ")[^1].Trim();
            if (instruction != "COPY") continue;
            var from = Regex.Match(arguments, @"--from=(\S+)");
            if (stage == "runtime") Assert.True(from.Success && from.Groups[1].Value == "build", $"the runtime stage copies '{arguments}' from outside the build stage");
            else Assert.False(from.Success, $"the build stage copies from another stage: {arguments}");
        }
    }

    [Fact]
    public void Every_path_the_build_stage_copies_exists_in_the_repository_and_every_project_it_publishes_too()
    {
        var copied = Instructions().Where(i => i.Instruction == "COPY" && !i.Arguments.Contains("--from=")).ToList();
        Assert.NotEmpty(copied);
        foreach (var (_, arguments) in copied)
        {
            var paths = arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            foreach (var source in paths[..^1])
                Assert.True(File.Exists(Path.Combine(RepositoryPaths.Root, source)) || Directory.Exists(Path.Combine(RepositoryPaths.Root, source)),
                    $"COPY {source}: no such file or directory in the repository");
        }
        var published = Regex.Matches(File.ReadAllText(Dockerfile), @"dotnet publish (\S+\.csproj)").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(["silo/Dapo.Silo.csproj", "client/Dapo.Client.csproj"], published);
        foreach (var project in published)
        {
            Assert.True(File.Exists(Path.Combine(RepositoryPaths.Root, project)), project);
            // Everything a published project references must have been copied in.
            foreach (var reference in XDocument.Load(Path.Combine(RepositoryPaths.Root, project)).Descendants("ProjectReference"))
            {
                var path = Path.GetRelativePath(RepositoryPaths.Root,
                    Path.GetFullPath(Path.Combine(RepositoryPaths.Root, Path.GetDirectoryName(project)!, reference.Attribute("Include")!.Value)));
                Assert.True(copied.Any(c => path.StartsWith(c.Arguments.Split(' ')[0].TrimEnd('/') + "/", StringComparison.Ordinal)),
                    $"{project} references {path}, which the Dockerfile does not copy");
            }
        }
    }

    [Fact]
    public void The_image_runs_the_silo_program_the_build_publishes_with_the_libtorch_the_engine_is_built_against()
    {
        var instructions = Instructions();
        var entry = instructions.Single(i => i.Instruction == "ENTRYPOINT").Arguments;
        var assembly = XDocument.Load(Path.Combine(RepositoryPaths.Root, "silo", "Dapo.Silo.csproj")).Descendants("AssemblyName").Single().Value;
        Assert.Contains($"\"/app/silo/{assembly}.dll\"", entry);
        Assert.Contains("-o /app/silo", File.ReadAllText(Dockerfile));
        Assert.Contains("\"join\"", instructions.Single(i => i.Instruction == "CMD").Arguments);

        // The runtime's libtorch package is the one of the libtorch-dev this machine builds the engine with.
        using var dpkg = Process.Start(new ProcessStartInfo("dpkg-query", ["-W", "-f=${Version}", "libtorch-dev"]) { RedirectStandardOutput = true })!;
        var version = dpkg.StandardOutput.ReadToEnd();
        dpkg.WaitForExit();
        var majorMinor = Regex.Match(version, @"^(\d+\.\d+)").Groups[1].Value;
        Assert.NotEqual("", majorMinor);
        Assert.Contains($"libtorch{majorMinor} ", File.ReadAllText(Dockerfile));
        Assert.Contains("libtorch-dev", File.ReadAllText(Dockerfile));
    }
}
