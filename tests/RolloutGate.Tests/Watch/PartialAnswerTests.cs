using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Core.Runbooks;
using RolloutGate.Prometheus;
using RolloutGate.Tests.Prometheus;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Watch;

/// <summary>
/// Answers that say "success" but may lack data, as a real Prometheus gives them: one that reads <see cref="WatchPrometheus"/>
/// through remote_read, and a second remote_read endpoint that is down, answers with the first one's data and a warning
/// ("remote_read: error sending request ..."), as a Thanos querier does with partial_response when a store is down.
/// </summary>
public sealed class PartialAnswerTests(WatchPrometheus prometheus) : IClassFixture<WatchPrometheus>
{
    private static readonly DateTimeOffset At = WatchPrometheus.DeployedAt.AddMinutes(30);

    private string RemoteRead(params string[] urls) =>
        "global:\n  scrape_interval: 1m\nremote_read:\n"
        + string.Concat(urls.Select(url => $"  - url: {url}/api/v1/read\n    read_recent: true\n"));

    [Fact]
    public async Task PrometheusSource_AnswerWithWarnings_ThrowsAsUnavailableSoNothingIsJudgedOrStoredFromIt()
    {
        using var whole = await PrometheusProcess.StartAsync(RemoteRead(prometheus.Url));
        using var partial = await PrometheusProcess.StartAsync(RemoteRead(prometheus.Url, PrometheusTestServer.UnusedLoopbackUrl()));
        var plan = WatchPlan.From(RunbookParser.Parse(WatchTests.Runbook("healthy"), "healthy.yaml").Runbook!, "production");

        // Through remote_read alone, the same numbers as from the Prometheus holding the data.
        await using (var provider = PrometheusTestServer.Services(options => options.Prometheus.Url = whole.Url))
        {
            var seen = await new PrometheusMetricSource(provider.GetRequiredService<IPrometheusClient>()).ObserveAsync(plan.Metrics, At, CancellationToken.None);
            Assert.Equal(0.225, seen[0].Observation.Value!.Value, 6);
        }

        await using var services = PrometheusTestServer.Services(options => options.Prometheus.Url = partial.Url);
        var client = services.GetRequiredService<IPrometheusClient>();
        var source = new PrometheusMetricSource(client);

        var observed = await Assert.ThrowsAsync<PrometheusUnavailableException>(() => source.ObserveAsync(plan.Metrics, At, CancellationToken.None));
        var baseline = await Assert.ThrowsAsync<PrometheusUnavailableException>(
            () => source.BaselineAsync(plan.Metrics[0], At.AddHours(-1), At, TimeSpan.FromMinutes(1), CancellationToken.None));
        var instant = await Assert.ThrowsAsync<PrometheusUnavailableException>(() => client.QueryAsync("sum(istio_requests_total)", At, CancellationToken.None));

        foreach (var exception in new[] { observed, baseline, instant })
        {
            Assert.Contains($"Prometheus at {partial.Url}/ answered with warnings, so its answer may lack data: remote_read: ", exception.Message, StringComparison.Ordinal);
        }
    }
}
