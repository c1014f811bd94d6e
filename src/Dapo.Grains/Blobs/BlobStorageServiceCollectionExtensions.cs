using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Dapo.Grains.Blobs;

public static class BlobStorageServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="BlobStorageOptions"/> bound from <paramref name="section"/> (usually "Blobs"), their
    /// validator (run at host start, so a bad setting stops the program before any work) and the
    /// <see cref="IBlobStore"/> singleton built by <see cref="BlobStoreFactory"/>.
    /// </summary>
    public static IServiceCollection AddDapoBlobStorage(this IServiceCollection services, IConfiguration section)
    {
        services.AddOptions<BlobStorageOptions>()
            .Bind(section, binder => binder.ErrorOnUnknownConfiguration = true)
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<BlobStorageOptions>, BlobStorageOptionsValidator>();
        services.AddSingleton<IBlobStore>(provider => BlobStoreFactory.Create(
            provider.GetRequiredService<IOptions<BlobStorageOptions>>().Value,
            provider.GetRequiredService<ILoggerFactory>()));
        return services;
    }
}
