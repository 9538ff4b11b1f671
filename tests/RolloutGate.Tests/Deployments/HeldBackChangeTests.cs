using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using RolloutGate.Infrastructure;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Deployments;

/// <summary>
/// A change whose <c>predeploy</c> was allowed and that never came to be deployed (its pipeline failed, was cancelled or
/// lost its runner between the gate step and the deploy step, without sending <c>cancelled</c>): the one-change-at-a-time
/// rule denies every later <c>predeploy</c> of its service and environment until someone ends it.
/// </summary>
public sealed class HeldBackChangeTests
{
    [Fact]
    public async Task AnAllowedChangeNeverDeployed_StoppedWithTheOperatorToken_IsOnTheRecord_AndTheNextChangeIsAllowed()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "abandoned");
        var held = await (await service.Webhooks.SendEventAsync("predeploy", "held")).JsonAsync();
        Assert.Equal("deny", held.GetProperty("verdict").GetString());

        using var @operator = service.Operator();
        var stop = await @operator.PostAsJsonAsync("/api/v1/deployments/abandoned/stop", new { actor = "oncall", reason = "its pipeline died before the deploy" });
        var next = await (await service.Webhooks.SendEventAsync("predeploy", "next")).JsonAsync();

        Assert.Equal(HttpStatusCode.OK, stop.StatusCode);
        Assert.Equal("stopped", (await stop.JsonAsync()).GetProperty("state").GetString());
        Assert.Equal("allow", next.GetProperty("verdict").GetString());
        // Audited like every other stop: the decision (who, why, from where) and the move from allowed to stopped.
        Assert.Equal("oncall stop http: its pipeline died before the deploy", await service.Database.ScalarAsync<string>(
            "SELECT actor || ' ' || (data::jsonb->>'kind') || ' ' || (data::jsonb->>'source') || ': ' || (data::jsonb->>'reason') FROM audit_events WHERE type = 'decision' AND deployment_id = 'abandoned'"));
        Assert.Equal(1, await service.CountAsync("audit_events",
            "deployment_id = 'abandoned' AND type = 'deployment.state-changed' AND actor = 'oncall' AND data::json->>'from' = 'allowed' AND data::json->>'to' = 'stopped'"));
        using var reader = service.Reader();
        Assert.True((await reader.GetJsonAsync("/api/v1/audit/verify")).GetProperty("ok").GetBoolean());
    }

    [Fact]
    public async Task AnAllowedChangeNeverDeployed_ItsCancelledEventSentLate_TheNextChangeIsAllowed()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "abandoned");

        var cancelled = await (await service.Webhooks.SendEventAsync("cancelled", "abandoned")).JsonAsync();
        var next = await (await service.Webhooks.SendEventAsync("predeploy", "next")).JsonAsync();

        Assert.Equal("cancelled", cancelled.GetProperty("state").GetString());
        Assert.Equal("allow", next.GetProperty("verdict").GetString());
    }

    [Fact]
    public async Task Predeploy_HeldByAChangeAllowedHoursAgo_DenySaysSinceWhenAndHowToClearIt_AndTheStopItNamesWorks()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "gh-run-8812");
        await service.Database.ExecuteAsync(
            "UPDATE deployments SET created_at = created_at - interval '3 hours 12 minutes', updated_at = updated_at - interval '3 hours 12 minutes' WHERE id = 'gh-run-8812'");
        var allowedAt = new DateTimeOffset(await service.Database.ScalarAsync<DateTime>("SELECT updated_at FROM deployments WHERE id = 'gh-run-8812'"));

        var held = await (await service.Webhooks.SendEventAsync("predeploy", "held")).JsonAsync();

        Assert.Equal("deny", held.GetProperty("verdict").GetString());
        var detail = Assert.Single(held.GetProperty("checks").EnumerateArray()).GetProperty("detail").GetString()!;
        Assert.Equal(
            $"deployment 'gh-run-8812' of checkout in production is still allowed (allowed at {IsoTimes.Utc(allowedAt)}, 3 h 12 min ago, no deployed event since): "
            + "if it will not be deployed, send its cancelled event (rolloutgate gate cancelled --deployment-id gh-run-8812 --service checkout --environment production) "
            + "or stop it (POST /api/v1/deployments/gh-run-8812/stop with an operator token, or /rolloutgate stop gh-run-8812 in Slack); "
            + "if it was deployed, send its deployed event",
            detail);
        // The audit trail keeps the same line.
        Assert.Equal(detail, await service.Database.ScalarAsync<string>(
            "SELECT data::json->>'detail' FROM audit_events WHERE deployment_id = 'held' AND type = 'check.result' AND data::json->>'name' = 'one-change-at-a-time'"));

        // What it says to do works as written.
        var route = Regex.Match(detail, "POST (/api/v1/deployments/[^ ]+/stop)").Groups[1].Value;
        using var @operator = service.Operator();
        var stop = await @operator.PostAsJsonAsync(route, new { actor = "oncall", reason = "never deployed" });
        var next = await (await service.Webhooks.SendEventAsync("predeploy", "next")).JsonAsync();
        Assert.Equal(HttpStatusCode.OK, stop.StatusCode);
        Assert.Equal("allow", next.GetProperty("verdict").GetString());
    }

    [Theory]
    [InlineData("istio", false, "and its rollback action failed (GET /api/v1/deployments/rb says why): retry it (POST /api/v1/deployments/rb/rollback) "
        + "or stop it (POST /api/v1/deployments/rb/stop with an operator token, or /rolloutgate stop rb in Slack)")]
    [InlineData("none configured", false, "and its runbook has no rollback action: roll it back in the pipeline and send its rolledback event "
        + "(rolloutgate gate rolledback --deployment-id rb --service checkout --environment production), "
        + "or stop it (POST /api/v1/deployments/rb/stop with an operator token, or /rolloutgate stop rb in Slack)")]
    [InlineData("istio", true, ": its rollback is under way; the next change waits for it to finish")]
    public async Task Predeploy_HeldByAChangeRollingBack_DenySaysWhatItsRollbackWaitsFor(string action, bool underWay, string advice)
    {
        await using var service = await TestService.StartAsync();
        // In one statement, so that the rollback dispatcher never finds it unclaimed.
        await service.Database.ExecuteAsync($"""
            INSERT INTO deployments (id, service, environment, state, runbook_version_id, created_at, updated_at)
            SELECT 'rb', 'checkout', 'production', 'rolling-back', min(id), now() - interval '20 minutes', now() - interval '5 minutes' FROM runbook_versions;
            INSERT INTO rollback_actions (deployment_id, claimed_at, claimed_by, claimed_until, finished_at, succeeded, action, detail)
            VALUES ('rb', now(), 'test', now() + interval '1 hour', {(underWay ? "NULL" : "now()")}, {(underWay ? "NULL" : "false")}, '{action}', 'test');
            """);
        var decidedAt = new DateTimeOffset(await service.Database.ScalarAsync<DateTime>("SELECT updated_at FROM deployments WHERE id = 'rb'"));

        var held = await (await service.Webhooks.SendEventAsync("predeploy", "held")).JsonAsync();

        Assert.Equal(
            $"deployment 'rb' of checkout in production is still rolling-back (rollback decided at {IsoTimes.Utc(decidedAt)}, 5 min ago){(advice.StartsWith(':') ? "" : " ")}{advice}",
            Assert.Single(held.GetProperty("checks").EnumerateArray()).GetProperty("detail").GetString());
    }
}
