using System.Text.Json.Serialization;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;

namespace RolloutGate.Deployments;

/// <summary>A deployment as CONTRACT section 5 shows it.</summary>
public sealed record DeploymentView(
    string DeploymentId,
    string Service,
    string Environment,
    string? Version,
    string? PreviousVersion,
    string State,
    string? Initiator,
    string? Commit,
    string? PipelineUrl,
    RunbookRef Runbook,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    WatchView? Watch,
    EvaluationView? LatestEvaluation,
    IReadOnlyList<DecisionView> Decisions)
{
    public static DeploymentView From(DeploymentRow row, EvaluationView? latestEvaluation) => new(
        row.Id,
        row.Service,
        row.Environment,
        row.Version,
        row.PreviousVersion,
        row.State,
        row.Initiator,
        row.CommitSha,
        row.PipelineUrl,
        new RunbookRef(row.RunbookVersion.Name, row.RunbookVersion.Version, row.RunbookVersion.Sha256),
        row.CreatedAt,
        row.UpdatedAt,
        row.WatchStartedAt is { } started
            ? new WatchView(started, row.WatchUntil!.Value, new BaselineView(row.BaselineFrom!.Value, row.BaselineTo!.Value))
            : null,
        latestEvaluation,
        row.Decisions.OrderBy(d => d.At).ThenBy(d => d.Id).Select(d => new DecisionView(d.At, d.Kind, d.Actor, d.Reason)).ToList());
}

public sealed record WatchView(DateTimeOffset StartedAt, DateTimeOffset Until, BaselineView Baseline);

public sealed record BaselineView(DateTimeOffset From, DateTimeOffset To);

public sealed record EvaluationView(DateTimeOffset At, IReadOnlyList<MetricEvaluationView> Metrics);

public sealed record MetricEvaluationView(
    string Name,
    double? Value,
    double? Baseline,
    double? Threshold,
    string Verdict,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Explanation);

public sealed record DecisionView(DateTimeOffset At, string Kind, string Actor, string? Reason);

/// <summary>A page of deployments, newest first; <see cref="Next"/> is the cursor to pass as <c>after</c> for the following page.</summary>
public sealed record DeploymentPage(IReadOnlyList<DeploymentView> Deployments, string? Next);

/// <summary>The body of stop, rollback and dismiss over HTTP.</summary>
public sealed record OperatorRequest(string? Actor, string? Reason);
