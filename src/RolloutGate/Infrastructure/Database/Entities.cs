namespace RolloutGate.Infrastructure.Database;

// Rows as stored. Column names are the snake_case of the property names (see RolloutGateDbContext).

public sealed class RunbookVersionRow
{
    public long Id { get; set; }

    public required string Name { get; set; }

    public int Version { get; set; }

    public required string Sha256 { get; set; }

    public required string Content { get; set; }

    public required string FilePath { get; set; }

    public DateTimeOffset LoadedAt { get; set; }
}

public sealed class DeploymentRow
{
    public required string Id { get; set; }

    public required string Service { get; set; }

    public required string Environment { get; set; }

    public string? Version { get; set; }

    public string? PreviousVersion { get; set; }

    public string? Initiator { get; set; }

    public string? CommitSha { get; set; }

    public string? PipelineUrl { get; set; }

    public required string State { get; set; }

    public long RunbookVersionId { get; set; }

    public RunbookVersionRow RunbookVersion { get; set; } = null!;

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    public DateTimeOffset? DeployedAt { get; set; }

    public DateTimeOffset? WatchStartedAt { get; set; }

    public DateTimeOffset? WatchUntil { get; set; }

    public DateTimeOffset? BaselineFrom { get; set; }

    public DateTimeOffset? BaselineTo { get; set; }

    /// <summary>When the watch found the regression (first move to regressed); null if it never regressed.</summary>
    public DateTimeOffset? RegressedAt { get; set; }

    /// <summary>When the change was rolled back (by RolloutGate or the pipeline); null if it was not.</summary>
    public DateTimeOffset? RolledBackAt { get; set; }

    /// <summary>
    /// The watch's next evaluation time, kept by the watch itself (null until the watch first sees the deployment): how
    /// the watch finds what is due without reading every watching deployment.
    /// </summary>
    public DateTimeOffset? WatchDueAt { get; set; }

    /// <summary>When retention deleted the evaluations between this deployment's verdict changes; null if it has not.</summary>
    public DateTimeOffset? EvaluationsThinnedAt { get; set; }

    /// <summary>
    /// How the change was deployed without the gate's allow: <c>overridden</c> (after a deny) or <c>skipped</c> (with no
    /// predeploy, its runbook's checks not run); null when the gate allowed it or there was nothing to check.
    /// </summary>
    public string? PreDeployGate { get; set; }

    /// <summary>
    /// The failed checks of the deny that was overridden; null unless <see cref="PreDeployGate"/> is overridden. Before
    /// <see cref="GateErroredChecks"/> was kept, the ones that could not run too.
    /// </summary>
    public string[]? GateFailedChecks { get; set; }

    /// <summary>The checks of the overridden deny that could not run (status error); null when it was overridden before they were kept apart.</summary>
    public string[]? GateErroredChecks { get; set; }

    public List<DecisionRow> Decisions { get; set; } = [];
}

public sealed class WebhookDeliveryRow
{
    public required string DeliveryId { get; set; }

    public required string BodySha256 { get; set; }

    public required string DeploymentId { get; set; }

    public required string Event { get; set; }

    public DateTimeOffset ReceivedAt { get; set; }

    public int StatusCode { get; set; }

    public required string ResponseBody { get; set; }
}

public sealed class DecisionRow
{
    public long Id { get; set; }

    public required string DeploymentId { get; set; }

    public DateTimeOffset At { get; set; }

    public required string Kind { get; set; }

    public required string Actor { get; set; }

    public string? Reason { get; set; }
}

public sealed class AuditEventRow
{
    public long Id { get; set; }

    public DateTimeOffset At { get; set; }

    public required string Type { get; set; }

    public string? DeploymentId { get; set; }

    public string? Service { get; set; }

    public string? Actor { get; set; }

    public required string Data { get; set; }

    public required string PrevHash { get; set; }

    public required string Hash { get; set; }
}
