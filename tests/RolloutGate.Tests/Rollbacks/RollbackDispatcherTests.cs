using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Kubernetes;
using RolloutGate.Rollbacks;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;

namespace RolloutGate.Tests.Rollbacks;

/// <summary>Decided rollbacks are carried out exactly once, also when two replicas share the database, and recorded also when the host stops meanwhile.</summary>
public sealed class RollbackDispatcherTests
{
    /// <summary>
    /// How long a test waits for what a dispatcher does on its own (it polls every 2 s): a wait ends as soon as it is seen,
    /// and a loaded machine may take many times longer than an idle one.
    /// </summary>
    private const int PatienceSeconds = 60;

    [Fact]
    public async Task TwoReplicas_OneDecidedRollback_OnePatchOneOutcome_RolledBack()
    {
        await using var kubernetes = await HalfCanaryAsync();
        var settings = Settings(kubernetes);
        await using var first = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], settings);
        await using var second = new RolloutGateHost(first.Database, new Dictionary<string, string?>(settings)
        {
            ["RolloutGate:RunbooksPath"] = first.Runbooks.Folder,
        });
        using var _ = second.CreateClient();

        await first.Webhooks.SendEventAsync("deployed", "rb-1");
        await first.RegressAsync("rb-1", "p95-latency");
        await first.DecideAsync("rb-1", "rollback", "bob");

        // Both replicas' dispatchers poll on their own; make them also race explicitly.
        var dispatched = await Task.WhenAll(
            first.Host.Services.GetRequiredService<RollbackDispatcher>().DispatchDueAsync(CancellationToken.None),
            second.Services.GetRequiredService<RollbackDispatcher>().DispatchDueAsync(CancellationToken.None));
        // Either dispatcher's poll may have claimed it first, and be carrying it out still.
        await WaitForAsync(first, "SELECT count(*) FROM deployments WHERE id = 'rb-1' AND state = 'rolled-back'");
        Assert.InRange(dispatched.Sum(), 0, 1);
        // One read and one patch: a second execution would read again (and record a second outcome).
        Assert.Single(kubernetes.Requests, request => request.StartsWith("GET ", StringComparison.Ordinal) && request.Contains("/virtualservices/", StringComparison.Ordinal));
        Assert.Single(kubernetes.Requests, request => request.StartsWith("PATCH ", StringComparison.Ordinal));
        Assert.Equal(1, await first.CountAsync("rollback_actions", "deployment_id = 'rb-1' AND succeeded"));
        Assert.Equal(1, await first.CountAsync("audit_events", "type = 'rollback.action' AND deployment_id = 'rb-1'"));
        AssertAllOnStable(kubernetes);
    }

    [Fact]
    public async Task HostStoppingWhileTheMeshIsPatched_TheRollbackIsStillRecorded()
    {
        await using var kubernetes = await HalfCanaryAsync();
        await using var service = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], Settings(kubernetes));
        var dispatcher = service.Host.Services.GetRequiredService<RollbackDispatcher>();
        var stopping = new TaskCompletionSource<Task>(TaskCreationOptions.RunContinuationsAsynchronously);
        kubernetes.AfterNextPatch(() => stopping.SetResult(dispatcher.StopAsync(CancellationToken.None)));

        await service.Webhooks.SendEventAsync("deployed", "rb-stop");
        await service.RegressAsync("rb-stop", "p95-latency");
        await service.DecideAsync("rb-stop", "rollback", "bob");

        // The dispatcher was told to stop while the patch was on its way back: traffic is on stable, so that must be on record.
        var stopped = await stopping.Task.WaitAsync(TimeSpan.FromSeconds(PatienceSeconds));
        await stopped.WaitAsync(TimeSpan.FromSeconds(60));
        AssertAllOnStable(kubernetes);
        Assert.Equal("rolled-back", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-stop'"));
        Assert.Equal(1, await service.CountAsync("rollback_actions", "deployment_id = 'rb-stop' AND succeeded"));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'rollback.action' AND deployment_id = 'rb-stop'"));
    }

    [Fact]
    public async Task HostStoppingWhileTheActionIsStillUnderWayPastTheGrace_ClaimReleasedAndCarriedOutAgainAtOnce()
    {
        await using var kubernetes = await HalfCanaryAsync();
        // The first attempt fails and the next waits a long backoff: the action is still under way when the host stops.
        kubernetes.FailNext(503);
        await using var service = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], Settings(kubernetes), services =>
            services.Configure<RollbackResilienceOptions>(options =>
            {
                options.BaseDelay = TimeSpan.FromMinutes(10);
                options.MaxDelay = TimeSpan.FromMinutes(10);
                options.TotalTimeout = TimeSpan.FromMinutes(30);
                options.StopGrace = TimeSpan.Zero;
            }));
        var dispatcher = service.Host.Services.GetRequiredService<RollbackDispatcher>();

        await service.Webhooks.SendEventAsync("deployed", "rb-abandoned");
        await service.RegressAsync("rb-abandoned", "p95-latency");
        await service.DecideAsync("rb-abandoned", "rollback", "bob");
        await SlackTestService.EventuallyAsync(() => Task.FromResult(!kubernetes.Requests.IsEmpty), "the action's first attempt", PatienceSeconds);
        await dispatcher.StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        // Not left claimed (for the lease, with nothing under way) and not recorded as failed: released, and said so. The
        // claim stays, its lease ended, so that the replica taking it over knows an attempt may have reached the target.
        Assert.Equal(1, await service.CountAsync("rollback_actions", "deployment_id = 'rb-abandoned' AND finished_at IS NULL AND claimed_until <= now()"));
        Assert.Equal(0, await service.CountAsync("audit_events", "type = 'rollback.action' AND deployment_id = 'rb-abandoned'"));
        Assert.Equal("rolling-back", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-abandoned'"));
        Assert.Contains(service.Host.Logs.Lines, line => line.Contains("abandoned, and its claim released", StringComparison.Ordinal));

        // Another replica carries it out at once, not once the lease has run out.
        await using var second = new RolloutGateHost(service.Database, new Dictionary<string, string?>(Settings(kubernetes))
        {
            ["RolloutGate:RunbooksPath"] = service.Runbooks.Folder,
        });
        using var _ = second.CreateClient();
        await SlackTestService.EventuallyAsync(
            async () => await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-abandoned'") == "rolled-back",
            "the rollback carried out by the second replica", PatienceSeconds);
        AssertAllOnStable(kubernetes);
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'rollback.action' AND deployment_id = 'rb-abandoned'"));
        // The abandoned attempt's request had left: its record says the target may have got the action twice.
        var interrupted = await service.Database.ScalarAsync<string>(
            "SELECT data::jsonb->>'interrupted' FROM audit_events WHERE type = 'rollback.action' AND deployment_id = 'rb-abandoned'");
        Assert.NotNull(interrupted);
        Assert.Contains("ended without an outcome", interrupted, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoppedWhileTheActionRetries_NoFurtherAttempt_RecordedAsHalted()
    {
        // CONTRACT section 5: stop ends all automation. The first attempt fails and the next waits its backoff (a 500 has no
        // Retry-After, so the long base delay applies): a stop meanwhile must keep that next attempt from moving traffic the
        // operator took over, and end the action at once rather than after the backoff.
        await using var kubernetes = await HalfCanaryAsync();
        kubernetes.FailNext(500);
        await using var service = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], Settings(kubernetes), services =>
            services.Configure<RollbackResilienceOptions>(options =>
            {
                // Jittered, the first backoff may be a small part of the base delay: minutes, so that it is not seconds.
                options.BaseDelay = TimeSpan.FromMinutes(10);
                options.MaxDelay = TimeSpan.FromMinutes(10);
            }));

        await service.Webhooks.SendEventAsync("deployed", "rb-halt");
        await service.RegressAsync("rb-halt", "p95-latency");
        await service.DecideAsync("rb-halt", "rollback", "bob");
        await SlackTestService.EventuallyAsync(() => Task.FromResult(!kubernetes.Requests.IsEmpty), "the action's first attempt", PatienceSeconds);
        await service.DecideAsync("rb-halt", "stop", "carol", "taking over by hand");

        await WaitForAsync(service, "SELECT count(*) FROM rollback_actions WHERE deployment_id = 'rb-halt' AND finished_at IS NOT NULL");
        Assert.DoesNotContain(kubernetes.Requests, request => request.StartsWith("PATCH ", StringComparison.Ordinal));
        Assert.Equal(2, kubernetes.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout")["spec"]!["http"]![0]!["route"]!.AsArray().Count);
        Assert.Equal("stopped", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-halt'"));
        Assert.Equal(1, await service.CountAsync("rollback_actions", "deployment_id = 'rb-halt' AND NOT succeeded AND attempts = 1"));
        var detail = await service.Database.ScalarAsync<string>(
            "SELECT data::jsonb->>'detail' FROM audit_events WHERE type = 'rollback.action' AND deployment_id = 'rb-halt'");
        Assert.StartsWith("halted after 1 attempt(s): the deployment became stopped while the action was under way", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoppedDuringAnAttempt_TheRetryRightAfterIt_NotMade()
    {
        // The stop is committed while the first attempt is on its way, and the retry comes at once (no backoff): polled
        // every second, the stop was seen only after the retry had read and patched the VirtualService again.
        await using var kubernetes = await HalfCanaryAsync();
        kubernetes.FailNext(500);
        await using var service = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], Settings(kubernetes), services =>
            services.Configure<RollbackResilienceOptions>(options =>
            {
                options.BaseDelay = TimeSpan.Zero;
            }));
        kubernetes.BeforeNextAnswer(() => service.DecideAsync("rb-halt-at-once", "stop", "carol", "taking over by hand"));

        await service.Webhooks.SendEventAsync("deployed", "rb-halt-at-once");
        await service.RegressAsync("rb-halt-at-once", "p95-latency");
        await service.DecideAsync("rb-halt-at-once", "rollback", "bob");

        await WaitForAsync(service, "SELECT count(*) FROM rollback_actions WHERE deployment_id = 'rb-halt-at-once' AND finished_at IS NOT NULL");
        Assert.Single(kubernetes.Requests);
        Assert.Equal(2, kubernetes.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout")["spec"]!["http"]![0]!["route"]!.AsArray().Count);
        Assert.Equal(1, await service.CountAsync("rollback_actions", "deployment_id = 'rb-halt-at-once' AND NOT succeeded AND attempts = 1"));
        var detail = await service.Database.ScalarAsync<string>(
            "SELECT data::jsonb->>'detail' FROM audit_events WHERE type = 'rollback.action' AND deployment_id = 'rb-halt-at-once'");
        Assert.StartsWith("halted after 1 attempt(s): the deployment became stopped while the action was under way", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FailedAction_RollbackDecidedAgain_RetriesItOnce()
    {
        await using var kubernetes = await FakeKubernetesApiServer.StartAsync();
        await using var service = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], Settings(kubernetes));
        (await service.Webhooks.SendEventAsync("deployed", "rb-retry")).EnsureSuccessStatusCode();
        await service.RegressAsync("rb-retry", "p95-latency");

        // The VirtualService is missing: the action fails (404), and the deployment waits for a person.
        await service.DecideAsync("rb-retry", "rollback", "bob");
        await WaitForAsync(service, "SELECT count(*) FROM rollback_actions WHERE deployment_id = 'rb-retry' AND finished_at IS NOT NULL");
        Assert.Equal("rolling-back", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-retry'"));
        Assert.Equal(1, await service.CountAsync("rollback_actions", "deployment_id = 'rb-retry' AND NOT succeeded"));

        // The deployments API says why it is still rolling back, as the audit trail and the inbox do.
        using var reader = service.Reader();
        var failed = (await reader.GetJsonAsync("/api/v1/deployments/rb-retry")).GetProperty("rollbackAction");
        Assert.Equal("failed", failed.GetProperty("outcome").GetString());
        Assert.StartsWith("istio VirtualService shop/checkout", failed.GetProperty("action").GetString(), StringComparison.Ordinal);
        Assert.Equal("virtualservices.networking.istio.io \"checkout\" not found (404 NotFound, after 1 attempt)", failed.GetProperty("detail").GetString());
        Assert.Equal(1, failed.GetProperty("attempts").GetInt32());
        var listed = (await reader.GetJsonAsync("/api/v1/deployments?state=rolling-back")).GetProperty("deployments")[0];
        Assert.Equal("failed", listed.GetProperty("rollbackAction").GetProperty("outcome").GetString());

        // Without Slack, the local inbox is where a person sees the failure and retries.
        using var browser = service.Host.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { HandleCookies = true });
        var inbox = await browser.GetStringAsync(new Uri($"/inbox?token={RolloutGateHost.ReaderToken}", UriKind.Relative));
        Assert.Contains("<small>rb-retry</small>", inbox, StringComparison.Ordinal);
        Assert.Contains("Rollback action istio VirtualService shop/checkout", inbox, StringComparison.Ordinal);
        Assert.Contains("<b>failed</b>", inbox, StringComparison.Ordinal);
        Assert.Contains("value=\"rollback\">Retry rollback</button>", inbox, StringComparison.Ordinal);
        Assert.DoesNotContain("value=\"dismiss\"", inbox, StringComparison.Ordinal);

        // Fixed in the cluster, then decided again: the action runs once more and succeeds.
        kubernetes.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", HalfCanarySpec());
        using var client = service.Operator();
        var retry = await client.PostAsync(new Uri("/api/v1/deployments/rb-retry/rollback", UriKind.Relative), Body("alice", "VirtualService restored"));
        Assert.Equal(System.Net.HttpStatusCode.OK, retry.StatusCode);
        Assert.Contains("\"state\":\"rolling-back\"", await retry.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await WaitForAsync(service, "SELECT count(*) FROM deployments WHERE id = 'rb-retry' AND state = 'rolled-back'");

        AssertAllOnStable(kubernetes);
        Assert.Equal(1, await service.CountAsync("rollback_actions", "deployment_id = 'rb-retry' AND succeeded"));
        var succeeded = (await reader.GetJsonAsync("/api/v1/deployments/rb-retry")).GetProperty("rollbackAction");
        Assert.Equal("succeeded", succeeded.GetProperty("outcome").GetString());
        Assert.Equal(2, await service.CountAsync("decisions", "deployment_id = 'rb-retry' AND kind = 'rollback'"));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'decision' AND deployment_id = 'rb-retry' AND actor = 'alice' AND (data::jsonb->>'retry')::boolean"));
        Assert.Equal("failed,succeeded", await service.Database.ScalarAsync<string>(
            "SELECT string_agg(data::jsonb->>'outcome', ',' ORDER BY id) FROM audit_events WHERE type = 'rollback.action' AND deployment_id = 'rb-retry'"));

        Assert.DoesNotContain("rb-retry", await browser.GetStringAsync(new Uri("/inbox", UriKind.Relative)), StringComparison.Ordinal);
        var afterwards = await client.PostAsync(new Uri("/api/v1/deployments/rb-retry/rollback", UriKind.Relative), Body("alice", "again"));
        Assert.Equal(System.Net.HttpStatusCode.Conflict, afterwards.StatusCode);
    }

    [Fact]
    public async Task StableSubsetNotInTheDestinationRule_RefusalReachesTheApiTheAuditTrailAndTheInbox()
    {
        // A fully promoted canary whose DestinationRule no longer has the stable subset: patched, checkout would answer 503.
        await using var kubernetes = await FakeKubernetesApiServer.StartAsync();
        kubernetes.Store(KubernetesResource.IstioVirtualService, "shop", "checkout",
            JsonNode.Parse("""{"hosts":["checkout"],"http":[{"route":[{"destination":{"host":"checkout","subset":"canary"}}]}]}""")!.AsObject());
        kubernetes.Store(KubernetesResource.IstioDestinationRule, "shop", "checkout",
            JsonNode.Parse("""{"host":"checkout","subsets":[{"name":"canary","labels":{"version":"v2"}},{"name":"v2","labels":{"version":"v2"}}]}""")!.AsObject());
        await using var service = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], Settings(kubernetes));
        (await service.Webhooks.SendEventAsync("deployed", "rb-subset")).EnsureSuccessStatusCode();
        await service.RegressAsync("rb-subset", "p95-latency");

        await service.DecideAsync("rb-subset", "rollback", "bob");
        await WaitForAsync(service, "SELECT count(*) FROM rollback_actions WHERE deployment_id = 'rb-subset' AND finished_at IS NOT NULL");

        const string Why = "VirtualService shop/checkout was not changed: DestinationRule shop/checkout has subsets canary, v2; no 'stable': "
            + "Envoy would answer 503 to every request routed there; roll this service back by other means (after 1 attempt)";
        Assert.Equal("rolling-back", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-subset'"));
        Assert.Empty(kubernetes.Patches);
        using var reader = service.Reader();
        var failed = (await reader.GetJsonAsync("/api/v1/deployments/rb-subset")).GetProperty("rollbackAction");
        Assert.Equal("failed", failed.GetProperty("outcome").GetString());
        Assert.Equal(Why, failed.GetProperty("detail").GetString());
        Assert.Equal(Why, await service.Database.ScalarAsync<string>(
            "SELECT data::jsonb->>'detail' FROM audit_events WHERE type = 'rollback.action' AND deployment_id = 'rb-subset'"));
        using var browser = service.Host.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { HandleCookies = true });
        var inbox = await browser.GetStringAsync(new Uri($"/inbox?token={RolloutGateHost.ReaderToken}", UriKind.Relative));
        Assert.Contains(System.Text.Encodings.Web.HtmlEncoder.Default.Encode(Why), inbox, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RollbackUnderWay_OrWithoutAnAction_IsNotRetried()
    {
        await using var kubernetes = await HalfCanaryAsync();
        var withoutAction = TestRunbooks.Minimal("payments").Split("    action:")[0].Replace("onTimeout: rollback", "onTimeout: keep", StringComparison.Ordinal);
        await using var service = await TestService.StartAsync(
            [("checkout.yaml", TestRunbooks.Minimal()), ("payments.yaml", withoutAction)], Settings(kubernetes));
        using var client = service.Operator();

        // While the mesh is patched the action has not reported: a second rollback changes nothing.
        var during = new TaskCompletionSource<HttpResponseMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        kubernetes.AfterNextPatch(() => during.SetResult(
            client.PostAsync(new Uri("/api/v1/deployments/rb-busy/rollback", UriKind.Relative), Body("alice", "twice")).GetAwaiter().GetResult()));
        (await service.Webhooks.SendEventAsync("deployed", "rb-busy")).EnsureSuccessStatusCode();
        await service.RegressAsync("rb-busy", "p95-latency");
        await service.DecideAsync("rb-busy", "rollback", "bob");
        var second = await during.Task.WaitAsync(TimeSpan.FromSeconds(PatienceSeconds));
        Assert.Equal(System.Net.HttpStatusCode.Conflict, second.StatusCode);
        Assert.Contains("is under way", await second.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await WaitForAsync(service, "SELECT count(*) FROM deployments WHERE id = 'rb-busy' AND state = 'rolled-back'");
        Assert.Single(kubernetes.Requests, request => request.StartsWith("PATCH ", StringComparison.Ordinal));

        // No action in the runbook: the pipeline rolls back; deciding again cannot retry anything.
        (await service.Webhooks.SendEventAsync("deployed", "rb-none", service: "payments")).EnsureSuccessStatusCode();
        await service.RegressAsync("rb-none", "p95-latency");
        await service.DecideAsync("rb-none", "rollback", "bob");
        await WaitForAsync(service, "SELECT count(*) FROM rollback_actions WHERE deployment_id = 'rb-none' AND finished_at IS NOT NULL");
        var none = await client.PostAsync(new Uri("/api/v1/deployments/rb-none/rollback", UriKind.Relative), Body("alice", "again"));
        Assert.Equal(System.Net.HttpStatusCode.Conflict, none.StatusCode);
        Assert.Contains("without a rollback action in its runbook", await none.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(1, await service.CountAsync("decisions", "deployment_id = 'rb-none'"));
        Assert.Equal(1, await service.CountAsync("audit_events", "deployment_id = 'rb-none' AND type = 'decision.refused' AND actor = 'alice'"));
    }

    [Fact]
    public async Task StoppedWhileAnEarlierRollbackIsCarriedOut_ItsOwnActionIsNeverStarted()
    {
        // One poll lists both decided rollbacks; while the first one's mesh is patched, a person stops the second. The
        // dispatcher comes to the second with its list read before the stop: the stop has committed, so nothing is claimed,
        // sent or recorded for it. The test polls itself, so that one poll lists both.
        await using var kubernetes = await HalfCanaryAsync();
        await using var service = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], Settings(kubernetes));
        var dispatcher = service.Host.Services.GetRequiredService<RollbackDispatcher>();
        await dispatcher.StopAsync(CancellationToken.None);
        using var client = service.Operator();
        var stop = new TaskCompletionSource<HttpResponseMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        kubernetes.AfterNextPatch(() => stop.SetResult(
            client.PostAsync(new Uri("/api/v1/deployments/rb-second/stop", UriKind.Relative), Body("alice", "not this one")).GetAwaiter().GetResult()));
        foreach (var id in new[] { "rb-first", "rb-second" })
        {
            (await service.Webhooks.SendEventAsync("deployed", id)).EnsureSuccessStatusCode();
            await service.RegressAsync(id, "p95-latency");
            await service.DecideAsync(id, "rollback", "bob");
        }

        Assert.Equal(1, await dispatcher.DispatchDueAsync(CancellationToken.None));
        Assert.Equal(System.Net.HttpStatusCode.OK, (await stop.Task.WaitAsync(TimeSpan.FromSeconds(PatienceSeconds))).StatusCode);
        Assert.Equal("rolled-back", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-first'"));
        Assert.Equal("stopped", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-second'"));
        // rb-first's read and patch only: the second's action would read the VirtualService again.
        Assert.Single(kubernetes.Requests, request => request.StartsWith("GET ", StringComparison.Ordinal) && request.Contains("/virtualservices/", StringComparison.Ordinal));
        Assert.Single(kubernetes.Requests, request => request.StartsWith("PATCH ", StringComparison.Ordinal));
        Assert.Equal(0, await service.CountAsync("rollback_actions", "deployment_id = 'rb-second'"));
        Assert.Equal(0, await service.CountAsync("audit_events", "type = 'rollback.action' AND deployment_id = 'rb-second'"));
    }

    [Fact]
    public async Task RollbackOfAChangeWhoseStoredRunbookNoLongerParses_RecordedAsFailedWithTheReason_NotClaimedAgainAndAgain()
    {
        // A change recorded under a runbook version an older RolloutGate accepted and this one refuses (see
        // WebhookProcessingTests.RunbookVersionRecordedByAnOlderVersionThatNoLongerParses_...), and a person decides its
        // rollback. Which action to carry out cannot be read: that is the outcome, on the record, not an exception that left
        // the claim to run out and be taken over every lease, for ever, with nothing said but an error in the log.
        await using var kubernetes = await HalfCanaryAsync();
        await using var service = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], Settings(kubernetes));
        var dispatcher = service.Host.Services.GetRequiredService<RollbackDispatcher>();
        await dispatcher.StopAsync(CancellationToken.None);
        (await service.Webhooks.SendEventAsync("deployed", "rb-unreadable")).EnsureSuccessStatusCode();
        await service.RetireCheckoutV1Async();
        await service.DecideAsync("rb-unreadable", "rollback", "bob");

        Assert.Equal(1, await dispatcher.DispatchDueAsync(CancellationToken.None));

        Assert.Empty(kubernetes.Requests);
        Assert.Equal("rolling-back", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-unreadable'"));
        Assert.Equal(1, await service.CountAsync("rollback_actions", "deployment_id = 'rb-unreadable' AND finished_at IS NOT NULL AND NOT succeeded"));
        var detail = await service.Database.ScalarAsync<string>(
            "SELECT data::jsonb->>'detail' FROM audit_events WHERE type = 'rollback.action' AND deployment_id = 'rb-unreadable' AND data::jsonb->>'outcome' = 'failed'");
        Assert.StartsWith("stored runbook version checkout v1 no longer parses: ", detail, StringComparison.Ordinal);
        Assert.Contains("roll back by hand", detail, StringComparison.Ordinal);
        // Finished, it is not claimed again; the stop the detail suggests ends the change.
        await service.Database.ExecuteAsync("UPDATE rollback_actions SET claimed_at = claimed_at - interval '1 hour' WHERE deployment_id = 'rb-unreadable'");
        Assert.Equal(0, await dispatcher.DispatchDueAsync(CancellationToken.None));
        // Deciding the rollback again cannot read the action either: refused, as without an action, not a retry that fails
        // the same way; and the next change's deny says what ends this one, not "retry it".
        using var client = service.Operator();
        var again = await client.PostAsync(new Uri("/api/v1/deployments/rb-unreadable/rollback", UriKind.Relative), Body("alice", "again"));
        Assert.Equal(System.Net.HttpStatusCode.Conflict, again.StatusCode);
        Assert.Contains("its rollback action is unknown and a retry would fail again", await again.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(1, await service.CountAsync("decisions", "deployment_id = 'rb-unreadable'"));
        Assert.Equal(1, await service.CountAsync("rollback_actions", "deployment_id = 'rb-unreadable' AND finished_at IS NOT NULL AND NOT succeeded"));
        var deny = await (await service.Webhooks.SendEventAsync("predeploy", "rb-next")).JsonAsync();
        Assert.Contains(deny.GetProperty("checks").EnumerateArray(), check => check.GetProperty("detail").GetString()!.Contains(
            "its runbook version no longer parses, so its rollback action is unknown: roll it back by hand", StringComparison.Ordinal));
        await service.DecideAsync("rb-unreadable", "stop", "bob", "rolled back by hand");
        Assert.Equal("stopped", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-unreadable'"));
    }

    private static StringContent Body(string actor, string reason) =>
        new(System.Text.Json.JsonSerializer.Serialize(new { actor, reason }), System.Text.Encoding.UTF8, "application/json");

    private static async Task WaitForAsync(TestService service, string countQuery)
    {
        await SlackTestService.EventuallyAsync(async () => await service.Database.ScalarAsync<long>(countQuery) != 0, countQuery, PatienceSeconds);
        Assert.Equal(1, await service.Database.ScalarAsync<long>(countQuery));
    }

    [Fact]
    public async Task NamespacePerEnvironment_StagingRollback_PatchesStagingsVirtualServiceOnly()
    {
        // mesh.namespace: shop-{{ environment }}, the same VirtualService name in both namespaces: the staging change's
        // rollback moves staging's traffic and leaves production's alone.
        await using var kubernetes = await FakeKubernetesApiServer.StartAsync();
        kubernetes.Store(KubernetesResource.IstioVirtualService, "shop-staging", "checkout", HalfCanarySpec());
        kubernetes.Store(KubernetesResource.IstioVirtualService, "shop-production", "checkout", HalfCanarySpec());
        var runbook = TestRunbooks.Minimal().Replace("namespace: shop\n", "namespace: shop-{{ environment }}\n", StringComparison.Ordinal);
        Assert.Contains("shop-{{ environment }}", runbook, StringComparison.Ordinal);
        await using var service = await TestService.StartAsync([("checkout.yaml", runbook)], Settings(kubernetes));
        (await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "rb-staging", "checkout", "staging"))).EnsureSuccessStatusCode();
        await service.RegressAsync("rb-staging", "p95-latency");

        await service.DecideAsync("rb-staging", "rollback", "bob");
        await WaitForAsync(service, "SELECT count(*) FROM deployments WHERE id = 'rb-staging' AND state = 'rolled-back'");

        var staging = kubernetes.Stored(KubernetesResource.IstioVirtualService, "shop-staging", "checkout")["spec"]!["http"]![0]!["route"]!.AsArray();
        Assert.Equal("stable", Assert.Single(staging)!["destination"]!["subset"]!.GetValue<string>());
        Assert.Equal(2, kubernetes.Stored(KubernetesResource.IstioVirtualService, "shop-production", "checkout")["spec"]!["http"]![0]!["route"]!.AsArray().Count);
        Assert.All(kubernetes.Requests, request => Assert.Contains("/namespaces/shop-staging/", request, StringComparison.Ordinal));
        Assert.StartsWith("istio VirtualService shop-staging/checkout", await service.Database.ScalarAsync<string>(
            "SELECT data::jsonb->>'action' FROM audit_events WHERE type = 'rollback.action' AND deployment_id = 'rb-staging'"), StringComparison.Ordinal);
    }

    /// <summary>A VirtualService that sends half of checkout's traffic to the canary subset.</summary>
    internal static JsonObject HalfCanarySpec() => JsonNode.Parse("""
        {"hosts":["checkout"],"http":[{"route":[
          {"destination":{"host":"checkout","subset":"stable"},"weight":50},
          {"destination":{"host":"checkout","subset":"canary"},"weight":50}]}]}
        """)!.AsObject();

    private static async Task<FakeKubernetesApiServer> HalfCanaryAsync()
    {
        var kubernetes = await FakeKubernetesApiServer.StartAsync();
        kubernetes.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", HalfCanarySpec());
        return kubernetes;
    }

    private static Dictionary<string, string?> Settings(FakeKubernetesApiServer kubernetes) => new()
    {
        ["RolloutGate:Kubernetes:ApiServer"] = kubernetes.Url,
        ["RolloutGate:Kubernetes:TokenFile"] = kubernetes.TokenFile,
    };

    private static void AssertAllOnStable(FakeKubernetesApiServer kubernetes)
    {
        var route = kubernetes.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout")["spec"]!["http"]![0]!["route"]!.AsArray();
        Assert.Equal("stable", Assert.Single(route)!["destination"]!["subset"]!.GetValue<string>());
    }
}
