using System.Net;
using Microsoft.Extensions.Configuration;

namespace Dapo.Grains.Hosting;

/// <summary>
/// The silo's HTTP endpoint for machines (section "Http"): /healthz for probes and /metrics in Prometheus text format
/// (the <see cref="DapoMetrics"/> meter and Orleans' own), on Http:Port, off unless a port is given (--http-port,
/// DAPO_Http__Port). It listens on 127.0.0.1 unless told otherwise (a pod: 0.0.0.0). It asks no token: it serves
/// only health and numbers, and no dashboard page is served on its port.
/// </summary>
public sealed class HttpSettings
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

