namespace RolloutGate.Core.Watch;

/// <summary>
/// When a watch evaluates: every interval after the deploy, up to the end of the watch. A fire evaluates every time that
/// is due and not yet evaluated, each at its own time and in order, so a watch that was down catches up afterwards
/// rather than skipping what it missed.
/// </summary>
public static class WatchSchedule
{
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
        for (var t = (lastEvaluated ?? deployedAt) + interval; t <= end; t += interval)
        {
            due.Add(t);
        }

        return due;
    }
}
