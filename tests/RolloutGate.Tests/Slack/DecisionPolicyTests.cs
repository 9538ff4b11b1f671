using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Decisions;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Slack;

public sealed class DecisionPolicyTests
{
    [Fact]
    public async Task OnRegressed_AutoMode_RollsBackAtOnceAsRolloutGate()
    {
        var auto = TestRunbooks.Minimal().Replace("mode: recommend", "mode: auto", StringComparison.Ordinal);
        await using var test = await SlackTestService.StartAsync(runbook: auto);
        await test.WatchAsync("gh-auto-1");
        await test.RegressThroughWatchAsync("gh-auto-1", SlackTestService.P95Regressed);

        Assert.Equal("rolling-back", await test.StateAsync("gh-auto-1"));
        Assert.Equal(1, await test.Service.CountAsync("decisions", "deployment_id = 'gh-auto-1' AND kind = 'rollback' AND actor = 'rolloutgate'"));
        await test.AllDeliveredAsync();
        Assert.DoesNotContain(test.Slack.Delivered("chat.postMessage"), p => p.Body.TryGetProperty("blocks", out var b) && b.GetArrayLength() > 1);
        Assert.Contains(test.Slack.Delivered("chat.postMessage"),
            p => p.Body.GetProperty("text").GetString()!.StartsWith("rolloutgate decided *rollback* (via auto): automatic rollback: p95-latency regressed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task OnRegressed_AutoModePastTheFleetsAutomaticRollbacksPerHour_IsHeldForAPersonUntilTheHourHasRoom()
    {
        var auto = TestRunbooks.Minimal().Replace("mode: recommend", "mode: auto", StringComparison.Ordinal);
        await using var test = await SlackTestService.StartAsync(runbook: auto,
            moreSettings: new Dictionary<string, string?> { ["RolloutGate:Rollback:AutomaticPerHour"] = "2" });
        async Task RegressAsync(string id)
        {
            await test.WatchAsync(id);
            await test.RegressThroughWatchAsync(id, SlackTestService.P95Regressed);
        }

        // One change at a time per service: each rollback is taken as done before the next change.
        await RegressAsync("fleet-1");
        await test.Service.Database.ExecuteAsync("UPDATE deployments SET state = 'rolled-back' WHERE id = 'fleet-1'");
        await RegressAsync("fleet-2");
        await test.Service.Database.ExecuteAsync("UPDATE deployments SET state = 'rolled-back' WHERE id = 'fleet-2'");
        await RegressAsync("fleet-3");

        Assert.Equal("regressed", await test.StateAsync("fleet-3"));
        Assert.Equal(0, await test.Service.CountAsync("decisions", "deployment_id = 'fleet-3'"));
        using var reader = test.Service.Reader();
        var held = Assert.Single((await reader.GetJsonAsync("/api/v1/audit/events?type=rollback.held"))
            .GetProperty("events").EnumerateArray());
        Assert.Equal("fleet-3", held.GetProperty("deploymentId").GetString());
        Assert.StartsWith("2 automatic rollbacks in the last hour, all services together, have reached the limit of 2",
            held.GetProperty("data").GetProperty("reason").GetString(), StringComparison.Ordinal);
        await test.AllDeliveredAsync();
        var recommendation = Assert.Single(test.Slack.Delivered("chat.postMessage"), p => p.Body.TryGetProperty("blocks", out var b) && b.GetArrayLength() > 1);
        var text = recommendation.Body.GetProperty("blocks")[0].GetProperty("text").GetProperty("text").GetString()!;
        Assert.Contains("RolloutGate would roll back automatically, but holds it: 2 automatic rollbacks", text, StringComparison.Ordinal);
        Assert.Contains("Nothing happens until someone decides.", text, StringComparison.Ordinal);
        // No time-out applies to a held rollback: a person decides it.
        Assert.Equal(0, await test.Service.Host.Services.GetRequiredService<DecisionPolicy>().ApplyTimeoutsAsync(DateTimeOffset.UtcNow.AddDays(1), CancellationToken.None));

        // An hour later the first rollback no longer counts: the next regression is rolled back at once again.
        await test.Service.Database.ExecuteAsync(
            "UPDATE decisions SET at = at - interval '61 minutes' WHERE deployment_id = 'fleet-1'; UPDATE deployments SET state = 'kept' WHERE id = 'fleet-3'");
        await RegressAsync("fleet-4");
        Assert.Equal("rolling-back", await test.StateAsync("fleet-4"));
    }

    /// <summary>
    /// A sweep asks the decision policy for every watch that regressed at one t at once: the places left in the hour go to
    /// the first of them, in the sweep's order, and the rest are held, as when they came one at a time.
    /// </summary>
    [Fact]
    public async Task OnRegressed_AutoModeManyAtOnce_TheFirstTakeTheHoursPlacesAndTheRestAreHeld()
    {
        var auto = TestRunbooks.Minimal().Replace("mode: recommend", "mode: auto", StringComparison.Ordinal);
        await using var test = await SlackTestService.StartAsync(runbook: auto,
            moreSettings: new Dictionary<string, string?> { ["RolloutGate:Rollback:AutomaticPerHour"] = "3" });
        await test.WatchAsync("fleet-1");
        await test.RegressThroughWatchAsync("fleet-1", SlackTestService.P95Regressed);
        await test.Service.Database.ExecuteAsync("UPDATE deployments SET state = 'rolled-back' WHERE id = 'fleet-1'");
        await test.WatchAsync("fleet-0");
        await test.CopyWatchedAsync("fleet-0", "fleet", 2, 5);

        await test.RegressThroughWatchAsync(["fleet-4", "fleet-2", "fleet-5", "fleet-3"], [SlackTestService.P95Regressed]);

        Assert.Equal("fleet-2 rolling-back; fleet-3 regressed; fleet-4 rolling-back; fleet-5 regressed", await test.Service.Database.ScalarAsync<string>("""
            SELECT string_agg(id || ' ' || state, '; ' ORDER BY id) FROM deployments WHERE id IN ('fleet-2', 'fleet-3', 'fleet-4', 'fleet-5')
            """));
        Assert.Equal(0, await test.Service.CountAsync("decisions", "deployment_id IN ('fleet-5', 'fleet-3')"));
        Assert.Equal("fleet-5 3 automatic rollbacks; fleet-3 3 automatic rollbacks", await test.Service.Database.ScalarAsync<string>("""
            SELECT string_agg(deployment_id || ' ' || left(data::jsonb->>'reason', 21), '; ' ORDER BY id) FROM audit_events WHERE type = 'rollback.held'
            """));
        await test.AllDeliveredAsync();
        Assert.Equal(2, test.Slack.Delivered("chat.postMessage").Count(p => p.Body.TryGetProperty("blocks", out var b) && b.GetArrayLength() > 1));
    }

    [Fact]
    public async Task ApplyTimeouts_UnansweredRecommendation_AppliesOnTimeoutOnlyAfterApprovalTimeout()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-timeout-1");
        await test.RegressThroughWatchAsync("gh-timeout-1", SlackTestService.P95Regressed);
        var policy = test.Service.Host.Services.GetRequiredService<DecisionPolicy>();

        Assert.Equal(0, await policy.ApplyTimeoutsAsync(DateTimeOffset.UtcNow.AddMinutes(14), CancellationToken.None));
        Assert.Equal("regressed", await test.StateAsync("gh-timeout-1"));

        Assert.Equal(1, await policy.ApplyTimeoutsAsync(DateTimeOffset.UtcNow.AddMinutes(16), CancellationToken.None));
        Assert.Equal("rolling-back", await test.StateAsync("gh-timeout-1"));
        Assert.Equal(1, await test.Service.CountAsync("decisions", "kind = 'rollback' AND actor = 'rolloutgate' AND reason LIKE 'no decision within 15m; the runbook says onTimeout: rollback'"));

        // A second scan (or a second replica) finds nothing left to decide.
        Assert.Equal(0, await policy.ApplyTimeoutsAsync(DateTimeOffset.UtcNow.AddMinutes(16), CancellationToken.None));
    }

    [Fact]
    public async Task ApplyTimeouts_AChangeWhoseStoredRunbookNoLongerParses_IsLeftToAPerson_TheOthersAreStillDecided()
    {
        // A change that regressed before an upgrade, under a runbook version this RolloutGate refuses (see
        // WebhookProcessingTests.RunbookVersionRecordedByAnOlderVersionThatNoLongerParses_...): its approvalTimeout and
        // onTimeout cannot be read. Every pass threw at it, so no recommendation of any service was ever decided on time-out.
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-timeout-old");
        await test.RegressAsync("gh-timeout-old");
        await test.Service.RetireCheckoutV1Async();
        await test.WatchAsync("gh-timeout-new");
        await test.RegressAsync("gh-timeout-new");
        var policy = test.Service.Host.Services.GetRequiredService<DecisionPolicy>();

        Assert.Equal(1, await policy.ApplyTimeoutsAsync(DateTimeOffset.UtcNow.AddHours(1), CancellationToken.None));

        Assert.Equal("rolling-back", await test.StateAsync("gh-timeout-new"));
        Assert.Equal("regressed", await test.StateAsync("gh-timeout-old"));
        Assert.Equal(0, await test.Service.CountAsync("decisions", "deployment_id = 'gh-timeout-old'"));
        Assert.Contains(test.Service.Host.Logs.Lines, line => line.Contains(
            "Approval time-out of gh-timeout-old cannot be applied: stored runbook version checkout v1 no longer parses", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ApplyTimeouts_OnTimeoutKeep_Dismisses()
    {
        var keep = TestRunbooks.Minimal().Replace("onTimeout: rollback", "onTimeout: keep", StringComparison.Ordinal);
        await using var test = await SlackTestService.StartAsync(runbook: keep);
        await test.WatchAsync("gh-keep-1");
        await test.RegressAsync("gh-keep-1");

        var policy = test.Service.Host.Services.GetRequiredService<DecisionPolicy>();
        Assert.Equal(1, await policy.ApplyTimeoutsAsync(DateTimeOffset.UtcNow.AddHours(1), CancellationToken.None));
        Assert.Equal("kept", await test.StateAsync("gh-keep-1"));
    }
}
