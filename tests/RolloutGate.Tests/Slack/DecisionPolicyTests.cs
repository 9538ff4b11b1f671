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
        Assert.Equal(1, await test.Service.CountAsync("decisions", "kind = 'rollback' AND actor = 'rolloutgate' AND reason LIKE 'no decision within 00:15:00%'"));

        // A second scan (or a second replica) finds nothing left to decide.
        Assert.Equal(0, await policy.ApplyTimeoutsAsync(DateTimeOffset.UtcNow.AddMinutes(16), CancellationToken.None));
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
