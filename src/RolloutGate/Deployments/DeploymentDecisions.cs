using Microsoft.EntityFrameworkCore;
using RolloutGate.Api;
using RolloutGate.Audit;
using RolloutGate.Core.Deployments;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Webhooks;

namespace RolloutGate.Deployments;

/// <summary>What a person (over HTTP or, later, Slack) may decide about a deployment.</summary>
public static class DecisionKinds
{
    public const string Stop = "stop";
    public const string Rollback = "rollback";
    public const string Dismiss = "dismiss";

    public static DeploymentTrigger Trigger(string kind) => kind switch
    {
        Stop => DeploymentTrigger.Stop,
        Rollback => DeploymentTrigger.Rollback,
        Dismiss => DeploymentTrigger.Dismiss,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown decision"),
    };
}

/// <summary>
/// Records a human decision: the decision row, the state change and their audit events in one transaction.
/// An illegal decision for the deployment's state is refused and changes nothing. One decision changes no state:
/// <c>rollback</c> on a deployment still <c>rolling-back</c> because its rollback action failed retries that action
/// (the failed claim is released for <see cref="Rollbacks.RollbackDispatcher"/>, which carries it out once more).
/// </summary>
public sealed class DeploymentDecisions(RolloutGateDbContext db, AuditTrail audit, TimeProvider time)
{
    /// <summary>The action a runbook without one records (<see cref="Rollbacks.RollbackDispatcher"/>): nothing to retry.</summary>
    public const string NoActionConfigured = "none configured";

    /// <summary>
    /// The action recorded for a change whose stored runbook version this RolloutGate cannot read (see
    /// <see cref="Runbooks.StoredRunbookUnreadableException"/>): which action its runbook names is unknown, so a retry
    /// would only record the same failure again.
    /// </summary>
    public const string UnreadableRunbook = "unknown (runbook unreadable)";

    /// <summary>The failed rollback actions that deciding the rollback again cannot carry out: the retry releases none of them.</summary>
    private static readonly string[] NotRetried = [NoActionConfigured, UnreadableRunbook];

    /// <summary>Whether a failed rollback <paramref name="action"/> is one that deciding the rollback again cannot carry out.</summary>
    public static bool CannotRetry(string? action) => NotRetried.Contains(action);

    /// <summary>
    /// The longest actor accepted, as the webhook's fields. An actor is indexed (audit_events_actor, a btree), and a btree
    /// entry cannot exceed about a third of a page, 2,704 bytes (https://www.postgresql.org/docs/current/btree.html):
    /// past it PostgreSQL refuses the whole decision with an error.
    /// </summary>
    public const int MaxActorLength = WebhookRequestParser.MaxFieldLength;

