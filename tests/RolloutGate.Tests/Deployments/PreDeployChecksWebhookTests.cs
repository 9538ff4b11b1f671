using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using RolloutGate.Infrastructure.Http;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Prometheus;

namespace RolloutGate.Tests.Deployments;

/// <summary>The predeploy webhook running a runbook's own checks against the test Prometheus.</summary>
public sealed class PreDeployChecksWebhookTests
{
    private static string RunbookWithChecks(string errorRatioService) =>
        TestRunbooks.Minimal().Replace("\n  watch:", string.Join("\n",
        [
            "",
            "  preDeploy:",
            "    timeout: 10s",
            "    checks:",
            "      - name: error-budget",
            "        prometheus:",
            $"          query: rolloutgate_test_error_ratio{{service=\"{errorRatioService}\"}}",
            "          max: 0.01",
            "      - name: change-freeze",
            "        freeze:",
            "          timezone: Europe/Berlin",
            "          windows: [\"Sat 00:00 - Sat 00:01\"]",
            "  watch:",
        ]), StringComparison.Ordinal);

    private static Dictionary<string, string?> PrometheusSettings => new() { ["RolloutGate:Prometheus:Url"] = PrometheusTestServer.Url };

    [Fact]
    public async Task Predeploy_ChecksPass_AllowsAndShowsEachCheck()
    {
        await using var service = await TestService.StartAsync([("checkout.yaml", RunbookWithChecks("checkout"))], PrometheusSettings);
        var at = PrometheusTestServer.Anchor.ToString("O", CultureInfo.InvariantCulture);

        var response = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "chk-1", at: at));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await response.JsonAsync();
        Assert.Equal("allow", json.GetProperty("verdict").GetString());
        var checks = json.GetProperty("checks").EnumerateArray().ToList();
        Assert.Equal(["error-budget", "change-freeze"], checks.Select(c => c.GetProperty("name").GetString()));
        Assert.All(checks, c => Assert.Equal("pass", c.GetProperty("status").GetString()));
        Assert.Equal(2 + 3, await service.CountAsync("audit_events", "type = 'check.result' AND deployment_id = 'chk-1'"));
    }

    [Fact]
    public async Task Predeploy_PrometheusCheckOverMax_DeniesWithTheValue()
    {
        await using var service = await TestService.StartAsync([("checkout.yaml", RunbookWithChecks("payments"))], PrometheusSettings);
        var at = PrometheusTestServer.Anchor.ToString("O", CultureInfo.InvariantCulture);

        var json = await (await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "chk-2", at: at))).JsonAsync();

        Assert.Equal("deny", json.GetProperty("verdict").GetString());
        var budget = json.GetProperty("checks").EnumerateArray().First();
        Assert.Equal("fail", budget.GetProperty("status").GetString());
        Assert.Contains("0.05", budget.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("denied", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'chk-2'"));
    }

    [Fact]
    public async Task Predeploy_PrometheusDown_DeniesWithAnErrorNotAPass()
    {
        await using var service = await TestService.StartAsync(
            [("checkout.yaml", RunbookWithChecks("checkout"))], new Dictionary<string, string?> { ["RolloutGate:Prometheus:Url"] = "http://127.0.0.1:1" });

        var json = await (await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "chk-3"))).JsonAsync();

        Assert.Equal("deny", json.GetProperty("verdict").GetString());
        Assert.Equal("error", json.GetProperty("checks").EnumerateArray().First().GetProperty("status").GetString());
    }

    [Fact]
    public async Task Predeploy_PrometheusErrorWithAnEmojiWhereItsQuoteIsCut_TheQuoteEndsBeforeTheEmoji()
    {
        // Prometheus's error text is quoted cut at ResponseBodies.MaxExcerptLength characters; here the cut falls between
        // the two halves of an emoji. Half a surrogate pair is no text: JSON wrote it as U+FFFD, the replacement character.
        var error = new string('y', ResponseBodies.MaxExcerptLength - 1) + "\U0001F600 and more";
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var prometheus = builder.Build();
        prometheus.MapPost("/api/v1/query", () => Microsoft.AspNetCore.Http.Results.Json(new { status = "error", errorType = "bad_data", error }, statusCode: 400));
        await prometheus.StartAsync();
        await using var service = await TestService.StartAsync(
            [("checkout.yaml", RunbookWithChecks("checkout"))], new Dictionary<string, string?> { ["RolloutGate:Prometheus:Url"] = prometheus.Urls.Single() });

        var response = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "chk-emoji"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var budget = (await response.JsonAsync()).GetProperty("checks").EnumerateArray().First();
        Assert.Equal("error", budget.GetProperty("status").GetString());
        Assert.EndsWith($"bad_data: {error[..^("\U0001F600 and more".Length)]}…", budget.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'check.result' AND deployment_id = 'chk-emoji' AND data::text LIKE '%yyyyyyyyyy%'"));
    }

    [Fact]
    public async Task Predeploys_WhileTheirChecksWait_HoldNoTransaction_AndOneChangeAtATimeStillHolds()
    {
        // A Prometheus that holds every query until the test lets it answer (0, within the check's max).
        var answer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var asked = 0;
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var prometheus = builder.Build();
        prometheus.MapPost("/api/v1/query", async () =>
        {
            Interlocked.Increment(ref asked);
            await answer.Task;
            return Microsoft.AspNetCore.Http.Results.Json(new
            {
                status = "success",
                data = new { resultType = "vector", result = new[] { new { metric = new { }, value = new object[] { 1_700_000_000, "0" } } } },
            });
        });
        await prometheus.StartAsync();
        await using var service = await TestService.StartAsync(
            [("checkout.yaml", RunbookWithChecks("checkout"))], new Dictionary<string, string?> { ["RolloutGate:Prometheus:Url"] = prometheus.Urls.Single() });

        var sent = Enumerable.Range(1, 3).Select(i => service.Webhooks.SendAsync(WebhookClient.Body("predeploy", $"burst-{i}"))).ToList();
        // Every one's checks wait at once, before any transaction: none waits for another's, which held its pooled
        // connection and the service's lock for its checks' whole timeout (with enough of them, every connection of the
        // pool: the service's other requests then failed with 503 until a timeout freed one).
        for (var i = 0; i < 300 && Volatile.Read(ref asked) < 3; i++)
        {
            await Task.Delay(100);
        }

        Assert.Equal(3, Volatile.Read(ref asked));
        answer.SetResult();

        var verdicts = new List<string?>();
        foreach (var response in await Task.WhenAll(sent))
        {
            var json = await response.JsonAsync();
            verdicts.Add(json.GetProperty("verdict").GetString());
            // Answered, not timed out waiting behind another's transaction.
            Assert.Equal("pass", json.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "error-budget").GetProperty("status").GetString());
        }

        // Decided one after the other, as before: the first allowed is in flight, and holds the other two back.
        Assert.Equal(["allow", "deny", "deny"], verdicts.Order());
        Assert.Equal(2, await service.CountAsync("audit_events",
            "type = 'check.result' AND data::json->>'name' = 'one-change-at-a-time' AND data::json->>'status' = 'fail'"));
    }
}

