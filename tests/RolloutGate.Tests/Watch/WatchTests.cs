using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Runbooks;
using RolloutGate.Prometheus;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Prometheus;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Watch;

/// <summary>
/// The live watch end to end: a deploy about 2 hours ago with a 2-hour watch at 1-minute intervals, so the first fire
/// catches up every interval, against a Prometheus of this class's own holding Istio- and Linkerd-shaped history.
/// </summary>
public sealed class WatchTests(WatchPrometheus prometheus) : IClassFixture<WatchPrometheus>
{
    private const int Intervals = 120;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    public static string Runbook(
        string service, string mesh = "istio", string ns = WatchPrometheus.Namespace, string maxBlind = "30m", string warmup = "0s", string? timezone = null) => $$"""
        apiVersion: rolloutgate/v1
        kind: Runbook
        metadata:
          name: {{service}}
          version: 1
        spec:
          service: {{service}}
          environments: [production]
          owner: U024BE7LH
          approvers: [U024BE7LH]
          decisionChannel: C0DECIDE01
          mesh:
            provider: {{mesh}}
            namespace: {{ns}}
            workload: {{service}}
          watch:
            duration: 2h
            interval: 1m
            baseline: 24h
            warmup: {{warmup}}{{(timezone is null ? "" : $"\n    timezone: {timezone}")}}
            metrics:
              - name: p95-latency
                preset: p95-latency
                maxIncrease: 20%
              - name: error-rate
                preset: error-rate
                maxIncrease: 50%
              - name: cost-per-request
                preset: cost-per-request
                pricing: { cpuCoreHour: 0.031, memoryGiBHour: 0.0042 }
                maxIncrease: 15%
            stopRules:
              maxBlind: {{maxBlind}}
          rollback:
            mode: recommend
            approvalTimeout: 15m
            onTimeout: rollback
            action:
              webhook:
                url: http://127.0.0.1:9/rollback
                secret: s3cret
        """;

    private Dictionary<string, string?> Settings(string? prometheusUrl = null) => new()
    {
        ["RolloutGate:Prometheus:Url"] = prometheusUrl ?? prometheus.Url,
        ["RolloutGate:Watch:IdleWaitTime"] = "00:00:01",
    };

    private async Task<TestService> StartAsync(string service, string runbook, string? prometheusUrl = null) =>
        await TestService.StartAsync([($"{service}.yaml", runbook)], Settings(prometheusUrl));

    private static async Task DeployAsync(TestService service, string deploymentId, string name, string environment = "production")
    {
        var at = WatchPrometheus.DeployedAt.ToString("O", CultureInfo.InvariantCulture);
        var response = await service.Webhooks.SendAsync(WebhookClient.Body("deployed", deploymentId, name, environment, at: at));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
    }

    private static async Task<JsonElement> WaitForStateAsync(TestService service, string deploymentId, Func<string, bool> done)
    {
        using var reader = service.Reader();
        var deadline = TimeProvider.System.GetUtcNow() + Patience;
        while (true)
        {
            var deployment = await reader.GetJsonAsync($"/api/v1/deployments/{deploymentId}");
            if (done(deployment.GetProperty("state").GetString()!) || TimeProvider.System.GetUtcNow() > deadline)
            {
                return deployment;
            }

            await Task.Delay(250);
        }
    }

    private static Task<JsonElement> WaitUntilDoneAsync(TestService service, string deploymentId) =>
        WaitForStateAsync(service, deploymentId, state => state != "watching");

    private static JsonElement MetricOf(JsonElement deployment, string name) =>
        deployment.GetProperty("latestEvaluation").GetProperty("metrics").EnumerateArray().Single(m => m.GetProperty("name").GetString() == name);

    private static async Task<List<JsonElement>> AuditAsync(TestService service, string deploymentId, string type)
    {
        using var reader = service.Reader();
        var page = await reader.GetJsonAsync($"/api/v1/audit/events?deploymentId={deploymentId}&type={type}&limit=1000");
        return [.. page.GetProperty("events").EnumerateArray()];
    }

    [Fact]
    public async Task Watch_HealthyWorkload_CompletesWithEveryIntervalStoredOnce()
    {
        await using var service = await StartAsync("healthy", Runbook("healthy"));
        await DeployAsync(service, "dep-healthy", "healthy");

        var deployment = await WaitUntilDoneAsync(service, "dep-healthy");

        Assert.Equal("completed", deployment.GetProperty("state").GetString());
        Assert.Equal(3L * Intervals, await service.CountAsync("evaluations", "deployment_id = 'dep-healthy'"));
        Assert.Equal(0L, await service.CountAsync("evaluations", "deployment_id = 'dep-healthy' AND verdict <> 'healthy'"));
        Assert.Equal(WatchPrometheus.WatchUntil, deployment.GetProperty("latestEvaluation").GetProperty("at").GetDateTimeOffset());
        var p95 = MetricOf(deployment, "p95-latency");
        Assert.Equal(0.225, p95.GetProperty("value").GetDouble(), 6);
        Assert.Equal("healthy", p95.GetProperty("verdict").GetString());
        Assert.Empty(await AuditAsync(service, "dep-healthy", "evaluation.verdict-changed"));
        Assert.Equal(3L, await service.CountAsync("watch_baselines", "deployment_id = 'dep-healthy'"));

        // What an operator sees of it at /metrics: every evaluation by verdict, every interval's lag (here up to the two
        // hours the watch caught up), and the calls to Prometheus that answered.
        var metrics = await service.MetricsAsync();
        Assert.Equal(3 * Intervals, MetricsScrape.Sample(metrics, "rolloutgate_watch_evaluations_total{verdict=\"healthy\"}"));
        Assert.Equal(Intervals, MetricsScrape.Sample(metrics, "rolloutgate_watch_evaluation_lag_seconds_count"));
        Assert.Equal(0, MetricsScrape.Sample(metrics, "rolloutgate_watch_evaluation_lag_seconds_bucket{le=\"60\"}"));
        Assert.True(MetricsScrape.Sample(metrics, "rolloutgate_outbound_requests_total{outcome=\"2xx\",target=\"prometheus\"}") > 0, metrics);
        Assert.Equal(0, MetricsScrape.Sample(metrics, "rolloutgate_watch_behind_seconds"));
    }

