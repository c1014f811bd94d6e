using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Dapo.Grains.Hosting;
using Orleans.Dashboard;

namespace Dapo.Silo.Dashboard;

/// <summary>
/// The dashboard's settings (section "Dashboard"): where it listens and the token it asks for. It listens on
/// 127.0.0.1 unless told otherwise; on any other address it requires a token, given in configuration
/// (Dashboard:Token, DAPO_Dashboard__Token), never on the command line, where other users see it.
/// </summary>
internal sealed class DashboardSettings
{
    public const string SectionName = "Dashboard";

    /// <summary>The port (--dashboard [PORT]; 0: a free one).</summary>
    public int Port { get; set; } = 8080;

    /// <summary>The address to listen on (--dashboard-address).</summary>
    public string Address { get; set; } = "127.0.0.1";

    /// <summary>Asked of every request (Authorization: Bearer, or ?token= once, then a cookie); at least 16 characters.</summary>
    public string? Token { get; set; }

    /// <summary>Binds and checks the section; one message per problem, naming the setting and the fix.</summary>
    public static (DashboardSettings Settings, IReadOnlyList<string> Errors) Read(IConfiguration configuration)
    {
        var settings = new DashboardSettings();
        try
        {
            configuration.GetSection(SectionName).Bind(settings, b => b.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            return (settings, [e.Message]);
        }
        var errors = new List<string>();
        if (!IPAddress.TryParse(settings.Address, out _)) errors.Add($"Dashboard:Address '{settings.Address}' is not an IP address.");
        if (settings.Port is < 0 or > 65535) errors.Add($"Dashboard:Port {settings.Port} is not a port (0-65535).");
        if (settings.Token is { Length: < 16 }) errors.Add($"Dashboard:Token has {settings.Token.Length} characters; give at least 16.");
        if (settings.Address != "127.0.0.1" && string.IsNullOrEmpty(settings.Token))
            errors.Add($"Dashboard:Address is {settings.Address}: give a token in Dashboard:Token (DAPO_Dashboard__Token), or anyone who " +
                       "reaches that address could read the run and the cluster.");
        return (settings, errors);
    }
}

/// <summary>
/// The silo as an ASP.NET Core application when it serves HTTP: the dashboards (the Dapo page at / and the Orleans
/// Dashboard under /orleans/, --dashboard), and the health and metrics endpoint (<see cref="Http.HttpEndpoint"/>,
/// Http:Port), each on its own address and port.
/// </summary>
internal static class DashboardHosting
{
    private const string Cookie = "dapo_dashboard_token";

    public static WebApplicationBuilder CreateBuilder() => WebApplication.CreateEmptyBuilder(new WebApplicationOptions
    {
        ApplicationName = "dapo-silo", ContentRootPath = Environment.CurrentDirectory,
    });

    /// <summary>Kestrel on the configured addresses and ports, and the services the endpoints need.</summary>
    public static void Configure(WebApplicationBuilder builder, DashboardSettings? dashboard, HttpSettings? http)
    {
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            if (dashboard is not null) k.Listen(IPAddress.Parse(dashboard.Address), dashboard.Port);
            if (http is not null) k.Listen(IPAddress.Parse(http.Address), http.Port!.Value);
        });
        builder.Services.AddRoutingCore();
        if (dashboard is not null) builder.Services.AddSingleton(dashboard);
        if (http is not null) Http.HttpEndpoint.Configure(builder, http);
    }

    public static WebApplication Build(WebApplicationBuilder builder)
    {
        var app = builder.Build();
        var http = app.Services.GetService<HttpSettings>();
        var settings = app.Services.GetService<DashboardSettings>();
        if (settings?.Token is { } token) app.Use(RequireToken(token, http));
        app.UseRouting();
        if (http is not null) Http.HttpEndpoint.Map(app, http);
        if (settings is not null)
        {
            var (target, run) = app.Services.GetRequiredService<DashboardTarget>();
            app.MapOrleansDashboard(routePrefix: "/orleans");
            DapoPage.Map(app, target, run);
        }
        return app;
    }

    /// <summary>
    /// Every request carries the token: as "Authorization: Bearer TOKEN", or as ?token=TOKEN, which a browser gives
    /// once (the answer sets a cookie for the pages and calls that follow). Compared in constant time.
    /// </summary>
    private static Func<HttpContext, RequestDelegate, Task> RequireToken(string token, HttpSettings? http)
    {
        var expected = Encoding.UTF8.GetBytes(token);
        bool Matches(string? given) => given is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), expected);
        return async (context, next) =>
        {
            // The health and metrics port asks no token (probes and scrapers); it serves nothing else.
            if (Http.HttpEndpoint.IsEndpointPort(context, http))
            {
                await next(context);
                return;
            }
            var header = context.Request.Headers.Authorization.ToString();
            var query = context.Request.Query["token"].ToString();
            if (Matches(header.StartsWith("Bearer ", StringComparison.Ordinal) ? header[7..] : null) || Matches(context.Request.Cookies[Cookie]))
            {
                await next(context);
                return;
            }
            if (Matches(query))
            {
                context.Response.Cookies.Append(Cookie, token, new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Strict, Path = "/" });
                await next(context);
                return;
            }
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            await context.Response.WriteAsync("This dashboard asks for its token (Dashboard:Token): open it with ?token=TOKEN.");
        };
    }
}

/// <summary>What the Dapo page shows: the cluster this silo is part of, and its run (null: the only one).</summary>
internal sealed record DashboardTarget(Grains.Inspection.ClusterTarget Target, string? Run);
