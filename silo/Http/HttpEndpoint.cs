using System.Net;
using Dapo.Grains.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;

namespace Dapo.Silo.Http;

/// <summary>
/// The silo's HTTP endpoint for machines (section "Http"): /healthz for probes and /metrics in Prometheus text format
/// (the <see cref="DapoMetrics"/> meter and Orleans' own), on Http:Port, off unless a port is given (--http-port,
/// DAPO_Http__Port). It listens on 127.0.0.1 unless told otherwise (a pod: 0.0.0.0). It asks no token: it serves
/// only health and numbers, and no dashboard page is served on its port.
/// </summary>
internal sealed class HttpSettings
{
    public const string SectionName = "Http";

    public int? Port { get; set; }

    public string Address { get; set; } = "127.0.0.1";

    /// <summary>The settings when a port is configured (null: no endpoint), and one message per problem.</summary>
    public static (HttpSettings? Settings, IReadOnlyList<string> Errors) Read(IConfiguration configuration)
    {
        var settings = new HttpSettings();
        try
        {
            configuration.GetSection(SectionName).Bind(settings, b => b.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            return (null, [e.InnerException?.Message is { } inner ? $"{e.Message.TrimEnd('.')}: {inner}" : e.Message]);
        }
        if (settings.Port is null) return (null, []);
        var errors = new List<string>();
        if (settings.Port is < 1 or > 65535) errors.Add($"Http:Port {settings.Port} is not a port: use 1-65535.");
        if (!IPAddress.TryParse(settings.Address, out _)) errors.Add($"Http:Address '{settings.Address}' is not an IP address (0.0.0.0: every address of a pod).");
        return (settings, errors);
    }
}

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
