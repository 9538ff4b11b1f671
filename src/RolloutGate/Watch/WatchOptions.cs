namespace RolloutGate.Watch;

/// <summary>The <c>RolloutGate:Watch</c> section: how the watch sweeps. The defaults suit production.</summary>
public sealed class WatchOptions
{
    public const string SectionName = "RolloutGate:Watch";

    /// <summary>The Quartz scheduler's name; every replica sharing a database must use the same one.</summary>
    public string SchedulerName { get; set; } = "RolloutGate";

    /// <summary>How long the scheduler waits before polling the job store again when nothing is due (Quartz's minimum is 1s).</summary>
    public TimeSpan IdleWaitTime { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often a replica checks in with the cluster; a replica silent for longer has its sweep recovered by another.</summary>
    public TimeSpan ClusterCheckinInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How often the sweep looks for due watches. Evaluation times are whole multiples of each watch's interval, so this
    /// bounds how late after its t an evaluation starts.
    /// </summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How many due watches one round of the sweep reads and evaluates together.</summary>
    public int BatchSize { get; set; } = 10000;

    /// <summary>
    /// How many new watches one round of the sweep captures the baseline of (a few Prometheus range queries each). A
    /// burst of deploys is captured over several rounds, and the watches already running are evaluated in each of them,
    /// so the burst does not hold their evaluations back.
    /// </summary>
    public int CapturesPerRound { get; set; } = 50;

    /// <summary>How many watches' evaluations are stored per transaction.</summary>
    public int StoreBatchSize { get; set; } = 500;
}
