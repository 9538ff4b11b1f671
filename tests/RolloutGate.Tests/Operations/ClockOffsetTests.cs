using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Operations;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Operations;

/// <summary>
/// A replica measures how far its clock is from the database's: the offset is on /metrics, and beyond the bound the log
/// warns, saying which way. The replica's clock is the host's TimeProvider, shifted here as a node without NTP would be.
/// </summary>
public sealed class ClockOffsetTests
{
    [Theory]
    [InlineData(40, "ahead of")]
    [InlineData(-40, "behind")]
    public async Task ReplicaClockFortySecondsOff_TheOffsetIsExposedAndTheLogWarns(int offsetSeconds, string direction)
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var host = new RolloutGateHost(database, time: new ShiftedClock(TimeProvider.System.GetUtcNow().AddSeconds(offsetSeconds)));
        using var client = host.CreateClient();

        var measured = await host.Services.GetRequiredService<DatabaseClockOffset>().MeasureAsync(CancellationToken.None);

        // Within half the query's round trip (and the test's own reading of the clock), which is well under a second here.
        Assert.InRange(measured.Offset.TotalSeconds, offsetSeconds - 1, offsetSeconds + 1);
        var exposed = MetricsScrape.Sample(await client.GetStringAsync(new Uri("/metrics", UriKind.Relative)), "rolloutgate_clock_offset_seconds");
        Assert.InRange(exposed!.Value, offsetSeconds - 1, offsetSeconds + 1);
        Assert.Contains(host.Logs.Lines, line => line.StartsWith("Warning ", StringComparison.Ordinal)
            && line.Contains($"This replica's clock is 40.0 s {direction} the database's", StringComparison.Ordinal)
            && line.Contains("beyond 5 s", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ReplicaClockAsTheDatabases_NoWarning()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var host = new RolloutGateHost(database);
        using var client = host.CreateClient();

        var measured = await host.Services.GetRequiredService<DatabaseClockOffset>().MeasureAsync(CancellationToken.None);

        Assert.InRange(measured.Offset.TotalSeconds, -1, 1);
        Assert.DoesNotContain(host.Logs.Lines, line => line.Contains("This replica's clock is", StringComparison.Ordinal));
    }
}
