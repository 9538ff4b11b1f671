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

    [Fact]
    public void Format_AnErrorRateJudgedOnItsRatioAlone_IsStillAPercentage()
    {
        // A backtest CSV without request counts judges its error rate with the continuous test (a kind other than ErrorRate):
        // its values read "0.006" and "0.001999" beside the 0.60% of a rate judged on counts.
        var errorRate = P95 with { Name = "error-rate", Preset = "error-rate" };

        Assert.Equal("0.60%", MetricValues.Format(errorRate, MetricKind.CostPerRequest, 0.006));
        Assert.Equal("0.60% (baseline 0.20%, threshold 0.30%)", MetricValues.Figures(errorRate, MetricKind.CostPerRequest, 0.006, 0.002, 0.003));
    }

    [Fact]
    public void Format_AnErrorRateBelowAHundredthOfAPercent_IsNotShownAsNone()
    {
        // A baseline without errors is (0.5 errors) / (requests + 1): "0.10% against a baseline of 0.00%" read as none.
        Assert.Equal("0.00042%", MetricValues.Format(MetricKind.ErrorRate, 4.1666e-6));
        Assert.Equal("0.0049%", MetricValues.Format(MetricKind.ErrorRate, 0.0000494));
        Assert.Equal("0.01%", MetricValues.Format(MetricKind.ErrorRate, 0.00005));
        Assert.Equal("0.00%", MetricValues.Format(MetricKind.ErrorRate, 0));
    }

    [Fact]
    public void Format_ALatencyThatRoundsToASecond_IsInSeconds()
    {
        Assert.Equal("1.00 s", MetricValues.Format(MetricKind.Latency, 0.9996));
        Assert.Equal("999 ms", MetricValues.Format(MetricKind.Latency, 0.999));
    }
}
