using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;

namespace RolloutGate.Tests.Deployments;

/// <summary>
/// A retry of a delivery that arrives while the first is still running its pre-deploy checks (a CD system retrying after
/// its own time-out), on the replica that runs them or on another one: the checks run once, and both are given the first
/// answer (CONTRACT section 4: a repeated delivery id has no second effect).
/// </summary>
public sealed class DuplicateDeliveryRaceTests
{
    private static string RunbookCalling(string url) =>
        TestRunbooks.Minimal().Replace("\n  watch:", string.Join("\n",
        [
            "",
            "  preDeploy:",
            "    timeout: 20s",
            "    checks:",
            "      - name: payments-healthy",
            "        http:",
            $"          url: {url}",
            "          expectStatus: 200",
            "  watch:",
        ]), StringComparison.Ordinal);

    /// <summary>What the waiting retry logs, on whichever replica it is: the sign that it is in and waits.</summary>
    private const string Waits = "is being answered by another request";

    /// <summary>Until the first delivery's check has called the health URL, where it is held.</summary>
    private static Task FirstInAsync(HealthServer health) =>
        SlackTestService.EventuallyAsync(() => Task.FromResult(health.Calls == 1), "the first delivery's check calling the health URL");

    /// <summary>
    /// Until the second delivery is in too: it has called the health URL as well (its checks run again), or it says, on
    /// either replica, that it waits for the first.
    /// </summary>
    private static Task BothInAsync(HealthServer health, params RolloutGateHost?[] replicas) =>
        SlackTestService.EventuallyAsync(
            () => Task.FromResult(health.Calls == 2 || replicas.Any(replica => replica?.Logs.Lines.Any(line => line.Contains(Waits, StringComparison.Ordinal)) == true)),
            "the second delivery calling the health URL, or waiting for the first");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Predeploy_RetriedWhileTheFirstRunsItsChecks_ChecksRunOnce_BothGetTheFirstAnswer(bool retryOnAnotherReplica)
    {
        await using var health = await HealthServer.StartAsync();
        await using var service = await TestService.StartAsync([("checkout.yaml", RunbookCalling(health.Url))], settings: null);
        await using var other = retryOnAnotherReplica ? new RolloutGateHost(service.Database, new Dictionary<string, string?> { ["RolloutGate:RunbooksPath"] = service.Runbooks.Folder }) : null;
        using var otherClient = other?.CreateClient();
        var retries = otherClient is null ? service.Webhooks : new WebhookClient(otherClient);
        var body = WebhookClient.Body("predeploy", "race-1");
        var auditBefore = await service.CountAsync("audit_events");

        var first = service.Webhooks.SendAsync(body, deliveryId: "d-race-1");
        await FirstInAsync(health);
        var retry = retries.SendAsync(body, deliveryId: "d-race-1");
        await BothInAsync(health, service.Host, other);
        health.Answer();
        var responses = await Task.WhenAll(first, retry);
        var answers = await Task.WhenAll(responses.Select(response => response.Content.ReadAsStringAsync()));

        Assert.Equal(1, health.Calls);
        Assert.All(responses, response => Assert.Equal(HttpStatusCode.OK, response.StatusCode));
        Assert.Equal(answers[0], answers[1]);
        Assert.Contains("\"verdict\":\"allow\"", answers[0], StringComparison.Ordinal);
        Assert.False(responses[1].Headers.Contains("X-RolloutGate-Replayed"));
        // The record of one delivery: the webhook, three built-in rules and the runbook's check, one state change.
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'webhook.predeploy'"));
        Assert.Equal(3 + 1, await service.CountAsync("audit_events", "type = 'check.result'"));
        Assert.Equal(1 + 4 + 1, await service.CountAsync("audit_events") - auditBefore);
        Assert.Equal(0, await service.CountAsync("webhook_delivery_claims"));
    }

