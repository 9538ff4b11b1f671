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

    /// <summary>
    /// A cost per request is a tiny plain number (a runbook's pricing names no currency): "1.2E-07" was misread or not read
    /// at all in explanations, messages and the dashboard. Fixed notation with four significant digits, and as many more as
    /// it takes to tell a value from its limit; a custom query's numbers alike, large ones without an exponent either.
    /// </summary>
    [Fact]
    public void Format_APlainNumber_IsInFixedNotation()
    {
        var cost = P95 with { Name = "cost-per-request", Preset = "cost-per-request" };

        Assert.Equal("0.00000012", MetricValues.Format(MetricKind.CostPerRequest, 1.2e-7));
        Assert.Equal("0.0000001235", MetricValues.Format(MetricKind.CostPerRequest, 1.23456e-7));
        Assert.Equal("0.00000012 (baseline 0.0000001, threshold 0.000000115)", MetricValues.Figures(cost, MetricKind.CostPerRequest, 1.2e-7, 1e-7, 1.15e-7));
        Assert.Equal("0.00000012346", MetricValues.Format(cost, MetricKind.CostPerRequest, 1.23456e-7, 1));
        Assert.Equal(1, MetricValues.DigitsApart(cost, MetricKind.CostPerRequest, 1.2346e-7, 1.2352e-7));
        Assert.Equal("0.0042", MetricValues.Format(MetricKind.CostPerRequest, 0.0042));
        Assert.Equal("1234568", MetricValues.Format(Custom, MetricKind.Latency, 1234567.8));
        Assert.Equal("-0.00005", MetricValues.Format(Custom, MetricKind.Latency, -5e-5));
        Assert.Equal("0", MetricValues.Format(MetricKind.CostPerRequest, 0));
        // Below what fixed notation can show with four digits, the exponent stays rather than a 0 that is not one.
        Assert.Equal("1.2E-14", MetricValues.Format(MetricKind.CostPerRequest, 1.2e-14));
    }

    [Fact]
    public void Format_ALatencyThatRoundsToASecond_IsInSeconds()
    {
        Assert.Equal("1.00 s", MetricValues.Format(MetricKind.Latency, 0.9996));
        Assert.Equal("999 ms", MetricValues.Format(MetricKind.Latency, 0.999));
    }
}
