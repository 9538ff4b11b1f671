using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Checks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Prometheus;
using RolloutGate.Tests.Checks;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Prometheus;

/// <summary>
/// Prometheus and Alertmanager behind authentication (RolloutGate:Prometheus:BearerToken, BearerTokenFile, Username and
/// Password, Headers; the same under Alertmanager): what a server in front of them receives.
/// </summary>
public sealed class MonitoringAuthTests : IAsyncLifetime
{
    private readonly ConcurrentQueue<(string Path, string? Authorization, string? Tenant, string Query)> seen = new();
    private readonly string folder = Directory.CreateTempSubdirectory("rolloutgate-auth-").FullName;
    private WebApplication server = null!;
    private string url = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        server = builder.Build();
        // Prometheus's and Alertmanager's answers with nothing in them: what matters here is what was sent.
        server.Map("/api/v1/query", (HttpRequest request) => Record(request, """{"status":"success","data":{"resultType":"vector","result":[]}}"""));
        server.Map("/api/v1/query_range", (HttpRequest request) => Record(request, """{"status":"success","data":{"resultType":"matrix","result":[]}}"""));
        server.MapGet("/api/v2/alerts", (HttpRequest request) => Record(request, "[]"));
        // Behind a proxy under a path prefix.
        server.Map("/prefixed/api/v1/query", (HttpRequest request) => Record(request, """{"status":"success","data":{"resultType":"vector","result":[]}}"""));
        server.Map("/prefixed/api/v1/query_range", (HttpRequest request) => Record(request, """{"status":"success","data":{"resultType":"matrix","result":[]}}"""));
        server.MapGet("/prefixed/api/v2/alerts", (HttpRequest request) => Record(request, "[]"));
        // An authenticating proxy refusing: 401 to a query, 403 and its sign-in page to Alertmanager's API.
        server.Map("/refusing/api/v1/query", () => Results.Text("Unauthorized", statusCode: 401));
        // A proxy sending queries on elsewhere: here, to the recording endpoint on another origin (localhost, not 127.0.0.1).
        server.Map("/moved/api/v1/query", () => Results.Redirect(url.Replace("127.0.0.1", "localhost", StringComparison.Ordinal) + "/api/v1/query", preserveMethod: true));
        server.MapGet("/refusing/api/v2/alerts", () => Results.Text("<html><body><form>Sign in with your company account</form></body></html>", "text/html", statusCode: 403));
        // A proxy whose error page repeats the request it could not send on, headers and all.
        server.MapGet("/echoing/{**rest}", (HttpRequest request) => Results.Text(
            $"upstream failed for {request.Path}{request.QueryString} (Authorization: {request.Headers.Authorization}; X-Api-Key: {request.Headers["X-Api-Key"]})",
            statusCode: 502));
        server.Map("/echoing/api/v1/query", (HttpRequest request) => Results.Json(
            new { status = "error", errorType = "bad_data", error = $"refused (Authorization: {request.Headers.Authorization}; X-Api-Key: {request.Headers["X-Api-Key"]})" },
            statusCode: 400));
        await server.StartAsync();
        url = server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
    }

    public async Task DisposeAsync()
    {
        await server.DisposeAsync();
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task Prometheus_BearerTokenFile_IsReadForEveryRequestAndSentWithTheTenantHeader()
    {
        var tokenFile = Path.Combine(folder, "token");
        await File.WriteAllTextAsync(tokenFile, "first-token\n");
        await using var services = PrometheusTestServer.Services(options =>
        {
            options.Prometheus.Url = url;
            options.Prometheus.BearerTokenFile = tokenFile;
            options.Prometheus.Headers["X-Scope-OrgID"] = "team-a";
        });
        var client = services.GetRequiredService<IPrometheusClient>();

        await client.QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None);
        await File.WriteAllTextAsync(tokenFile, "rotated-token");
        await client.QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None);

        Assert.Equal(
            [("/api/v1/query", "Bearer first-token", "team-a"), ("/api/v1/query", "Bearer rotated-token", "team-a")],
            seen.Select(s => (s.Path, s.Authorization, s.Tenant)).ToArray());
    }

    [Fact]
    public async Task Prometheus_TokenFileGone_FailsNamingTheFile()
    {
        var tokenFile = Path.Combine(folder, "no-such-token");

        var failure = await QueryFailureAsync(prometheus => prometheus.BearerTokenFile = tokenFile);

        Assert.Contains($"the bearer token file {tokenFile} cannot be read", failure.Message, StringComparison.Ordinal);
        Assert.Empty(seen);
    }

    [Fact]
    public async Task Prometheus_ALineBreakInsideTheToken_FailsNamingTheFileOrTheSetting()
    {
        var tokenFile = Path.Combine(folder, "two-tokens");
        await File.WriteAllTextAsync(tokenFile, "first-token\nsecond-token\n");

        var failure = await QueryFailureAsync(prometheus => prometheus.BearerTokenFile = tokenFile);

        Assert.Contains($"the bearer token file {tokenFile} holds a line break or another control character inside its token", failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("first-token", failure.Message, StringComparison.Ordinal);
        Assert.Empty(seen);
        // The same token given as the setting itself, with the newline of the secret file it came from, stops start-up.
        Assert.Equal(
            ["RolloutGate:Prometheus:BearerToken contains a line break or another control character (the end of the file it was copied from?)"],
            new RolloutGate.Infrastructure.PrometheusOptions { BearerToken = "first-token\n" }.Problems("RolloutGate:Prometheus"));
    }

    [Fact]
    public async Task CredentialsRefused_PrometheusAndAlertmanagerNameTheSettingsToCheck_NotTheProxysPage()
    {
        await using var services = PrometheusTestServer.Services(
            options =>
            {
                options.Prometheus.Url = url + "/refusing/";
                options.Prometheus.BearerToken = "expired-token";
                options.Alertmanager.Url = url + "/refusing/";
            },
            more => more.AddPreDeployChecks());

        var query = await Assert.ThrowsAsync<PrometheusUnavailableException>(() =>
            services.GetRequiredService<IPrometheusClient>().QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None));
        var alerts = await CriticalAlertsCheckAsync(services);

        Assert.Equal(
            $"Prometheus at {url}/refusing/ answered 401 Unauthorized: the authentication in front of it refused RolloutGate; check " +
            "RolloutGate__Prometheus__BearerToken, __BearerTokenFile, __Username and __Password, or the user info of __Url (and __Headers__* for a tenant)", query.Message);
        Assert.Equal(CheckStatus.Error, alerts.Status);
        Assert.Equal(
            $"Alertmanager at {url}/refusing/ answered 403 Forbidden: the authentication in front of it refused RolloutGate; check " +
            "RolloutGate__Alertmanager__BearerToken, __BearerTokenFile, __Username and __Password, or the user info of __Url (and __Headers__* for a tenant)", alerts.Detail);
        Assert.DoesNotContain("expired-token", query.Message + alerts.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Alertmanager_AnErrorPageThatRepeatsTheRequest_IsQuotedWithoutItsCredentials()
    {
        var alerts = await CheckTestHost.RunOneAsync(
            new CheckSpec("no-critical-alerts", Alertmanager: new AlertmanagerCheckSpec(["severity=\"critical\""])),
            configure: options =>
            {
                options.Alertmanager.Url = url + "/echoing/?key=query-key-secret";
                options.Alertmanager.Username = "rolloutgate";
                options.Alertmanager.Password = "basic-password-secret";
                options.Alertmanager.Headers["X-Api-Key"] = "api-key-secret";
            });

        // The detail is the predeploy answer's and the audit trail's.
        Assert.Equal(CheckStatus.Error, alerts.Status);
        Assert.StartsWith("Alertmanager answered 502: upstream failed for /echoing/api/v2/alerts?[redacted]&active=true&", alerts.Detail, StringComparison.Ordinal);
        Assert.EndsWith("(Authorization: Basic [redacted]; X-Api-Key: [redacted])", alerts.Detail, StringComparison.Ordinal);
        foreach (var secret in new[] { "query-key-secret", "basic-password-secret", "api-key-secret", Convert.ToBase64String(Encoding.UTF8.GetBytes("rolloutgate:basic-password-secret")) })
        {
            Assert.DoesNotContain(secret, alerts.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Prometheus_AnErrorInItsFormThatRepeatsTheRequest_IsQuotedWithoutItsCredentials()
    {
        await using var services = PrometheusTestServer.Services(options =>
        {
            options.Prometheus.Url = url + "/echoing/";
            options.Prometheus.BearerToken = "bearer-token-secret";
            options.Prometheus.Headers["X-Api-Key"] = "api-key-secret";
        });

        var rejected = await Assert.ThrowsAsync<PrometheusQueryException>(() =>
            services.GetRequiredService<IPrometheusClient>().QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None));

        // The error is the log's, the watch's evidence's and the audit trail's.
        Assert.Equal("Prometheus rejected the query 'up': bad_data: refused (Authorization: Bearer [redacted]; X-Api-Key: [redacted])", rejected.Message);
    }

    [Fact]
    public async Task Prometheus_ARedirect_IsNotFollowedWithTheCredentials_AndSaysWhere()
    {
        var failure = await QueryFailureAsync(prometheus =>
        {
            prometheus.Url = url + "/moved/";
            prometheus.BearerToken = "not-for-another-host";
            prometheus.Headers["X-Scope-OrgID"] = "team-a";
        });

        var target = url.Replace("127.0.0.1", "localhost", StringComparison.Ordinal) + "/api/v1/query";
        Assert.Equal(
            $"Prometheus at {url}/moved/ answered 307 Temporary Redirect: a redirect to {target}, which RolloutGate does not follow " +
            "(its credentials and headers would go along); set RolloutGate__Prometheus__Url to the address that answers", failure.Message);
        Assert.Empty(seen);
    }

    [Fact]
    public async Task Prometheus_CaFileUnreadableAfterStartUp_FailsEachQueryAsAnOutageNamingTheFile()
    {
        // Start-up checked it; it was removed since (a configuration map taken away), and the client's connections are
        // made anew every few minutes, reading it again.
        var removed = Path.Combine(folder, "removed-ca.pem");

        var failure = await QueryFailureAsync(prometheus => prometheus.CaFile = removed);

        Assert.Contains($"the CA file {removed} cannot be read as PEM certificates", failure.Message, StringComparison.Ordinal);
        Assert.Empty(seen);
    }

    [Fact]
    public async Task Alertmanager_BasicAuthentication_IsSentToAlertmanagerAndNotToPrometheus()
    {
        await using var services = PrometheusTestServer.Services(
            options =>
            {
                options.Prometheus.Url = url;
                options.Alertmanager.Url = url;
                options.Alertmanager.Username = "rolloutgate";
                options.Alertmanager.Password = "pa:ss";
            },
            more => more.AddPreDeployChecks());

        using var alertmanager = services.GetRequiredService<IHttpClientFactory>().CreateClient(CheckConstants.AlertmanagerHttpClient);
        (await alertmanager.GetAsync(new Uri(new Uri(url), "/api/v2/alerts"))).EnsureSuccessStatusCode();
        await services.GetRequiredService<IPrometheusClient>().QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None);

        Assert.Equal(
            [("/api/v2/alerts", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("rolloutgate:pa:ss")), null), ("/api/v1/query", null, null)],
            seen.Select(s => (s.Path, s.Authorization, s.Tenant)).ToArray());
    }

    [Theory]
    [InlineData("/prefixed?token=query-token")]
    [InlineData("/prefixed/?token=query-token")]
    public async Task BaseUrlsWithAPathPrefixAndAQuery_EveryRequestGoesUnderThePrefixAndKeepsTheQuery(string prefixAndQuery)
    {
        await using var services = PrometheusTestServer.Services(
            options =>
            {
                options.Prometheus.Url = url + prefixAndQuery;
                options.Alertmanager.Url = url + prefixAndQuery;
            },
            more => more.AddPreDeployChecks());

        await services.GetRequiredService<IPrometheusClient>().QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None);
        await services.GetRequiredService<IPrometheusClient>().QueryRangeAsync(
            "up", DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow, TimeSpan.FromMinutes(1), CancellationToken.None);
        var alerts = await CriticalAlertsCheckAsync(services);

        Assert.Equal(CheckStatus.Pass, alerts.Status);
        Assert.Equal(
            [
                ("/prefixed/api/v1/query", "?token=query-token"),
                ("/prefixed/api/v1/query_range", "?token=query-token"),
                ("/prefixed/api/v2/alerts", "?token=query-token&active=true&silenced=false&inhibited=false&filter=severity%3D%22critical%22"),
            ],
            seen.Select(s => (s.Path, s.Query)).ToArray());
    }

    [Fact]
    public async Task UserInfoInTheUrl_IsSentAsBasicCredentials_AndNeverShown()
    {
        var withUserInfo = url.Replace("http://", "http://rolloutgate:url-pass%40word@", StringComparison.Ordinal);
        await using var services = PrometheusTestServer.Services(
            options =>
            {
                options.Prometheus.Url = withUserInfo;
                options.Alertmanager.Url = withUserInfo + "/echoing/";
            },
            more => more.AddPreDeployChecks());

        await services.GetRequiredService<IPrometheusClient>().QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None);
        var alerts = await CriticalAlertsCheckAsync(services);

        var basic = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("rolloutgate:url-pass@word"));
        Assert.Equal([("/api/v1/query", basic)], seen.Select(s => (s.Path, s.Authorization)).ToArray());
        // Alertmanager's proxy repeats the request with its Authorization header: the detail is answered and audited.
        Assert.Equal(CheckStatus.Error, alerts.Status);
        Assert.EndsWith("(Authorization: Basic [redacted]; X-Api-Key: )", alerts.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("url-pass", alerts.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void UserInfoInTheUrl_AndCredentialsSettings_AreRefusedTogether()
    {
        Assert.Equal(
            ["RolloutGate__Prometheus__Url carries a user name and password, and RolloutGate__Prometheus__BearerToken is set too: give the credentials in one place only"],
            new RolloutGate.Infrastructure.PrometheusOptions { Url = "https://someone:secret@prometheus.example/", BearerToken = "token" }
                .Problems("RolloutGate__Prometheus", "__"));
        Assert.Equal(
            ["RolloutGate:Alertmanager:Url carries a user name and password, and RolloutGate:Alertmanager:Username is set too: give the credentials in one place only"],
            new RolloutGate.Infrastructure.AlertmanagerOptions { Url = "https://someone@alertmanager.example/", Username = "other", Password = "secret" }
                .Problems("RolloutGate:Alertmanager"));
        Assert.Empty(new RolloutGate.Infrastructure.PrometheusOptions { Url = "https://someone:secret@prometheus.example/" }.Problems("RolloutGate:Prometheus"));
    }

    [Fact]
    public async Task Backtest_UsesTheServicesPrometheusAuthenticationFromTheEnvironment()
    {
        var runbook = Path.Combine(folder, "checkout.yaml");
        await File.WriteAllTextAsync(runbook, TestRunbooks.Minimal());
        var start = new ProcessStartInfo("dotnet",
            [Path.Combine(AppContext.BaseDirectory, "RolloutGate.dll"), "backtest", "--runbook", runbook, "--deployed-at", "2026-11-21T10:00:00Z", "--prometheus", url])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["RolloutGate__Prometheus__BearerToken"] = "backtest-token";

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));

        Assert.True(process.ExitCode == 0, await stderr);
        Assert.Contains("\"decision\"", await stdout, StringComparison.Ordinal);
        Assert.NotEmpty(seen);
        Assert.All(seen, s => Assert.Equal("Bearer backtest-token", s.Authorization));

        start.Environment["RolloutGate__Prometheus__Username"] = "someone";
        using var conflicting = Process.Start(start)!;
        var conflict = conflicting.StandardError.ReadToEndAsync();
        await conflicting.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));

        Assert.Equal(2, conflicting.ExitCode);
        Assert.Equal("backtest: RolloutGate__Prometheus: set at most one of BearerToken, BearerTokenFile and Username (with Password)", (await conflict).Trim());

        // The user info of --prometheus is sent as basic authentication: with the token from the environment, which one?
        start.ArgumentList[^1] = url.Replace("http://", "http://someone:url-secret@", StringComparison.Ordinal);
        start.Environment.Remove("RolloutGate__Prometheus__Username");
        using var twice = Process.Start(start)!;
        var ambiguity = twice.StandardError.ReadToEndAsync();
        await twice.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));

        Assert.Equal(2, twice.ExitCode);
        Assert.Equal(
            "backtest: --prometheus carries a user name and password, and RolloutGate__Prometheus__BearerToken is set too: give the credentials in one place only",
            (await ambiguity).Trim());
    }

    [Fact]
    public async Task Prometheus_OverHttpsSignedByAPrivateAuthority_IsTrustedWithItsCaFileOnly()
    {
        using var authority = TestAuthority.Create("RolloutGate test CA");
        using var stranger = TestAuthority.Create("Some other CA");
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(kestrel =>
            kestrel.Listen(System.Net.IPAddress.Loopback, 0, listen => listen.UseHttps(authority.ServerCertificate("127.0.0.1"))));
        await using var https = builder.Build();
        https.Map("/api/v1/query", (HttpRequest request) => Record(request, """{"status":"success","data":{"resultType":"vector","result":[]}}"""));
        await https.StartAsync();
        var address = https.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var trusted = Path.Combine(folder, "ca.pem");
        var other = Path.Combine(folder, "other-ca.pem");
        await File.WriteAllTextAsync(trusted, authority.Pem);
        await File.WriteAllTextAsync(other, stranger.Pem);

        async Task<Exception?> QueryAsync(string? caFile)
        {
            await using var services = PrometheusTestServer.Services(options =>
            {
                options.Prometheus.Url = address;
                options.Prometheus.CaFile = caFile;
            });
            return await Xunit.Record.ExceptionAsync(() =>
                services.GetRequiredService<IPrometheusClient>().QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None));
        }

        Assert.Null(await QueryAsync(trusted));
        Assert.IsType<PrometheusUnavailableException>(await QueryAsync(null));
        Assert.IsType<PrometheusUnavailableException>(await QueryAsync(other));
        Assert.Single(seen);
        var missing = Path.Combine(folder, "missing.pem");
        Assert.StartsWith($"RolloutGate:Prometheus:CaFile: {missing} cannot be read as PEM certificates",
            new RolloutGate.Infrastructure.PrometheusOptions { CaFile = missing }.Problems("RolloutGate:Prometheus").Single(), StringComparison.Ordinal);
        Assert.Empty(new RolloutGate.Infrastructure.PrometheusOptions { CaFile = trusted }.Problems("RolloutGate:Prometheus"));
    }

    /// <summary>What a query fails with, asked of the server here (its URL, unless <paramref name="configure"/> changes it).</summary>
    private async Task<PrometheusUnavailableException> QueryFailureAsync(Action<RolloutGate.Infrastructure.PrometheusOptions> configure)
    {
        await using var services = PrometheusTestServer.Services(options =>
        {
            options.Prometheus.Url = url;
            configure(options.Prometheus);
        });
        return await Assert.ThrowsAsync<PrometheusUnavailableException>(() =>
            services.GetRequiredService<IPrometheusClient>().QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None));
    }

    /// <summary>An alertmanager check for severity="critical", run now by <paramref name="services"/>' runner.</summary>
    private static async Task<CheckResult> CriticalAlertsCheckAsync(ServiceProvider services) =>
        Assert.Single(await services.GetRequiredService<PreDeployCheckRunner>().RunAsync(
            new PreDeploySpec(TimeSpan.FromSeconds(20), [new CheckSpec("no-critical-alerts", Alertmanager: new AlertmanagerCheckSpec(["severity=\"critical\""]))]),
            new CheckContext("checkout", "production", DateTimeOffset.UtcNow), CancellationToken.None));

    private IResult Record(HttpRequest request, string body)
    {
        seen.Enqueue((request.Path, request.Headers.Authorization.FirstOrDefault(), request.Headers["X-Scope-OrgID"].FirstOrDefault(), request.QueryString.Value ?? ""));
        return Results.Text(body, "application/json");
    }
}
