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
/// runbook without an action leaves the rollback to the pipeline's <c>rolledback</c> event, and says so; a stored runbook
/// version this RolloutGate cannot read is a failure, recorded with the reason, as its action is unknown. An action still
/// under way <see cref="RollbackResilienceOptions.StopGrace"/> after the host began to stop is abandoned and its claim
/// released (its lease ended, the claim kept), so that another replica (or the next start) carries it out again at once,
/// with the same idempotency key, and records, as after a kill, that the abandoned attempt may have reached its target.
/// A replica killed mid-action (SIGKILL, the OOM killer, a lost node) releases nothing: its claim is a lease
/// (<c>claimed_until</c>, <see cref="RollbackResilienceOptions.ClaimLease"/>) renewed while the action runs, which another replica takes over once
/// it has passed, carrying the action out again with the same idempotency key and saying so in the audit trail.
/// <para>
/// Leases are dated, renewed and compared on the database's clock (<c>clock_timestamp()</c> in the statements, the
/// lease a duration parameter), not on the replica's <see cref="TimeProvider"/>: a lease is an agreement between
/// replicas, so it needs one clock they all read. With each replica's own clock, a replica running ahead by more than
/// the lease took over a claim that was being renewed, and one running behind wrote leases that had run out already
/// for the others: either way the action ran twice (two deliveries, two outcomes). Measuring each replica's offset and
/// refusing takeovers beyond a bound (the other way considered) would stop the first case but not the second, which a
/// healthy replica commits against a slow one, and would leave the outcome to a bound and a measurement; here the
/// replicas' clocks do not enter at all. The replica's clock still sets the cadence of polls and renewals (intervals,
/// not instants), so tests that place the service at another time (a shifted or fake clock) keep their meaning and
/// cannot expire or prolong a lease by it: a test expires a lease by writing it in the database. Every time in
/// <c>rollback_actions</c> (<c>claimed_at</c>, <c>finished_at</c>) is the database's, so a started-before-finished
/// row holds whatever the replicas' clocks say; the deployment's own times and the audit trail stay the replica's.
/// How far each replica's clock is from the database's is measured and exposed apart from this, for what does run on
/// the replica's clock (<see cref="Operations.DatabaseClockOffset"/>).
/// </para>
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

    /// <summary>How often the state of a deployment whose action runs is read, so that a stop ends the action.</summary>
    public static readonly TimeSpan HaltPollInterval = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a claim without a lease lasts from <c>claimed_at</c>: one written by a version before migration 0020, which
    /// does not renew it, and whose action may run up to this long.
    /// </summary>
    public static readonly TimeSpan UnrenewedClaimExpiry = TimeSpan.FromMinutes(10);

    /// <summary>Who holds a claim, for people reading rollback_actions: host, process and a per-start id.</summary>
    private readonly string replica = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        outage.RunEveryAsync("Rollback dispatcher", PollInterval, time, DispatchDueAsync, ex => LogDispatchFailed(logger, ex), stoppingToken);

    /// <summary>Executes every unclaimed rollback that is due; returns how many this replica carried out.</summary>
    public async Task<int> DispatchDueAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
        var executor = scope.ServiceProvider.GetRequiredService<IRollbackExecutor>();
        var due = await db.Database.SqlQuery<string>($"""
            SELECT d.id AS "Value" FROM deployments d
            LEFT JOIN rollback_actions r ON r.deployment_id = d.id
            WHERE d.state = 'rolling-back'
              AND (r.deployment_id IS NULL OR rollback_claim_expired(r.claimed_at, r.claimed_until, r.finished_at, {UnrenewedClaimExpiry}))
            ORDER BY d.updated_at
            LIMIT 20
            """).ToListAsync(cancellationToken);
        var done = 0;
        foreach (var deploymentId in due)
        {
            // A stopping host claims nothing more. What it has claimed runs on and is recorded, stopping or not: the action
            // changes production, and one carried out but not recorded would be carried out again when the claim expires,
            // with the audit trail giving the wrong time; a claim cut off mid-statement could hold the rollback for
            // its lease. Only an action still under way when the host is about to stop waiting (StopGrace) is
            // abandoned, its claim released rather than left to expire.
            cancellationToken.ThrowIfCancellationRequested();
            if (await ClaimAsync(db, deploymentId, CancellationToken.None) is { } claim
                && await ExecuteAsync(db, executor, deploymentId, claim, cancellationToken))
            {
                done++;
            }
        }

        return done;
    }

    /// <summary>
    /// Null when another replica holds the claim, the rollback is done, or the deployment is no longer rolling back;
    /// otherwise the claim, with the one it took over.
    /// </summary>
    private async Task<Claim?> ClaimAsync(RolloutGateDbContext db, string deploymentId, CancellationToken cancellationToken)
    {
        // Dated when it is taken, not when the due list was read: the actions before this one may have taken longer than a
        // lease, and a claim dated then would be born run out, for any replica to take over while this one acts. Dated on
        // the database's clock, as is every time in rollback_actions (see the class's summary). The expiry test is
        // migration 0021's rollback_claim_expired, the due list's too: a lease after its claimed_at has run out once it has
        // passed; one that is not was left by a claim an older version took over (it sets claimed_at and claimed_by only,
        // and does not renew), which keeps the old 10 minutes from claimed_at rather than being taken over at once.
        // The claim taken over, if any, is read in the same statement: its replica and when it claimed, for the record.
        // Only a deployment still rolling back is claimed: the due list was read before the actions ahead of this one ran,
        // which may have taken minutes, and a stop (or the pipeline's rolledback) committed meanwhile ends the rollback
        // before its action starts. FOR SHARE waits for a decision being taken on the deployment (it holds the row FOR
        // UPDATE) and then sees its state; a stop after the claim is one during the action, which halts it
        // (WatchStateAsync).
        var lease = resilience.CurrentValue.ClaimLease;
        var claimed = await db.Database.SqlQuery<Claim>($"""
            WITH previous AS (SELECT claimed_by, claimed_at FROM rollback_actions WHERE deployment_id = {deploymentId})
            INSERT INTO rollback_actions (deployment_id, claimed_at, claimed_by, claimed_until)
            SELECT {deploymentId}, clock_timestamp(), {replica}, clock_timestamp() + {lease}
            WHERE EXISTS (SELECT FROM deployments WHERE id = {deploymentId} AND state = {DeploymentState.RollingBack} FOR SHARE)
            ON CONFLICT (deployment_id) DO UPDATE SET claimed_at = clock_timestamp(), claimed_by = {replica}, claimed_until = clock_timestamp() + {lease}
            WHERE rollback_claim_expired(rollback_actions.claimed_at, rollback_actions.claimed_until, rollback_actions.finished_at, {UnrenewedClaimExpiry})
            RETURNING (SELECT claimed_by FROM previous) AS "TakenOverFrom", (SELECT claimed_at FROM previous) AS "TakenOverClaimedAt"
            """).ToListAsync(cancellationToken);
        if (claimed.Count == 0)
        {
            return null;
        }

        if (claimed[0].TakenOverFrom is { } previous)
        {
            LogTakenOver(logger, deploymentId, previous, claimed[0].TakenOverClaimedAt!.Value);
        }

        return claimed[0];
    }

    /// <summary>Renews this replica's claim every <see cref="RollbackResilienceOptions.ClaimRenewal"/> until <paramref name="done"/>.</summary>
    private async Task RenewAsync(RolloutGateDbContext db, string deploymentId, CancellationToken done)
    {
        var settings = resilience.CurrentValue;
        using var timer = new PeriodicTimer(settings.ClaimRenewal, time);
        try
        {
            while (await timer.WaitForNextTickAsync(done))
            {
                // Not cut by done: a statement cancelled half-way would leave the context's connection in doubt, and the
                // outcome is recorded on it next.
                try
                {
                    await db.Database.ExecuteSqlAsync($"""
                        UPDATE rollback_actions SET claimed_until = clock_timestamp() + {settings.ClaimLease}
                        WHERE deployment_id = {deploymentId} AND claimed_by = {replica} AND finished_at IS NULL
                        """, CancellationToken.None);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The action goes on: should the lease run out meanwhile, another replica carries it out again with the
                    // same idempotency key, and the outcome recorded is the one of whoever holds the claim then.
                    if (!outage.Handled("Rollback dispatcher", ex))
                    {
                        LogRenewFailed(logger, deploymentId, ex);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (done.IsCancellationRequested)
        {
            // The action is over.
        }
    }

    /// <summary>
    /// Halts the action once a person has stopped the deployment while it runs, until <paramref name="done"/>: reads its
    /// state every <see cref="HaltPollInterval"/>, so that a stop also ends a wait between attempts (a backoff, a
    /// Retry-After) and an attempt on its way. Before each attempt it is read once more (<see cref="StoppedBeforeAttemptAsync"/>).
    /// </summary>
    private async Task WatchStateAsync(string deploymentId, CancellationTokenSource halt, CancellationToken done)
    {
        using var timer = new PeriodicTimer(HaltPollInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(done))
            {
                if (await StoppedAsync(deploymentId, done))
                {
                    await halt.CancelAsync();
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (done.IsCancellationRequested)
        {
            // The action is over.
        }
    }

    /// <summary>
    /// The action's <see cref="RollbackRequest.BeforeEachAttempt"/>: no attempt begins once a stop is committed. The poll
    /// alone let one begin up to <see cref="HaltPollInterval"/> after it, when a retry's backoff was shorter.
    /// </summary>
    private async Task StoppedBeforeAttemptAsync(string deploymentId, CancellationTokenSource halt, CancellationToken cancellationToken)
    {
        if (await StoppedAsync(deploymentId, cancellationToken))
        {
            await halt.CancelAsync();
            throw new OperationCanceledException($"the deployment became {DeploymentState.Stopped}", null, halt.Token);
        }
    }

    /// <summary>
    /// Whether a person stopped the deployment; false too when its state cannot be read (the action goes on, and it is
    /// read again). Read in a scope of its own (the claim's context renews meanwhile), so a stop taken on any
    /// replica counts. <c>FOR SHARE</c>: a stop being decided holds the row (<see cref="DeploymentDecisions"/>), and the
    /// read waits for it to commit rather than reading the state before it. A <c>rolledback</c> from the pipeline does not
    /// count: a webhook receiver may send it before it answers the delivery, whose outcome is then still the action's.
    /// </summary>
    private async Task<bool> StoppedAsync(string deploymentId, CancellationToken cancellationToken)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
            var state = (await db.Database.SqlQuery<string>($"SELECT state AS \"Value\" FROM deployments WHERE id = {deploymentId} FOR SHARE")
                .ToListAsync(cancellationToken)).Single();
            return state == DeploymentState.Stopped;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            if (!outage.Handled("Rollback dispatcher", ex))
            {
                LogWatchFailed(logger, deploymentId, ex);
            }

            return false;
        }
    }

    /// <summary>Carries out and records the rollback; false when the host's stop abandoned it (its claim released).</summary>
    private async Task<bool> ExecuteAsync(RolloutGateDbContext db, IRollbackExecutor executor, string deploymentId, Claim claim, CancellationToken stopping)
    {
        var cancellationToken = CancellationToken.None;
        db.ChangeTracker.Clear();
        var deployment = await db.Deployments.AsNoTracking().Include(d => d.RunbookVersion).Include(d => d.Decisions)
            .SingleAsync(d => d.Id == deploymentId, cancellationToken);
        Core.Runbooks.Runbook runbook;
        try
        {
            runbook = runbooks.VersionOf(deployment);
        }
        catch (StoredRunbookUnreadableException ex)
        {
            // The change recorded a version an older RolloutGate accepted and this one refuses: its action cannot be read,
            // so that is the outcome, recorded like a failed action (audited, the claim finished). Let through, the
            // exception left the claim to run out and be taken over every lease, for ever, with only an error in the log.
            await RecordAsync(db, deploymentId, new RollbackOutcome(false, DeploymentDecisions.UnreadableRunbook,
                $"{ex.Message}; so its rollback action is unknown and was not carried out: roll back by hand or from the pipeline "
                + "(which sends 'rolledback'), or 'stop' ends the automation", 0), claim, cancellationToken);
            return true;
        }

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
                idempotencyKey: IdempotencyKey(deployment.Id));
            var grace = resilience.CurrentValue.StopGrace;
            using var interrupt = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
            using var onStop = stopping.Register(() => interrupt.CancelAfter(grace));
            using var acted = new CancellationTokenSource();
            // Cancelled only once the deployment is read as stopped, by the poll or before an attempt.
            using var halt = new CancellationTokenSource();
            using var acting = CancellationTokenSource.CreateLinkedTokenSource(interrupt.Token, halt.Token);
            request = request with { BeforeEachAttempt = token => StoppedBeforeAttemptAsync(deploymentId, halt, token) };
            var renewing = RenewAsync(db, deploymentId, acted.Token);
            var watching = WatchStateAsync(deploymentId, halt, acted.Token);
            try
            {
                outcome = await executor.ExecuteAsync(request, acting.Token);
            }
            catch (OperationCanceledException cancelled) when (halt.IsCancellationRequested && !interrupt.IsCancellationRequested)
            {
                // A person stopped the automation while the action ran: "stop ends all automation", so no further
                // attempt is made. Recorded as this action's outcome, finished, so that
                // nobody carries it out again; an attempt already sent may have reached its target, and the record says so.
                const string state = DeploymentState.Stopped;
                var (action, attempts) = cancelled is RollbackCancelledException under ? (under.Action, under.Attempts) : ("rollback action", 0);
                outcome = new RollbackOutcome(false, action,
                    $"halted after {attempts} attempt(s): the deployment became {state} while the action was under way, so no further " +
                    "attempt was made; one already sent may have reached its target", attempts);
                LogHalted(logger, deploymentId, state, attempts);
            }
            catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
            {
                await acted.CancelAsync();
                await renewing;
                // Killed with the process instead, the claim would hold the rollback for its lease with nothing under way.
                // The action may have reached its target already (a request on its way, or answered and not yet read):
                // carried out again, it is the same idempotent change (a traffic shift, an abort) or the same delivery id to
                // a webhook receiver. So the claim is not deleted but its lease ended now: the next replica takes it over at
                // once and, as after a kill, its record says that this earlier attempt may have reached the target.
                await db.Database.ExecuteSqlAsync($"""
                    UPDATE rollback_actions SET claimed_until = clock_timestamp()
                    WHERE deployment_id = {deploymentId} AND claimed_by = {replica} AND finished_at IS NULL
                    """, cancellationToken);
                LogAbandonedOnStop(logger, deploymentId, grace, request.IdempotencyKey);
                return false;
            }
            finally
            {
                // Ends the renewals before the context is used again (a no-op after the abandonment above).
                await acted.CancelAsync();
                await renewing;
                await watching;
            }
        }

        await RecordAsync(db, deploymentId, outcome, claim, cancellationToken);
        return true;
    }

    private async Task RecordAsync(RolloutGateDbContext db, string deploymentId, RollbackOutcome outcome, Claim claim, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var deployment = await db.Deployments.FromSql($"SELECT * FROM deployments WHERE id = {deploymentId} FOR UPDATE")
            .SingleAsync(cancellationToken);
        var held = await db.Database.ExecuteSqlAsync($"""
            UPDATE rollback_actions SET finished_at = clock_timestamp(), succeeded = {outcome.Succeeded}, action = {outcome.Action},
                   detail = {outcome.Detail}, attempts = {outcome.Attempts}, claimed_until = NULL
            WHERE deployment_id = {deploymentId} AND claimed_by = {replica} AND finished_at IS NULL
            """, cancellationToken);
        if (held == 0)
        {
            // The lease ran out while the action ran (its renewals could not reach the database) and another replica took
            // the claim over: the same action, with the same idempotency key, is that replica's to record, once.
            LogLeaseLost(logger, deploymentId, outcome.Action, outcome.Succeeded);
            return;
        }

        var recorded = new
        {
            action = outcome.Action,
            outcome = outcome.Succeeded ? "succeeded" : "failed",
            detail = outcome.Detail,
            attempts = outcome.Attempts,
        };
        // An attempt cut off with its replica is on the record too: its target may have acted on it already.
        object data = claim.TakenOverFrom is { } previous
            ? new
            {
                recorded.action,
                recorded.outcome,
                recorded.detail,
                recorded.attempts,
                interrupted = $"an earlier attempt by {previous} from {claim.TakenOverClaimedAt:O} ended without an outcome (that replica stopped or died mid-action); carried out again with the same idempotency key ({IdempotencyKey(deploymentId)}), so its target may have got it twice",
            }
            : recorded;
        var entries = new List<AuditEntry> { new(AuditEventTypes.RollbackAction, deployment.Id, deployment.Service, Actor, data) };

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

    /// <summary>The same for every attempt at one deployment's rollback, on every replica: the webhook's delivery id.</summary>
    private static string IdempotencyKey(string deploymentId) => $"{deploymentId}:rollback";

    private sealed record Claim(string? TakenOverFrom, DateTimeOffset? TakenOverClaimedAt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rollback of {DeploymentId}: the claim of {Replica} (from {ClaimedAt:O}) ran out without an outcome, that replica stopped or died mid-action; carrying the action out again with the same idempotency key")]
    private static partial void LogTakenOver(ILogger logger, string deploymentId, string replica, DateTimeOffset claimedAt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rollback of {DeploymentId}: its state could not be read while its action runs")]
    private static partial void LogWatchFailed(ILogger logger, string deploymentId, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rollback of {DeploymentId} halted after {Attempts} attempt(s): the deployment became {State} while the action was under way")]
    private static partial void LogHalted(ILogger logger, string deploymentId, string state, int attempts);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rollback of {DeploymentId}: its claim could not be renewed")]
    private static partial void LogRenewFailed(ILogger logger, string deploymentId, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rollback of {DeploymentId} via {Action} ended (succeeded={Succeeded}) after its claim had run out and another replica took it over; that replica records the outcome")]
    private static partial void LogLeaseLost(ILogger logger, string deploymentId, string action, bool succeeded);

    [LoggerMessage(Level = LogLevel.Information, Message = "Rollback of {DeploymentId} via {Action}: succeeded={Succeeded} ({Detail})")]
    private static partial void LogRolledBack(ILogger logger, string deploymentId, string action, bool succeeded, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rollback of {DeploymentId} was still under way {Grace} after the host began to stop: abandoned, and its claim released for another replica or the next start, which carries it out again (idempotency key {IdempotencyKey})")]
    private static partial void LogAbandonedOnStop(ILogger logger, string deploymentId, TimeSpan grace, string idempotencyKey);

    [LoggerMessage(Level = LogLevel.Error, Message = "Rollback dispatch failed; will retry")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception);
}
