using RolloutGate.Core.Runbooks;
using RolloutGate.Core.Watch;

namespace RolloutGate.Core.Tests.Watch;

public sealed class MetricQueriesTests
{
    private static readonly MeshSpec Istio = new(MeshProvider.Istio, "shop", "checkout");
    private static readonly MeshSpec Linkerd = new(MeshProvider.Linkerd, "pay", "ledger");
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    private static MetricSpec Preset(string preset, Pricing? pricing = null) => new(preset, preset, null, null, 0.2, pricing);

    [Fact]
    public void For_IstioP95_QuantileOfDestinationHistogramInSeconds()
    {
        var query = MetricQueries.For(Preset("p95-latency"), Istio, Minute);

        const string selector = "reporter=\"destination\",destination_workload=\"checkout\",destination_workload_namespace=\"shop\"";
        Assert.Equal($"histogram_quantile(0.95, sum by (le) (rate(istio_request_duration_milliseconds_bucket{{{selector}}}[2m]))) / 1000", query.Value);
        Assert.Equal($"sum(increase(istio_request_duration_milliseconds_bucket{{{selector},le=\"+Inf\"}}[2m]))", query.Requests);
        Assert.Equal($"sum by (le) (increase(istio_request_duration_milliseconds_bucket{{{selector}}}[2m]))", query.Buckets);
        Assert.Null(query.Errors);
    }

    [Fact]
    public void For_IstioErrorRate_FiveHundredsOverAllWithCounts()
    {
        var query = MetricQueries.For(Preset("error-rate"), Istio, TimeSpan.FromMinutes(5));

        const string selector = "reporter=\"destination\",destination_workload=\"checkout\",destination_workload_namespace=\"shop\"";
        Assert.Equal($"sum(rate(istio_requests_total{{{selector},response_code=~\"5..\"}}[5m])) / sum(rate(istio_requests_total{{{selector}}}[5m]))", query.Value);
        Assert.Equal($"sum(increase(istio_requests_total{{{selector}}}[5m]))", query.Requests);
        Assert.Equal($"sum(increase(istio_requests_total{{{selector},response_code=~\"5..\"}}[5m]))", query.Errors);
    }

    [Fact]
    public void For_LinkerdErrorRate_FailureClassificationOfInboundResponses()
    {
        var query = MetricQueries.For(Preset("error-rate"), Linkerd, Minute);

        const string selector = "direction=\"inbound\",deployment=\"ledger\",namespace=\"pay\"";
        Assert.Equal($"sum(rate(response_total{{{selector},classification=\"failure\"}}[2m])) / sum(rate(response_total{{{selector}}}[2m]))", query.Value);
        Assert.Equal($"sum(increase(response_total{{{selector},classification=\"failure\"}}[2m]))", query.Errors);
    }

    [Fact]
    public void For_LinkerdP95_ResponseLatencyHistogram()
    {
        var query = MetricQueries.For(Preset("p95-latency"), Linkerd, Minute);

        Assert.Equal(
            "histogram_quantile(0.95, sum by (le) (rate(response_latency_ms_bucket{direction=\"inbound\",deployment=\"ledger\",namespace=\"pay\"}[2m]))) / 1000",
            query.Value);
    }

    [Fact]
    public void For_RequestRate_RateAndCount()
    {
        var query = MetricQueries.For(Preset("request-rate"), Linkerd, TimeSpan.FromMinutes(3));

        Assert.Equal("sum(rate(response_total{direction=\"inbound\",deployment=\"ledger\",namespace=\"pay\"}[3m]))", query.Value);
        Assert.Equal("sum(increase(response_total{direction=\"inbound\",deployment=\"ledger\",namespace=\"pay\"}[3m]))", query.Requests);
    }

