using System.Text.Json.Serialization;
using Microsoft.EntityFrameworkCore;
using RolloutGate.Core.Deployments;
using RolloutGate.Core.Watch;
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
    IReadOnlyList<DecisionView> Decisions,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] RollbackActionView? RollbackAction,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] PreDeployGateView? PreDeployGate)
{
    /// <summary>
    /// The deployment as the API shows it. <paramref name="interval"/> is its runbook version's <c>watch.interval</c> (null if
    /// that version cannot be read); <paramref name="now"/> the server's clock, the one the watch runs on.
    /// </summary>
    public static DeploymentView From(
        DeploymentRow row, EvaluationView? latestEvaluation, RollbackActionView? rollbackAction, TimeSpan? interval, DateTimeOffset now) => new(
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
        WatchView.Of(row, latestEvaluation, interval, now),
        latestEvaluation,
        row.Decisions.OrderBy(d => d.At).ThenBy(d => d.Id).Select(d => new DecisionView(d.At, d.Kind, d.Actor, d.Reason)).ToList(),
        rollbackAction,
        PreDeployGateView.Of(row));
}

/// <summary>
/// How a deployment was deployed without the gate's allow (<see cref="PreDeployGateBypass"/>): <c>overridden</c> with the
/// checks that failed and those that could not run, or <c>skipped</c>, and the one line that says so. Absent when the gate allowed it.
/// </summary>
public sealed record PreDeployGateView(string Status, IReadOnlyList<string> FailedChecks, IReadOnlyList<string> ErroredChecks, string Summary)
{
    public static PreDeployGateView? Of(DeploymentRow row) =>
        PreDeployGateBypass.Describe(row) is { } summary
            ? new PreDeployGateView(row.PreDeployGate!, row.GateFailedChecks ?? [], row.GateErroredChecks ?? [], summary)
            : null;
}

/// <summary>
/// A deployment's watch. While it is watching, <see cref="NextEvaluationDue"/> is the time t of the next interval the watch
/// evaluates (the one after the latest evaluation, or the first), and <see cref="BehindSeconds"/> how long that t has
/// passed on the server's clock, 0 before it: a few seconds normally, up to the source outage grace (2 minutes) while
/// Prometheus cannot answer; more when no replica runs the watch, or its sweep is stuck or cannot keep up
/// (<c>rolloutgate_watch_behind_seconds</c> shows the same of the watch furthest behind, from the sweep's own record of
/// what is due). Both are absent once the watch has ended.
/// </summary>
public sealed record WatchView(
    DateTimeOffset StartedAt,
    DateTimeOffset Until,
    BaselineView Baseline,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? IntervalSeconds,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] DateTimeOffset? NextEvaluationDue,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? BehindSeconds)
{
    /// <summary>The watch of <paramref name="row"/>, null if it never started; the schedule is <see cref="WatchSchedule"/>'s, as the sweep's.</summary>
    public static WatchView? Of(DeploymentRow row, EvaluationView? latestEvaluation, TimeSpan? interval, DateTimeOffset now)
    {
        if (row.WatchStartedAt is not { } started)
        {
            return null;
        }

        var due = row.State == DeploymentState.Watching && row.DeployedAt is { } deployed && interval is { } every
            ? WatchSchedule.Next(deployed, every, latestEvaluation?.At)
            : (DateTimeOffset?)null;
        return new WatchView(
            started, row.WatchUntil!.Value, new BaselineView(row.BaselineFrom!.Value, row.BaselineTo!.Value), interval?.TotalSeconds, due,
            due is { } at ? (long)Math.Max(0, Math.Floor((now - at).TotalSeconds)) : null);
    }
}

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

/// <summary>
/// The rollback action of a deployment rolling back or rolled back by RolloutGate: <c>under way</c>, <c>succeeded</c> or
/// <c>failed</c>, what it acted on and what came of it (for a failure, why: the Kubernetes API's own words, say), as the
/// audit trail and the decision channel tell it. A failed one leaves the deployment <c>rolling-back</c> for a person.
/// </summary>
public sealed record RollbackActionView(
    DateTimeOffset StartedAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] DateTimeOffset? FinishedAt,
    string Outcome,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Action,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Detail,
    int Attempts)
{
    /// <summary>The rollback actions of these deployments, in one query; those without one are absent.</summary>
    public static async Task<Dictionary<string, RollbackActionView>> ForAsync(
        RolloutGateDbContext db, IReadOnlyCollection<string> deploymentIds, CancellationToken cancellationToken)
    {
        var ids = deploymentIds.ToArray();
        var rows = await db.Database.SqlQuery<Row>($"""
            SELECT deployment_id AS "DeploymentId", claimed_at AS "ClaimedAt", finished_at AS "FinishedAt", succeeded AS "Succeeded",
                   action AS "Action", detail AS "Detail", attempts AS "Attempts"
            FROM rollback_actions WHERE deployment_id = ANY({ids})
            """).ToListAsync(cancellationToken);
        return rows.ToDictionary(
            r => r.DeploymentId,
            r => new RollbackActionView(r.ClaimedAt, r.FinishedAt, r.FinishedAt is null ? "under way" : r.Succeeded == true ? "succeeded" : "failed",
                r.Action, r.Detail, r.Attempts),
            StringComparer.Ordinal);
    }

    private sealed record Row(
        string DeploymentId, DateTimeOffset ClaimedAt, DateTimeOffset? FinishedAt, bool? Succeeded, string? Action, string? Detail, int Attempts);
}

/// <summary>A page of deployments, newest first; <see cref="Next"/> is the cursor to pass as <c>after</c> for the following page.</summary>
public sealed record DeploymentPage(IReadOnlyList<DeploymentView> Deployments, string? Next);

/// <summary>The body of stop, rollback and dismiss over HTTP.</summary>
public sealed record OperatorRequest(string? Actor, string? Reason);
