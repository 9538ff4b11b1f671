using Npgsql;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Operations;

/// <summary>
/// How far this replica's clock (its <see cref="TimeProvider"/>) is from the database's, measured at start and every
/// <see cref="Interval"/>: <c>SELECT clock_timestamp()</c> between two readings of the replica's clock, the offset taken
/// from their midpoint, give or take half the round trip. Leases do not depend on it: rollback claims and the Slack
/// outbox's claims are dated and compared on the database's clock (see <see cref="Rollbacks.RollbackDispatcher"/>), so a
/// replica whose clock is off cannot take over a live claim. What still runs on the replica's clock: the watch's t (a
/// replica ahead evaluates a minute before its data is complete, and its rolloutgate_watch_behind_seconds reads high;
/// one behind evaluates late), the 5-minute windows of signed webhooks and of Slack's requests (a replica off by that
/// much refuses good ones), Slack retry times. Those stay on the replica's clock because tests, backtests and the demo
/// place the service at a time of their choosing through its TimeProvider.
/// So an offset beyond <see cref="Bound"/> is logged as a warning at every measurement, and exposed as
/// <c>rolloutgate_clock_offset_seconds</c> for the <c>RolloutGateClockOffset</c> alert; nothing is refused for it.
/// </summary>
public sealed partial class DatabaseClockOffset(
    NpgsqlDataSource dataSource, TimeProvider time, DatabaseOutageLog outage, ILogger<DatabaseClockOffset> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    /// <summary>Well inside what the clock serves (a watch interval of a minute, the 5-minute signature windows), and well above what NTP keeps.</summary>
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(5);

    private volatile Measurement? latest;

    /// <summary>The replica's clock minus the database's, as last measured; null before the first measurement.</summary>
    public Measurement? Latest => latest;

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        outage.RunEveryAsync("Clock offset", Interval, time, MeasureAsync, ex => LogMeasureFailed(logger, ex), stoppingToken);

    /// <summary>Measures the offset once, logs a warning when it is beyond <see cref="Bound"/>, and keeps it for the metric.</summary>
    public async Task<Measurement> MeasureAsync(CancellationToken cancellationToken)
    {
        // The connection is open before the first reading, so the bracket holds the query's round trip only.
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand("SELECT clock_timestamp()", connection);
        var before = time.GetUtcNow();
        var database = (DateTime)(await command.ExecuteScalarAsync(cancellationToken))!;
        var after = time.GetUtcNow();
        var uncertainty = (after - before) / 2;
        var measured = new Measurement(before + uncertainty - new DateTimeOffset(database, TimeSpan.Zero), uncertainty);
        latest = measured;
        if (measured.Offset.Duration() - uncertainty > Bound)
        {
            LogBeyondBound(logger, measured.Offset.Duration().TotalSeconds, measured.Offset > TimeSpan.Zero ? "ahead of" : "behind",
                uncertainty.TotalMilliseconds, Bound.TotalSeconds);
        }

        return measured;
    }

    /// <summary>The replica's clock minus the database's, and how far that may be off (half the query's round trip).</summary>
    public sealed record Measurement(TimeSpan Offset, TimeSpan Uncertainty);

    [LoggerMessage(EventId = 1901, Level = LogLevel.Warning, Message = "This replica's clock is {OffsetSeconds:0.0} s {Direction} the database's (±{UncertaintyMs:0} ms), beyond {BoundSeconds:0} s: the watch's evaluation times and the 5-minute windows of signed webhooks and Slack requests are off by as much (leases are not: they run on the database's clock). Run NTP on this node (chronyd, systemd-timesyncd)")]
    private static partial void LogBeyondBound(ILogger logger, double offsetSeconds, string direction, double uncertaintyMs, double boundSeconds);

    [LoggerMessage(EventId = 1902, Level = LogLevel.Error, Message = "Measuring the clock offset from the database failed; will retry")]
    private static partial void LogMeasureFailed(ILogger logger, Exception exception);
}