    [Fact]
    public async Task Predeploy_SameDeliveryIdWithAnotherBody_WhileTheFirstRunsItsChecks_WaitsAndGetsTheFirstAnswerMarked()
    {
        await using var health = await HealthServer.StartAsync();
        await using var service = await TestService.StartAsync([("checkout.yaml", RunbookCalling(health.Url))], settings: null);

        var first = service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "race-2"), deliveryId: "d-race-2");
        await FirstInAsync(health);
        var reused = service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "race-3"), deliveryId: "d-race-2");
        await BothInAsync(health, service.Host);
        health.Answer();
        var responses = await Task.WhenAll(first, reused);

        // As when the first answer is on record already (WebhookProcessingTests): that answer, marked, and nothing applied.
        Assert.Equal(1, health.Calls);
        Assert.Equal(await responses[0].Content.ReadAsStringAsync(), await responses[1].Content.ReadAsStringAsync());
        Assert.Equal("other-body", Assert.Single(responses[1].Headers.GetValues("X-RolloutGate-Replayed")));
        Assert.Equal(0, await service.CountAsync("deployments", "id = 'race-3'"));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'webhook.replayed-other-body' AND deployment_id = 'race-3'"));
    }

    [Fact]
    public async Task Predeploy_RetriedAfterTheReplicaRunningItsChecksDied_WaitsForItsLeaseThenRunsThem()
    {
        await using var health = await HealthServer.StartAsync();
        health.Answer();
        await using var service = await TestService.StartAsync([("checkout.yaml", RunbookCalling(health.Url))], settings: null);
        // What a replica killed while its checks ran leaves: its claim, which nobody releases, with 3 s of its lease left.
        await service.Database.ExecuteAsync("""
            INSERT INTO webhook_delivery_claims (delivery_id, claimed_by, claimed_until)
            VALUES ('d-race-4', 'killed-replica', clock_timestamp() + interval '3 seconds')
            """);
        var started = System.Diagnostics.Stopwatch.StartNew();

        var retry = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "race-4"), deliveryId: "d-race-4");

        // Not told a verdict that was never reached, and not left waiting: the checks run here once the lease has passed.
        Assert.Equal(HttpStatusCode.OK, retry.StatusCode);
        Assert.Equal("allow", (await retry.JsonAsync()).GetProperty("verdict").GetString());
        Assert.True(started.Elapsed >= TimeSpan.FromSeconds(2.5), $"answered after {started.Elapsed}, before the lease ran out");
        Assert.Equal(1, health.Calls);
        Assert.Contains(service.Host.Logs.Lines, line => line.Contains("the claim of killed-replica on its pre-deploy checks ran out", StringComparison.Ordinal));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'webhook.predeploy'"));
        Assert.Equal(0, await service.CountAsync("webhook_delivery_claims"));
    }

    [Fact]
    public async Task ClaimsOfDeliveriesNeverRetried_AreClearedAnHourAfterTheirLeaseRanOut()
    {
        // A replica killed while its checks ran leaves its claim; without a retry of that delivery nobody took it over, and
        // each such claim stayed for good. A claim whose lease ran out is worth no more than none, so releases clear them,
        // an hour on (a retry within the hour still says whose claim it took over).
        await using var health = await HealthServer.StartAsync();
        health.Answer();
        await using var service = await TestService.StartAsync([("checkout.yaml", RunbookCalling(health.Url))], settings: null);
        await service.Database.ExecuteAsync("""
            INSERT INTO webhook_delivery_claims (delivery_id, claimed_by, claimed_until) VALUES
                ('d-gone-long-ago', 'killed-replica', clock_timestamp() - interval '2 hours'),
                ('d-gone-lately', 'killed-replica', clock_timestamp() - interval '10 minutes'),
                ('d-running', 'live-replica', clock_timestamp() + interval '1 minute')
            """);

        var answer = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "race-7"), deliveryId: "d-race-7");

        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal(0, await service.CountAsync("webhook_delivery_claims", "delivery_id = 'd-gone-long-ago'"));
        Assert.Equal(2, await service.CountAsync("webhook_delivery_claims", "delivery_id IN ('d-gone-lately', 'd-running')"));
        Assert.Equal(0, await service.CountAsync("webhook_delivery_claims", "delivery_id = 'd-race-7'"));
    }

    [Fact]
    public async Task Predeploy_ItsCallerHangsUpWhileItsChecksRun_TheyRunOn_AndTheRetryGetsTheirAnswer()
    {
        // A CD system that times out closes its connection, then retries: the retry waits for the checks already running.
        await using var health = await HealthServer.StartAsync();
        await using var service = await TestService.StartAsync([("checkout.yaml", RunbookCalling(health.Url))], settings: null);
        var body = WebhookClient.Body("predeploy", "race-5");
        using var hangUp = new CancellationTokenSource();

        var first = service.Webhooks.SendAsync(body, deliveryId: "d-race-5", cancellationToken: hangUp.Token);
        await FirstInAsync(health);
        await hangUp.CancelAsync();
        var retry = service.Webhooks.SendAsync(body, deliveryId: "d-race-5");
        await BothInAsync(health, service.Host);
        health.Answer();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        Assert.Equal(HttpStatusCode.OK, (await retry).StatusCode);
        Assert.Equal(1, health.Calls);
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'webhook.predeploy'"));
        Assert.Equal(3 + 1, await service.CountAsync("audit_events", "type = 'check.result'"));
    }

    /// <summary>
    /// The events without checks apply in the webhook's transaction, whose first statement claims the delivery id: a
    /// retry racing the first, on either replica, waits on that row and then reads the first answer.
    /// </summary>
    [Fact]
    public async Task DeployedRolledBackAndCancelled_RetriedConcurrentlyOnTwoReplicas_OneEffectAndOneAnswerEach()
    {
        await using var service = await TestService.StartAsync();
        await using var other = new RolloutGateHost(service.Database, new Dictionary<string, string?> { ["RolloutGate:RunbooksPath"] = service.Runbooks.Folder });
        using var otherClient = other.CreateClient();
        WebhookClient[] replicas = [service.Webhooks, new WebhookClient(otherClient)];
        await service.Webhooks.SendEventAsync("predeploy", "race-6");
        await service.Webhooks.SendEventAsync("predeploy", "race-8");

        foreach (var (@event, deploymentId, status, state) in new[]
        {
            ("deployed", "race-6", HttpStatusCode.Accepted, "watching"),
            ("rolledback", "race-6", HttpStatusCode.OK, "rolled-back"),
            ("cancelled", "race-8", HttpStatusCode.OK, "cancelled"),
        })
        {
            var body = WebhookClient.Body(@event, deploymentId);
            var auditBefore = await service.CountAsync("audit_events");

            var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => replicas[i % 2].SendAsync(body, deliveryId: $"d-{@event}-{deploymentId}")));

            Assert.All(responses, response => Assert.Equal(status, response.StatusCode));
            Assert.Single((await Task.WhenAll(responses.Select(response => response.Content.ReadAsStringAsync()))).Distinct());
            Assert.Equal(state, await service.Database.ScalarAsync<string>($"SELECT state FROM deployments WHERE id = '{deploymentId}'"));
            // The webhook and the state change: what one delivery alone adds.
            Assert.Equal(2, await service.CountAsync("audit_events") - auditBefore);
            Assert.Equal(1, await service.CountAsync("audit_events", $"type = 'webhook.{@event}' AND deployment_id = '{deploymentId}'"));
        }

        Assert.Equal(1, await service.CountAsync("deployments", "watch_started_at IS NOT NULL"));
    }

    /// <summary>A small local server for an <c>http:</c> check: counts the calls, and holds each until <see cref="Answer"/>.</summary>
    private sealed class HealthServer : IAsyncDisposable
    {
        private readonly TaskCompletionSource answer = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly WebApplication app;
        private int calls;

        private HealthServer()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            app = builder.Build();
            app.MapGet("/healthz", async () =>
            {
                Interlocked.Increment(ref calls);
                // Bounded: a test that never answers fails on its assertions rather than hanging.
                await answer.Task.WaitAsync(TimeSpan.FromSeconds(30));
                return "ok";
            });
        }

        public string Url => app.Urls.Single() + "/healthz";

        public int Calls => Volatile.Read(ref calls);

        public static async Task<HealthServer> StartAsync()
        {
            var server = new HealthServer();
            await server.app.StartAsync();
            return server;
        }

        public void Answer() => answer.TrySetResult();

        public ValueTask DisposeAsync() => app.DisposeAsync();
    }
}