    public async Task<IResult> DecideAsync(string deploymentId, string kind, string actor, string? reason, string source, CancellationToken cancellationToken)
    {
        if (actor.Length > MaxActorLength)
        {
            return Problems.BadRequest($"actor is {actor.Length} characters long; at most {MaxActorLength} are accepted");
        }

        if (source != Decisions.DecisionPolicy.TimeoutSource && string.Equals(actor, Decisions.DecisionPolicy.AutomaticActor, StringComparison.OrdinalIgnoreCase))
        {
            // The reports count a rollback by this actor as automatic and every other decision as a person's, as the
            // audit trail reads: a person deciding under RolloutGate's own name would be counted, and read, as RolloutGate.
            return Problems.BadRequest(
                $"actor '{actor}' is the name RolloutGate decides under (automatic rollbacks, approval time-outs); give the name of the person deciding");
        }

        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        // FOR UPDATE: two people deciding at once are serialised; the second sees the first one's state.
        var deployment = await db.Deployments
            .FromSql($"SELECT * FROM deployments WHERE id = {deploymentId} FOR UPDATE")
            .SingleOrDefaultAsync(cancellationToken);
        if (deployment is null)
        {
            return Problems.NotFound($"deployment '{deploymentId}' is unknown");
        }

        var now = time.GetUtcNow();
        // A time-out decides for nobody who answered: one that comes to a deployment a person decided meanwhile (its list
        // was read before) finds the rollback decided, and is refused rather than retrying an action that failed since.
        if (kind == DecisionKinds.Rollback && deployment.State == DeploymentState.RollingBack && source != Decisions.DecisionPolicy.TimeoutSource)
        {
            if (!await RetryRollbackAsync(deployment, actor, reason, source, now, cancellationToken))
            {
                return await RefuseAsync(deployment, kind, actor, reason, source, await WhyNoRetryAsync(deployment.Id, cancellationToken), cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            return TypedResults.Ok(new StateResponse(deployment.Id, deployment.State));
        }

        var change = DeploymentStateMachine.Next(deployment.State, DecisionKinds.Trigger(kind));
        if (!change.IsAllowed)
        {
            return await RefuseAsync(deployment, kind, actor, reason, source, change.Reason!, cancellationToken);
        }

        var entries = Record(db, deployment, kind, actor, reason, new { kind, reason, source }, now);
        await db.SaveChangesAsync(cancellationToken);
        await audit.AppendAsync(db, entries, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return TypedResults.Ok(new StateResponse(deployment.Id, deployment.State));
    }

    /// <summary>
    /// A decision taken on <paramref name="deployment"/>, whoever took it (a person, a time-out, the watch, a newer deploy):
    /// its row is added to <paramref name="db"/> and the deployment moved by the decision's trigger; returns the audit
    /// events that record both, the decision (with <paramref name="data"/>) first, for the caller to append once saved.
    /// The state machine must allow the move (<see cref="WebhookProcessor.ChangeState"/> throws otherwise).
    /// </summary>
    public static IReadOnlyList<AuditEntry> Record(
        RolloutGateDbContext db, DeploymentRow deployment, string kind, string actor, string? reason, object data, DateTimeOffset now)
    {
        db.Decisions.Add(new DecisionRow { DeploymentId = deployment.Id, At = now, Kind = kind, Actor = actor, Reason = reason });
        var stateChange = WebhookProcessor.ChangeState(deployment, DecisionKinds.Trigger(kind), actor, now);
        return [new AuditEntry(AuditEventTypes.Decision, deployment.Id, deployment.Service, actor, data), stateChange];
    }

    /// <summary>
    /// A decision the deployment's state does not allow: 409, nothing changed, and on the record as
    /// <see cref="AuditEventTypes.DecisionRefused"/> with who asked and why not. Slack records its own (a
    /// <see cref="AuditEventTypes.SlackAction"/> with no effect), so a decision from there is not recorded twice.
    /// </summary>
    private async Task<IResult> RefuseAsync(
        DeploymentRow deployment, string kind, string actor, string? reason, string source, string detail, CancellationToken cancellationToken)
    {
        if (source != Slack.SlackActions.Source)
        {
            await audit.AppendAsync(db,
                [new AuditEntry(AuditEventTypes.DecisionRefused, deployment.Id, deployment.Service, actor, new { kind, reason, source, state = deployment.State, detail })],
                cancellationToken);
            await db.Database.CommitTransactionAsync(cancellationToken);
        }

        return Problems.Conflict(detail, new Dictionary<string, object?> { ["state"] = deployment.State });
    }

    /// <summary>
    /// Releases a failed rollback action for the dispatcher to carry out again, with the decision on record; false when
    /// there is no failed action to retry. The caller holds the deployment's row lock, which the dispatcher also takes
    /// to record an outcome, so an action cannot finish between this check and the release.
    /// </summary>
    private async Task<bool> RetryRollbackAsync(DeploymentRow deployment, string actor, string? reason, string source, DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        var released = await db.Database.ExecuteSqlAsync($"""
            DELETE FROM rollback_actions
            WHERE deployment_id = {deployment.Id} AND finished_at IS NOT NULL AND NOT succeeded
              AND (action = ANY({NotRetried})) IS NOT TRUE
            """, cancellationToken);
        if (released == 0)
        {
            return false;
        }

        db.Decisions.Add(new DecisionRow { DeploymentId = deployment.Id, At = now, Kind = DecisionKinds.Rollback, Actor = actor, Reason = reason });
        await db.SaveChangesAsync(cancellationToken);
        await audit.AppendAsync(db,
            [new AuditEntry(AuditEventTypes.Decision, deployment.Id, deployment.Service, actor, new { kind = DecisionKinds.Rollback, reason, source, retry = true })],
            cancellationToken);
        return true;
    }

    private async Task<string> WhyNoRetryAsync(string deploymentId, CancellationToken cancellationToken)
    {
        var action = await db.Database.SqlQuery<string?>($"""
            SELECT CASE WHEN finished_at IS NULL THEN NULL ELSE action END AS "Value" FROM rollback_actions WHERE deployment_id = {deploymentId}
            """).ToListAsync(cancellationToken);
        return action switch
        {
            [NoActionConfigured] =>
                $"deployment '{deploymentId}' is rolling back without a rollback action in its runbook: the pipeline rolls back and sends 'rolledback', or 'stop' ends the automation",
            [UnreadableRunbook] =>
                $"deployment '{deploymentId}' is rolling back, but its runbook version no longer parses, so its rollback action is unknown and a retry would fail again: "
                + "roll back by hand or from the pipeline (which sends 'rolledback'), or 'stop' ends the automation",
            _ => $"the rollback of deployment '{deploymentId}' is under way; a failed rollback action may be retried once it has reported",
        };
    }
}
