using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using RolloutGate.Kubernetes;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Rollbacks;
using RolloutGate.Tests.Slack;

namespace RolloutGate.Tests.Watch;

/// <summary>
/// Issue 5's whole loop, with every part real but Slack and the Kubernetes API (local fakes that check each request):
/// a <c>deployed</c> webhook, a p95 regression in the real Prometheus, the recommendation with its buttons in the
/// decision channel, an approver's press, the Istio VirtualService patched to the stable subset, the deployment
/// <c>rolled-back</c>, and the audit chain still verifying.
/// </summary>
public sealed class EndToEndRollbackTests(WatchPrometheus prometheus) : IClassFixture<WatchPrometheus>
{
    [Fact]
    public async Task Regression_RecommendedInSlack_ApproverRollsBack_IstioPatched_ChainHolds()
    {
        await using var kubernetes = await FakeKubernetesApiServer.StartAsync();
        kubernetes.Store(KubernetesResource.IstioVirtualService, WatchPrometheus.Namespace, "slow", JsonNode.Parse("""
            {"hosts":["slow"],"http":[{"route":[
              {"destination":{"host":"slow","subset":"stable"},"weight":50},
              {"destination":{"host":"slow","subset":"canary"},"weight":50}]}]}
            """)!.AsObject());
        var runbook = WatchTests.Runbook("slow")
            .Replace("approvers: [U024BE7LH]", $"approvers: [U024BE7LH, {SlackTestService.Approver}]", StringComparison.Ordinal)
            .Replace("""
                      webhook:
                        url: http://127.0.0.1:9/rollback
                        secret: s3cret
                """, """
                      istio:
                        virtualService: slow
                        stableSubset: stable
                """, StringComparison.Ordinal);
        Assert.Contains("virtualService: slow", runbook, StringComparison.Ordinal);
        await using var slack = await SlackTestService.StartAsync(runbook: runbook, moreSettings: new Dictionary<string, string?>
        {
            ["RolloutGate:Prometheus:Url"] = prometheus.Url,
            ["RolloutGate:Watch:IdleWaitTime"] = "00:00:01",
            ["RolloutGate:Kubernetes:ApiServer"] = kubernetes.Url,
            ["RolloutGate:Kubernetes:TokenFile"] = kubernetes.TokenFile,
        });
        var service = slack.Service;

        var deployed = await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "e2e-1", "slow",
            at: WatchPrometheus.DeployedAt.ToString("O", CultureInfo.InvariantCulture)));
        Assert.Equal(HttpStatusCode.Accepted, deployed.StatusCode);

        // The watch catches up, finds the p95 step, and the decision channel gets the recommendation with its buttons.
        await SlackTestService.EventuallyAsync(async () => await slack.StateAsync("e2e-1") == "regressed", "the watch finds the regression", 120);
        await SlackTestService.EventuallyAsync(() => Task.FromResult(slack.Slack.Delivered("chat.postMessage")
            .Any(call => call.Body.GetRawText().Contains("\"action_id\":\"rollback\"", StringComparison.Ordinal))), "the recommendation is posted", 30);
        var recommendation = slack.Slack.Delivered("chat.postMessage").First(call => call.Body.GetRawText().Contains("\"action_id\":\"rollback\"", StringComparison.Ordinal));
        Assert.Contains("p95-latency", recommendation.Body.GetRawText(), StringComparison.Ordinal);

        var press = await slack.PressAsync(SlackTestService.Approver, "rollback", "e2e-1");
        Assert.Equal(HttpStatusCode.OK, press.StatusCode);

        await SlackTestService.EventuallyAsync(async () => await slack.StateAsync("e2e-1") == "rolled-back", "the rollback action completes", 60);
        var virtualService = kubernetes.Stored(KubernetesResource.IstioVirtualService, WatchPrometheus.Namespace, "slow");
        var destination = Assert.Single(virtualService["spec"]!["http"]![0]!["route"]!.AsArray())!;
        Assert.Equal("stable", destination["destination"]!["subset"]!.GetValue<string>());
        Assert.Equal(100, destination["weight"]!.GetValue<int>());
        Assert.Equal(1, await service.CountAsync("rollback_actions", "deployment_id = 'e2e-1' AND succeeded"));
        Assert.Equal(1, await service.CountAsync("audit_events", $"type = 'decision' AND actor = '{SlackTestService.Approver}'"));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'rollback.action' AND deployment_id = 'e2e-1'"));

        using var reader = service.Reader();
        var verify = await reader.GetJsonAsync("/api/v1/audit/verify");
        Assert.True(verify.GetProperty("ok").GetBoolean());
        await SlackTestService.EventuallyAsync(() => Task.FromResult(slack.Slack.Calls.Any(call =>
            call.Body.GetRawText().Contains("Rollback action", StringComparison.Ordinal))), "the channel hears of the rollback", 30);
        Assert.Empty(slack.Slack.Violations);
    }
}
