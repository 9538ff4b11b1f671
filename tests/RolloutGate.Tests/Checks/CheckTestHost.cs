using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Checks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure;
using RolloutGate.Tests.Prometheus;

namespace RolloutGate.Tests.Checks;

/// <summary>
/// The check services against the test Prometheus and Alertmanager, plus a small local web server for http checks:
/// /healthz (200 "ok"), /status/{code}, /hang (never answers), /slow/{ms} (200 after that delay).
/// </summary>
public sealed class CheckTestHost : IAsyncLifetime
{
    private WebApplication? server;

    public string ServerUrl { get; private set; } = string.Empty;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        server = builder.Build();
        server.MapGet("/healthz", () => "ok");
        server.MapGet("/status/{code:int}", (int code) => Results.StatusCode(code));
        server.MapGet("/hang", async (CancellationToken aborted) =>
        {
            await Task.Delay(Timeout.Infinite, aborted);
            return "never";
        });
        server.MapGet("/slow/{ms:int}", async (int ms, CancellationToken aborted) =>
        {
            await Task.Delay(ms, aborted);
            return "ok";
        });
        await server.StartAsync();
        ServerUrl = server.Urls.Single();
    }

    public async Task DisposeAsync()
    {
        if (server is not null)
        {
            await server.DisposeAsync();
        }
    }

    public static ServiceProvider Services(Action<RolloutGateOptions>? configure = null) =>
        PrometheusTestServer.Services(
            options =>
            {
                options.Alertmanager.Url = PrometheusTestServer.AlertmanagerUrl;
                configure?.Invoke(options);
            },
            services => services.AddPreDeployChecks());

    /// <summary>Runs checks through the real runner, at the test Prometheus's anchor time unless told otherwise.</summary>
    public static async Task<IReadOnlyList<CheckResult>> RunAsync(
        PreDeploySpec spec, DateTimeOffset? at = null, Action<RolloutGateOptions>? configure = null)
    {
        using var services = Services(configure);
        var runner = services.GetRequiredService<PreDeployCheckRunner>();
        return await runner.RunAsync(spec, new CheckContext("checkout", "production", at ?? PrometheusTestServer.Anchor), CancellationToken.None);
    }

    public static async Task<CheckResult> RunOneAsync(CheckSpec check, DateTimeOffset? at = null, Action<RolloutGateOptions>? configure = null) =>
        Assert.Single(await RunAsync(new PreDeploySpec(TimeSpan.FromSeconds(20), [check]), at, configure));

    /// <summary>Fires an alert in the test Alertmanager, as Prometheus would.</summary>
    public static async Task PostAlertAsync(IReadOnlyDictionary<string, string> labels)
    {
        using var http = new HttpClient();
        using var response = await http.PostAsJsonAsync(
            PrometheusTestServer.AlertmanagerUrl + "/api/v2/alerts", new[] { new { labels } });
        response.EnsureSuccessStatusCode();
    }
}
