namespace RolloutGate.Watch;

/// <summary>The <c>RolloutGate:Watch</c> section: how the watch's scheduler polls. The defaults suit production.</summary>
public sealed class WatchOptions
{
    public const string SectionName = "RolloutGate:Watch";

    /// <summary>The Quartz scheduler's name; every replica sharing a database must use the same one.</summary>
    public string SchedulerName { get; set; } = "RolloutGate";

    /// <summary>How long the scheduler waits before polling the job store again when nothing is due (Quartz's minimum is 1s).</summary>
    public TimeSpan IdleWaitTime { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often a replica checks in with the cluster; a replica silent for longer has its jobs recovered by another.</summary>
    public TimeSpan ClusterCheckinInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How many watch fires may run at once on this replica (Quartz's thread pool, whose own default is 10; Quartz also
    /// acquires up to this many due triggers per round trip to the job store). A fire mostly waits on Prometheus and
    /// PostgreSQL, so more than the cores pays; each fire holds a database connection while it stores, so keep it well
    /// under the connection pool's size.
    /// </summary>
    public int MaxConcurrency { get; set; } = 10;

    /// <summary>How often every deployment in state watching is checked for its job (also done once at start-up).</summary>
    public TimeSpan ReconcileInterval { get; set; } = TimeSpan.FromMinutes(1);
}
