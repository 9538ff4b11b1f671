using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Watch;

/// <summary>
/// Prometheus down while a watch runs. The service reaches Prometheus through a proxy the test can fail (503), and its
/// clock is placed just after the deploy of <see cref="WatchPrometheus"/> (whose data covers the whole watch), so that the
/// outage can be stepped minute by minute against the default grace of 2 minutes (RolloutGate:Watch:SourceOutageGrace).
/// </summary>
public sealed class SourceOutageTests(WatchPrometheus prometheus) : IClassFixture<WatchPrometheus>
{
    private const string Service = "healthy";
    private const string DeploymentId = "dep-outage";
    private static readonly string[] Metrics = ["p95-latency", "error-rate", "cost-per-request"];

    private static DateTimeOffset T(int minutes, int seconds = 0) => WatchPrometheus.DeployedAt.AddMinutes(minutes).AddSeconds(seconds);

    [Fact]
    public async Task Watch_PrometheusDownLongerThanTheGrace_EachIntervalRecordedBlindWithTheReasonAndMaxBlindStopsTheWatch()
    {
        await using var outage = await Outage.StartAsync(prometheus, maxBlind: "2m");

        outage.Proxy.Failing = true;
        await outage.SweepAtAsync(T(11, 5));
        Assert.Equal(3L * 10, await outage.CountAsync());

        // Each interval is recorded blind once it is 2 minutes old, Prometheus failing all along.
        await outage.SweepAtAsync(T(13, 10));
        Assert.Equal(3L, await outage.CountAsync($"verdict = 'blind' AND at = '{T(11):O}'"));
        Assert.Equal(0L, await outage.CountAsync($"at > '{T(11):O}'"));
        await outage.SweepAtAsync(T(14, 10));
        Assert.Equal("watching", (await outage.DeploymentAsync()).GetProperty("state").GetString());
        await outage.SweepAtAsync(T(15, 10));

        // Three blind intervals are 3 minutes without data, longer than maxBlind (2m): the watch stops and says why.
        var deployment = await outage.DeploymentAsync();
        Assert.Equal("stopped", deployment.GetProperty("state").GetString());
        Assert.Equal(3L * 3, await outage.CountAsync("verdict = 'blind'"));
        Assert.Equal(3L * 13, await outage.CountAsync());
        Assert.Equal(3L * 13, await outage.Database.ScalarAsync<long>("SELECT count(DISTINCT (metric, at)) FROM evaluations"));
        Assert.Equal(0L, await outage.CountAsync("verdict = 'blind' AND explanation NOT LIKE '%Prometheus could not be asked: Prometheus at http://127.0.0.1:%'"));
        var latest = deployment.GetProperty("latestEvaluation");
        Assert.Equal(T(13), latest.GetProperty("at").GetDateTimeOffset());
        Assert.All(latest.GetProperty("metrics").EnumerateArray(), m => Assert.Equal("blind", m.GetProperty("verdict").GetString()));
        var moved = await outage.AuditAsync("deployment.state-changed");
        Assert.Contains(moved, e => e.GetProperty("data").GetProperty("to").GetString() == "stopped"
            && e.GetProperty("data").GetProperty("reason").GetString()!.Contains("maxBlind", StringComparison.Ordinal));
        // The change to blind is audited (and so announced in the decision channel) once per metric, with the reason.
        var changed = await outage.AuditAsync("evaluation.verdict-changed");
        Assert.Equal(Metrics.Order(), changed.Select(e => e.GetProperty("data").GetProperty("metric").GetString()).Order());
        Assert.All(changed, e =>
        {
            Assert.Equal("blind", e.GetProperty("data").GetProperty("verdict").GetString());
            Assert.Equal(T(11), e.GetProperty("data").GetProperty("at").GetDateTimeOffset());
            Assert.Contains("Prometheus could not be asked", e.GetProperty("data").GetProperty("explanation").GetString(), StringComparison.Ordinal);
        });
        Assert.Contains(outage.Host.Logs.Lines, line => line.Contains("that interval is recorded blind", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Watch_PrometheusRefusingConnections_TheSweepSaysSoInOneLineWithoutStackTraces()
    {
        await using var outage = await Outage.StartAsync(prometheus);
        // Nothing listens at the proxy's address any more: every connection is refused, as with a Prometheus that is down.
        await outage.Proxy.DisposeAsync();

        await outage.SweepAtAsync(T(11, 5));

        Assert.Contains(outage.Host.Logs.Lines, line => line.Contains("the metric source failed for 1 watches", StringComparison.Ordinal));
        // The client's retries, its circuit breaker and the client itself add no warning (with a stack trace) per request on top.
        Assert.DoesNotContain(outage.Host.Logs.Lines, line =>
            (line.StartsWith("Warning ", StringComparison.Ordinal) || line.StartsWith("Error ", StringComparison.Ordinal))
            && (line.Contains(" Polly:", StringComparison.Ordinal) || line.Contains(".PrometheusClient:", StringComparison.Ordinal)));
    }

    /// <summary>
    /// Seen with the service as its own process and Prometheus stopped for 2.5 minutes: the same warning every 10 s (each
    /// held-back watch tried again), twelve for one interval, and nothing once Prometheus answered again, so the log
    /// never said the outage was over.
    /// </summary>
    [Fact]
    public async Task Watch_PrometheusDownThenBack_ALineAtMostEvery30SecondsWhileItFails_AndOneWhenItAnswersAgain()
    {
        await using var outage = await Outage.StartAsync(prometheus);
        int Failed() => outage.Host.Logs.Lines.Count(line => line.Contains("the metric source failed for 1 watches", StringComparison.Ordinal));

        outage.Proxy.Failing = true;
        await outage.SweepAtAsync(T(11, 5));
        await outage.SweepAtAsync(T(11, 16));
        await outage.SweepAtAsync(T(11, 27));
        Assert.Equal(1, Failed());
        // Its time in ISO 8601, as the rollback dispatcher's lines have it: not '12/07/2026', which reads as July to most.
        Assert.Contains(outage.Host.Logs.Lines, line => line.Contains($"failed for 1 watches at {T(11):O} (", StringComparison.Ordinal));
        Assert.Contains(outage.Host.Logs.Lines, line => line.Contains("1 attempt(s) failed since the last such line", StringComparison.Ordinal));
        await outage.SweepAtAsync(T(11, 38));
        Assert.Equal(2, Failed());
        // Those at T(11, 16), T(11, 27) and T(11, 38), and any the scheduled sweep made in between.
        var attempts = outage.Host.Logs.Lines.Select(line => Regex.Match(line, @"(\d+) attempt\(s\) failed since the last such line"))
            .Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(2, attempts.Count);
        Assert.True(attempts[1] >= 3, $"the second line tells {attempts[1]} attempts");
        Assert.DoesNotContain(outage.Host.Logs.Lines, line => line.Contains("answers again", StringComparison.Ordinal));

        outage.Proxy.Failing = false;
        outage.Clock.Now = T(11, 49);
        await outage.WaitForAsync($"at = '{T(11):O}'", 3);

        Assert.Equal(3L, await outage.CountAsync($"verdict = 'healthy' AND at = '{T(11):O}'"));
        var back = Assert.Single(outage.Host.Logs.Lines, line => line.Contains("Watch: the metric source answers again after", StringComparison.Ordinal));
        Assert.Contains("failed attempt(s)); the intervals not recorded blind are evaluated at their own times", back, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_PrometheusBackWithinTheGraceOfAnInterval_ThatIntervalEvaluatedAfterwardsAtItsOwnTimeWithRealData()
    {
        await using var outage = await Outage.StartAsync(prometheus);

        outage.Proxy.Failing = true;
        await outage.SweepAtAsync(T(11, 5));
        await outage.SweepAtAsync(T(13, 10));
        Assert.Equal(3L, await outage.CountAsync("verdict = 'blind'"));
        Assert.Equal(0L, await outage.CountAsync($"at > '{T(11):O}'"));

        // Prometheus is back: 12 (1m15s old) and 13 were never recorded blind, and are evaluated at their own t.
        outage.Proxy.Failing = false;
        outage.Clock.Now = T(13, 15);
        await outage.WaitForAsync($"at = '{T(13):O}'", 3);

        Assert.Equal(3L, await outage.CountAsync("verdict = 'blind'"));
        Assert.Equal(3L, await outage.CountAsync($"verdict = 'blind' AND at = '{T(11):O}'"));
        Assert.Equal(3L * 2, await outage.CountAsync($"verdict = 'healthy' AND at IN ('{T(12):O}', '{T(13):O}')"));
        Assert.Equal(0.225, await outage.Database.ScalarAsync<double>(
            $"SELECT value FROM evaluations WHERE metric = 'p95-latency' AND at = '{T(12):O}'"), 6);
        Assert.Equal(3L * 13, await outage.CountAsync());
        Assert.Equal(3L * 13, await outage.Database.ScalarAsync<long>("SELECT count(DISTINCT (metric, at)) FROM evaluations"));
        var deployment = await outage.DeploymentAsync();
        Assert.Equal("watching", deployment.GetProperty("state").GetString());
        Assert.Equal(T(13), deployment.GetProperty("latestEvaluation").GetProperty("at").GetDateTimeOffset());
        // Blind, then healthy again: each change audited once per metric.
        var changed = await outage.AuditAsync("evaluation.verdict-changed");
        Assert.Equal(3, changed.Count(e => e.GetProperty("data").GetProperty("verdict").GetString() == "blind"));
        Assert.Equal(3, changed.Count(e => e.GetProperty("data").GetProperty("verdict").GetString() == "healthy"
            && e.GetProperty("data").GetProperty("at").GetDateTimeOffset() == T(12)));
    }

    /// <summary>
    /// A backlog of old intervals (the service was down for 50 minutes) and Prometheus failing for less than the grace:
    /// every interval is old, but the outage is short, so none is recorded blind; all are evaluated with real data.
    /// </summary>
    [Fact]
    public async Task Watch_ShortOutageWhileCatchingUpOldIntervals_NoneRecordedBlind()
    {
        await using var outage = await Outage.StartAsync(prometheus);

        outage.Proxy.Failing = true;
        await outage.SweepAtAsync(T(60, 30));
        await outage.SweepAtAsync(T(61, 30));
        Assert.Equal(3L * 10, await outage.CountAsync());
        Assert.Contains(outage.Host.Logs.Lines, line => line.Contains("the metric source failed for 1 watches", StringComparison.Ordinal));

        outage.Proxy.Failing = false;
        await outage.WaitForAsync($"at = '{T(61):O}'", 3);

        Assert.Equal(0L, await outage.CountAsync("verdict <> 'healthy'"));
        // The service's clock keeps running from T(61, 30): on a loaded machine the sweep may reach T(62) as well.
        Assert.Equal(3L * 61, await outage.CountAsync($"at <= '{T(61):O}'"));
    }

    /// <summary>
    /// Prometheus already down when the deploy is announced: the baseline cannot be read, yet the intervals are not
    /// silent. Past the grace each is recorded blind, and once Prometheus answers the baseline is read (its window lies
    /// before the deploy) and the rest is evaluated with real data.
    /// </summary>
    [Fact]
    public async Task Watch_PrometheusDownWhenTheWatchBegins_IntervalsRecordedBlindPastTheGraceThenTheBaselineReadWhenItIsBack()
    {
        await using var outage = await Outage.StartAsync(prometheus, downAtDeploy: true);

        await outage.SweepAtAsync(T(2, 10));
        Assert.Equal(0L, await outage.CountAsync());
        Assert.Contains(outage.Host.Logs.Lines, line => line.Contains("the baseline could not be read", StringComparison.Ordinal));
        await outage.SweepAtAsync(T(3, 10));
        Assert.Equal(3L, await outage.CountAsync($"verdict = 'blind' AND at = '{T(1):O}'"));
        Assert.Equal(3L, await outage.CountAsync());
        Assert.Equal(0L, await outage.CountAsync(
            "explanation NOT LIKE '%Prometheus could not be asked: Prometheus at http://127.0.0.1:% (reading the baseline before the deploy)%'"));
        Assert.Equal(0L, await outage.Database.ScalarAsync<long>("SELECT count(*) FROM watch_baselines"));
        var blind = await outage.AuditAsync("evaluation.verdict-changed");
        Assert.Equal(Metrics.Order(), blind.Select(e => e.GetProperty("data").GetProperty("metric").GetString()).Order());

        // Prometheus is back: the baseline is read whole, 2 and 3 (never recorded blind) are evaluated at their own t.
        outage.Proxy.Failing = false;
        outage.Clock.Now = T(3, 15);
        await outage.WaitForAsync($"at = '{T(3):O}'", 3);

        Assert.Equal(3L, await outage.CountAsync("verdict = 'blind'"));
        Assert.Equal(3L * 2, await outage.CountAsync($"verdict = 'healthy' AND at IN ('{T(2):O}', '{T(3):O}')"));
        Assert.Equal(0.225, await outage.Database.ScalarAsync<double>(
            $"SELECT value FROM evaluations WHERE metric = 'p95-latency' AND at = '{T(2):O}'"), 6);
        Assert.Equal(3L, await outage.Database.ScalarAsync<long>("SELECT count(DISTINCT metric) FROM watch_baselines"));
        var deployment = await outage.DeploymentAsync();
        Assert.Equal("watching", deployment.GetProperty("state").GetString());
        Assert.All(deployment.GetProperty("latestEvaluation").GetProperty("metrics").EnumerateArray(), m =>
        {
            Assert.Equal("healthy", m.GetProperty("verdict").GetString());
            Assert.Equal(JsonValueKind.Number, m.GetProperty("baseline").ValueKind);
        });
    }

    [Fact]
    public async Task Watch_PrometheusDownWhenTheWatchBeginsAndStaysDown_MaxBlindStopsTheWatch()
    {
        await using var outage = await Outage.StartAsync(prometheus, maxBlind: "2m", downAtDeploy: true);

        await outage.SweepAtAsync(T(4, 10));
        Assert.Equal(3L * 2, await outage.CountAsync("verdict = 'blind'"));
        Assert.Equal("watching", (await outage.DeploymentAsync()).GetProperty("state").GetString());
        await outage.SweepAtAsync(T(5, 10));

        // Intervals 1 and 2 are older than the grace at T(4, 10), 3 at T(5, 10): blind for 3 minutes, longer than maxBlind.
        var deployment = await outage.DeploymentAsync();
        Assert.Equal("stopped", deployment.GetProperty("state").GetString());
        Assert.Equal(3L * 3, await outage.CountAsync("verdict = 'blind'"));
        Assert.Equal(3L * 3, await outage.CountAsync());
        var moved = await outage.AuditAsync("deployment.state-changed");
        Assert.Contains(moved, e => e.GetProperty("data").GetProperty("to").GetString() == "stopped"
            && e.GetProperty("data").GetProperty("reason").GetString()!.Contains("maxBlind", StringComparison.Ordinal));
    }

    /// <summary>A host whose clock stands just after the 10th interval of a watch it evaluated up to there, via the proxy.</summary>
    private sealed class Outage : IAsyncDisposable
    {
        private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

        private Outage(TestDatabase database, TestRunbooks runbooks, HttpClient prometheus, LoopbackProxy proxy, ShiftedClock clock, RolloutGateHost host)
        {
            (Database, Runbooks, Prometheus, Proxy, Clock, Host) = (database, runbooks, prometheus, proxy, clock, host);
        }

        public TestDatabase Database { get; }

        public TestRunbooks Runbooks { get; }

        public HttpClient Prometheus { get; }

        public LoopbackProxy Proxy { get; }

        public ShiftedClock Clock { get; }

        public RolloutGateHost Host { get; }

        /// <summary>
        /// The deploy, and its first 10 intervals evaluated with Prometheus up; or, <paramref name="downAtDeploy"/>, the
        /// deploy alone, with Prometheus failing from before it and the clock 30 s after it.
        /// </summary>
        public static async Task<Outage> StartAsync(WatchPrometheus prometheus, string maxBlind = "30m", bool downAtDeploy = false)
        {
            var http = new HttpClient { BaseAddress = new Uri(prometheus.Url) };
            var proxy = await new LoopbackProxy(http).StartAsync();
            proxy.Failing = downAtDeploy;
            var clock = new ShiftedClock(downAtDeploy ? T(0, 30) : T(10, 30));
            var database = await TestDatabase.CreateAsync();
            var runbooks = new TestRunbooks(($"{Service}.yaml", WatchTests.Runbook(Service, maxBlind: maxBlind)));
            var host = new RolloutGateHost(database, new Dictionary<string, string?>
            {
                ["RolloutGate:Prometheus:Url"] = proxy.Url,
                ["RolloutGate:Watch:IdleWaitTime"] = "00:00:01",
                ["RolloutGate:RunbooksPath"] = runbooks.Folder,
            }, clock);
            var outage = new Outage(database, runbooks, http, proxy, clock, host);
            var response = await new WebhookClient(host.CreateClient(), clock).SendAsync(WebhookClient.Body(
                "deployed", DeploymentId, Service, at: WatchPrometheus.DeployedAt.ToString("O", CultureInfo.InvariantCulture)));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            if (downAtDeploy)
            {
                await outage.SweepAtAsync(T(0, 30));
                Assert.Equal(0L, await outage.CountAsync());
                return outage;
            }

            await outage.SweepAtAsync(T(10, 30));
            Assert.Equal(3L * 10, await outage.CountAsync($"verdict = 'healthy' AND at <= '{T(10):O}'"));
            return outage;
        }

        /// <summary>Puts the clock at <paramref name="now"/> and sweeps until nothing is due (the scheduled sweep may run too).</summary>
        public async Task SweepAtAsync(DateTimeOffset now)
        {
            Clock.Now = now;
            await Host.Services.GetRequiredService<WatchSweep>().RunAsync(CancellationToken.None);
        }

        /// <summary>
        /// Sweeps, with the clock running on at its real pace, until what <paramref name="where"/> selects is stored: a watch
        /// held back after a failure, or behind an open circuit breaker, is tried again when the wait is over.
        /// </summary>
        public async Task WaitForAsync(string where, long count)
        {
            var deadline = TimeProvider.System.GetUtcNow() + Patience;
            var sweep = Host.Services.GetRequiredService<WatchSweep>();
            while (await CountAsync(where) < count && TimeProvider.System.GetUtcNow() < deadline)
            {
                await sweep.RunAsync(CancellationToken.None);
                await Task.Delay(500);
            }
        }

        public async Task<long> CountAsync(string where = "true") =>
            await Database.ScalarAsync<long>($"SELECT count(*) FROM evaluations WHERE deployment_id = '{DeploymentId}' AND {where}");

        public async Task<JsonElement> DeploymentAsync()
        {
            using var reader = Host.CreateClient().WithToken(RolloutGateHost.ReaderToken);
            return await reader.GetJsonAsync($"/api/v1/deployments/{DeploymentId}");
        }

        public async Task<List<JsonElement>> AuditAsync(string type)
        {
            using var reader = Host.CreateClient().WithToken(RolloutGateHost.ReaderToken);
            var page = await reader.GetJsonAsync($"/api/v1/audit/events?deploymentId={DeploymentId}&type={type}&limit=1000");
            return [.. page.GetProperty("events").EnumerateArray()];
        }

        public async ValueTask DisposeAsync()
        {
            await Host.DisposeAsync();
            await Proxy.DisposeAsync();
            Prometheus.Dispose();
            Runbooks.Dispose();
            await Database.DisposeAsync();
        }
    }
}