    [Fact]
    public async Task Watch_DeployedAfterADeny_EvaluatedAndCompletedAsAfterAnAllow()
    {
        // A check that always fails: the pipeline deploys through the deny, and the change is watched all the same.
        var runbook = Runbook("healthy").Replace("\n  watch:", string.Join("\n",
        [
            "",
            "  preDeploy:",
            "    checks:",
            "      - name: always-over",
            "        prometheus:",
            "          query: vector(1)",
            "          max: 0",
            "  watch:",
        ]), StringComparison.Ordinal);
        await using var service = await StartAsync("healthy", runbook);
        var at = WatchPrometheus.DeployedAt.ToString("O", CultureInfo.InvariantCulture);
        var verdict = await (await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "dep-overridden", "healthy", at: at))).JsonAsync();
        Assert.Equal("deny", verdict.GetProperty("verdict").GetString());

        await DeployAsync(service, "dep-overridden", "healthy");
        var deployment = await WaitUntilDoneAsync(service, "dep-overridden");

        Assert.Equal("completed", deployment.GetProperty("state").GetString());
        Assert.Equal(3L * Intervals, await service.CountAsync("evaluations", "deployment_id = 'dep-overridden'"));
        Assert.Equal("overridden", deployment.GetProperty("preDeployGate").GetProperty("status").GetString());
        Assert.Equal(["always-over"], deployment.GetProperty("preDeployGate").GetProperty("failedChecks").EnumerateArray().Select(c => c.GetString()));
    }

    [Fact]
    public async Task Watch_P95Step_RegressedWithEvidenceAtLeastLastBucket()
    {
        await using var service = await StartAsync("slow", Runbook("slow"));
        await DeployAsync(service, "dep-slow", "slow");

        var deployment = await WaitUntilDoneAsync(service, "dep-slow");

        Assert.Equal("regressed", deployment.GetProperty("state").GetString());
        var p95 = MetricOf(deployment, "p95-latency");
        Assert.Equal("regressed", p95.GetProperty("verdict").GetString());
        Assert.Equal(2.5, p95.GetProperty("value").GetDouble(), 6);
        Assert.Contains("at least 2.5 s", p95.GetProperty("explanation").GetString(), StringComparison.Ordinal);
        var changed = await AuditAsync(service, "dep-slow", "evaluation.verdict-changed");
        var evidence = Assert.Single(changed, e => e.GetProperty("data").GetProperty("metric").GetString() == "p95-latency").GetProperty("data");
        Assert.Equal("regressed", evidence.GetProperty("verdict").GetString());
        Assert.Equal(2.5, evidence.GetProperty("value").GetDouble(), 6);
        Assert.Equal(0.225, evidence.GetProperty("baseline").GetDouble(), 3);
        Assert.Equal(0.27, evidence.GetProperty("threshold").GetDouble(), 3);
        Assert.Equal("2.50 s (baseline 225 ms, threshold 270 ms)", evidence.GetProperty("shown").GetString());
        Assert.True(evidence.GetProperty("statistic").GetDouble() > evidence.GetProperty("statisticThreshold").GetDouble());
        Assert.NotEmpty(evidence.GetProperty("explanation").GetString()!);
        var moved = await AuditAsync(service, "dep-slow", "deployment.state-changed");
        Assert.Contains(moved, e => e.GetProperty("data").GetProperty("to").GetString() == "regressed");
        // Detected within a few intervals of the deploy, not at the end of the watch.
        Assert.True(deployment.GetProperty("latestEvaluation").GetProperty("at").GetDateTimeOffset() <= WatchPrometheus.DeployedAt.AddMinutes(10));
    }

    [Fact]
    public async Task Watch_RunbookWithoutABaseline_AsksForAWeekADayAtATimeAndJudgesTheDayPrometheusHolds()
    {
        // The default baseline is 7d: a week at 1-minute steps is seven range queries of a day each per query; this
        // Prometheus holds about 24.5 hours of it, and a regression is judged against those.
        var runbook = Runbook("slow").Replace("    baseline: 24h\n", "", StringComparison.Ordinal);
        Assert.DoesNotContain("baseline:", runbook, StringComparison.Ordinal);
        await using var service = await StartAsync("slow", runbook);
        await DeployAsync(service, "dep-slow-week", "slow");

        var deployment = await WaitUntilDoneAsync(service, "dep-slow-week");

        Assert.Equal("regressed", deployment.GetProperty("state").GetString());
        var baseline = deployment.GetProperty("watch").GetProperty("baseline");
        Assert.Equal(WatchPrometheus.DeployedAt.AddDays(-7), baseline.GetProperty("from").GetDateTimeOffset());
        Assert.Equal(WatchPrometheus.DeployedAt, baseline.GetProperty("to").GetDateTimeOffset());
        var evidence = Assert.Single(await AuditAsync(service, "dep-slow-week", "evaluation.verdict-changed"),
            e => e.GetProperty("data").GetProperty("metric").GetString() == "p95-latency").GetProperty("data");
        Assert.Equal("regressed", evidence.GetProperty("verdict").GetString());
        Assert.Equal(0.225, evidence.GetProperty("baseline").GetDouble(), 3);
        Assert.Contains("the same time yesterday", evidence.GetProperty("explanation").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_P95StepWithAWarmUp_JudgedAgainstTheBaselineOnlyAfterIt()
    {
        await using var service = await StartAsync("slow", Runbook("slow", warmup: "30m"));
        await DeployAsync(service, "dep-slow-warmup", "slow");

        var deployment = await WaitUntilDoneAsync(service, "dep-slow-warmup");

        Assert.Equal("regressed", deployment.GetProperty("state").GetString());
        var warmUpEnds = WatchPrometheus.DeployedAt.AddMinutes(30);
        var at = deployment.GetProperty("latestEvaluation").GetProperty("at").GetDateTimeOffset();
        Assert.InRange(at, warmUpEnds.AddMinutes(1), warmUpEnds.AddMinutes(10));
        Assert.Equal(30L, await service.CountAsync("evaluations",
            "deployment_id = 'dep-slow-warmup' AND metric = 'p95-latency' AND verdict = 'insufficient-data' AND explanation LIKE 'Warming up: %'"));
        Assert.Contains("intervals since the warm-up are evidence", MetricOf(deployment, "p95-latency").GetProperty("explanation").GetString(), StringComparison.Ordinal);
        // Waiting for the warm-up is not a verdict: no change into it or out of it is audited (nor posted to Slack).
        var changed = (await AuditAsync(service, "dep-slow-warmup", "evaluation.verdict-changed")).Select(e => e.GetProperty("data")).ToList();
        var p95 = Assert.Single(changed, e => e.GetProperty("metric").GetString() == "p95-latency");
        Assert.Equal("healthy", p95.GetProperty("from").GetString());
        Assert.Equal("regressed", p95.GetProperty("verdict").GetString());
        Assert.DoesNotContain(changed, e => e.GetProperty("verdict").GetString() == "insufficient-data" || e.GetProperty("from").GetString() == "insufficient-data");
    }

    [Fact]
    public async Task Watch_ErrorSpike_Regressed()
    {
        await using var service = await StartAsync("failing", Runbook("failing"));
        await DeployAsync(service, "dep-failing", "failing");

        var deployment = await WaitUntilDoneAsync(service, "dep-failing");

        Assert.Equal("regressed", deployment.GetProperty("state").GetString());
        var errors = MetricOf(deployment, "error-rate");
        Assert.Equal("regressed", errors.GetProperty("verdict").GetString());
        Assert.Equal(0.05, errors.GetProperty("value").GetDouble(), 2);
        Assert.Equal("healthy", MetricOf(deployment, "p95-latency").GetProperty("verdict").GetString());
    }

    [Fact]
    public async Task Watch_CostPerRequestRises_Regressed()
    {
        await using var service = await StartAsync("costly", Runbook("costly"));
        await DeployAsync(service, "dep-costly", "costly");

        var deployment = await WaitUntilDoneAsync(service, "dep-costly");

        Assert.Equal("regressed", deployment.GetProperty("state").GetString());
        var cost = MetricOf(deployment, "cost-per-request");
        Assert.Equal("regressed", cost.GetProperty("verdict").GetString());
        Assert.True(cost.GetProperty("value").GetDouble() > 2.5 * cost.GetProperty("baseline").GetDouble());
    }

    [Fact]
    public async Task Watch_NoTraffic_BlindThenStoppedAfterMaxBlind()
    {
        await using var service = await StartAsync("idle", Runbook("idle", maxBlind: "10m"));
        await DeployAsync(service, "dep-idle", "idle");

        var deployment = await WaitUntilDoneAsync(service, "dep-idle");

        Assert.Equal("stopped", deployment.GetProperty("state").GetString());
        Assert.Equal(3L * 11, await service.CountAsync("evaluations", "deployment_id = 'dep-idle' AND verdict = 'blind'"));
        Assert.Equal(3L * 11, await service.CountAsync("evaluations", "deployment_id = 'dep-idle'"));
        var moved = await AuditAsync(service, "dep-idle", "deployment.state-changed");
        Assert.Contains(moved, e => e.GetProperty("data").GetProperty("to").GetString() == "stopped"
            && e.GetProperty("data").GetProperty("reason").GetString()!.Contains("maxBlind", StringComparison.Ordinal));
        // Blind is a change of verdict from the healthy start, audited once per metric, not at every interval.
        Assert.Equal(3, (await AuditAsync(service, "dep-idle", "evaluation.verdict-changed")).Count);
    }

    [Fact]
    public async Task Watch_CustomQueryRejected_MetricBlindWithPrometheusErrorTheOthersStillJudged()
    {
        var runbook = Runbook("healthy")
            .Replace("preset: cost-per-request", "query: sum(rate(istio_requests_total[5m]", StringComparison.Ordinal)
            .Replace("pricing: { cpuCoreHour: 0.031, memoryGiBHour: 0.0042 }", "max: 1", StringComparison.Ordinal);
        await using var service = await StartAsync("healthy", runbook);
        await DeployAsync(service, "dep-typo", "healthy");

        var deployment = await WaitUntilDoneAsync(service, "dep-typo");

        Assert.Equal("completed", deployment.GetProperty("state").GetString());
        Assert.Equal((long)Intervals, await service.CountAsync("evaluations",
            "deployment_id = 'dep-typo' AND metric = 'cost-per-request' AND verdict = 'blind' AND explanation LIKE '%bad_data%'"));
        Assert.Equal("healthy", MetricOf(deployment, "p95-latency").GetProperty("verdict").GetString());
        var changed = Assert.Single(await AuditAsync(service, "dep-typo", "evaluation.verdict-changed")).GetProperty("data");
        Assert.Equal("cost-per-request", changed.GetProperty("metric").GetString());
        Assert.Equal("blind", changed.GetProperty("verdict").GetString());
        Assert.Equal("sum(rate(istio_requests_total[5m]", changed.GetProperty("query").GetString());
        Assert.Contains("Prometheus rejected the query 'sum(rate(istio_requests_total[5m]'", changed.GetProperty("explanation").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_QueryWhereLowerIsWorse_TrafficThatStopsAtTheDeployIsRegressedAsADrop()
    {
        // The idle workload's requests stop at the deploy. Watched as a query with worse: lower, the drop is the regression
        // (read as higher-is-worse, the default, the same series is healthy), its threshold lies below the baseline, and the
        // stored evaluation and its audit event say "a drop".
        const string Requests = "sum(rate(istio_requests_total{reporter=\"destination\",destination_workload=\"idle\",destination_workload_namespace=\"shop\"}[2m]))";
        var runbook = System.Text.RegularExpressions.Regex.Replace(Runbook("idle"), "(?s)    metrics:\n.*?(?=    stopRules:)",
            $"    metrics:\n      - name: traffic\n        query: {Requests}\n        maxIncrease: 30%\n        worse: lower\n");
        Assert.Contains("worse: lower", runbook, StringComparison.Ordinal);
        Assert.Single(RunbookParser.Parse(runbook, "idle.yaml").Runbook!.Watch.Metrics);
        await using var service = await StartAsync("idle", runbook);
        await DeployAsync(service, "dep-drop", "idle");

        var deployment = await WaitUntilDoneAsync(service, "dep-drop");

        Assert.Equal("regressed", deployment.GetProperty("state").GetString());
        var traffic = MetricOf(deployment, "traffic");
        Assert.Equal("regressed", traffic.GetProperty("verdict").GetString());
        Assert.True(traffic.GetProperty("threshold").GetDouble() < traffic.GetProperty("baseline").GetDouble(), traffic.ToString());
        Assert.Contains("evidence for a drop beyond the allowed 30%", traffic.GetProperty("explanation").GetString(), StringComparison.Ordinal);
        var changed = Assert.Single(await AuditAsync(service, "dep-drop", "evaluation.verdict-changed")).GetProperty("data");
        Assert.Equal("regressed", changed.GetProperty("verdict").GetString());
        Assert.Contains("below the same time yesterday", changed.GetProperty("explanation").GetString(), StringComparison.Ordinal);
        Assert.Contains("evidence for a drop", changed.GetProperty("explanation").GetString(), StringComparison.Ordinal);
    }

    /// <summary>cart's error ratio in the namespace of the environment the change goes to, over <paramref name="window"/>.</summary>
    private static string CartErrorRatio(string window)
    {
        const string Cart = "destination_workload=\"{{ workload }}\",destination_workload_namespace=\"shop-{{ environment }}\"";
        return $"sum(rate(istio_requests_total{{{Cart},response_code=~\"5..\"}}[{window}])) / sum(rate(istio_requests_total{{{Cart}}}[{window}]))";
    }

    /// <summary>The cart runbook (<see cref="WatchPrometheus"/>: a namespace per environment), governing staging and production.</summary>
    private static string CartRunbook(string metrics, string preDeploy = "", string ns = WatchPrometheus.Namespace) =>
        System.Text.RegularExpressions.Regex.Replace(Runbook("cart", ns: ns), "(?s)    metrics:\n.*?(?=    stopRules:)", $"    metrics:\n{metrics}")
            .Replace("environments: [production]", "environments: [staging, production]", StringComparison.Ordinal)
            .Replace("  watch:\n", $"{preDeploy}  watch:\n", StringComparison.Ordinal);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Watch_EnvironmentPlaceholder_EachEnvironmentsChangeJudgedOnItsOwnSeries(bool presetOnNamespacePerEnvironment)
    {
        // One runbook version, two changes at the same time in two environments: the sweep evaluates them together, at the
        // same times. Each sends its own rendered query, reads its environment's series and stores that query as evidence:
        // a query with {{ environment }}, or a preset on mesh.namespace shop-{{ environment }} (its baseline included).
        var runbook = presetOnNamespacePerEnvironment
            ? CartRunbook("      - name: errors\n        preset: error-rate\n        maxIncrease: 50%\n        max: 2%\n", ns: "shop-{{ environment }}")
            : CartRunbook($"      - name: errors\n        query: '{CartErrorRatio("{{ window }}")}'\n        maxIncrease: 50%\n        max: 2%\n");
        var parsed = RunbookParser.Parse(runbook, "cart.yaml").Runbook!;
        string Sent(string environment) => presetOnNamespacePerEnvironment
            ? RolloutGate.Core.Watch.MetricQueries.For(parsed.Watch.Metrics.Single(), new MeshSpec(MeshProvider.Istio, $"shop-{environment}", "cart"), parsed.Watch.Interval).Value
            : CartErrorRatio("2m").Replace("{{ workload }}", "cart", StringComparison.Ordinal).Replace("{{ environment }}", environment, StringComparison.Ordinal);
        await using var service = await StartAsync("cart", runbook);
        await DeployAsync(service, "dep-cart-staging", "cart", "staging");
        await DeployAsync(service, "dep-cart-production", "cart", "production");

        var staging = await WaitUntilDoneAsync(service, "dep-cart-staging");
        var production = await WaitUntilDoneAsync(service, "dep-cart-production");

        Assert.Equal("regressed", staging.GetProperty("state").GetString());
        Assert.Equal("completed", production.GetProperty("state").GetString());
        Assert.Equal("healthy", MetricOf(production, "errors").GetProperty("verdict").GetString());
        var changed = (await AuditAsync(service, "dep-cart-staging", "evaluation.verdict-changed")).Last().GetProperty("data");
        Assert.Equal(Sent("staging"), changed.GetProperty("query").GetString());
        Assert.Equal((long)Intervals, await service.CountAsync("evaluations e JOIN evaluation_queries q ON q.id = e.query_id",
            $"e.deployment_id = 'dep-cart-production' AND q.query = '{Sent("production")}'"));
    }

    [Fact]
    public async Task PreDeploy_QueryWithEnvironmentPlaceholder_EachEnvironmentsCheckReadsItsOwnSeries()
    {
        var check = $"  preDeploy:\n    checks:\n      - name: error-budget\n        prometheus:\n          query: '{CartErrorRatio("10m")}'\n          max: 0.01\n";
        var runbook = CartRunbook("      - name: errors\n        preset: error-rate\n        max: 2%\n", check);
        Assert.Single(RunbookParser.Parse(runbook, "cart.yaml").Runbook!.PreDeploy.Checks);
        await using var service = await StartAsync("cart", runbook);
        var at = WatchPrometheus.DeployedAt.AddHours(1).ToString("O", CultureInfo.InvariantCulture);

        var staging = await (await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "pre-cart-staging", "cart", "staging", at: at))).JsonAsync();
        var production = await (await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "pre-cart-production", "cart", "production", at: at))).JsonAsync();

        Assert.Equal("deny", staging.GetProperty("verdict").GetString());
        var denied = staging.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "error-budget");
        Assert.StartsWith("value 0.05", denied.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.EndsWith("is above max 0.01", denied.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("allow", production.GetProperty("verdict").GetString());
    }

    [Fact]
    public async Task Watch_RequestRateWithAMin_TrafficThatStopsAtTheDeployIsABreachOfTheFloor()
    {
        // The idle workload's requests stop at the deploy: 0 req/s with 0 requests, too few to judge against the baseline
        // but below the floor of 10 req/s (before the deploy 20 req/s), so the third interval below it is a breach-of-min,
        // named in the stored evaluation, its audit event (with the floor as the threshold shown) and the local decision
        // inbox's evidence.
        var runbook = System.Text.RegularExpressions.Regex.Replace(Runbook("idle"), "(?s)    metrics:\n.*?(?=    stopRules:)",
            "    metrics:\n      - name: traffic\n        preset: request-rate\n        min: 10\n        max: 5000\n");
        Assert.Equal(10, Assert.Single(RunbookParser.Parse(runbook, "idle.yaml").Runbook!.Watch.Metrics).Min);
        await using var service = await StartAsync("idle", runbook);
        await DeployAsync(service, "dep-floor", "idle");

        var deployment = await WaitUntilDoneAsync(service, "dep-floor");

        Assert.Equal("regressed", deployment.GetProperty("state").GetString());
        var traffic = MetricOf(deployment, "traffic");
        Assert.Equal("breach-of-min", traffic.GetProperty("verdict").GetString());
        Assert.Equal(0, traffic.GetProperty("value").GetDouble());
        Assert.Equal(10, traffic.GetProperty("threshold").GetDouble());
        Assert.EndsWith("traffic 0 req/s has been below the absolute min of 10 req/s, which needs no baseline, for 3 consecutive intervals.",
            traffic.GetProperty("explanation").GetString(), StringComparison.Ordinal);
        Assert.Equal(3L, await service.CountAsync("evaluations", "deployment_id = 'dep-floor'"));
        var changes = await AuditAsync(service, "dep-floor", "evaluation.verdict-changed");
        Assert.Equal(["insufficient-data", "breach-of-min"], changes.Select(e => e.GetProperty("data").GetProperty("verdict").GetString()));
        Assert.Equal("0 req/s (baseline n/a, threshold 10 req/s)", changes[^1].GetProperty("data").GetProperty("shown").GetString());
        Assert.Equal(1L, await service.CountAsync("decision_inbox", "deployment_id = 'dep-floor' AND evidence LIKE '%breach-of-min%'"));
    }

    [Fact]
    public async Task Watch_RequestRateWithoutAMin_TrafficThatStopsAtTheDeployIsRegressedAsADrop()
    {
        // The same idle workload watched with the relative limit only: 0 req/s with 0 requests, fewer than the 100 a
        // verdict needs, but the baseline expected about 1,200 a minute at that time (20 req/s), so the low count is judged
        // as the drop it is and the third interval is regressed. (Before, it was insufficient-data for the whole watch.)
        var runbook = System.Text.RegularExpressions.Regex.Replace(Runbook("idle"), "(?s)    metrics:\n.*?(?=    stopRules:)",
            "    metrics:\n      - name: traffic\n        preset: request-rate\n        maxIncrease: 30%\n");
        var metric = Assert.Single(RunbookParser.Parse(runbook, "idle.yaml").Runbook!.Watch.Metrics);
        Assert.Null(metric.Min);
        await using var service = await StartAsync("idle", runbook);
        await DeployAsync(service, "dep-lost", "idle");

        var deployment = await WaitUntilDoneAsync(service, "dep-lost");

        Assert.Equal("regressed", deployment.GetProperty("state").GetString());
        var traffic = MetricOf(deployment, "traffic");
        Assert.Equal("regressed", traffic.GetProperty("verdict").GetString());
        Assert.Equal(0, traffic.GetProperty("value").GetDouble());
        Assert.True(traffic.GetProperty("threshold").GetDouble() < traffic.GetProperty("baseline").GetDouble(), traffic.ToString());
        Assert.StartsWith("traffic 0 req/s is 100% below the same time yesterday", traffic.GetProperty("explanation").GetString(), StringComparison.Ordinal);
        Assert.Contains("the 3 intervals since the deploy are evidence for a drop beyond the allowed 30%", traffic.GetProperty("explanation").GetString(), StringComparison.Ordinal);
        Assert.Equal(3L, await service.CountAsync("evaluations", "deployment_id = 'dep-lost'"));
        Assert.Equal(0L, await service.CountAsync("evaluations", "deployment_id = 'dep-lost' AND verdict = 'insufficient-data'"));
        var changed = Assert.Single(await AuditAsync(service, "dep-lost", "evaluation.verdict-changed")).GetProperty("data");
        Assert.Equal("regressed", changed.GetProperty("verdict").GetString());
    }

    [Fact]
    public async Task Watch_PrometheusDown_NothingStoredStillWatching()
    {
        await using var service = await StartAsync("healthy", Runbook("healthy"), PrometheusTestServer.UnusedLoopbackUrl());
        await DeployAsync(service, "dep-dark", "healthy");

        // A sweep with two hours due: it can read no baseline and no value, so it stores nothing and holds the watch back.
        Assert.Equal(0, await service.Host.Services.GetRequiredService<WatchSweep>().RunAsync(CancellationToken.None));

        Assert.Equal(0L, await service.CountAsync("evaluations"));
        var deployment = await WaitForStateAsync(service, "dep-dark", _ => true);
        Assert.Equal("watching", deployment.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, deployment.GetProperty("latestEvaluation").ValueKind);
        var metrics = await service.MetricsAsync();
        Assert.True(MetricsScrape.Sample(metrics, "rolloutgate_outbound_requests_total{outcome=\"error\",target=\"prometheus\"}") > 0, metrics);
        Assert.Null(MetricsScrape.Sample(metrics, "rolloutgate_outbound_requests_total{outcome=\"2xx\",target=\"prometheus\"}"));
    }

    [Fact]
    public async Task Watch_ThreeDeploysAtOnceOneCapturePerRound_EachCapturedOnceAndJudgedAsAlone()
    {
        // One baseline capture per round of the sweep: the second and third deploy wait for later rounds (not for the
        // retry delay of a failure), and each watch still ends as it does alone.
        var settings = Settings();
        settings["RolloutGate:Watch:CapturesPerRound"] = "1";
        await using var service = await TestService.StartAsync(
            [("healthy.yaml", Runbook("healthy")), ("slow.yaml", Runbook("slow")), ("costly.yaml", Runbook("costly"))], settings);
        foreach (var name in new[] { "healthy", "slow", "costly" })
        {
            await DeployAsync(service, $"dep-burst-{name}", name);
        }

        var states = new Dictionary<string, string?>();
        foreach (var name in new[] { "healthy", "slow", "costly" })
        {
            states[name] = (await WaitUntilDoneAsync(service, $"dep-burst-{name}")).GetProperty("state").GetString();
        }

        Assert.Equal(new Dictionary<string, string?> { ["healthy"] = "completed", ["slow"] = "regressed", ["costly"] = "regressed" }, states);
        Assert.Equal(9L, await service.CountAsync("watch_baselines", "deployment_id LIKE 'dep-burst-%'"));
        Assert.Equal(3L * Intervals, await service.CountAsync("evaluations", "deployment_id = 'dep-burst-healthy'"));
        Assert.Equal(0L, await service.CountAsync(
            "(SELECT 1 FROM evaluations WHERE deployment_id LIKE 'dep-burst-%' GROUP BY deployment_id, metric, at HAVING count(*) > 1) d", "true"));
    }

    [Fact]
    public async Task Watch_StoredBaselineInALayoutThisVersionCannotRead_OnlyThatWatchWaitsWithTheReason()
    {
        // A watching deployment whose stored baseline is in a layout this version does not know (as a newer version would
        // have written it before being rolled back): that watch waits, named in the log with the reason, never judged
        // against a guess; the other watches run on.
        await using var service = await TestService.StartAsync([("healthy.yaml", Runbook("healthy")), ("slow.yaml", Runbook("slow"))], Settings());
        await service.ReloadRunbooksAsync();
        var at = WatchPrometheus.DeployedAt.ToString("O", CultureInfo.InvariantCulture);
        await service.Database.ExecuteAsync($"""
            INSERT INTO deployments (id, service, environment, state, runbook_version_id, created_at, updated_at,
                                     deployed_at, watch_started_at, watch_until, baseline_from, baseline_to)
            SELECT 'dep-newer', 'slow', 'production', 'watching', id, now(), now(),
                   '{at}', '{at}', '{at}'::timestamptz + interval '2 hours', '{at}'::timestamptz - interval '24 hours', '{at}'
            FROM runbook_versions WHERE name = 'slow';
            INSERT INTO watch_baselines (deployment_id, metric, captured_at, samples)
            SELECT 'dep-newer', metric, now(), '\x0200000000'::bytea FROM unnest(ARRAY['p95-latency', 'error-rate', 'cost-per-request']) AS metric;
            """);
        await DeployAsync(service, "dep-healthy", "healthy");

        var healthy = await WaitUntilDoneAsync(service, "dep-healthy");

        Assert.Equal("completed", healthy.GetProperty("state").GetString());
        var newer = await WaitForStateAsync(service, "dep-newer", _ => true);
        Assert.Equal("watching", newer.GetProperty("state").GetString());
        Assert.Equal(0L, await service.CountAsync("evaluations", "deployment_id = 'dep-newer'"));
        Assert.Equal(3L, await service.CountAsync("watch_baselines", "deployment_id = 'dep-newer' AND get_byte(samples, 0) = 2"));
        Assert.Contains(service.Host.Logs.Lines, line =>
            line.Contains("Watch of dep-newer cannot run: the baseline of", StringComparison.Ordinal)
            && line.Contains("unknown layout (version byte 2, this service reads 1)", StringComparison.Ordinal));
    }

    /// <summary>
    /// A restart mid-watch. The rebuilt watch reads its baselines' stored reductions, not their samples: with the samples
    /// made unreadable in between ("samples") it still completes. A damaged reduction, or another version's
    /// ("reductions"), is not used: the samples are reduced again and the damage logged. The reductions are dropped
    /// when the watch ends. A runbook with a <c>watch.timezone</c> finds its reductions too: the zone is one of their inputs.
    /// </summary>
    [Theory]
    [InlineData("nothing")]
    [InlineData("samples")]
    [InlineData("reductions")]
    [InlineData("samples", "Europe/Berlin")]
    public async Task Watch_ServiceRestartsMidway_NoGapsNoDuplicates(string tampered, string? timezone = null)
    {
        var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("ledger.yaml", Runbook("ledger", "linkerd", "pay", timezone: timezone)));
        var settings = Settings();
        settings["RolloutGate:RunbooksPath"] = runbooks.Folder;
        long seenBeforeRestart;
        await using (var first = new RolloutGateHost(database, settings))
        {
            var response = await new WebhookClient(first.CreateClient()).SendAsync(WebhookClient.Body(
                "deployed", "dep-restart", "ledger", at: WatchPrometheus.DeployedAt.ToString("O", CultureInfo.InvariantCulture)));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            var deadline = TimeProvider.System.GetUtcNow() + Patience;
            do
            {
                await Task.Delay(50);
                seenBeforeRestart = await database.ScalarAsync<long>("SELECT count(*) FROM evaluations");
            }
            while (seenBeforeRestart < 15 && TimeProvider.System.GetUtcNow() < deadline);
        }

        var stoppedAt = await database.ScalarAsync<long>("SELECT count(*) FROM evaluations");
        Assert.InRange(stoppedAt, 15, 3L * Intervals - 1);
        Assert.Equal(3L, await database.ScalarAsync<long>(
            $"SELECT count(*) FROM watch_baselines WHERE get_byte(reduced, 0) = {BaselineWindow.StoredVersion} AND length(reduced) > 100"));
        await database.ExecuteAsync(tampered switch
        {
            "samples" => "UPDATE watch_baselines SET samples = '\\x0200000000'::bytea",
            "reductions" => $"UPDATE watch_baselines SET reduced = CASE metric WHEN 'p95-latency' THEN '\\x{BaselineWindow.StoredVersion:x2}00'::bytea ELSE set_byte(reduced, 0, 9) END",
            _ => "SELECT 1",
        });
        await using (var second = new RolloutGateHost(database, settings))
        {
            using var reader = second.CreateClient().WithToken(RolloutGateHost.ReaderToken);
            var deadline = TimeProvider.System.GetUtcNow() + Patience;
            string? state;
            do
            {
                await Task.Delay(250);
                var deployment = await reader.GetJsonAsync("/api/v1/deployments/dep-restart");
                state = deployment.GetProperty("state").GetString();
            }
            while (state == "watching" && TimeProvider.System.GetUtcNow() < deadline);

            Assert.Equal("completed", state);
            Assert.Equal(tampered == "reductions", second.Logs.Lines.Any(line =>
                line.Contains("Watch of dep-restart: the stored reduction of the p95-latency baseline is unreadable", StringComparison.Ordinal)));
        }

        // Dropped when the watch ended.
        Assert.Equal(3L, await database.ScalarAsync<long>("SELECT count(*) FROM watch_baselines WHERE reduced IS NULL"));
        Assert.Equal(3L * Intervals, await database.ScalarAsync<long>("SELECT count(*) FROM evaluations"));
        Assert.Equal(3L * Intervals, await database.ScalarAsync<long>("SELECT count(DISTINCT (metric, at)) FROM evaluations"));
        // Every metric at every interval: T+1m .. T+120m, one row each.
        Assert.Equal(Intervals, await database.ScalarAsync<long>(
            $"SELECT count(DISTINCT at) FROM evaluations WHERE at > '{WatchPrometheus.DeployedAt:O}' AND at <= '{WatchPrometheus.WatchUntil:O}' AND extract(second FROM at) = 0"));
        await database.DisposeAsync();
    }

    /// <summary>
    /// Two replicas on one database at once: the clustered job store fires the sweep on one of them at a time, and when
    /// the first stops mid-watch the second, running all along, carries on from what is stored. Every interval of every
    /// metric is evaluated, once; the evaluations each replica counts at /metrics add up to the rows stored.
    /// </summary>
    [Fact]
    public async Task Watch_SecondReplicaBesideTheFirstWhichStopsMidway_NoGapsNoDuplicates()
    {
        // Dropped last: the second replica, still running at the end, stops first (with its database gone its scheduler
        // retried until the host's shutdown time was up, 25 s).
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("ledger.yaml", Runbook("ledger", "linkerd", "pay")));
        var settings = Settings();
        settings["RolloutGate:RunbooksPath"] = runbooks.Folder;
        await using var second = new RolloutGateHost(database, settings);
        using var secondClient = second.CreateClient();
        double countedByFirst;
        await using (var first = new RolloutGateHost(database, settings))
        {
            using var firstClient = first.CreateClient();
            var response = await new WebhookClient(firstClient).SendAsync(WebhookClient.Body(
                "deployed", "dep-replicas", "ledger", at: WatchPrometheus.DeployedAt.ToString("O", CultureInfo.InvariantCulture)));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            var deadline = TimeProvider.System.GetUtcNow() + Patience;
            while (await database.ScalarAsync<long>("SELECT count(*) FROM evaluations") < 15 && TimeProvider.System.GetUtcNow() < deadline)
            {
                await Task.Delay(50);
            }

            // Its scheduler stopped first (as the host's stop does, the sweep in flight finished), so that nothing is
            // evaluated there after its count is read.
            await first.Services.GetRequiredService<WatchSweepScheduler>().StopAsync(CancellationToken.None);
            countedByFirst = EvaluationsCounted(await firstClient.GetStringAsync(new Uri("/metrics", UriKind.Relative)));
        }

        Assert.InRange(await database.ScalarAsync<long>("SELECT count(*) FROM evaluations"), 15, 3L * Intervals - 1);
        Assert.Equal("completed", await StateOnceNotWatchingAsync(second, "dep-replicas"));

        Assert.Equal(3L * Intervals, await database.ScalarAsync<long>("SELECT count(*) FROM evaluations"));
        Assert.Equal(3L * Intervals, await database.ScalarAsync<long>("SELECT count(DISTINCT (metric, at)) FROM evaluations"));
        Assert.Equal(3 * Intervals, countedByFirst + EvaluationsCounted(await secondClient.GetStringAsync(new Uri("/metrics", UriKind.Relative))));
    }

    /// <summary>
    /// Two replicas as separate processes on one database, and the one sweeping killed with SIGKILL in the middle of a
    /// sweep (a Prometheus query of it held unanswered): its Quartz trigger stays acquired by a dead instance, the sweep's
    /// job stays marked as executing, and nothing of the interval in flight is stored. The survivor's cluster check-in
    /// finds the dead instance once its last check-in is older than the check-in interval plus Quartz's 7.5 s margin,
    /// frees the trigger and recovers the job, and the watch goes on from what is stored: every interval of every metric
    /// once, no gap. With this test's 5 s check-in that is found at most about 2 × 5 + 7.5 s after the kill (the dead one may
    /// have checked in just before it, the survivor just before the dead one was due), and Quartz recovers a job that
    /// disallows concurrent execution one check-in after finding its instance dead: about 3 × 5 + 7.5 s, under 25 s (seen:
    /// 21 s from the kill to the watch's end; with the default 15 s check-in, 45 s). The patience loop allows
    /// <see cref="Patience"/>. Each process start costs a few seconds.
    /// </summary>
    [Fact]
    public async Task Watch_ReplicaKilledMidSweep_TheOtherProcessTakesOverNoGapsNoDuplicates()
    {
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("ledger.yaml", Runbook("ledger", "linkerd", "pay")));
        await using var toFirst = await HoldingProxy.StartAsync(prometheus.Url);
        await using var toSecond = await HoldingProxy.StartAsync(prometheus.Url);
        Dictionary<string, string?> Through(HoldingProxy proxy) => new(Settings(proxy.Url))
        {
            ["RolloutGate:Watch:ClusterCheckinInterval"] = "00:00:05",
        };

        await using var first = await ServiceProcess.StartAsync(database, runbooks.Folder, Through(toFirst));
        await using var second = await ServiceProcess.StartAsync(database, runbooks.Folder, Through(toSecond));
        using var client = first.Client();
        var response = await new WebhookClient(client).SendAsync(WebhookClient.Body(
            "deployed", "dep-killed", "ledger", at: WatchPrometheus.DeployedAt.ToString("O", CultureInfo.InvariantCulture)));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var deadline = TimeProvider.System.GetUtcNow() + Patience;
        while (await database.ScalarAsync<long>("SELECT count(*) FROM evaluations") < 15 && TimeProvider.System.GetUtcNow() < deadline)
        {
            await Task.Delay(50);
        }

        // The next query of whichever replica sweeps is held: that one is killed with it unanswered.
        toFirst.Hold();
        toSecond.Hold();
        var held = await Task.WhenAny(toFirst.Held, toSecond.Held).WaitAsync(Patience);
        var (killed, survivor, survivorProxy) = held == toFirst.Held ? (first, second, toSecond) : (second, first, toFirst);
        await killed.KillAsync();
        var storedAtKill = await database.ScalarAsync<long>("SELECT count(*) FROM evaluations");
        toFirst.Release();
        toSecond.Release();
        Assert.InRange(storedAtKill, 15, 3L * Intervals - 1);

        using var reader = survivor.Client(RolloutGateHost.ReaderToken);
        deadline = TimeProvider.System.GetUtcNow() + Patience;
        string? state;
        do
        {
            await Task.Delay(250);
            state = (await reader.GetJsonAsync("/api/v1/deployments/dep-killed")).GetProperty("state").GetString();
        }
        while (state == "watching" && TimeProvider.System.GetUtcNow() < deadline);

        Assert.Equal("completed", state);
        Assert.True(survivorProxy.Forwarded > 0);
        Assert.Equal(3L * Intervals, await database.ScalarAsync<long>("SELECT count(*) FROM evaluations"));
        Assert.Equal(3L * Intervals, await database.ScalarAsync<long>("SELECT count(DISTINCT (metric, at)) FROM evaluations"));
        Assert.Equal(Intervals, await database.ScalarAsync<long>(
            $"SELECT count(DISTINCT at) FROM evaluations WHERE at > '{WatchPrometheus.DeployedAt:O}' AND at <= '{WatchPrometheus.WatchUntil:O}' AND extract(second FROM at) = 0"));
        Assert.Equal(1L, await database.ScalarAsync<long>("SELECT count(*) FROM audit_events WHERE deployment_id = 'dep-killed' AND type = 'deployment.state-changed' AND data::jsonb->>'to' = 'completed'"));
    }

    /// <summary>
    /// Prometheus behind a proxy that can hold the requests it gets from now on unanswered (<see cref="Hold"/>), as a
    /// slow query does, so that a test knows a sweep is in flight on the replica behind it.
    /// </summary>
    private sealed class HoldingProxy : IAsyncDisposable
    {
        private readonly HttpClient target;
        private readonly TaskCompletionSource held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private WebApplication? server;
        private volatile bool holding;
        private int forwarded;

        private HoldingProxy(string targetUrl) => target = new HttpClient { BaseAddress = new Uri(targetUrl) };

        public string Url { get; private set; } = "";

        /// <summary>Done once a request has been held.</summary>
        public Task Held => held.Task;

        /// <summary>Requests forwarded to Prometheus since <see cref="Release"/>.</summary>
        public int Forwarded => Volatile.Read(ref forwarded);

        public static async Task<HoldingProxy> StartAsync(string targetUrl)
        {
            var proxy = new HoldingProxy(targetUrl);
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            proxy.server = builder.Build();
            proxy.server.Run(proxy.ForwardAsync);
            await proxy.server.StartAsync();
            proxy.Url = proxy.server.Urls.Single();
            return proxy;
        }

        public void Hold() => holding = true;

        public void Release()
        {
            holding = false;
            released.TrySetResult();
        }

        private async Task ForwardAsync(HttpContext context)
        {
            if (holding)
            {
                held.TrySetResult();
                await released.Task;
            }
            else if (released.Task.IsCompleted)
            {
                Interlocked.Increment(ref forwarded);
            }

            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            using var request = new HttpRequestMessage(new HttpMethod(context.Request.Method), context.Request.Path + context.Request.QueryString)
            {
                Content = new ByteArrayContent(body.ToArray()),
            };
            if (context.Request.ContentType is { } contentType)
            {
                request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            }

            using var answer = await target.SendAsync(request);
            context.Response.StatusCode = (int)answer.StatusCode;
            context.Response.ContentType = answer.Content.Headers.ContentType?.ToString();
            await answer.Content.CopyToAsync(context.Response.Body);
        }

        public async ValueTask DisposeAsync()
        {
            Release();
            if (server is not null)
            {
                await server.DisposeAsync();
            }

            target.Dispose();
        }
    }

    /// <summary>
    /// Another replica stores an interval while this one is evaluating it (between the session's freshness check and its
    /// store): this one's result for it is dropped, not applied, and the watch resumes from what the database holds. Held
    /// at its sixth interval by a metric source the test releases; the other replica's rows say "blind" where this one
    /// saw data, so only a watch that resumed from them records a change of verdict away from blind.
    /// </summary>
    [Fact]
    public async Task Watch_IntervalStoredByAnotherReplicaMeanwhile_ItsOwnResultDroppedAndTheWatchResumesFromTheDatabase()
    {
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("ledger.yaml", Runbook("ledger", "linkerd", "pay")));
        var settings = Settings();
        settings["RolloutGate:RunbooksPath"] = runbooks.Folder;
        var gate = new IntervalGate(WatchPrometheus.DeployedAt.AddMinutes(6));
        await using var host = new RolloutGateHost(database, settings, services: services => services.AddScoped<IMetricSource>(provider =>
            new GatedSource(new PrometheusMetricSource(provider.GetRequiredService<IPrometheusClient>()), gate)));
        using var client = host.CreateClient();
        var response = await new WebhookClient(client).SendAsync(WebhookClient.Body(
            "deployed", "dep-race", "ledger", at: WatchPrometheus.DeployedAt.ToString("O", CultureInfo.InvariantCulture)));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);

        DateTimeOffset held;
        string heldAt;
        try
        {
            held = await gate.Reached.Task.WaitAsync(Patience);
            heldAt = held.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);
            await database.ExecuteAsync($"""
                INSERT INTO evaluations (deployment_id, metric, at, value, baseline, threshold, statistic, verdict, explanation, query, query_id, state, detector, evaluated_at)
                SELECT deployment_id, metric, at + interval '1 minute', NULL, baseline, threshold, statistic, 'blind', 'stored by another replica',
                       query, query_id, state, detector, now()
                FROM evaluations WHERE deployment_id = 'dep-race' AND at = '{heldAt}'::timestamptz - interval '1 minute'
                """);
        }
        finally
        {
            gate.Released.TrySetResult();
        }

        Assert.Equal("completed", await StateOnceNotWatchingAsync(host, "dep-race"));
        Assert.Equal(3L * Intervals, await database.ScalarAsync<long>("SELECT count(DISTINCT (metric, at)) FROM evaluations WHERE deployment_id = 'dep-race'"));
        Assert.Equal(3, await database.ScalarAsync<long>($"SELECT count(*) FROM evaluations WHERE at = '{heldAt}' AND explanation = 'stored by another replica'"));
        // Resumed from the other replica's "blind": each metric's next verdict is a change from it, recorded once.
        Assert.Equal(3, await database.ScalarAsync<long>("""
            SELECT count(*) FROM audit_events WHERE deployment_id = 'dep-race' AND type = 'evaluation.verdict-changed' AND data::jsonb->>'from' = 'blind'
            """));
        Assert.Contains(host.Logs.Lines, line => line.Contains($"Watch of dep-race: {held:O} was already evaluated elsewhere; resuming from the database", StringComparison.Ordinal));
    }

    /// <summary>Holds the first observation at or after <paramref name="from"/> until the test releases it.</summary>
    private sealed class IntervalGate(DateTimeOffset from)
    {
        private int held;

        public TaskCompletionSource<DateTimeOffset> Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Released { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task PassAsync(DateTimeOffset at)
        {
            if (at >= from && Interlocked.Exchange(ref held, 1) == 0)
            {
                Reached.TrySetResult(at);
                await Released.Task;
            }
        }
    }

    /// <summary>The service's Prometheus source, through <see cref="IntervalGate"/>.</summary>
    private sealed class GatedSource(IMetricSource inner, IntervalGate gate) : IMetricSource
    {
        public async Task<IReadOnlyList<MetricObservation>> ObserveAsync(IReadOnlyList<WatchMetric> metrics, DateTimeOffset at, CancellationToken cancellationToken)
        {
            await gate.PassAsync(at);
            return await inner.ObserveAsync(metrics, at, cancellationToken);
        }

        public Task<IReadOnlyList<Observation>> BaselineAsync(
            WatchMetric metric, DateTimeOffset from, DateTimeOffset to, TimeSpan step, CancellationToken cancellationToken) =>
            inner.BaselineAsync(metric, from, to, step, cancellationToken);
    }

    /// <summary>The deployment's state once it is no longer watching, or after <see cref="Patience"/>.</summary>
    private static async Task<string?> StateOnceNotWatchingAsync(RolloutGateHost host, string deploymentId)
    {
        using var reader = host.CreateClient().WithToken(RolloutGateHost.ReaderToken);
        var deadline = TimeProvider.System.GetUtcNow() + Patience;
        string? state;
        do
        {
            await Task.Delay(250);
            state = (await reader.GetJsonAsync($"/api/v1/deployments/{deploymentId}")).GetProperty("state").GetString();
        }
        while (state == "watching" && TimeProvider.System.GetUtcNow() < deadline);

        return state;
    }

    private static double EvaluationsCounted(string metrics) =>
        new[] { "healthy", "regressed", "breach-of-max", "insufficient-data", "blind" }
            .Sum(verdict => MetricsScrape.Sample(metrics, $"rolloutgate_watch_evaluations_total{{verdict=\"{verdict}\"}}") ?? 0);

    [Fact]
    public async Task PrometheusSource_Presets_ValuesAndCountsOfKnownSeries()
    {
        await using var provider = PrometheusTestServer.Services(options => options.Prometheus.Url = prometheus.Url);
        var source = new PrometheusMetricSource(provider.GetRequiredService<IPrometheusClient>());
        var runbook = RunbookParser.Parse(Runbook("healthy"), "healthy.yaml").Runbook!;
        var plan = WatchPlan.From(runbook, "production");
        var at = WatchPrometheus.DeployedAt.AddMinutes(30);

        var seen = await source.ObserveAsync(plan.Metrics, at, CancellationToken.None);
        var (p95, errors, cost) = (seen[0], seen[1], seen[2]);

        Assert.Equal(0.225, p95.Observation.Value!.Value, 6);
        Assert.Equal(1200, p95.Observation.Requests);
        Assert.Null(p95.Note);
        Assert.Equal(1200, errors.Observation.Requests);
        Assert.InRange(errors.Observation.Errors!.Value, 2, 3);
        Assert.Equal((double)errors.Observation.Errors!.Value / 1200, errors.Observation.Value!.Value, 9);
        var expectedCost = (0.5 * 0.031 + 0.5 * 0.0042) / 3600 / 20;
        Assert.Equal(expectedCost, cost.Observation.Value!.Value, 12);
    }

    [Fact]
    public async Task PrometheusSource_NoTraffic_NoDataNotZero()
    {
        await using var provider = PrometheusTestServer.Services(options => options.Prometheus.Url = prometheus.Url);
        var source = new PrometheusMetricSource(provider.GetRequiredService<IPrometheusClient>());
        var plan = WatchPlan.From(RunbookParser.Parse(Runbook("idle"), "idle.yaml").Runbook!, "production");
        var at = WatchPrometheus.DeployedAt.AddMinutes(30);

        var observed = await source.ObserveAsync(plan.Metrics, at, CancellationToken.None);
        foreach (var (metric, seen) in plan.Metrics.Zip(observed))
        {
            Assert.Null(seen.Observation.Value);
            Assert.Equal(Verdict.Blind, RegressionDetector.Evaluate(metric.Kind, metric.Spec,
                BaselineWindow.From(metric.Kind, []), null, seen.Observation).Verdict);
        }
    }

    [Fact]
    public async Task PrometheusSource_ManyWatchesAtOnce_EachGetsWhatItsOwnQueryGives()
    {
        await using var provider = PrometheusTestServer.Services(options => options.Prometheus.Url = prometheus.Url);
        var client = provider.GetRequiredService<IPrometheusClient>();
        var source = new PrometheusMetricSource(client);
        var metrics = WatchPrometheus.Workloads
            .Select(w => Runbook(w.Name, w.Mesh, w.Namespace))
            .SelectMany(text => WatchPlan.From(RunbookParser.Parse(text, "w.yaml").Runbook!, "production").Metrics)
            .ToList();
        var at = WatchPrometheus.DeployedAt.AddMinutes(30);

        var seen = await source.ObserveAsync(metrics, at, CancellationToken.None);

        // The batched answer per workload is what the workload's own queries (the evidence shown to users) give.
        Assert.Equal(metrics.Count, seen.Count);
        var withData = 0;
        foreach (var (metric, observation) in metrics.Zip(seen))
        {
            var requests = await OwnAsync(metric.Query.Requests);
            if (observation.Observation.Value is not { } value)
            {
                Assert.True(requests is null or 0, $"{metric.Query.Value}: no data in the batch, yet {requests} requests");
                continue;
            }

            withData++;
            Assert.Equal(metric.Query.PerInterval(requests!.Value), observation.Observation.Requests);
            if (metric.Kind == MetricKind.ErrorRate)
            {
                Assert.Equal(metric.Query.PerInterval((await OwnAsync(metric.Query.Errors)) ?? 0), observation.Observation.Errors);
            }
            else
            {
                var expected = await OwnAsync(metric.Query.Value);
                Assert.NotNull(expected);
                Assert.Equal(expected.Value, value, expected.Value * 1e-9);
            }
        }

        async Task<double?> OwnAsync(string? promql) =>
            promql is null ? null : (await client.QueryAsync(promql, at, CancellationToken.None)) is [var first, ..] && double.IsFinite(first.Value) ? first.Value : null;

        Assert.Equal(21, withData);
        Assert.Equal(2.5, seen[3].Observation.Value!.Value, 6);
        Assert.Contains("at least 2.5 s", seen[3].Note, StringComparison.Ordinal);
        Assert.Equal(0.225, seen[15].Observation.Value!.Value, 6);
    }

    [Fact]
    public async Task PrometheusSource_CustomQueryRejected_NoDataWithTheQueryAndPrometheusError()
    {
        await using var provider = PrometheusTestServer.Services(options => options.Prometheus.Url = prometheus.Url);
        var source = new PrometheusMetricSource(provider.GetRequiredService<IPrometheusClient>());
        var runbook = Runbook("healthy")
            .Replace("preset: cost-per-request", "query: sum(rate(istio_requests_total[5m]", StringComparison.Ordinal)
            .Replace("pricing: { cpuCoreHour: 0.031, memoryGiBHour: 0.0042 }", "max: 1", StringComparison.Ordinal);
        var plan = WatchPlan.From(RunbookParser.Parse(runbook, "healthy.yaml").Runbook!, "production");

        var seen = await source.ObserveAsync(plan.Metrics, WatchPrometheus.DeployedAt.AddMinutes(30), CancellationToken.None);

        Assert.Equal(0.225, seen[0].Observation.Value!.Value, 6);
        Assert.Null(seen[2].Observation.Value);
        Assert.Contains("sum(rate(istio_requests_total[5m]", seen[2].Note, StringComparison.Ordinal);
        Assert.Contains("bad_data", seen[2].Note, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sum by (destination_workload) (rate(istio_requests_total{destination_workload=~\"healthy|slow\"}[5m]))",
        "returned 2 series ({destination_workload=\"healthy\"}, {destination_workload=\"slow\"}) where one number is needed")]
    [InlineData("sum(rate(no_such_series_total[5m]))", "returned no series.")]
    [InlineData("sum(rate(istio_requests_total{destination_workload=\"idle\"}[5m])) / sum(rate(istio_requests_total{destination_workload=\"idle\"}[5m]))",
        "returned NaN (0/0, or histogram_quantile without traffic).")]
    [InlineData("sum(rate(istio_requests_total{destination_workload=\"healthy\"}[5m])) / sum(rate(istio_requests_total{destination_workload=\"idle\"}[5m]))",
        "returned +Inf (a division by zero).")]
    public async Task PrometheusSource_CustomQueryNotOneNumber_NoDataSayingWhatItReturned(string promql, string said)
    {
        await using var provider = PrometheusTestServer.Services(options => options.Prometheus.Url = prometheus.Url);
        var source = new PrometheusMetricSource(provider.GetRequiredService<IPrometheusClient>());
        var runbook = Runbook("healthy")
            .Replace("preset: cost-per-request", $"query: {promql}", StringComparison.Ordinal)
            .Replace("pricing: { cpuCoreHour: 0.031, memoryGiBHour: 0.0042 }", "max: 1000", StringComparison.Ordinal);
        var plan = WatchPlan.From(RunbookParser.Parse(runbook, "healthy.yaml").Runbook!, "production");
        var at = WatchPrometheus.DeployedAt.AddMinutes(30);

        var seen = await source.ObserveAsync(plan.Metrics, at, CancellationToken.None);
        var baseline = await source.BaselineAsync(plan.Metrics[2], at.AddMinutes(-20), at, TimeSpan.FromMinutes(1), CancellationToken.None);

        Assert.Equal(0.225, seen[0].Observation.Value!.Value, 6);
        Assert.Null(seen[2].Observation.Value);
        Assert.StartsWith($"No data because the query '{promql}' {said}", seen[2].Note, StringComparison.Ordinal);
        // Read over a range (after the deploy, while idle has no traffic), not the first series' values either.
        Assert.All(baseline, point => Assert.Null(point.Value));
    }

    [Fact]
    public async Task Backtest_SameDataAsLiveWatch_SameDecisionAtTheSameTime()
    {
        await using var service = await StartAsync("slow", Runbook("slow"));
        await DeployAsync(service, "dep-slow-live", "slow");
        var live = await WaitUntilDoneAsync(service, "dep-slow-live");
        var runbook = service.Runbooks.PathOf("slow.yaml");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exit = await RolloutGate.Cli.CommandLine.RunAsync(
            ["backtest", "--runbook", runbook, "--deployed-at", WatchPrometheus.DeployedAt.ToString("O", CultureInfo.InvariantCulture), "--prometheus", prometheus.Url],
            stdout, stderr);

        Assert.True(exit == 0, stderr.ToString());
        using var answer = JsonDocument.Parse(stdout.ToString());
        Assert.Equal("regressed", live.GetProperty("state").GetString());
        Assert.Equal("rollback", answer.RootElement.GetProperty("decision").GetString());
        Assert.Equal(live.GetProperty("latestEvaluation").GetProperty("at").GetDateTimeOffset(), answer.RootElement.GetProperty("detectedAt").GetDateTimeOffset());
        Assert.Equal(await service.CountAsync("evaluations"), answer.RootElement.GetProperty("evaluations").GetArrayLength());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Backtest_EnvironmentPlaceholder_ReplaysTheEnvironmentGivenElseTheRunbooksFirstAndSaysSo(bool presetOnNamespacePerEnvironment)
    {
        // {{ environment }} in a query, or in mesh.namespace under a preset: either way what is sent depends on it.
        using var folder = new TemporaryFolder("rolloutgate-placeholders-");
        var runbook = Path.Combine(folder.Folder, "cart.yaml");
        await File.WriteAllTextAsync(runbook, presetOnNamespacePerEnvironment
            ? CartRunbook("      - name: errors\n        preset: error-rate\n        maxIncrease: 50%\n", ns: "shop-{{ environment }}")
            : CartRunbook($"      - name: errors\n        query: '{CartErrorRatio("{{ window }}")}'\n        maxIncrease: 50%\n"));

        async Task<(int Exit, string Decision, string Stderr)> BacktestAsync(params string[] environment)
        {
            using var stdout = new StringWriter();
            using var stderr = new StringWriter();
            var exit = await RolloutGate.Cli.CommandLine.RunAsync(
                ["backtest", "--runbook", runbook, "--deployed-at", WatchPrometheus.DeployedAt.ToString("O", CultureInfo.InvariantCulture), "--prometheus", prometheus.Url, .. environment],
                stdout, stderr);
            var decision = exit == 0 ? JsonDocument.Parse(stdout.ToString()).RootElement.GetProperty("decision").GetString()! : "";
            return (exit, decision, stderr.ToString());
        }

        Assert.Equal((0, "rollback", ""), await BacktestAsync("--environment", "staging"));
        Assert.Equal((0, "healthy", ""), await BacktestAsync("--environment", "production"));
        Assert.Equal(
            (0, "rollback", "backtest: the queries' {{ environment }} is 'staging', the runbook's first environment (give --environment to replay another)"),
            (await BacktestAsync()) is var (exit, decision, said) ? (exit, decision, said.Trim()) : default);
        var (refused, _, reason) = await BacktestAsync("--environment", "qa");
        Assert.Equal(2, refused);
        Assert.Equal($"backtest: --environment 'qa' is not governed by {runbook}, whose environments are staging, production", reason.Trim());
    }

    [Fact]
    public async Task Watch_RolledBackByPipeline_NeverEvaluatedAfterwards()
    {
        await using var service = await StartAsync("healthy", Runbook("healthy"));
        await DeployAsync(service, "dep-gone", "healthy");
        Assert.Equal(1L, await service.CountAsync("qrtz_job_details", "job_group = 'watch-sweep'"));

        var response = await service.Webhooks.SendEventAsync("rolledback", "dep-gone", "healthy");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        // The background sweep may have evaluated some of the two hours due before the rollback; none may follow it.
        var before = await service.CountAsync("evaluations", "deployment_id = 'dep-gone'");
        await DeployAsync(service, "dep-next", "healthy");
        await service.Host.Services.GetRequiredService<WatchSweep>().RunAsync(CancellationToken.None);

        Assert.Equal(before, await service.CountAsync("evaluations", "deployment_id = 'dep-gone'"));
        Assert.Equal(3L * Intervals, await service.CountAsync("evaluations", "deployment_id = 'dep-next'"));
        Assert.Equal(1L, await service.CountAsync("deployments", "id = 'dep-gone' AND state = 'rolled-back'"));
    }

    [Fact]
    public async Task Watch_RunbookEditedAfterAWatchEnded_OnlyThePlanOfTheVersionStillWatchedIsKept()
    {
        await using var service = await StartAsync("healthy", Runbook("healthy"));
        var sweep = service.Host.Services.GetRequiredService<WatchSweep>();
        await DeployAsync(service, "dep-v1", "healthy");
        await sweep.RunAsync(CancellationToken.None);
        Assert.Equal(1L, await service.CountAsync("deployments", "id = 'dep-v1' AND state = 'completed'"));

        // Every edit is a new version; a service that runs for months must not keep the plan of each one it ever watched.
        service.Runbooks.Write("healthy.yaml", Runbook("healthy").Replace("version: 1", "version: 2", StringComparison.Ordinal));
        await service.ReloadRunbooksAsync();
        var response = await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "dep-v2", "healthy"));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        await sweep.RunAsync(CancellationToken.None);

        var v2 = await service.Database.ScalarAsync<long>("SELECT id FROM runbook_versions WHERE name = 'healthy' AND version = 2");
        Assert.Equal(1L, await service.CountAsync("deployments", $"id = 'dep-v2' AND state = 'watching' AND runbook_version_id = {v2}"));
        Assert.Equal([v2], await sweep.PlannedVersionsAsync());
    }

    [Fact]
    public async Task Watch_JobStoreEmptied_SweepJobBackAtStartUpAndTheWatchCompletes()
    {
        var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("healthy.yaml", Runbook("healthy")));
        var settings = Settings(PrometheusTestServer.UnusedLoopbackUrl());
        settings["RolloutGate:RunbooksPath"] = runbooks.Folder;
        await using (var first = new RolloutGateHost(database, settings))
        {
            var response = await new WebhookClient(first.CreateClient()).SendAsync(WebhookClient.Body(
                "deployed", "dep-lost", "healthy", at: WatchPrometheus.DeployedAt.ToString("O", CultureInfo.InvariantCulture)));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        }

        // Nothing a watch needs lives in the job store: the sweep job is put back at start-up and finds the deployment.
        await database.ExecuteAsync("DELETE FROM qrtz_simple_triggers; DELETE FROM qrtz_triggers; DELETE FROM qrtz_job_details;");
        settings["RolloutGate:Prometheus:Url"] = prometheus.Url;
        await using (var second = new RolloutGateHost(database, settings))
        {
            Assert.Equal("completed", await StateOnceNotWatchingAsync(second, "dep-lost"));
        }

        Assert.Equal(3L * Intervals, await database.ScalarAsync<long>("SELECT count(*) FROM evaluations"));
        await database.DisposeAsync();
    }
}
