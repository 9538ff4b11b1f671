namespace RolloutGate.Core.Runbooks;

/// <summary>
/// A validated runbook (CONTRACT section 3). Instances only come out of the runbook parser,
/// so every field here has already been checked; durations are parsed, percentages are fractions.
/// </summary>
public sealed record Runbook(
    string Name,
    int Version,
    string Service,
    IReadOnlyList<string> Environments,
    string Owner,
    IReadOnlyList<string> Approvers,
    string DecisionChannel,
    RunbookMesh Mesh,
    PreDeploySpec PreDeploy,
    WatchSpec Watch,
    RollbackSpec Rollback)
{
    /// <summary>
    /// Lowercase hex SHA-256 of the file's text (UTF-8), set by the parser. Recorded next to <see cref="Version"/>
    /// so an edit that forgot to bump the version is still told apart.
    /// </summary>
    public string Sha256 { get; init; } = "";

    /// <summary>
    /// The line of <c>metadata.name</c> in the file, set by the parser: a clash with another file's name
    /// (<see cref="RunbookConflicts"/>) is reported there, the line to change.
    /// </summary>
    public int NameLine { get; init; } = 1;

    /// <summary>The line of <c>spec.service</c> in the file, set by the parser, where a clash of service and environment is reported.</summary>
    public int ServiceLine { get; init; } = 1;

    public bool Governs(string service, string environment) =>
        string.Equals(Service, service, StringComparison.Ordinal)
        && Environments.Contains(environment, StringComparer.Ordinal);

    /// <summary>Whether a Slack user may decide for this service: its owner or one of its approvers.</summary>
    public bool MayDecide(string userId) =>
        string.Equals(Owner, userId, StringComparison.Ordinal) || Approvers.Contains(userId, StringComparer.Ordinal);
}

public enum MeshProvider
{
    None,
    Istio,
    Linkerd,
}

/// <summary>
/// <c>spec.mesh</c> as written: its namespace and workload may hold <c>{{ environment }}</c> (<c>shop-{{ environment }}</c>),
/// so they name nothing in the cluster until a change's environment is known. Everything that addresses the workload (the
/// presets' PromQL, the queries' <c>{{ namespace }}</c>, the Kubernetes rollback actions) takes the <see cref="MeshSpec"/>
/// of <see cref="For"/>; the parser has checked the namespace it gives for every one of the runbook's environments.
/// </summary>
public sealed record RunbookMesh(MeshProvider Provider, string? Namespace, string? Workload)
{
    /// <summary>Whether the namespace or the workload depends on the change's environment.</summary>
    public bool UsesEnvironment => QueryPlaceholders.HasAny(Namespace) || QueryPlaceholders.HasAny(Workload);

    /// <summary>The mesh of a change in <paramref name="environment"/>: its namespace and workload rendered for it.</summary>
    public MeshSpec For(string environment) =>
        new(Provider, QueryPlaceholders.RenderName(Namespace, environment), QueryPlaceholders.RenderName(Workload, environment));
}

/// <summary>The mesh of one change: the namespace and workload its presets select and its rollback acts on.</summary>
public sealed record MeshSpec(MeshProvider Provider, string? Namespace, string? Workload);

public sealed record PreDeploySpec(TimeSpan Timeout, IReadOnlyList<CheckSpec> Checks);

/// <summary>One pre-deploy check; exactly one of the kind-specific members is set.</summary>
public sealed record CheckSpec(
    string Name,
    PrometheusCheckSpec? Prometheus = null,
    AlertmanagerCheckSpec? Alertmanager = null,
    FreezeCheckSpec? Freeze = null,
    HttpCheckSpec? Http = null)
{
    public string Kind => Prometheus is not null ? "prometheus"
        : Alertmanager is not null ? "alertmanager"
        : Freeze is not null ? "freeze"
        : "http";
}

public sealed record PrometheusCheckSpec(string Query, double? Min, double? Max);

public sealed record AlertmanagerCheckSpec(IReadOnlyList<string> Matchers);

/// <summary>Weekly windows such as "Fri 16:00 - Mon 08:00" and one-off dated windows, in a named time zone.</summary>
public sealed record FreezeCheckSpec(string TimeZone, IReadOnlyList<string> Windows, IReadOnlyList<DatedWindow> Dates)
{
    /// <summary><see cref="Windows"/> already parsed (same order), so the freeze check need not parse text again.</summary>
    public IReadOnlyList<WeeklyWindow> WeeklyWindows { get; init; } = [];
}

/// <summary>
/// A one-off freeze in the freeze's time zone (<see cref="DateTime.Kind"/> is Unspecified: local wall-clock time).
/// <see cref="To"/> is exclusive; a date-only "to" in the file means through the end of that day, so it is stored as
/// the next day's midnight.
/// </summary>
public sealed record DatedWindow(DateTime From, DateTime To, string? Reason);

public sealed record HttpCheckSpec(string Url, int ExpectStatus, string? BodyContains, TimeSpan? Timeout);

