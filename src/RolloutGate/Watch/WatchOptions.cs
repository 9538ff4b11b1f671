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

    /// <summary>
    /// How long the watch keeps asking again for an interval its metric source cannot answer (Prometheus down or
    /// unreachable) before it stores that interval's evaluations blind, with the source's error in their explanation.
    /// Both must have passed: the time since the interval's t, and the time since the watch's first failed attempt of
    /// this outage (so that a short failure while catching up a backlog of old intervals does not blind them all). An
    /// outage shorter than this is evaluated afterwards, each interval at its own t with real data; a longer one shows
    /// as blind (latest evaluation, audit trail, Slack) and counts towards the runbook's <c>stopRules.maxBlind</c>. An
    /// interval stored blind is not evaluated again. Zero stores an interval blind at its first failed attempt.
    /// The default, 2 minutes, rides out a Prometheus restart or failover (tens of seconds to a couple of minutes,
    /// whatever the watch's interval), retried every 10 s meanwhile, and delays the report of a real outage, and the
    /// stop rule, by no more than that.
    /// </summary>
    public TimeSpan SourceOutageGrace { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// How many days after a deployment's watch is over (its last state change, in a final state) its evaluations are
    /// thinned: the evaluations between verdict changes are deleted, and every evaluation that changed a metric's verdict
    /// (the first included) and each metric's last are kept, with the baseline samples the watch no longer needs. The
    /// audit trail is never touched. 0, the default, keeps every evaluation. A watch every minute leaves about 2.4 MB of
    /// evaluations a deployment (deploy/README.md, "How much the database grows").
    /// </summary>
    public int EvaluationRetentionDays { get; set; }

    /// <summary>
    /// The most <see cref="EvaluationRetentionDays"/> may be, a century: a million days was taken, and every pass then
    /// failed, its cutoff before year 1.
    /// </summary>
    public const int MaxEvaluationRetentionDays = 36500;
}
