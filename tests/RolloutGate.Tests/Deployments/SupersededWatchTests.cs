using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using RolloutGate.Decisions;
using RolloutGate.Infrastructure;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Deployments;

/// <summary>
/// Under <c>watch.onNewerDeploy: stop</c>, a deploy replaces the version an earlier change of the same service and
/// environment runs: the earlier watch ends, as a stop on record. Left running, it judges the new version against its own
/// older baseline, and on a regression of the new version recommends, and on its approval time-out carries out, a rollback
/// to its own previous version. Without the setting each change is watched on its own, as before it.
/// </summary>
public sealed class SupersededWatchTests
{
    private const string At = "2026-11-21T10:00:00Z";
    private const string Later = "2026-11-21T12:00:00Z";

    /// <summary><see cref="TestRunbooks.Minimal"/> with <c>watch.onNewerDeploy: stop</c>.</summary>
    internal static string EndingOnANewerDeploy(string service = "checkout") =>
        TestRunbooks.Minimal(service).Replace("\n    interval: 1m\n", "\n    interval: 1m\n    onNewerDeploy: stop\n", StringComparison.Ordinal);

    private static Task<TestService> StartAsync() => TestService.StartAsync(("checkout.yaml", EndingOnANewerDeploy()));

    [Fact]
    public async Task Deployed_WhereTheRunbookKeepsWatches_LeavesTheEarlierChangeWatching()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "first", at: At));

        var second = await (await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "second", at: Later))).JsonAsync();

        Assert.False(second.TryGetProperty("superseded", out _));
        Assert.Equal("watching", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'first'"));
        Assert.Equal(0, await service.CountAsync("decisions"));
    }

    [Fact]
    public async Task Deployed_WhileAnEarlierChangeWatches_EndsThatWatchAsAStopOnRecord_AndTheAnswerNamesIt()
    {
        await using var service = await StartAsync();
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "first", at: At));

        var second = await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "second", at: Later));

        Assert.Equal(HttpStatusCode.Accepted, second.StatusCode);
        var answer = await second.JsonAsync();
        Assert.Equal("watching", answer.GetProperty("state").GetString());
        Assert.Equal(["first"], answer.GetProperty("superseded").EnumerateArray().Select(id => id.GetString()));
        Assert.Equal("stopped", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'first'"));

        using var reader = service.Reader();
        var first = await reader.GetJsonAsync("/api/v1/deployments/first");
        var decision = Assert.Single(first.GetProperty("decisions").EnumerateArray());
        Assert.Equal("stop", decision.GetProperty("kind").GetString());
        Assert.Equal(DecisionPolicy.AutomaticActor, decision.GetProperty("actor").GetString());
        Assert.Equal("deployment 'second' (version 2.4.0) replaced this change in production; its watch and any rollback it recommended end here (watch.onNewerDeploy: stop)",
            decision.GetProperty("reason").GetString());

        var events = await reader.GetJsonAsync("/api/v1/audit/events?deploymentId=first&type=decision");
        var data = Assert.Single(events.GetProperty("events").EnumerateArray()).GetProperty("data");
        Assert.Equal("superseded", data.GetProperty("source").GetString());
        Assert.Equal("second", data.GetProperty("supersededBy").GetString());
        Assert.Equal(1, await service.CountAsync("audit_events",
            "deployment_id = 'first' AND type = 'deployment.state-changed' AND data::json->>'from' = 'watching' AND data::json->>'to' = 'stopped'"));
        Assert.True((await reader.GetJsonAsync("/api/v1/audit/verify")).GetProperty("ok").GetBoolean());
    }

    [Fact]
    public async Task Deployed_AfterTheRunbookWasEditedToStopWatches_LeavesAChangeDeployedUnderTheVersionThatKeptThem()
    {
        // The version a change pinned governs it to its end, this setting too.
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "pinned-keep", at: At));
        service.Runbooks.Write("checkout.yaml", EndingOnANewerDeploy().Replace("version: 1", "version: 2", StringComparison.Ordinal));
        await service.ReloadRunbooksAsync();
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "pinned-stop", at: Later));

        var third = await (await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "third", at: "2026-11-21T14:00:00Z"))).JsonAsync();

        Assert.Equal(["pinned-stop"], third.GetProperty("superseded").EnumerateArray().Select(id => id.GetString()));
        Assert.Equal("watching", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'pinned-keep'"));
    }

    [Fact]
    public async Task Predeploy_WhileAnEarlierChangeOnlyWatches_IsAllowed_AndItsDeployEndsThatWatch()
    {
        await using var service = await StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "first");
        await service.Webhooks.SendEventAsync("deployed", "first");

        var next = await (await service.Webhooks.SendEventAsync("predeploy", "next")).JsonAsync();
        var third = await (await service.Webhooks.SendEventAsync("predeploy", "third")).JsonAsync();
        var deployed = await (await service.Webhooks.SendEventAsync("deployed", "next")).JsonAsync();

        Assert.Equal("allow", next.GetProperty("verdict").GetString());
        Assert.Equal(
            "no other change of checkout in production is in flight: the watch of 'first' ends when this change is deployed (watch.onNewerDeploy: stop)",
            await service.Database.ScalarAsync<string>(
                "SELECT data::json->>'detail' FROM audit_events WHERE deployment_id = 'next' AND type = 'check.result' AND data::json->>'name' = 'one-change-at-a-time'"));
        // "next" is allowed and not yet deployed: a change in flight, which holds back the one after it as before.
        Assert.Equal("deny", third.GetProperty("verdict").GetString());
        Assert.Contains("'next'", Assert.Single(third.GetProperty("checks").EnumerateArray()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(["first"], deployed.GetProperty("superseded").EnumerateArray().Select(id => id.GetString()));
        Assert.False(deployed.TryGetProperty("preDeployGate", out _));
    }

    [Fact]
    public async Task Predeploy_WhileAnEarlierChangeWaitsForADecision_IsDeniedNamingIt()
    {
        await using var service = await StartAsync();
        await service.Webhooks.SendEventAsync("deployed", "regressed-one");
        await service.RegressAsync("regressed-one", "p95-latency");

        var next = await (await service.Webhooks.SendEventAsync("predeploy", "next")).JsonAsync();

        Assert.Equal("deny", next.GetProperty("verdict").GetString());
        // A regressed change waits for a person: the deny says so, and what ends it.
        var regressedAt = new DateTimeOffset(await service.Database.ScalarAsync<DateTime>("SELECT regressed_at FROM deployments WHERE id = 'regressed-one'"));
        Assert.Equal(
            $"deployment 'regressed-one' of checkout in production is still regressed (regressed at {IsoTimes.Utc(regressedAt)}, just now) and waits for a decision: "
            + "roll it back or keep it (POST /api/v1/deployments/regressed-one/rollback or POST /api/v1/deployments/regressed-one/dismiss, or its buttons in the decision channel), "
            + "or stop it (POST /api/v1/deployments/regressed-one/stop with an operator token, or /rolloutgate stop regressed-one in Slack)",
            Assert.Single(next.GetProperty("checks").EnumerateArray()).GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Deployed_WithNoEarlierWatch_AnswersWithoutSuperseded()
    {
        await using var service = await StartAsync();

        var answer = await (await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "only", at: At))).JsonAsync();

        Assert.False(answer.TryGetProperty("superseded", out _));
    }

    [Fact]
    public async Task Deployed_WhileAnEarlierChangeWaitsForADecision_EndsTheRecommendation_SoItsTimeoutRollsNothingBack()
    {
        await using var service = await StartAsync();
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "regressed-one", at: At));
        await service.RegressAsync("regressed-one", "p95-latency");

        var fix = await (await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "fix-forward", at: Later))).JsonAsync();

        Assert.Equal(["regressed-one"], fix.GetProperty("superseded").EnumerateArray().Select(id => id.GetString()));
        Assert.Equal("stopped", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'regressed-one'"));
        // Its runbook says onTimeout: rollback after 15m; a day later nothing is decided.
        var decided = await service.Host.Services.GetRequiredService<DecisionPolicy>().ApplyTimeoutsAsync(DateTimeOffset.UtcNow.AddDays(1), CancellationToken.None);
        Assert.Equal(0, decided);
        Assert.Equal(0, await service.CountAsync("decisions", "kind = 'rollback'"));
    }

    [Fact]
    public async Task Deployed_LeavesOtherServicesEnvironments_AndChangesRollingBack()
    {
        await using var service = await TestService.StartAsync(("checkout.yaml", EndingOnANewerDeploy()), ("payments.yaml", EndingOnANewerDeploy("payments")));
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "payments-change", service: "payments", at: At));
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "staging-change", environment: "staging", at: At));
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "rolling-back", at: At));
        await service.RegressAsync("rolling-back", "p95-latency");
        await service.DecideAsync("rolling-back", "rollback", "U024BE7LH");

        var newer = await (await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "newer", at: Later))).JsonAsync();

        Assert.False(newer.TryGetProperty("superseded", out _));
        Assert.Equal("watching", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'payments-change'"));
        Assert.Equal("watching", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'staging-change'"));
        Assert.NotEqual("stopped", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rolling-back'"));
        Assert.Equal(0, await service.CountAsync("decisions", "actor = 'rolloutgate'"));
    }

    [Fact]
    public async Task Deployed_Late_AfterTheChangeThatReplacedIt_EndsItsOwnWatchAtOnce_AsIfTheyHadArrivedInOrder()
    {
        await using var service = await StartAsync();
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "newer", at: Later));

        // Its pipeline's deployed arrives after "newer"'s, for a deploy two hours before it.
        var late = await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "late", at: At));

        Assert.Equal(HttpStatusCode.Accepted, late.StatusCode);
        var answer = await late.JsonAsync();
        Assert.Equal("stopped", answer.GetProperty("state").GetString());
        Assert.Equal("newer", answer.GetProperty("supersededBy").GetString());
        Assert.False(answer.TryGetProperty("superseded", out _));
        Assert.Equal("watching", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'newer'"));
        Assert.Equal(0, await service.CountAsync("evaluations", "deployment_id = 'late'"));

        using var reader = service.Reader();
        var view = await reader.GetJsonAsync("/api/v1/deployments/late");
        Assert.Equal("stopped", view.GetProperty("state").GetString());
        var decision = Assert.Single(view.GetProperty("decisions").EnumerateArray());
        Assert.Equal(DecisionPolicy.AutomaticActor, decision.GetProperty("actor").GetString());
        Assert.Equal("deployment 'newer' (version 2.4.0) was deployed in production at 2026-11-21T12:00:00Z, after this change, and had already "
            + "replaced it when this deployed event arrived; its watch ends before it starts (watch.onNewerDeploy: stop)", decision.GetProperty("reason").GetString());
        var events = await reader.GetJsonAsync("/api/v1/audit/events?deploymentId=late&type=decision");
        var data = Assert.Single(events.GetProperty("events").EnumerateArray()).GetProperty("data");
        Assert.Equal("superseded", data.GetProperty("source").GetString());
        Assert.Equal("newer", data.GetProperty("supersededBy").GetString());
        Assert.Equal(1, await service.CountAsync("audit_events",
            "deployment_id = 'late' AND type = 'deployment.state-changed' AND data::json->>'from' = 'watching' AND data::json->>'to' = 'stopped'"));
        Assert.True((await reader.GetJsonAsync("/api/v1/audit/verify")).GetProperty("ok").GetBoolean());
    }

    [Fact]
    public async Task Deployed_Late_WhoseWholeWatchCameBeforeTheNewerDeploy_OrUnderKeep_IsWatched()
    {
        await using var service = await TestService.StartAsync(("checkout.yaml", EndingOnANewerDeploy()), ("payments.yaml", TestRunbooks.Minimal("payments")));
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "newer", at: Later));
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "payments-newer", service: "payments", at: Later));

        // Its 24-hour watch ended a day before "newer" went out: nothing replaced the version it judges.
        var dayBefore = await (await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "day-before", at: "2026-11-20T11:00:00Z"))).JsonAsync();
        // payments keeps watches (the default): each change is watched on its own, whatever the order.
        var kept = await (await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "payments-late", service: "payments", at: At))).JsonAsync();

        Assert.Equal("watching", dayBefore.GetProperty("state").GetString());
        Assert.False(dayBefore.TryGetProperty("supersededBy", out _));
        Assert.Equal("watching", kept.GetProperty("state").GetString());
        Assert.False(kept.TryGetProperty("supersededBy", out _));
        Assert.Equal(0, await service.CountAsync("decisions"));
    }

    [Fact]
    public async Task Deployed_RetriedAfterItSupersededAWatch_GetsTheFirstAnswer_AndStopsNothingTwice()
    {
        await using var service = await StartAsync();
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "first", at: At));
        var body = WebhookClient.Body("deployed", "second", at: Later);

        var answer = await (await service.Webhooks.SendAsync(body, deliveryId: "second-deployed")).Content.ReadAsStringAsync();
        var again = await (await service.Webhooks.SendAsync(body, deliveryId: "second-deployed")).Content.ReadAsStringAsync();

        Assert.Equal(answer, again);
        Assert.Equal(1, await service.CountAsync("decisions", "deployment_id = 'first'"));
        Assert.Equal(1, await service.CountAsync("audit_events", "deployment_id = 'first' AND type = 'decision'"));
    }

    [Fact]
    public async Task TwoDeploysAtOnce_EndWhatOneAfterTheOtherWould()
    {
        await using var service = await StartAsync();
        // Another session holds audit_events, so each deploy's transaction waits, uncommitted, to write its audit events.
        await using var holder = new NpgsqlConnection(service.Database.AdminConnectionString);
        await holder.OpenAsync();
        var holding = await holder.BeginTransactionAsync();
        await using (var share = new NpgsqlCommand("LOCK TABLE audit_events IN SHARE MODE", holder, holding))
        {
            await share.ExecuteNonQueryAsync();
        }

        var first = service.Webhooks.SendAsync(WebhookClient.Body("deployed", "first", at: At));
        await WaitUntilWaitingAsync(service, 1);
        var second = service.Webhooks.SendAsync(WebhookClient.Body("deployed", "second", at: Later));
        await WaitUntilWaitingAsync(service, 2);
        await holding.RollbackAsync();

        Assert.False((await (await first).JsonAsync()).TryGetProperty("superseded", out _));
        Assert.Equal(["first"], (await (await second).JsonAsync()).GetProperty("superseded").EnumerateArray().Select(id => id.GetString()));
        Assert.Equal("stopped", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'first'"));
    }

    /// <summary>Waits (up to a minute) until <paramref name="sessions"/> sessions of the test's database wait for a lock.</summary>
    private static async Task WaitUntilWaitingAsync(TestService service, long sessions)
    {
        var waiting = $"SELECT count(*) FROM pg_locks WHERE NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = '{service.Database.Name}')";
        for (var i = 0; i < 600 && await service.Database.ScalarAsync<long>(waiting, asAdmin: true) < sessions; i++)
        {
            await Task.Delay(100);
        }

        Assert.Equal(sessions, await service.Database.ScalarAsync<long>(waiting, asAdmin: true));
    }
}
