namespace RolloutGate.Core.Watch;

/// <summary>
/// When a watch evaluates: at the multiples of its interval since the Unix epoch (for a 1-minute interval, at every whole
/// minute), from the first that is at least one interval after the deploy up to the end of the watch. Every watch with the
/// same interval therefore evaluates at the same times, so one query per preset answers for all of them at once (the
/// batched watch), and the baseline's "same time yesterday" is unaffected (it is matched by time of day, not by index).
/// A watch that was down catches up afterwards, each missed time evaluated at its own t, in order, rather than skipped.
/// </summary>
public static class WatchSchedule
{
    /// <summary>The first evaluation time of a watch: the first multiple of the interval at least one interval after the deploy.</summary>
    public static DateTimeOffset First(DateTimeOffset deployedAt, TimeSpan interval) => Ceiling(deployedAt + interval, interval);

    /// <summary>The evaluation time after <paramref name="lastEvaluated"/>, or the first one when nothing was evaluated yet.</summary>
    public static DateTimeOffset Next(DateTimeOffset deployedAt, TimeSpan interval, DateTimeOffset? lastEvaluated) =>
        lastEvaluated is { } last ? Ceiling(last + interval, interval) : First(deployedAt, interval);

    /// <summary>Whether <paramref name="at"/> is the watch's last evaluation time (the next would lie past <paramref name="until"/>).</summary>
    public static bool IsLast(DateTimeOffset at, TimeSpan interval, DateTimeOffset until) => at + interval > until;

    /// <summary>
    /// The due evaluation times after <paramref name="lastEvaluated"/> (or from the deploy), one interval apart,
    /// up to min(<paramref name="now"/>, <paramref name="until"/>).
    /// </summary>
    public static IReadOnlyList<DateTimeOffset> DueTimes(
        DateTimeOffset deployedAt, TimeSpan interval, DateTimeOffset? lastEvaluated, DateTimeOffset now, DateTimeOffset until)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        var end = now < until ? now : until;
        var due = new List<DateTimeOffset>();
        for (var t = Next(deployedAt, interval, lastEvaluated); t <= end; t += interval)
        {
            due.Add(t);
        }

        return due;
    }

    /// <summary>The smallest multiple of <paramref name="interval"/> since the Unix epoch that is not before <paramref name="time"/>.</summary>
    private static DateTimeOffset Ceiling(DateTimeOffset time, TimeSpan interval)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        var ticks = (time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks + interval.Ticks - 1) / interval.Ticks * interval.Ticks;
        return DateTimeOffset.UnixEpoch.AddTicks(ticks);
    }
}
