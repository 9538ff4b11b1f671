using System.Diagnostics;
using System.Text.RegularExpressions;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Operations;

public sealed class MetricsEndpointTests
{
    [Fact]
    public async Task Metrics_AfterTraffic_PassPromtoolCheck_AndCountWhatHappened()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "m-1");
        await service.Webhooks.SendEventAsync("deployed", "m-1");
        await service.Webhooks.SendAsync("{}", bearer: "wrong");

        var text = await service.Client.GetStringAsync(new Uri("/metrics", UriKind.Relative));

        Assert.Contains("rolloutgate_deployments{state=\"watching\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("rolloutgate_webhooks_total{event=\"predeploy\",status=\"200\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("rolloutgate_webhooks_refused_total{reason=\"unauthenticated\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("rolloutgate_http_request_duration_seconds_bucket{route=\"/api/v1/deployments/\",le=\"+Inf\"} 3", text, StringComparison.Ordinal);
        Assert.DoesNotContain(RolloutGateHost.WebhookSecret, text, StringComparison.Ordinal);

        var (exitCode, output) = await PromtoolCheckAsync(text);
        Assert.True(exitCode == 0, $"promtool check metrics failed:\n{output}\n---\n{text}");
    }

    [Fact]
    public async Task Metrics_RequestsWithMethodsOfTheirOwn_AreCountedUnderOneLabel_NotASeriesEach()
    {
        await using var service = await TestService.StartAsync();
        // Anyone who can reach the service, without a token: each made-up method was a series of its own, for good.
        foreach (var method in Enumerable.Range(1, 20).Select(i => $"X{i}-{new string('A', 1000)}"))
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), new Uri("/healthz", UriKind.Relative));
            using var response = await service.Client.SendAsync(request);
        }

        using (await service.Client.GetAsync(new Uri("/healthz", UriKind.Relative)))
        {
        }

        var text = await service.MetricsAsync();

        var methods = text.Split('\n').Where(line => line.StartsWith("rolloutgate_http_requests_total{", StringComparison.Ordinal))
            .Select(line => Regex.Match(line, "method=\"([^\"]*)\"").Groups[1].Value).Distinct().Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["GET", "_OTHER"], methods);
        Assert.Equal(20, MetricsScrape.Sample(text, "rolloutgate_http_requests_total{method=\"_OTHER\",route=\"unmatched\",status=\"405\"}"));
        Assert.DoesNotContain("AAAA", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_FromTheDatabase_WatchBacklogSlackQueueAndFailedRollbacks()
    {
        await using var service = await TestService.StartAsync();
        await service.ReloadRunbooksAsync();
        var idle = await service.MetricsAsync();
        Assert.Equal(0, MetricsScrape.Sample(idle, "rolloutgate_watch_behind_seconds"));
        Assert.Equal(0, MetricsScrape.Sample(idle, "rolloutgate_slack_outbox_pending"));
        Assert.Equal(0, MetricsScrape.Sample(idle, "rolloutgate_slack_outbox_oldest_pending_seconds"));

        // Watching deployments without a deploy time cannot be evaluated (the sweep leaves them as they are): one due
        // ten minutes ago, then one the sweep has not seen yet, watching for twenty.
        await service.Database.ExecuteAsync("""
            INSERT INTO deployments (id, service, environment, state, runbook_version_id, created_at, updated_at, watch_due_at)
            SELECT 'late', 'checkout', 'production', 'watching', min(id), now(), now(), now() - interval '10 minutes' FROM runbook_versions;
            INSERT INTO deployments (id, service, environment, state, runbook_version_id, created_at, updated_at)
            SELECT 'failed', 'checkout', 'production', 'rolling-back', min(id), now(), now() FROM runbook_versions;
            INSERT INTO deployments (id, service, environment, state, runbook_version_id, created_at, updated_at)
            SELECT 'manual', 'checkout', 'production', 'rolling-back', min(id), now(), now() FROM runbook_versions;
            INSERT INTO rollback_actions (deployment_id, claimed_at, claimed_by, finished_at, succeeded, action, detail)
            VALUES ('failed', now(), 'test', now(), false, 'istio', 'the API server answered 403'),
                   ('manual', now(), 'test', now(), false, 'none configured', 'the pipeline rolls back');
            INSERT INTO outbox (deployment_id, kind, payload, idempotency_key, created_at, next_attempt_at, delivered_at, abandoned_at)
            VALUES ('late', 'test', '{}', 'waiting', now() - interval '5 minutes', now() + interval '1 hour', NULL, NULL),
                   ('late', 'test', '{}', 'newer', now() - interval '1 minute', now() + interval '1 hour', NULL, NULL),
                   ('late', 'test', '{}', 'delivered', now() - interval '9 minutes', now(), now(), NULL),
                   ('late', 'test', '{}', 'given-up', now() - interval '9 minutes', now(), NULL, now());
            """);

        var behind = await service.MetricsAsync();
        Assert.InRange(MetricsScrape.Sample(behind, "rolloutgate_watch_behind_seconds")!.Value, 600, 660);
        Assert.Equal(2, MetricsScrape.Sample(behind, "rolloutgate_slack_outbox_pending"));
        Assert.InRange(MetricsScrape.Sample(behind, "rolloutgate_slack_outbox_oldest_pending_seconds")!.Value, 300, 360);
        Assert.Equal(1, MetricsScrape.Sample(behind, "rolloutgate_slack_outbox_abandoned"));
        Assert.Equal(1, MetricsScrape.Sample(behind, "rolloutgate_rollbacks_failed_waiting"));
        Assert.Equal(1, MetricsScrape.Sample(behind, "rolloutgate_deployments{state=\"watching\"}"));

        await service.Database.ExecuteAsync("""
            INSERT INTO deployments (id, service, environment, state, runbook_version_id, created_at, updated_at)
            SELECT 'unseen', 'checkout', 'production', 'watching', min(id), now(), now() - interval '20 minutes' FROM runbook_versions;
            """);
        var unseen = await service.MetricsAsync();
        Assert.InRange(MetricsScrape.Sample(unseen, "rolloutgate_watch_behind_seconds")!.Value, 1200, 1260);

        var (exitCode, output) = await PromtoolCheckAsync(unseen);
        Assert.True(exitCode == 0, $"promtool check metrics failed:\n{output}\n---\n{unseen}");
    }

    [Fact]
    public async Task AlertRules_PassPromtoolsOwnTests_AndNameOnlySeriesTheServiceExposes()
    {
        var folder = TestPaths.RepositoryFile("deploy/prometheus");
        var (checkExit, checkOutput) = await PromtoolAsync($"check rules {folder}/rolloutgate-alerts.yaml");
        Assert.True(checkExit == 0, checkOutput);
        var (testExit, testOutput) = await PromtoolAsync($"test rules {folder}/rolloutgate-alerts.test.yaml");
        Assert.True(testExit == 0, testOutput);

        // A series renamed in the service but not in the rules would leave an alert that can never fire.
        await using var service = await TestService.StartAsync();
        var exposed = await service.MetricsAsync();
        var named = Regex.Matches(await File.ReadAllTextAsync($"{folder}/rolloutgate-alerts.yaml"), "rolloutgate_[a-z_]+")
            .Select(m => m.Value).Distinct().ToList();
        Assert.Contains("rolloutgate_watch_behind_seconds", named);
        Assert.All(named, name => Assert.Contains($"# TYPE {name} ", exposed, StringComparison.Ordinal));
    }

    private static Task<(int ExitCode, string Output)> PromtoolCheckAsync(string exposition) => PromtoolAsync("check metrics", exposition);

    private static async Task<(int ExitCode, string Output)> PromtoolAsync(string arguments, string? input = null)
    {
        var start = new ProcessStartInfo("promtool", arguments)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("promtool did not start (deploy/local/test.sh installs it)");
        await process.StandardInput.WriteAsync(input ?? "");
        process.StandardInput.Close();
        var output = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, output);
    }
}
