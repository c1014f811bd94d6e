using Dapo.Grains.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;

namespace Dapo.Silo.Http;

/// <summary>/healthz and /metrics of the silo (<see cref="HttpSettings"/>): for probes and Prometheus.</summary>
internal static class HttpEndpoint
{
    public const string Health = "/healthz";
    public const string Metrics = "/metrics";

    public static void Configure(Microsoft.AspNetCore.Builder.WebApplicationBuilder builder, HttpSettings settings)
    {
        builder.Services.AddSingleton(settings);
        builder.Services.AddOpenTelemetry().WithMetrics(m => m.AddMeter(DapoMetrics.MeterName, "Microsoft.Orleans").AddPrometheusExporter());
    }

    /// <summary>Requests that reach the endpoint's port get /healthz and /metrics only.</summary>
    public static bool IsEndpointPort(HttpContext context, HttpSettings? settings) => settings is not null && context.Connection.LocalPort == settings.Port;

    public static void Map(WebApplication app, HttpSettings settings)
    {
        app.Use(async (context, next) =>
        {
            if (IsEndpointPort(context, settings) && context.Request.Path != Health && context.Request.Path != Metrics)
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }
            await next(context);
        });
        // Healthy from the moment the silo has joined its cluster until it is asked to stop.
        var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
        app.MapGet(Health, () => lifetime.ApplicationStarted.IsCancellationRequested && !lifetime.ApplicationStopping.IsCancellationRequested
            ? Results.Text("ok\n")
            : Results.Text("not serving\n", statusCode: StatusCodes.Status503ServiceUnavailable));
        app.MapPrometheusScrapingEndpoint(Metrics);
    }
}
