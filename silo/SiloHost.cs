using System.Text.Json;
using Dapo.Grains.Hosting;
using Dapo.Core.Common;
using Orleans.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Dapo.Silo;

/// <summary>
/// Builds a silo host. Configuration comes in the usual .NET order, later sources winning: appsettings.json next to
/// the program or in the working directory, environment variables prefixed DAPO_ (DAPO_Blobs__ConnectionString),
/// then the command's options. Every setting is checked before the silo starts.
/// </summary>
internal static partial class SiloHost
{
    /// <summary>Set once the silo has started (one silo per process).</summary>
    private static volatile bool _started;

    /// <param name="commandSettings">The command's options as configuration keys; a "Dashboard:Port" among them
    /// (--dashboard) or an Http:Port in any source makes the silo an ASP.NET Core application (dashboards; health and
    /// metrics).</param>
    /// <param name="defaults">What holds when no source says otherwise (weaker than appsettings.json and DAPO_ variables).</param>
    public static IHostApplicationBuilder CreateBuilder(IReadOnlyDictionary<string, string?> commandSettings, bool quietLogs,
        IReadOnlyDictionary<string, string?>? defaults = null)
    {
        // The sources first, on their own: whether the silo serves HTTP decides which builder it is built with.
        var configuration = new ConfigurationManager();
        AddSources(configuration, commandSettings, defaults);
        var dashboard = commandSettings.ContainsKey("Dashboard:Port");
        var web = dashboard || configuration[$"{HttpSettings.SectionName}:Port"] is not null;
        IHostApplicationBuilder builder = web
            ? Dashboard.DashboardHosting.CreateBuilder()
            : Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
            {
                ApplicationName = "dapo-silo", DisableDefaults = true, ContentRootPath = Environment.CurrentDirectory,
            });
        builder.Configuration.AddConfiguration(configuration);
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        // While the silo starts, the runtime's errors (storage it cannot reach, with their stack traces) are not
        // printed: a failed start is said in one line by StartAsync.
        builder.Logging.AddFilter("Orleans", level => level >= (_started ? LogLevel.Warning : LogLevel.Critical));
        builder.Logging.AddFilter("Polly", LogLevel.Error);
        // A failed start is reported in one line by StartAsync; the host's own report is a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        if (quietLogs)
        {
            builder.Logging.AddFilter("Dapo", LogLevel.Warning);
            // `train` prints its own progress: the runtime speaks only when something is wrong.
            builder.Logging.AddFilter("Orleans", LogLevel.Error);
            builder.Logging.AddFilter("Polly", LogLevel.Critical);
        }
        builder.Services.Configure<HostOptions>(o =>
        {
            // A stopping learner finishes its checkpoint write; give it time.
            o.ShutdownTimeout = TimeSpan.FromSeconds(60);
            o.BackgroundServiceExceptionBehavior = BackgroundServiceExceptionBehavior.StopHost;
        });
        var settings = SiloSettings.Read(builder.Configuration);
        if (builder is Microsoft.AspNetCore.Builder.WebApplicationBuilder webBuilder)
        {
            var (http, httpErrors) = HttpSettings.Read(builder.Configuration);
            if (httpErrors.Count > 0) throw new OptionsValidationException(HttpSettings.SectionName, typeof(HttpSettings), httpErrors);
            Dashboard.DashboardSettings? dashboardSettings = null;
            if (dashboard)
            {
                (dashboardSettings, var errors) = Dashboard.DashboardSettings.Read(builder.Configuration);
                if (errors.Count > 0) throw new OptionsValidationException(Dashboard.DashboardSettings.SectionName, typeof(Dashboard.DashboardSettings), errors);
                if (http is not null && dashboardSettings.Port == http.Port)
                    throw new OptionsValidationException(HttpSettings.SectionName, typeof(HttpSettings),
                        [$"Http:Port and the dashboard's port are both {http.Port}: give them two ports."]);
                // What the Dapo page shows: the embedded run of `train`, or the cluster of `join` (its run, if it serves one).
                var run = settings.Silo.Run.Length > 0 ? settings.Silo.Run : null;
                webBuilder.Services.AddSingleton(new Dashboard.DashboardTarget(Grains.Inspection.ClusterTarget.Of(settings)
                    ?? new Grains.Inspection.ClusterTarget.Embedded(Path.GetFullPath(Path.Combine(settings.Silo.RunDirectory, settings.Silo.Run))), run));
            }
            Dashboard.DashboardHosting.Configure(webBuilder, dashboardSettings, http);
        }
        builder.UseOrleans(silo =>
        {
            silo.AddDapo(settings);
            if (dashboard) Orleans.Dashboard.ServiceCollectionExtensions.AddDashboard(silo);
            // In a pod (deploy/k8s): Orleans' Kubernetes hosting takes the silo's name, address and cluster ids from the
            // downward API, and deletes the pods of silos the cluster declared dead.
            if (InKubernetesPod) silo.UseKubernetesHosting();
        });
        return builder;
    }

    /// <summary>Kubernetes sets KUBERNETES_SERVICE_HOST in every pod; POD_NAME is what deploy/k8s gives the silo.</summary>
    private static bool InKubernetesPod =>
        Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST") is not null && Environment.GetEnvironmentVariable("POD_NAME") is not null;

    /// <summary>appsettings.json next to the program, then in the working directory; DAPO_ variables; the command.</summary>
    private static void AddSources(IConfigurationBuilder configuration, IReadOnlyDictionary<string, string?> commandSettings,
        IReadOnlyDictionary<string, string?>? defaults)
    {
        if (defaults is not null) configuration.AddInMemoryCollection(defaults);
        foreach (var file in new[] { Path.Combine(AppContext.BaseDirectory, "appsettings.json"), Path.Combine(Environment.CurrentDirectory, "appsettings.json") })
        {
            try
            {
                configuration.AddJsonFile(file, optional: true);
            }
            catch (InvalidDataException e) when (e.InnerException?.InnerException is JsonException json)
            {
                throw new SiloConfigurationException($"{file}: {JsonErrors.Describe(json)}");
            }
        }
        configuration.AddEnvironmentVariables("DAPO_").AddInMemoryCollection(commandSettings);
    }

    /// <summary>The host of <paramref name="builder"/>, its dashboards mapped when it serves them.</summary>
    public static IHost Build(IHostApplicationBuilder builder) => builder switch
    {
        Microsoft.AspNetCore.Builder.WebApplicationBuilder web => Dashboard.DashboardHosting.Build(web),
        HostApplicationBuilder plain => plain.Build(),
        _ => throw new ArgumentException($"unknown builder {builder.GetType()}", nameof(builder)),
    };

    /// <summary>
    /// Runs the host until <paramref name="finished"/> completes or the process is asked to stop (Ctrl+C, SIGTERM:
    /// the host's console lifetime stops it gracefully). Returns 0, or 1 when a role failed.
    /// </summary>
    public static async Task<int> RunAsync(IHost host, Task finished, bool started = false)
    {
        if (!started && await StartAsync(host) is { } failed) return failed;
        LogEngine(host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Dapo.Silo"), Dapo.Torch.TorchEngine.Describe());
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        var stopping = new TaskCompletionSource();
        using (lifetime.ApplicationStopping.Register(() => stopping.TrySetResult()))
            await Task.WhenAny(finished, stopping.Task);
        await host.StopAsync();
        return 0;
    }

    /// <summary>
    /// Starts the silo, giving up after Silo:StartupTimeout; null when it runs, else the exit code after one line
    /// saying why (storage unreachable or refusing the connection string, a port taken).
    /// </summary>
    public static async Task<int?> StartAsync(IHost host)
    {
        var timeout = host.Services.GetRequiredService<IOptions<SiloOptions>>().Value.StartupTimeout;
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await host.StartAsync(cancel.Token);
            _started = true;
            return null;
        }
        catch (Exception e) when (e is not OptionsValidationException)
        {
            var why = cancel.IsCancellationRequested ? $"it did not join the cluster within {timeout.TotalSeconds:0}s (Silo:StartupTimeout)" : Innermost(e);
            Console.Error.WriteLine($"dapo-silo: the silo could not start: {why}");
            try { await host.StopAsync(CancellationToken.None); } catch (Exception) { /* it never ran */ }
            return 1;
        }
    }

    private static string Innermost(Exception e)
    {
        while (e.InnerException is not null && e is AggregateException or System.Reflection.TargetInvocationException or OrleansException) e = e.InnerException;
        return e.Message.Split('\n')[0];
    }

    [LoggerMessage(EventId = 7001, Level = LogLevel.Information, Message = "{Engine}")]
    private static partial void LogEngine(ILogger logger, string engine);
}

/// <summary>The silo's configuration cannot be read (a malformed appsettings.json): said in one line, exit code 2.</summary>
internal sealed class SiloConfigurationException(string message) : Exception(message);