public sealed class DemoModeTests
{
    [Fact]
    public async Task ContractSampleRunbook_InDemoMode_PaymentsCheckAnsweredByTheDemoStandIn()
    {
        var sample = await File.ReadAllTextAsync(TestPaths.RepositoryFile("runbooks/checkout.yaml"));
        await using var service = await TestService.StartAsync([("checkout.yaml", sample)], new Dictionary<string, string?>
        {
            ["RolloutGate:Demo:Enabled"] = "true",
            ["RolloutGate:Prometheus:Url"] = PrometheusTestServer.Url,
            ["RolloutGate:Alertmanager:Url"] = PrometheusTestServer.AlertmanagerUrl,
        });

        var json = await (await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "demo-1",
            at: PrometheusTestServer.Anchor.ToString("O", CultureInfo.InvariantCulture)))).JsonAsync();
        var payments = json.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "payments-healthy");

        Assert.Equal("pass", payments.GetProperty("status").GetString());
        Assert.Contains("answered by the demo stand-in", payments.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task LinkerdSampleRunbook_InDemoMode_AFailedHttpCheckSaysTheDemoStandInAnswered()
    {
        // payments-linkerd.yaml's ledger-healthy expects 204; the stand-in answers 200. Without the note the detail read
        // as the ledger itself having answered 200.
        var sample = await File.ReadAllTextAsync(TestPaths.RepositoryFile("runbooks/payments-linkerd.yaml"));
        await using var service = await TestService.StartAsync([("payments.yaml", sample)], new Dictionary<string, string?>
        {
            ["RolloutGate:Demo:Enabled"] = "true",
            ["RolloutGate:Prometheus:Url"] = PrometheusTestServer.Url,
        });

        var json = await (await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "demo-2", service: "payments"))).JsonAsync();
        var ledger = json.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "ledger-healthy");

        Assert.Equal("fail", ledger.GetProperty("status").GetString());
        Assert.Equal("GET https://ledger.payments.svc.cluster.local/healthz answered 200, expected 204 (answered by the demo stand-in, not the network)",
            ledger.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task ClusterNames_OutsideDemoMode_GoToTheNetwork()
    {
        var sample = await File.ReadAllTextAsync(TestPaths.RepositoryFile("runbooks/checkout.yaml"));
        await using var service = await TestService.StartAsync([("checkout.yaml", sample)],
            new Dictionary<string, string?> { ["RolloutGate:Prometheus:Url"] = PrometheusTestServer.Url });

        var json = await (await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "real-1"))).JsonAsync();
        var payments = json.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "payments-healthy");

        Assert.Equal("error", payments.GetProperty("status").GetString());
        Assert.DoesNotContain("demo", payments.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }
}
