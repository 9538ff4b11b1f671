using RolloutGate.Core.Analysis;

namespace RolloutGate.Core.Tests.Analysis;

public sealed class ReferenceErrorTests
{
    [Theory]
    [InlineData(1, 13)]
    [InlineData(5, 13)]
    [InlineData(13, 13)]
    [InlineData(14, 13)]
    [InlineData(288, 13)]
    [InlineData(40, 1)]
    [InlineData(1440, 61)]
    public void OfSum_OfOverlappingWindows_IsTheSumOfTheirCovariances(int n, int span)
    {
        var error = new ReferenceError(0.1, span);
        var pairs = 0.0;
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < n; j++)
            {
                pairs += Math.Max(0, 1 - Math.Abs(i - j) / (double)span);
            }
        }

        Assert.Equal(0.1 * pairs, error.OfSum(n), 6);
        Assert.Equal(0.1 * span, error.LongRun!.Value, 12);
    }

    [Fact]
    public void OfSum_OfASharedError_GrowsWithTheSquareOfTheLooks()
    {
        var error = new ReferenceError(1.0 / 120, null);

        Assert.True(error.IsShared);
        Assert.Equal(1440.0 * 1440 / 120, error.OfSum(1440), 9);
        Assert.Null(error.LongRun);
        Assert.Equal(0, ReferenceError.None.OfSum(1440));
        Assert.False(ReferenceError.None.IsShared);
    }

    [Theory]
    [InlineData(5, 24, false, 13, 13)] // one day at 5-minute steps: each ±30-minute window holds 13 samples, 13 looks wide
    [InlineData(1, 24, false, 61, 61)]
    [InlineData(5, 72, false, 39, 13)] // three days: the daily window pools three days' samples
    [InlineData(5, 168, true, 13, 13)] // a week: the weekly reference reads one week's window
    public void SeasonalBaseline_ReferenceError_IsTheWindowMediansVarianceAndWidth(int stepMinutes, int hours, bool weekly, double perWindow, int span)
    {
        var from = new DateTimeOffset(2026, 3, 2, 0, 0, 0, TimeSpan.Zero);
        var samples = Enumerable.Range(0, hours * 60 / stepMinutes)
            .Select(i => new Observation(from.AddMinutes(i * stepMinutes), 0.2 * (1 + 0.1 * Math.Sin(i)), 1000))
            .ToList();

        var baseline = BaselineWindow.From(MetricKind.Latency, samples);

        Assert.Equal(weekly, baseline.IsWeekly);
        Assert.Equal(span, baseline.ReferenceError.Span);
        Assert.Equal(Math.PI / 2 / perWindow, baseline.ReferenceError.Variance, 3);
    }

    [Fact]
    public void FlatBaseline_ReferenceError_IsSharedWithVarianceOneOverItsSamples()
    {
        var from = new DateTimeOffset(2026, 3, 2, 0, 0, 0, TimeSpan.Zero);
        var baseline = BaselineWindow.From(MetricKind.Latency,
            Enumerable.Range(0, 120).Select(i => new Observation(from.AddMinutes(i), 0.2 * (1 + 0.1 * Math.Sin(i)), 1000)).ToList());

        Assert.False(baseline.IsSeasonal);
        Assert.True(baseline.ReferenceError.IsShared);
        Assert.Equal(1.0 / 120, baseline.ReferenceError.Variance, 12);
    }
}
