using RolloutGate.Core.Analysis;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Tests.Analysis;

/// <summary>Values in the unit of the metric's preset; a custom query's as the plain numbers it returned.</summary>
public sealed class MetricValuesTests
{
    private static readonly MetricSpec P95 = new("p95-latency", "p95-latency", null, Max: null, MaxIncrease: 0.2, null);
    private static readonly MetricSpec Custom = new("queue-depth", null, "sum(queue_depth)", Max: null, MaxIncrease: 0.2, null);

    [Fact]
    public void Figures_InTheMetricsUnit()
    {
        Assert.Equal("912 ms (baseline 640 ms, threshold 768 ms)", MetricValues.Figures(P95, MetricKind.Latency, 0.912, 0.64, 0.768));
        Assert.Equal("2.50 s (baseline 225 ms, threshold n/a)", MetricValues.Figures(P95, MetricKind.Latency, 2.5, 0.225, null));
        Assert.Equal("5.00% (baseline 0.20%, threshold 0.30%)", MetricValues.Figures(P95 with { Name = "error-rate", Preset = "error-rate" }, MetricKind.ErrorRate, 0.05, 0.002, 0.003));
        Assert.Equal("n/a (baseline n/a, threshold n/a)", MetricValues.Figures(P95, MetricKind.Latency, null, double.NaN, null));
        // vector(5) is not 5 seconds: a custom query's unit is unknown.
        Assert.Equal("5 (baseline 4, threshold 4.8)", MetricValues.Figures(Custom, MetricKind.Latency, 5, 4, 4.8));
    }
}
