namespace RolloutGate.Core.Runbooks;

/// <summary>What a runbook means when it leaves a field out (documented field by field in runbooks/README.md).</summary>
public static class RunbookDefaults
{
    public const string ApiVersion = "rolloutgate/v1";
    public const string Kind = "Runbook";

    public static readonly TimeSpan PreDeployTimeout = TimeSpan.FromSeconds(30);
    public const int HttpExpectStatus = 200;

    public static readonly TimeSpan WatchDuration = TimeSpan.FromHours(24);
    public static readonly TimeSpan WatchInterval = TimeSpan.FromMinutes(1);
    /// <summary>
    /// A week: each interval is then compared with the same time one week earlier, so a Monday with Monday, not with
    /// Sunday, and weekday/weekend traffic is not read as a regression. With less history in Prometheus (a new service,
    /// a short retention) the baseline is what there is, and the reference falls back to the day before.
    /// </summary>
    public static readonly TimeSpan WatchBaseline = TimeSpan.FromDays(7);
    public static readonly TimeSpan MaxBlind = TimeSpan.FromMinutes(30);

    public const RollbackMode Mode = RollbackMode.Recommend;
    public static readonly TimeSpan ApprovalTimeout = TimeSpan.FromMinutes(15);

    /// <summary>
    /// Nobody answered a recommendation: keep the release. RolloutGate only changes traffic on its own when the
    /// runbook says so (<c>mode: auto</c> or <c>onTimeout: rollback</c>), never because a channel was quiet.
    /// </summary>
    public const TimeoutAction OnTimeout = TimeoutAction.Keep;

    /// <summary>
    /// A newer deploy of the service leaves a running watch alone: each change is watched on its own, as it always was.
    /// <c>watch.onNewerDeploy: stop</c> ends it instead.
    /// </summary>
    public const NewerDeployAction OnNewerDeploy = NewerDeployAction.Keep;

    /// <summary>The golden metrics the mesh providers export and the watch knows how to query.</summary>
    public static readonly IReadOnlyList<string> Presets = ["p95-latency", "error-rate", "request-rate", "cost-per-request"];
}
