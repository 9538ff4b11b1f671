using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RolloutGate.Audit;
using RolloutGate.Core.Deployments;
using RolloutGate.Decisions;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Watch;

/// <summary>
/// Thins the evaluations of deployments whose watch has been over for <see cref="WatchOptions.EvaluationRetentionDays"/>
/// (off when 0, the default). A watch every minute stores an evaluation per metric per minute, about 2.4 MB a
/// deployment, almost all of it intervals where nothing changed. Of each metric's evaluations it keeps the ones that
/// changed the verdict (the first included: it set it) and the last, which is what the deployment's API view, its page and
/// its audit events refer to; the others are deleted, and so are the baseline samples, which only a running watch reads.
/// The audit trail is not touched. Each deployment thinned gets an audit event (<see cref="AuditEventTypes.EvaluationsThinned"/>)
/// saying how many evaluations went and how many stayed, in the transaction that deletes them, and its
/// <c>evaluations_thinned_at</c> is set so that it is not visited again. Replicas share the work: each claims its
/// deployments with <c>FOR UPDATE SKIP LOCKED</c>.
/// </summary>
public sealed partial class EvaluationRetention(
    IServiceScopeFactory scopes,
    AuditTrail audit,
    IOptionsMonitor<WatchOptions> options,
    TimeProvider time,
    DatabaseOutageLog outage,
    ILogger<EvaluationRetention> logger) : BackgroundService
{
    /// <summary>How often a pass runs; the first runs a minute after start-up, out of the way of the start.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    /// <summary>How soon a pass that failed (the database away, say) is tried again, rather than in an hour.</summary>
    public static readonly TimeSpan RetryAfterFailure = TimeSpan.FromMinutes(5);

    private static readonly TimeSpan FirstPass = TimeSpan.FromMinutes(1);

    /// <summary>Deployments thinned per transaction: about 13,000 evaluations each with the default runbook.</summary>
    private const int DeploymentsPerTransaction = 20;

    /// <summary>States after which nothing is evaluated again (<see cref="DeploymentState.IsFinal"/>).</summary>
    private static readonly string[] FinalStates = [.. DeploymentState.All.Where(DeploymentState.IsFinal)];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var wait = FirstPass;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(wait, time, stoppingToken);
                wait = Interval;
                await ThinAsync(stoppingToken);
                outage.Answered("Evaluation retention");
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                wait = RetryAfterFailure;
                if (!outage.Handled("Evaluation retention", ex))
                {
                    LogFailed(logger, ex);
                }
            }
        }
    }

    /// <summary>
    /// One pass: thins every deployment whose watch ended more than the retention ago, a transaction per
    /// <see cref="DeploymentsPerTransaction"/> deployments (cancelled, the transaction in flight changes nothing).
    /// </summary>
    public async Task<RetentionPass> ThinAsync(CancellationToken cancellationToken)
    {
        var days = options.CurrentValue.EvaluationRetentionDays;
        var total = new RetentionPass(0, 0, 0);
        if (days <= 0)
        {
            return total;
        }

        var cutoff = time.GetUtcNow() - TimeSpan.FromDays(days);
        while (true)
        {
            var (claimed, pass) = await ThinBatchAsync(cutoff, days, cancellationToken);
            total = new RetentionPass(total.Deployments + pass.Deployments, total.EvaluationsRemoved + pass.EvaluationsRemoved,
                total.BaselinesRemoved + pass.BaselinesRemoved);
            if (claimed < DeploymentsPerTransaction)
            {
                break;
            }
        }

        if (total.Deployments > 0)
        {
            LogThinned(logger, total.EvaluationsRemoved, total.BaselinesRemoved, total.Deployments, days);
        }

        return total;
    }

    private async Task<(int Claimed, RetentionPass Pass)> ThinBatchAsync(DateTimeOffset cutoff, int days, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var due = await db.Database.SqlQuery<DueDeployment>($"""
            SELECT id AS "Id", service AS "Service" FROM deployments
            WHERE evaluations_thinned_at IS NULL AND updated_at < {cutoff} AND state = ANY({FinalStates})
            ORDER BY updated_at
            LIMIT {DeploymentsPerTransaction}
            FOR UPDATE SKIP LOCKED
            """).ToListAsync(cancellationToken);
        if (due.Count == 0)
        {
            return (0, new RetentionPass(0, 0, 0));
        }

        var ids = due.Select(d => d.Id).ToArray();
        // An evaluation is "between changes" when its verdict is its predecessor's and a later one follows it.
        var counts = await db.Database.SqlQuery<ThinnedCounts>($"""
            WITH ranked AS (
                SELECT deployment_id, metric, at,
                       verdict IS NOT DISTINCT FROM lag(verdict) OVER w AND lead(at) OVER w IS NOT NULL AS between_changes
                FROM evaluations
                WHERE deployment_id = ANY({ids})
                WINDOW w AS (PARTITION BY deployment_id, metric ORDER BY at)
            ), removed AS (
                DELETE FROM evaluations e USING ranked r
                WHERE r.between_changes AND e.deployment_id = r.deployment_id AND e.metric = r.metric AND e.at = r.at
                RETURNING e.deployment_id
            ), baselines AS (
                DELETE FROM watch_baselines WHERE deployment_id = ANY({ids}) RETURNING deployment_id
            )
            SELECT d.id AS "DeploymentId",
                   (SELECT count(*) FROM removed r WHERE r.deployment_id = d.id)::int AS "Removed",
                   (SELECT count(*) FROM ranked k WHERE k.deployment_id = d.id AND NOT k.between_changes)::int AS "Kept",
                   (SELECT count(*) FROM baselines b WHERE b.deployment_id = d.id)::int AS "Baselines"
            FROM unnest({ids}) AS d (id)
            """).ToListAsync(cancellationToken);
        var now = time.GetUtcNow();
        await db.Database.ExecuteSqlAsync(
            $"UPDATE deployments SET evaluations_thinned_at = {now} WHERE id = ANY({ids})", cancellationToken);

        var services = due.ToDictionary(d => d.Id, d => d.Service, StringComparer.Ordinal);
        var thinned = counts.Where(c => c.Removed > 0 || c.Baselines > 0).ToList();
        await audit.AppendAsync(db, [.. thinned.Select(c => new AuditEntry(AuditEventTypes.EvaluationsThinned, c.DeploymentId,
            services[c.DeploymentId], DecisionPolicy.AutomaticActor, new
            {
                retentionDays = days,
                evaluationsRemoved = c.Removed,
                evaluationsKept = c.Kept,
                baselinesRemoved = c.Baselines,
                kept = "every evaluation that changed a metric's verdict, and each metric's last",
            }))], cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return (due.Count, new RetentionPass(thinned.Count, counts.Sum(c => c.Removed), counts.Sum(c => c.Baselines)));
    }

    private sealed record DueDeployment(string Id, string Service);

    private sealed record ThinnedCounts(string DeploymentId, int Removed, int Kept, int Baselines);

    [LoggerMessage(Level = LogLevel.Information,
        Message = "Evaluation retention: deleted {Evaluations} evaluations between verdict changes and {Baselines} baselines of {Deployments} deployments whose watch ended more than {Days} days ago")]
    private static partial void LogThinned(ILogger logger, long evaluations, long baselines, int deployments, int days);

    [LoggerMessage(Level = LogLevel.Error, Message = "Evaluation retention failed; trying again in 5 minutes")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}

/// <summary>What a retention pass did: deployments thinned, evaluations and baselines deleted.</summary>
public sealed record RetentionPass(int Deployments, long EvaluationsRemoved, long BaselinesRemoved);
