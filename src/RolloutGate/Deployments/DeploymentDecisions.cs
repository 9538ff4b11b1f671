using Microsoft.EntityFrameworkCore;
using RolloutGate.Api;
using RolloutGate.Audit;
using RolloutGate.Core.Deployments;
using RolloutGate.Infrastructure.Database;

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
/// An illegal decision for the deployment's state is refused and changes nothing.
/// </summary>
public sealed class DeploymentDecisions(RolloutGateDbContext db, AuditTrail audit, TimeProvider time)
{
    public async Task<IResult> DecideAsync(string deploymentId, string kind, string actor, string? reason, string source, CancellationToken cancellationToken)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        // FOR UPDATE: two people deciding at once are serialised; the second sees the first one's state.
        var deployment = await db.Deployments
            .FromSql($"SELECT * FROM deployments WHERE id = {deploymentId} FOR UPDATE")
            .SingleOrDefaultAsync(cancellationToken);
        if (deployment is null)
        {
            return Problems.NotFound($"deployment '{deploymentId}' is unknown");
        }

        var change = DeploymentStateMachine.Next(deployment.State, DecisionKinds.Trigger(kind));
        if (!change.IsAllowed)
        {
            return Problems.Conflict(change.Reason!, new Dictionary<string, object?> { ["state"] = deployment.State });
        }

        var now = time.GetUtcNow();
        db.Decisions.Add(new DecisionRow { DeploymentId = deployment.Id, At = now, Kind = kind, Actor = actor, Reason = reason });
        var stateChange = WebhookProcessor.ChangeState(deployment, DecisionKinds.Trigger(kind), actor, now);
        await db.SaveChangesAsync(cancellationToken);
        await audit.AppendAsync(db,
        [
            new AuditEntry(AuditEventTypes.Decision, deployment.Id, deployment.Service, actor, new { kind, reason, source }),
            stateChange,
        ], cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return TypedResults.Ok(new StateResponse(deployment.Id, deployment.State));
    }
}
