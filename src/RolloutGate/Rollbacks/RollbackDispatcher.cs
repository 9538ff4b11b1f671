using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RolloutGate.Audit;
using RolloutGate.Core.Deployments;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;

namespace RolloutGate.Rollbacks;

/// <summary>
/// Carries out decided rollbacks: every deployment in <c>rolling-back</c> gets its runbook's rollback action executed
/// exactly once. A replica claims the deployment by inserting its <c>rollback_actions</c> row (the primary key makes a
/// second claim impossible), acts outside any transaction, then records the outcome with its audit event; success
/// moves the deployment to <c>rolled-back</c>. A failure (after the executor's own retries) is audited, which puts it in
/// the decision channel, and the deployment stays <c>rolling-back</c> for a person to retry (a new <c>rollback</c>
/// decision releases the claim, see <see cref="DeploymentDecisions"/>), finish or stop; it is not retried silently. A
/// runbook without an action leaves the rollback to the pipeline's <c>rolledback</c> event, and says so. An action still
/// under way <see cref="RollbackResilienceOptions.StopGrace"/> after the host began to stop is abandoned and its claim
/// released, so that another replica (or the next start) carries it out again at once, with the same idempotency key.
/// </summary>
public sealed partial class RollbackDispatcher(
    IServiceScopeFactory scopes,
    RunbookCatalog runbooks,
    AuditTrail audit,
    IOptionsMonitor<RollbackResilienceOptions> resilience,
    TimeProvider time,
    DatabaseOutageLog outage,
    ILogger<RollbackDispatcher> logger) : BackgroundService
{
    public const string Actor = "rolloutgate";

    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(2);

    /// <summary>A claim this old without an outcome belonged to a replica that died mid-action.</summary>
    public static readonly TimeSpan ClaimExpiry = TimeSpan.FromMinutes(10);

    /// <summary>Who holds a claim, for people reading rollback_actions: host, process and a per-start id.</summary>
    private readonly string replica = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(PollInterval, time);
        do
        {
            try
            {
                await DispatchDueAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                if (!outage.Handled("Rollback dispatcher", ex))
                {
                    LogDispatchFailed(logger, ex);
                }
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>Executes every unclaimed rollback that is due; returns how many this replica carried out.</summary>
    public async Task<int> DispatchDueAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
        var executor = scope.ServiceProvider.GetRequiredService<IRollbackExecutor>();
        var now = time.GetUtcNow();
        var expired = now - ClaimExpiry;
        var due = await db.Database.SqlQuery<string>($"""
            SELECT d.id AS "Value" FROM deployments d
            LEFT JOIN rollback_actions r ON r.deployment_id = d.id
            WHERE d.state = 'rolling-back' AND (r.deployment_id IS NULL OR (r.finished_at IS NULL AND r.claimed_at < {expired}))
            ORDER BY d.updated_at
            LIMIT 20
            """).ToListAsync(cancellationToken);
        var done = 0;
        foreach (var deploymentId in due)
        {
            // A stopping host claims nothing more. What it has claimed runs on and is recorded, stopping or not: the action
            // changes production, and one carried out but not recorded would be carried out again when the claim expires,
            // with the audit trail giving the wrong time; a claim cut off mid-statement could hold the rollback for
            // ClaimExpiry. Only an action still under way when the host is about to stop waiting (StopGrace) is
            // abandoned, its claim released rather than left to expire.
            cancellationToken.ThrowIfCancellationRequested();
            if (await ClaimAsync(db, deploymentId, now, expired, CancellationToken.None)
                && await ExecuteAsync(db, executor, deploymentId, cancellationToken))
            {
                done++;
            }
        }

        return done;
    }

    private async Task<bool> ClaimAsync(RolloutGateDbContext db, string deploymentId, DateTimeOffset now, DateTimeOffset expired, CancellationToken cancellationToken)
    {
        var claimed = await db.Database.ExecuteSqlAsync($"""
            INSERT INTO rollback_actions (deployment_id, claimed_at, claimed_by) VALUES ({deploymentId}, {now}, {replica})
            ON CONFLICT (deployment_id) DO UPDATE SET claimed_at = {now}, claimed_by = {replica}
            WHERE rollback_actions.finished_at IS NULL AND rollback_actions.claimed_at < {expired}
            """, cancellationToken);
        return claimed == 1;
    }

    /// <summary>Carries out and records the rollback; false when the host's stop abandoned it (its claim released).</summary>
    private async Task<bool> ExecuteAsync(RolloutGateDbContext db, IRollbackExecutor executor, string deploymentId, CancellationToken stopping)
    {
        var cancellationToken = CancellationToken.None;
        db.ChangeTracker.Clear();
        var deployment = await db.Deployments.AsNoTracking().Include(d => d.RunbookVersion).Include(d => d.Decisions)
            .SingleAsync(d => d.Id == deploymentId, cancellationToken);
        var runbook = runbooks.VersionOf(deployment);
        var decision = deployment.Decisions.Where(d => d.Kind == DecisionKinds.Rollback).MaxBy(d => d.At);
        var reason = decision?.Reason ?? "rollback decided";

        RollbackOutcome outcome;
        if (runbook.Rollback.Action is null)
        {
            outcome = new RollbackOutcome(false, DeploymentDecisions.NoActionConfigured,
                $"runbook {runbook.Name} v{runbook.Version} has no rollback action: the pipeline rolls back and sends 'rolledback'", 0);
        }
        else
        {
            var request = RollbackRequest.For(runbook, deployment.Id, deployment.Environment, deployment.PreviousVersion ?? "", reason,
                idempotencyKey: $"{deployment.Id}:rollback");
            var grace = resilience.CurrentValue.StopGrace;
            using var interrupt = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
            using var onStop = stopping.Register(() => interrupt.CancelAfter(grace));
            try
            {
                outcome = await executor.ExecuteAsync(request, interrupt.Token);
            }
            catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
            {
                // Killed with the process instead, the claim would hold the rollback for ClaimExpiry with nothing under way.
                // The action may have reached its target already: carried out again, it is the same idempotent change
                // (a traffic shift, an abort) or the same delivery id to a webhook receiver.
                await db.Database.ExecuteSqlAsync($"""
                    DELETE FROM rollback_actions WHERE deployment_id = {deploymentId} AND claimed_by = {replica} AND finished_at IS NULL
                    """, cancellationToken);
                LogAbandonedOnStop(logger, deploymentId, grace, request.IdempotencyKey);
                return false;
            }
        }

        await RecordAsync(db, deploymentId, outcome, cancellationToken);
        return true;
    }

    private async Task RecordAsync(RolloutGateDbContext db, string deploymentId, RollbackOutcome outcome, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var deployment = await db.Deployments.FromSql($"SELECT * FROM deployments WHERE id = {deploymentId} FOR UPDATE")
            .SingleAsync(cancellationToken);
        await db.Database.ExecuteSqlAsync($"""
            UPDATE rollback_actions SET finished_at = {now}, succeeded = {outcome.Succeeded}, action = {outcome.Action},
                   detail = {outcome.Detail}, attempts = {outcome.Attempts}
            WHERE deployment_id = {deploymentId}
            """, cancellationToken);
        var entries = new List<AuditEntry>
        {
            new(AuditEventTypes.RollbackAction, deployment.Id, deployment.Service, Actor, new
            {
                action = outcome.Action,
                outcome = outcome.Succeeded ? "succeeded" : "failed",
                detail = outcome.Detail,
                attempts = outcome.Attempts,
            }),
        };

        // A person may have stopped the automation while the action ran; the state machine then refuses the move.
        if (outcome.Succeeded && DeploymentStateMachine.Next(deployment.State, DeploymentTrigger.RollbackSucceeded).IsAllowed)
        {
            entries.Add(WebhookProcessor.ChangeState(deployment, DeploymentTrigger.RollbackSucceeded, Actor, now));
            await db.SaveChangesAsync(cancellationToken);
        }

        await audit.AppendAsync(db, entries, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        LogRolledBack(logger, deploymentId, outcome.Action, outcome.Succeeded, LogText.OneLine(outcome.Detail));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Rollback of {DeploymentId} via {Action}: succeeded={Succeeded} ({Detail})")]
    private static partial void LogRolledBack(ILogger logger, string deploymentId, string action, bool succeeded, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rollback of {DeploymentId} was still under way {Grace} after the host began to stop: abandoned, and its claim released for another replica or the next start, which carries it out again (idempotency key {IdempotencyKey})")]
    private static partial void LogAbandonedOnStop(ILogger logger, string deploymentId, TimeSpan grace, string idempotencyKey);

    [LoggerMessage(Level = LogLevel.Error, Message = "Rollback dispatch failed; will retry")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception);
}
