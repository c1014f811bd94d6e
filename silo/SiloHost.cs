using System.Text.Json;
using Dapo.Cluster.Hosting;
using Dapo.Core.Common;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Dapo.Silo;

/// <summary>
/// Builds a silo host. Configuration comes in the usual .NET order, later sources winning: appsettings.json next to
/// the program or in the working directory, environment variables prefixed DAPO_ (DAPO_Store__ConnectionString),
/// then the command's options.
/// </summary>
internal static partial class SiloHost
{
    public static HostApplicationBuilder CreateBuilder(IReadOnlyDictionary<string, string?> commandSettings, bool quietLogs)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            ApplicationName = "dapo-silo", DisableDefaults = true, ContentRootPath = Environment.CurrentDirectory,
        });
        foreach (var file in new[] { Path.Combine(AppContext.BaseDirectory, "appsettings.json"), Path.Combine(Environment.CurrentDirectory, "appsettings.json") })
        {
            try
            {
                builder.Configuration.AddJsonFile(file, optional: true);
            }
            catch (InvalidDataException e) when (e.InnerException?.InnerException is JsonException json)
            {
                throw new SiloConfigurationException($"{file}: {JsonErrors.Describe(json)}");
            }
        }
        builder.Configuration
            .AddEnvironmentVariables("DAPO_")
            .AddInMemoryCollection(commandSettings);
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        if (quietLogs)
        {
            builder.Logging.AddFilter("Dapo", LogLevel.Warning);
            // A failed start is reported in one line by RunAsync; the host's own report is a stack trace.
            builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        }
        builder.Services.Configure<HostOptions>(o =>
        {
            // A stopping learner finishes its checkpoint write; give it time.
            o.ShutdownTimeout = TimeSpan.FromSeconds(60);
            o.BackgroundServiceExceptionBehavior = BackgroundServiceExceptionBehavior.StopHost;
        });
        builder.Services.AddDapoSilo(builder.Configuration);
        return builder;
    }

    /// <summary>
    /// Runs the host until <paramref name="finished"/> completes or the process is asked to stop (Ctrl+C, SIGTERM:
    /// the host's console lifetime stops it gracefully). Returns 0, or 1 when a role failed.
    /// </summary>
    public static async Task<int> RunAsync(IHost host, Task finished)
    {
        try
        {
            await host.StartAsync();
        }
        catch (OptionsValidationException e)
        {
            foreach (var failure in e.Failures) Console.Error.WriteLine($"Invalid configuration: {failure}");
            return 2;
        }
        catch (InvalidOperationException e)
        {
            Console.Error.WriteLine($"dapo-silo: {e.Message}");
            return 1;
        }
        LogEngine(host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Dapo.Silo"), Dapo.Torch.TorchEngine.Describe());
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        var stopping = new TaskCompletionSource();
        using (lifetime.ApplicationStopping.Register(() => stopping.TrySetResult()))
            await Task.WhenAny(finished, stopping.Task);
        await host.StopAsync();
        var failed = host.Services.GetServices<IHostedService>().OfType<BackgroundService>()
            .Any(s => s.ExecuteTask is { IsFaulted: true });
        return failed ? 1 : 0;
    }

    [LoggerMessage(EventId = 7001, Level = LogLevel.Information, Message = "{Engine}")]
    private static partial void LogEngine(ILogger logger, string engine);
}

/// <summary>The silo's configuration cannot be read (a malformed appsettings.json): said in one line, exit code 2.</summary>
internal sealed class SiloConfigurationException(string message) : Exception(message);
