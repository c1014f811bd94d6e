using Dapo.Cluster.Blobs;
using Dapo.Cluster.Store;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Dapo.Cluster.Hosting;

public static class SiloServiceCollectionExtensions
{
    /// <summary>
    /// A silo: options from the "Silo", "Store" and "Blobs" sections (unknown keys are errors; every option is
    /// validated at start, before any work), the cluster store and blob storage (timed, for the coordination share
    /// of step time), membership, and the services of the configured roles.
    /// </summary>
    public static IServiceCollection AddDapoSilo(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<SiloOptions>()
            .Bind(configuration.GetSection("Silo"), b => b.ErrorOnUnknownConfiguration = true)
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<SiloOptions>>(new DelegateValidator<SiloOptions>(SiloOptionsValidator.Validate));
        services.AddOptions<ClusterStoreOptions>()
            .Bind(configuration.GetSection("Store"), b => b.ErrorOnUnknownConfiguration = true)
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<ClusterStoreOptions>>(new DelegateValidator<ClusterStoreOptions>(ClusterStoreOptionsValidator.Validate));
        services.AddDapoBlobStorage(configuration.GetSection(BlobStorageOptions.SectionName));

        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<CoordinationTimer>();
        services.AddSingleton<IClusterStore>(sp => new TimedClusterStore(
            ClusterStores.Create(sp.GetRequiredService<IOptions<ClusterStoreOptions>>().Value, sp.GetRequiredService<ILogger<IClusterStore>>()),
            sp.GetRequiredService<CoordinationTimer>()));
        var blobs = services.Last(d => d.ServiceType == typeof(IBlobStore));
        services.Remove(blobs);
        services.AddSingleton<IBlobStore>(sp => new TimedBlobStore((IBlobStore)blobs.ImplementationFactory!(sp), sp.GetRequiredService<CoordinationTimer>()));

        services.AddSingleton<SiloIdentity>();
        services.AddSingleton<RunCatalog>();
        services.AddSingleton<PolicySource>();
        services.TryAddSingleton<ITrainingReporter, LoggingTrainingReporter>();
        services.AddHostedService<MembershipService>();
        var roles = SiloOptions.ParseRoles(configuration["Silo:Roles"] ?? new SiloOptions().Roles, out _);
        if (roles.HasFlag(SiloRoles.Rollout))
        {
            services.AddSingleton<RolloutService>();
            services.AddHostedService(sp => sp.GetRequiredService<RolloutService>());
        }
        if (roles.HasFlag(SiloRoles.Learner)) services.AddHostedService<LearnerService>();
        return services;
    }

    /// <summary>Options validation from a function that lists problems.</summary>
    private sealed class DelegateValidator<T>(Func<T, IReadOnlyList<string>> validate) : IValidateOptions<T> where T : class
    {
        public ValidateOptionsResult Validate(string? name, T options)
        {
            var errors = validate(options);
            return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
        }
    }
}