    [Fact]
    public void For_CostPerRequest_CadvisorPricedPerHourOverRequestRate()
    {
        var query = MetricQueries.For(Preset("cost-per-request", new Pricing(0.031, 0.0042)), Istio, Minute);

        const string pods = "{namespace=\"shop\",pod=~\"checkout-(?:(?:[bcdfghjklmnpqrstvwxz2456789]+-)?[bcdfghjklmnpqrstvwxz2456789]{5}|[0-9]+)\","
            + "container!=\"\",container!=\"POD\"}";
        Assert.Equal(
            $"(sum(rate(container_cpu_usage_seconds_total{pods}[2m])) * 0.031 + sum(avg_over_time(container_memory_working_set_bytes{pods}[2m])) / 1073741824 * 0.0042)"
            + " / 3600 / sum(rate(istio_requests_total{reporter=\"destination\",destination_workload=\"checkout\",destination_workload_namespace=\"shop\"}[2m]))",
            query.Value);
    }

    [Theory]
    [InlineData("checkout-7d9f8b6c5-x2x4z", "checkout", true)]
    [InlineData("checkout-x2x4z", "checkout", true)]
    [InlineData("checkout-0", "checkout", true)]
    [InlineData("checkout-12", "checkout", true)]
    [InlineData("checkout-worker-6b8c9d5f4-q2w8z", "checkout", false)]
    [InlineData("checkout-worker-6b8c9d5f4-q2w8z", "checkout-worker", true)]
    [InlineData("checkout-db-0", "checkout", false)]
    [InlineData("checkout-canary-7d9f8b6c5-x2x4z", "checkout", false)]
    [InlineData("checkout-7d9f8b6c5-x2x4z", "checkout-7d9f8b6c5", true)]
    [InlineData("checkout", "checkout", false)]
    [InlineData("checkoutv2-7d9f8b6c5-x2x4z", "checkout", false)]
    public void IsPodOf_KubernetesPodNames(string pod, string workload, bool expected) =>
        Assert.Equal(expected, MetricQueries.IsPodOf(pod, workload));

    [Fact]
    public void For_CostPerRequest_WorkloadNameWithDot_MatchedLiterally()
    {
        var query = MetricQueries.For(Preset("cost-per-request", new Pricing(0.031, 0.0042)), new MeshSpec(MeshProvider.Istio, "shop", "web.v2"), Minute);

        Assert.Contains("pod=~\"web\\\\.v2-(?:", query.Value, StringComparison.Ordinal);
    }

    [Fact]
    public void For_CustomQuery_AsWrittenWithoutCounts()
    {
        var query = MetricQueries.For(new MetricSpec("declines", null, "sum(rate(declined_total[5m]))", null, 0.3, null), Istio, Minute);

        Assert.Equal("sum(rate(declined_total[5m]))", query.Value);
        Assert.Null(query.Requests);
        Assert.Null(query.Errors);
        Assert.Null(query.Buckets);
    }

    [Fact]
    public void For_LabelValueWithQuote_Escaped()
    {
        var query = MetricQueries.For(Preset("request-rate"), new MeshSpec(MeshProvider.Istio, "sh\"op", "checkout"), Minute);

        Assert.Contains("destination_workload_namespace=\"sh\\\"op\"", query.Value, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(30, 120)]
    [InlineData(60, 120)]
    [InlineData(300, 300)]
    public void WindowFor_ShortIntervals_AtLeastTwoMinutes(int intervalSeconds, int windowSeconds) =>
        Assert.Equal(TimeSpan.FromSeconds(windowSeconds), MetricQueries.WindowFor(TimeSpan.FromSeconds(intervalSeconds)));

    [Fact]
    public void PerInterval_CountOverLongerWindow_ScaledToOneInterval() =>
        Assert.Equal(600, MetricQueries.For(Preset("request-rate"), Istio, Minute).PerInterval(1200));

    [Theory]
    [InlineData(90, "90s")]
    [InlineData(120, "2m")]
    [InlineData(7200, "2h")]
    public void Duration_PromqlSpelling(int seconds, string expected) => Assert.Equal(expected, MetricQueries.Duration(TimeSpan.FromSeconds(seconds)));
}
