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

    /// <summary>How often every deployment in state watching is checked for its job (also done once at start-up).</summary>
    public TimeSpan ReconcileInterval { get; set; } = TimeSpan.FromMinutes(1);
}
