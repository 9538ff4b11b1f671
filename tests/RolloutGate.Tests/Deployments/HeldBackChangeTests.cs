using System.Net;
using System.Net.Http.Json;
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
        Assert.True((await (await reader.GetAsync(new Uri("/api/v1/audit/verify", UriKind.Relative))).JsonAsync()).GetProperty("ok").GetBoolean());
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
}
