namespace RolloutGate.Tests.Infrastructure;

/// <summary>
/// The system clock moved by an offset: it runs at the real pace (timers and timestamps are the system's), from where the
/// test puts it. A test can place the service at a time of its choosing and move it forward as an outage goes on.
/// </summary>
public sealed class ShiftedClock(DateTimeOffset now) : TimeProvider
{
    private long offsetTicks = (now - System.GetUtcNow()).Ticks;

    /// <summary>The time this clock says; setting it moves the clock there, from where it runs on.</summary>
    public DateTimeOffset Now
    {
        get => GetUtcNow();
        set => Interlocked.Exchange(ref offsetTicks, (value - System.GetUtcNow()).Ticks);
    }

    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + TimeSpan.FromTicks(Interlocked.Read(ref offsetTicks));
}