public sealed record WatchSpec(
    TimeSpan Duration,
    TimeSpan Interval,
    TimeSpan Baseline,
    IReadOnlyList<MetricSpec> Metrics,
    StopRules StopRules)
{
    /// <summary>
    /// How long after the deploy the metrics are not compared with their baseline (<c>watch.warmup</c>, zero by default):
    /// new pods start with cold caches and a cold JIT, so a short burst of slow requests right after a rollout is not
    /// the change's steady behaviour. An interval ending within it is evaluated against <c>max</c> only (the absolute
    /// limit needs no baseline, and a change that fails outright should not wait); the tests against the baseline begin
    /// with the first interval after it. Argo Rollouts' <c>initialDelay</c> and Kayenta's warm-up are the same idea.
    /// </summary>
    public TimeSpan Warmup { get; init; }

    /// <summary>When the <see cref="Warmup"/> after a deploy at <paramref name="deployedAt"/> ends; null without one.</summary>
    public DateTimeOffset? WarmUpUntil(DateTimeOffset deployedAt) => Warmup > TimeSpan.Zero ? deployedAt + Warmup : null;

    /// <summary>
    /// The IANA time zone whose clock the service's users follow (<c>watch.timezone</c>), null for UTC (the default): a
    /// baseline of a day or more is then compared at the same local time of day (or of the week), so the hour that traffic
    /// moves in UTC when the clocks change is not read as a regression. See <see cref="Analysis.BaselineWindow"/>.
    /// </summary>
    public string? TimeZone { get; init; }

    /// <summary>
    /// What a deploy of another change of the same service and environment does to this change's watch
    /// (<c>watch.onNewerDeploy</c>): <see cref="NewerDeployAction.Keep"/> (the default) watches on;
    /// <see cref="NewerDeployAction.Stop"/> ends it, since the newer deploy replaced the version it judges.
    /// </summary>
    public NewerDeployAction OnNewerDeploy { get; init; } = RunbookDefaults.OnNewerDeploy;
}

/// <summary>What a deploy of a newer change of the same service and environment does to a running watch.</summary>
public enum NewerDeployAction
{
    /// <summary>The watch goes on, beside the newer change's own.</summary>
    Keep,

    /// <summary>The watch ends (a <c>stop</c> decision by RolloutGate), and so does any rollback it recommended.</summary>
    Stop,
}

/// <summary>
/// A watched metric: a preset golden metric of the mesh or a custom PromQL query.
/// <see cref="MaxIncrease"/> is a fraction (20% = 0.20); <see cref="Max"/> and <see cref="Min"/> are in the metric's
/// base unit (seconds for latency, a fraction for error rate).
/// </summary>
public sealed record MetricSpec(
    string Name,
    string? Preset,
    string? Query,
    double? Max,
    double? MaxIncrease,
    Pricing? Pricing)
{
    /// <summary>
    /// Which way a custom query's value gets worse (<c>worse:</c>, <see cref="Runbooks.Worse.Higher"/> unless written).
    /// With <see cref="Runbooks.Worse.Lower"/> (orders per minute, a cache hit ratio) its <see cref="MaxIncrease"/> watches
    /// for a drop below the baseline and its <see cref="Max"/> stays an upper limit, as the request-rate preset reads them.
    /// The presets' direction is fixed, so the parser refuses the field on them.
    /// </summary>
    public Worse Worse { get; init; } = Worse.Higher;

    /// <summary>
    /// The absolute floor (<c>min:</c>), null unless written: several intervals in a row below it are a breach, whichever
    /// way the metric gets worse, as <see cref="Max"/> is its absolute ceiling (orders per minute that must never fall below
    /// 50, a p95 latency near 0 because every request fails fast). The parser keeps it at or below <see cref="Max"/>.
    /// </summary>
    public double? Min { get; init; }
}

/// <summary>Which way a watched metric gets worse: a rise (latency, errors, cost) or a drop (traffic, orders, hit ratio).</summary>
public enum Worse
{
    Higher,
    Lower,
}

public sealed record Pricing(double CpuCoreHour, double MemoryGiBHour);

/// <summary>How long the watch tolerates having no data before it stops the automation and says so.</summary>
public sealed record StopRules(TimeSpan MaxBlind);

public enum RollbackMode
{
    Recommend,
    Auto,
}

public enum TimeoutAction
{
    Rollback,
    Keep,
}

public sealed record RollbackSpec(RollbackMode Mode, TimeSpan ApprovalTimeout, TimeoutAction OnTimeout, RollbackAction? Action);

/// <summary>Where a rollback acts; exactly one member is set.</summary>
public sealed record RollbackAction(
    IstioRollback? Istio = null,
    LinkerdRollback? Linkerd = null,
    SmiRollback? Smi = null,
    ArgoRolloutsRollback? ArgoRollouts = null,
    WebhookRollback? Webhook = null);

public sealed record IstioRollback(string VirtualService, string StableSubset);

public sealed record LinkerdRollback(string HttpRoute, string StableBackend);

public sealed record SmiRollback(string TrafficSplit, string StableBackend);

public sealed record ArgoRolloutsRollback(string Rollout);

public sealed record WebhookRollback(string Url, string Secret);
