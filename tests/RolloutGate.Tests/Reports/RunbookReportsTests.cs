using System.Globalization;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Reports;

public sealed class RunbookReportsTests
{
    [Fact]
    public async Task AlertQuality_SeededHistory_CountsWhatPeopleMadeOfEachRule()
    {
        await using var service = await TestService.StartAsync();
        // p95 flags three deployments: one rolled back by a person, one kept, one still undecided.
        await FlagAsync(service, "a", "p95-latency");
        await service.DecideAsync("a", "rollback", "bob");
        await service.Webhooks.SendEventAsync("rolledback", "a");
        await FlagAsync(service, "b", "p95-latency");
        await service.DecideAsync("b", "dismiss", "carol");
        await FlagAsync(service, "c", "p95-latency", "error-rate");
        // error-rate flags c too; d is rolled back by the pipeline without anyone deciding.
        await FlagAsync(service, "d", "error-rate");
        await service.Webhooks.SendEventAsync("rolledback", "d");
        await service.DecideAsync("c", "stop", "dave");

        using var reader = service.Reader();
        var report = await reader.GetJsonAsync("/api/v1/reports/alert-quality");
        var rules = report.GetProperty("rules").EnumerateArray().ToDictionary(r => r.GetProperty("metric").GetString()!);

        var p95 = rules["p95-latency"];
        Assert.Equal("checkout", p95.GetProperty("runbook").GetString());
        Assert.Equal(3, p95.GetProperty("flagged").GetInt32());
        Assert.Equal(1, p95.GetProperty("agreed").GetInt32());
        Assert.Equal(1, p95.GetProperty("dismissed").GetInt32());
        Assert.Equal(1, p95.GetProperty("undecided").GetInt32());
        Assert.Equal(0.5, p95.GetProperty("dismissRate").GetDouble());
        var errors = rules["error-rate"];
        Assert.Equal(2, errors.GetProperty("flagged").GetInt32());
        Assert.Equal(1, errors.GetProperty("agreed").GetInt32());
        Assert.Equal(0, errors.GetProperty("dismissed").GetInt32());
        Assert.Equal(1, errors.GetProperty("undecided").GetInt32());

        // A window given with an offset (Npgsql writes only UTC times: it was a 500): all four deployments lie inside the
        // first, none inside the second.
        var hourAgo = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(-1).ToOffset(TimeSpan.FromHours(-3)).ToString("O", CultureInfo.InvariantCulture));
        var inside = await reader.GetJsonAsync($"/api/v1/reports/alert-quality?from={hourAgo}");
        Assert.Equal(3, inside.GetProperty("rules").EnumerateArray().Single(r => r.GetProperty("metric").GetString() == "p95-latency").GetProperty("flagged").GetInt32());
        var tomorrow = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddDays(1).ToOffset(TimeSpan.FromHours(9)).ToString("O", CultureInfo.InvariantCulture));
        var after = await reader.GetJsonAsync($"/api/v1/reports/alert-quality?from={tomorrow}");
        Assert.Empty(after.GetProperty("rules").EnumerateArray());
    }

    [Fact]
    public async Task DecisionLog_ListsEachDecisionWithEvidenceAndVersion_AndEscapesUntrustedText()
    {
        await using var service = await TestService.StartAsync();
        await FlagAsync(service, "log-1", "p95-latency");
        await service.DecideAsync("log-1", "rollback", "bob", reason: "p95 *doubled* <script>");
        (await service.Webhooks.SendEventAsync("rolledback", "log-1")).EnsureSuccessStatusCode();
        (await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "log-2",
            at: DateTimeOffset.UtcNow.AddMinutes(-10).ToString("O", CultureInfo.InvariantCulture)))).EnsureSuccessStatusCode();
        await service.RegressAsync("log-2", ["p95-latency"], shown: "900 ms (baseline 600 ms, threshold 720 ms)");
        await service.DecideAsync("log-2", "dismiss", "carol");

        using var reader = service.Reader();
        var response = await reader.GetAsync(new Uri("/api/v1/runbooks/checkout/decisions.md", UriKind.Relative));
        var markdown = await response.Content.ReadAsStringAsync();
        var empty = await reader.GetStringAsync(new Uri("/api/v1/runbooks/nobody/decisions.md", UriKind.Relative));

        Assert.Equal("text/markdown", response.Content.Headers.ContentType?.MediaType);
        Assert.StartsWith("# Decisions under runbook checkout", markdown, StringComparison.Ordinal);
        Assert.Contains("rollback by bob · deployment log-1", markdown, StringComparison.Ordinal);
        Assert.Contains("Runbook governing the change: checkout v1 (sha256 ", markdown, StringComparison.Ordinal);
        Assert.Contains("p95-latency healthy → regressed: value 0.9, baseline 0.6, threshold 0.72", markdown, StringComparison.Ordinal);
        // Recorded in the metric's unit (as the watch records it since 2026-12-06): shown so.
        Assert.Contains("p95-latency healthy → regressed: 900 ms \\(baseline 600 ms, threshold 720 ms\\). p95 rose 50%", markdown, StringComparison.Ordinal);
        Assert.Contains("p95 \\*doubled\\* \\<script\\>", markdown, StringComparison.Ordinal);
        Assert.DoesNotContain("<script>", markdown, StringComparison.Ordinal);
        Assert.Contains("No decision has been taken", empty, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DecisionLog_MoreDecisionsThanAPageHolds_SaysSoAndWhereTheRestAre()
    {
        // The newest 500 are shown; past them the log ended as if there were no more.
        await using var service = await TestService.StartAsync();
        (await service.Webhooks.SendEventAsync("deployed", "many")).EnsureSuccessStatusCode();
        await service.Database.ExecuteAsync("""
            INSERT INTO decisions (deployment_id, at, kind, actor, reason)
            SELECT 'many', now() - make_interval(secs => n), 'dismiss', 'carol', 'decision ' || n FROM generate_series(1, 501) AS n
            """);
        using var reader = service.Reader();

        var markdown = await reader.GetStringAsync(new Uri("/api/v1/runbooks/checkout/decisions.md", UriKind.Relative));

        Assert.Contains("decision 500\n", markdown, StringComparison.Ordinal);
        Assert.DoesNotContain("decision 501\n", markdown, StringComparison.Ordinal);
        Assert.EndsWith(
            "Only the newest 500 decisions are shown. Every decision is in the audit trail: "
            + "`GET /api/v1/audit/events?type=decision&service=checkout`.\n",
            markdown, StringComparison.Ordinal);

        await service.Database.ExecuteAsync("DELETE FROM decisions WHERE reason = 'decision 501'");
        var all = await reader.GetStringAsync(new Uri("/api/v1/runbooks/checkout/decisions.md", UriKind.Relative));
        Assert.DoesNotContain("Only the newest", all, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DecisionLog_RunbookEditedBeforeTheDecision_NamesTheVersionThatGovernedTheChangeNotTheOneInForce()
    {
        await using var service = await TestService.StartAsync();
        await FlagAsync(service, "edited-1", "p95-latency");
        service.Runbooks.Write("checkout.yaml", TestRunbooks.Minimal(version: 2));
        await service.ReloadRunbooksAsync();
        await service.DecideAsync("edited-1", "dismiss", "carol");

        using var reader = service.Reader();
        var markdown = await reader.GetStringAsync(new Uri("/api/v1/runbooks/checkout/decisions.md", UriKind.Relative));

        // v2 was in force when carol decided; the change was (and stays) judged by v1, and the log says which it names.
        Assert.Contains("- Runbook governing the change: checkout v1 (sha256 ", markdown, StringComparison.Ordinal);
        Assert.DoesNotContain("in force", markdown, StringComparison.Ordinal);
    }

    private static async Task FlagAsync(TestService service, string id, params string[] metrics)
    {
        var deployed = await service.Webhooks.SendAsync(WebhookClient.Body("deployed", id,
            at: DateTimeOffset.UtcNow.AddMinutes(-10).ToString("O", CultureInfo.InvariantCulture)));
        Assert.Equal(System.Net.HttpStatusCode.Accepted, deployed.StatusCode);
        await service.RegressAsync(id, metrics);
    }
}
