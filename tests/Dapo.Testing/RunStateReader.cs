using Dapo.Grains;
using Dapo.Grains.Grains;
using Dapo.Grains.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Dapo.Testing;

/// <summary>
/// Reads what an embedded run (`dapo-silo train`) stored, after its process has exited, through the real grains: a
/// learner-role silo in this process over the run directory's grain state files (<c>grains/</c>) and blobs
/// (<c>blobs/</c>), on its own loopback ports. Only read-only grain methods are called and activating a grain writes
/// nothing (the learner starts its work only when asked to), so the run's files stay as the run left them. Dispose
/// before the run's process starts again: the file storage's conflict checks hold within one process only.
/// </summary>
public sealed class RunStateReader : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly string _scratch;

    private RunStateReader(IHost host, string scratch, string runId)
    {
        _host = host;
        _scratch = scratch;
        RunId = runId;
    }

    /// <summary>The run's name: the name of its directory, as `train` names it.</summary>
    public string RunId { get; }

    public IGrainFactory Grains => _host.Services.GetRequiredService<IGrainFactory>();

    /// <summary>The run's data, built from its stored spec (the problem text of a prompt, say).</summary>
    public Task<RunResources> ResourcesAsync() => _host.Services.GetRequiredService<RunCatalog>().GetAsync(RunId);

    public static async Task<RunStateReader> OpenAsync(string runDirectory)
    {
        var directory = Path.GetFullPath(runDirectory).TrimEnd(Path.DirectorySeparatorChar);
        if (!Directory.Exists(Path.Combine(directory, "grains")))
            throw new InvalidOperationException($"{directory} holds no grain state (no grains/ folder).");
        // Metrics files of the reading silo (it writes none) go to a folder of its own, never the run's.
        var scratch = Directory.CreateTempSubdirectory("dapo-reader-").FullName;
        var settings = SiloSettings.Read(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Silo:Roles"] = "learner", ["Silo:Storage"] = "Local", ["Silo:ClusterId"] = "dapo-reader",
            ["Silo:RunDirectory"] = scratch, ["Silo:GrainStateDirectory"] = Path.Combine(directory, "grains"),
            ["Blobs:Kind"] = "Local", ["Blobs:LocalRoot"] = Path.Combine(directory, "blobs"),
        }).Build());
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleans(silo => silo.AddDapo(settings));
        var host = builder.Build();
        await host.StartAsync();
        return new RunStateReader(host, scratch, Path.GetFileName(directory));
    }

    /// <summary>The run as its learner grain has it.</summary>
    public async Task<RunInfo> RunAsync() =>
        await Grains.GetGrain<ILearnerGrain>(RunId).GetAsync() ?? throw new InvalidOperationException($"Run {RunId} has no learner state.");

    public Task<StepLedger?> StepAsync(int step) => Grains.GetGrain<IStepGrain>(GrainKeys.Step(RunId, step)).GetAsync();

    public Task<IReadOnlyList<PromptEntry>> PromptsAsync(int step) => Grains.GetGrain<IStepGrain>(GrainKeys.Step(RunId, step)).ListPromptsAsync();

    public Task<PromptGroup?> GroupAsync(int step, long promptId) =>
        Grains.GetGrain<IPromptGrain>(GrainKeys.Prompt(RunId, step, promptId)).GetAsync();

    /// <summary>The ledger's invariants (<see cref="LedgerAudit"/>): empty when sound.</summary>
    public Task<IReadOnlyList<string>> AuditAsync() => LedgerAudit.CheckAsync(Grains, RunId);

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
        Directory.Delete(_scratch, recursive: true);
    }
}

/// <summary>The files under a directory with a hash of each: equal snapshots mean nothing there changed.</summary>
public static class DirectorySnapshot
{
    public static IReadOnlyDictionary<string, string> Take(string directory) =>
        !Directory.Exists(directory)
            ? new Dictionary<string, string>()
            : Directory.GetFiles(directory, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToDictionary(
                f => Path.GetRelativePath(directory, f),
                f => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f))));
}
