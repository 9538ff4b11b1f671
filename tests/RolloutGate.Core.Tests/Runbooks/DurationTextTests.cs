using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Tests.Runbooks;

/// <summary>Durations as a runbook writes them, for what people read: a decision's reason, a log line.</summary>
public sealed class DurationTextTests
{
    [Theory]
    [InlineData(0, "0s")]
    [InlineData(200, "200ms")]
    [InlineData(5_438.2928, "5s438ms")]
    [InlineData(15 * 60_000, "15m")]
    [InlineData(90 * 60_000, "1h30m")]
    [InlineData(2 * 86_400_000 + 1_000, "2d1s")]
    [InlineData(0.4, "0s")]
    [InlineData(-90_000, "-1m30s")]
    public void Format_WritesTheUnitsLargestFirst_EachThatIsNotZero_ToTheMillisecond(double milliseconds, string expected) =>
        Assert.Equal(expected, DurationText.Format(TimeSpan.FromMilliseconds(milliseconds)));

    [Theory]
    [InlineData("15m")]
    [InlineData("1h30m")]
    [InlineData("2d")]
    [InlineData("1.5s")]
    [InlineData("500ms")]
    public void Format_OfARunbooksDuration_ReadsBackAsTheSameDuration(string written)
    {
        Assert.True(RunbookValues.TryParseDuration(written, out var duration));
        Assert.True(RunbookValues.TryParseDuration(DurationText.Format(duration), out var again));
        Assert.Equal(duration, again);
    }
}
