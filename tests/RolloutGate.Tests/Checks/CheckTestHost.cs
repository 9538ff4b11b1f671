using System.Collections.Concurrent;
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
/// /healthz (200 "ok"), /status/{code}, /protected (200 "ok" with the Basic credentials of <see cref="ProtectedUser"/> and
/// <see cref="ProtectedPassword"/>, else 401), /to-protected (a redirect there), /hang (never answers), /huge-page/... and
/// /endless-page/... (404 with an HTML page of 10 MB, or one that never ends), /together/{key}/{n} (200 to each of n requests for key once
/// all n are waiting at once; 503 to a request that waited 10 s for the others), /held/{key} (200 "ok" once the test
/// calls <see cref="Release"/>; <see cref="ArrivedAsync"/> says when it is waiting).
/// </summary>
public sealed class CheckTestHost : IAsyncLifetime
{
    private readonly ConcurrentDictionary<string, Gathering> gatherings = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Gathering> held = new(StringComparer.Ordinal);
    private WebApplication? server;

    public const string ProtectedUser = "checker";

    public const string ProtectedPassword = "p@ss:word";

    public string ServerUrl { get; private set; } = string.Empty;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        server = builder.Build();
        server.MapGet("/healthz", () => "ok");
        server.MapGet("/status/{code:int}", (int code) => Results.StatusCode(code));
        server.MapGet("/protected", (HttpRequest request) =>
            request.Headers.Authorization == "Basic " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{ProtectedUser}:{ProtectedPassword}"))
                ? Results.Text("ok") : Results.Text("Unauthorized", statusCode: 401));
        server.MapGet("/to-protected", () => Results.Redirect("/protected"));
        server.MapGet("/hang", async (CancellationToken aborted) =>
        {
            await Task.Delay(Timeout.Infinite, aborted);
            return "never";
        });
        // A proxy's error page of 10 MB, and one that never ends, in front of an API (Alertmanager's, say).
        server.MapGet("/huge-page/{**rest}", () => Results.Text("<html><body>" + new string('x', 10 * 1024 * 1024) + "</body></html>", "text/html", statusCode: 404));
        server.MapGet("/endless-page/{**rest}", async (HttpResponse response, CancellationToken aborted) =>
        {
            response.StatusCode = 404;
            response.ContentType = "text/html";
            await response.WriteAsync("<html><body>", aborted);
            var chunk = System.Text.Encoding.UTF8.GetBytes(new string('x', 8192));
            while (!aborted.IsCancellationRequested)
            {
                await response.Body.WriteAsync(chunk, aborted);
            }
        });
        server.MapGet("/together/{key}/{count:int}", async (string key, int count, CancellationToken aborted) =>
        {
            var gathering = gatherings.GetOrAdd(key, _ => new Gathering());
            if (Interlocked.Increment(ref gathering.Arrived) >= count)
            {
                gathering.All.TrySetResult();
            }

            try
            {
                await gathering.All.Task.WaitAsync(TimeSpan.FromSeconds(10), aborted);
                return Results.Text("ok");
            }
            catch (TimeoutException)
            {
                return Results.Text($"only {Volatile.Read(ref gathering.Arrived)} of {count} requests were waiting together", statusCode: 503);
            }
        });
        server.MapGet("/held/{key}", async (string key, CancellationToken aborted) =>
        {
            var request = held.GetOrAdd(key, _ => new Gathering());
            request.Arrival.TrySetResult();
            await request.All.Task.WaitAsync(aborted);
            return Results.Text("ok");
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

    /// <summary>Completes once a request to /held/{key} is waiting for its answer.</summary>
    public Task ArrivedAsync(string key) => held.GetOrAdd(key, _ => new Gathering()).Arrival.Task;

    /// <summary>Lets the requests to /held/{key} have their answer.</summary>
    public void Release(string key) => held.GetOrAdd(key, _ => new Gathering()).All.TrySetResult();

    /// <summary>
    /// Requests to one /together key: how many arrived, and the signal that all of them did; for a /held key, that one
    /// arrived and that it may be answered.
    /// </summary>
    private sealed class Gathering
    {
        public readonly TaskCompletionSource All = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly TaskCompletionSource Arrival = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Arrived;
    }

    /// <summary>Fires an alert in the test Alertmanager, as Prometheus would.</summary>
    public static async Task PostAlertAsync(IReadOnlyDictionary<string, string> labels)
    {
        using var http = new HttpClient();
        using var response = await http.PostAsJsonAsync(
            PrometheusTestServer.AlertmanagerUrl + "/api/v2/alerts", new[] { new { labels } });
        response.EnsureSuccessStatusCode();
    }
}
