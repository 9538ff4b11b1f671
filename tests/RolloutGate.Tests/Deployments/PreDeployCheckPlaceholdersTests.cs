using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Deployments;

/// <summary>
/// The predeploy webhook with one runbook governing staging and production: its alertmanager and http checks say
/// <c>{{ environment }}</c>, so each environment's deploy is judged on its own alerts and its own health.
/// </summary>
public sealed partial class PreDeployCheckPlaceholdersTests : IAsyncLifetime
{
    private WebApplication server = null!;
    private string url = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        server = builder.Build();
        // Alertmanager's API with one active critical alert, in production: filter= matchers as Alertmanager reads them
        // (label="value", the value's \\, \" and \n unescaped); any other operator is refused, as a stand-in should.
        server.MapGet("/api/v2/alerts", (HttpRequest request) =>
        {
            var labels = new Dictionary<string, string> { ["alertname"] = "HighErrorRate", ["service"] = "checkout", ["env"] = "production", ["severity"] = "critical" };
            foreach (var filter in request.Query["filter"])
            {
                var match = EqualMatcher().Match(filter ?? "");
                if (!match.Success)
                {
                    return Results.Text($"bad matcher {filter}", statusCode: 400);
                }

                var value = Regex.Replace(match.Groups[2].Value, @"\\(.)", m => m.Groups[1].Value == "n" ? "\n" : m.Groups[1].Value);
                if (!labels.TryGetValue(match.Groups[1].Value, out var label) || label != value)
                {
                    return Results.Json(Array.Empty<object>());
                }
            }

            return Results.Json(new[] { new { labels } });
        });
        // A dependency healthy in staging and down in production.
        server.MapGet("/health/staging", () => Results.Text("ok"));
        server.MapGet("/health/production", () => Results.Text("down", statusCode: 503));
        await server.StartAsync();
        url = server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
    }

    public async Task DisposeAsync() => await server.DisposeAsync();

    [GeneratedRegex("""^([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"$""")]
    private static partial Regex EqualMatcher();

    private static string RunbookWith(string check) =>
        TestRunbooks.Minimal().Replace("\n  watch:", $"\n  preDeploy:\n    timeout: 10s\n    checks:\n{check}  watch:", StringComparison.Ordinal);

    [Fact]
    public async Task Predeploy_AlertmanagerMatcherWithEnvironment_OnlyThatEnvironmentsAlertsDeny()
    {
        var runbook = RunbookWith("      - name: no-critical-alerts\n        alertmanager:\n          matchers: ['service=\"{{ service }}\"', 'env=\"{{ environment }}\"', 'severity=\"critical\"']\n");

        var (staging, production) = await PredeployBothAsync(runbook, "am");

        Assert.Equal("allow", staging.Verdict);
        Assert.Equal("no active alerts match service=\"checkout\", env=\"staging\", severity=\"critical\"", staging.Detail);
        Assert.Equal("deny", production.Verdict);
        Assert.Equal(
            "1 active alert match service=\"checkout\", env=\"production\", severity=\"critical\": HighErrorRate{env=\"production\",service=\"checkout\",severity=\"critical\"}",
            production.Detail);
        Assert.DoesNotContain("{{", staging.Audited, StringComparison.Ordinal);
        Assert.Contains("staging", staging.Audited, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Predeploy_HttpUrlWithEnvironment_ChecksThatEnvironmentsDependency()
    {
        var runbook = RunbookWith($"      - name: dependency-healthy\n        http:\n          url: {url}/health/{{{{ environment }}}}\n");

        var (staging, production) = await PredeployBothAsync(runbook, "http");

        Assert.Equal("allow", staging.Verdict);
        Assert.Equal($"GET {url}/health/staging answered 200", staging.Detail);
        Assert.Equal("deny", production.Verdict);
        Assert.Equal($"GET {url}/health/production answered 503, expected 200", production.Detail);
        Assert.Contains("/health/staging", staging.Audited, StringComparison.Ordinal);
    }

    /// <summary>A predeploy of checkout in staging, then one in production: each verdict, its check's detail and audited data.</summary>
    private async Task<((string? Verdict, string? Detail, string Audited) Staging, (string? Verdict, string? Detail, string Audited) Production)> PredeployBothAsync(string runbook, string prefix)
    {
        await using var service = await TestService.StartAsync([("checkout.yaml", runbook)], new Dictionary<string, string?>
        {
            ["RolloutGate:Prometheus:Url"] = url,
            ["RolloutGate:Alertmanager:Url"] = url,
        });

        async Task<(string?, string?, string)> Predeploy(string environment)
        {
            var id = $"{prefix}-{environment}";
            var json = await (await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", id, "checkout", environment))).JsonAsync();
            var check = json.GetProperty("checks").EnumerateArray().Single();
            var audited = await service.Database.ScalarAsync<string>($"SELECT string_agg(data, ' ') FROM audit_events WHERE type = 'check.result' AND deployment_id = '{id}'");
            return (json.GetProperty("verdict").GetString(), check.GetProperty("detail").GetString(), audited!);
        }

        return (await Predeploy("staging"), await Predeploy("production"));
    }
}
