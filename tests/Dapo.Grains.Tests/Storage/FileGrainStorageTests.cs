using Dapo.Grains.Storage;
using Orleans.Storage;

namespace Dapo.Grains.Tests.Storage;

/// <summary>The grain storage contract on <see cref="FileGrainStorage"/> (the embedded silo's provider).</summary>
public sealed class FileGrainStorageTests : GrainStorageContractTests
{
    private readonly string _directory = Directory.CreateTempSubdirectory("dapo-grain-state-").FullName;

    protected override Task<IGrainStorage> CreateStorageAsync() => Task.FromResult<IGrainStorage>(new FileGrainStorage(_directory));

    public override Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }
}
