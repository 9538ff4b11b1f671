using System.Net;
using RolloutGate.Kubernetes;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Rollbacks;

namespace RolloutGate.Tests.Slack;

/// <summary>
/// Slack signs each request it sends anew (its timestamp and body), so a signed request seen before is a captured one
/// sent again within the five minutes its timestamp is accepted: it decides nothing a second time.
/// </summary>
public sealed class SlackReplayTests
{
    [Theory]
    [InlineData("press")]
    [InlineData("command")]
    public async Task RollbackDecision_ReplayedAfterItsActionFailed_DoesNotRetryIt_APressOfItsOwnDoes(string how)
    {
        // A rollback decided again while its action has failed retries the action: a replay of the first decision would
        // be a second decision in that user's name.
        await using var kubernetes = await FakeKubernetesApiServer.StartAsync();
        await using var test = await SlackTestService.StartAsync(moreSettings: new Dictionary<string, string?>
        {
            ["RolloutGate:Kubernetes:ApiServer"] = kubernetes.Url,
            ["RolloutGate:Kubernetes:TokenFile"] = kubernetes.TokenFile,
        });
        await test.WatchAsync("gh-replay-1");
        await test.RegressAsync("gh-replay-1");
        var signedAt = DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 30;
        Task<HttpResponseMessage> Decide(long timestamp) => how == "press"
            ? test.PressAsync(SlackTestService.Owner, "rollback", "gh-replay-1", timestamp: timestamp)
            : test.CommandAsync(SlackTestService.Owner, "rollback gh-replay-1", timestamp);

        // A signature from a quarter of an hour ago can no longer be accepted with its timestamp: it is let go.
        await test.Service.Database.ExecuteAsync("INSERT INTO slack_requests VALUES ('v0=expired', now() - interval '16 minutes')");

        (await Decide(signedAt)).EnsureSuccessStatusCode();
        Assert.Equal(1, await test.Service.CountAsync("slack_requests"));
        // No VirtualService: the action fails, and the deployment waits for a person to retry or stop it.
        await SlackTestService.EventuallyAsync(
            async () => await test.Service.CountAsync("audit_events", "type = 'rollback.action' AND deployment_id = 'gh-replay-1'") == 1, "the action's outcome");
        kubernetes.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", RollbackDispatcherTests.HalfCanarySpec());
        var auditBefore = await test.Service.CountAsync("audit_events");

        var replayed = await Decide(signedAt);

        Assert.Equal(HttpStatusCode.OK, replayed.StatusCode);
        if (how == "command")
        {
            Assert.Equal(RolloutGate.Slack.SlackEndpoints.Repeated, (await replayed.JsonAsync()).GetProperty("text").GetString());
        }

        Assert.Equal(1, await test.Service.CountAsync("decisions", "deployment_id = 'gh-replay-1'"));
        Assert.Equal(0, await test.Service.CountAsync("rollback_actions", "deployment_id = 'gh-replay-1' AND finished_at IS NULL"));
        Assert.Equal(auditBefore, await test.Service.CountAsync("audit_events"));
        Assert.Contains(test.Service.Host.Logs.Lines, line => line.Contains(SlackTestService.Owner, StringComparison.Ordinal)
            && line.Contains("already received", StringComparison.Ordinal));

        // The owner deciding again is a request Slack signs anew: the action is retried.
        (await Decide(signedAt + 1)).EnsureSuccessStatusCode();
        await SlackTestService.EventuallyAsync(async () => await test.StateAsync("gh-replay-1") == "rolled-back", "the retried rollback");
        Assert.Equal(2, await test.Service.CountAsync("decisions", "deployment_id = 'gh-replay-1'"));
    }
}
