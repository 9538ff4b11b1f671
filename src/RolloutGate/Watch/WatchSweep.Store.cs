using Microsoft.EntityFrameworkCore;
using RolloutGate.Audit;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Deployments;
using RolloutGate.Core.Watch;
using RolloutGate.Decisions;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Slack;

namespace RolloutGate.Watch;

// Storing what the sweep evaluated: evaluations, state changes, audit events and decisions, many watches to a transaction.
public sealed partial class WatchSweep
{
    /// <summary>
    /// Stores a chunk in one transaction; should that fail, each of its watches alone, so that one watch that cannot be
    /// stored (its decision fails, say) holds back only itself, until the next sweep.
    /// </summary>
    private async Task<int> StoreIsolatingFailuresAsync(RolloutGateDbContext db, Result[] chunk, CancellationToken cancellationToken)
    {
        try
        {
            return await StoreAsync(db, chunk, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            if (chunk.Length == 1)
            {
                HoldBack([chunk[0].Session.DeploymentId], RetryDelay);
                _sessions.Remove(chunk[0].Session.DeploymentId);
                LogStoreFailed(logger, chunk[0].Session.DeploymentId, ex);
                return 0;
            }

            var stored = 0;
            foreach (var result in chunk)
            {
                stored += await StoreIsolatingFailuresAsync(db, [result], cancellationToken);
            }

            return stored;
        }
    }

    private async Task<int> StoreAsync(RolloutGateDbContext db, Result[] results, CancellationToken cancellationToken)
    {
        db.ChangeTracker.Clear();
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        // Locks the deployments: a webhook or an operator moving one meanwhile waits, or has already moved it.
        var ids = results.Select(r => r.Session.DeploymentId).Order(StringComparer.Ordinal).ToArray();
        var watching = (await db.Database.SqlQuery<string>($"""
            SELECT id AS "Value" FROM deployments WHERE id = ANY({ids}) AND state = 'watching' ORDER BY id FOR UPDATE
            """).ToListAsync(cancellationToken)).ToHashSet(StringComparer.Ordinal);
        foreach (var gone in results.Where(r => !watching.Contains(r.Session.DeploymentId)))
        {
            _sessions.Remove(gone.Session.DeploymentId);
            LogNotWatching(logger, gone.Session.DeploymentId);
        }

        var live = results.Where(r => watching.Contains(r.Session.DeploymentId)).ToList();
        var now = time.GetUtcNow();
        var inserted = await EvaluationStore.InsertAsync(
            db, [.. live.SelectMany(r => r.Evaluations.Select(e => (r.Session.DeploymentId, e)))], now, cancellationToken);
        var done = new List<Result>(live.Count);
        foreach (var result in live)
        {
            if (result.Evaluations.Count == 0 || inserted.Contains(result.Session.DeploymentId))
            {
                done.Add(result);
            }
            else
            {
                // Stored by another replica, or before a crash: resume from what the database has.
                _sessions.Remove(result.Session.DeploymentId);
                LogAlreadyEvaluated(logger, result.Session.DeploymentId, result.At);
            }
        }

        var moving = done.Where(r => r.Trigger is not null).Select(r => r.Session.DeploymentId).ToList();
        var tracked = moving.Count == 0
            ? []
            : await db.Deployments.Where(d => moving.Contains(d.Id)).ToDictionaryAsync(d => d.Id, StringComparer.Ordinal, cancellationToken);
        var entries = new List<AuditEntry>();
        foreach (var result in done)
        {
            entries.AddRange(VerdictChanges(result));
            if (result.Trigger is { } move)
            {
                var deployment = tracked[result.Session.DeploymentId];
                var change = WebhookProcessor.ChangeState(deployment, move, Actor, now);
                entries.Add(change with
                {
                    Data = new { from = DeploymentState.Watching, to = deployment.State, trigger = move.ToString(), reason = result.Conclusion.Reason },
                });
            }
        }

        await db.SaveChangesAsync(cancellationToken);
        var continuing = done.Where(r => r.Trigger is null).ToList();
        await SetDueAsync(db, [.. continuing.Select(r => r.Session.DeploymentId)], [.. continuing.Select(r => r.NextDue)], cancellationToken);
        await audit.AppendAsync(db, entries, cancellationToken);
        // The decisions (auto: roll back now; recommend: ask the decision channel) commit with the regressions themselves,
        // all of the chunk's at once: this transaction holds the audit trail's lock.
        await decisions.OnRegressedAsync(db,
            [
                .. done.Where(r => r.Trigger == DeploymentTrigger.Regressed).Select(r => new DecisionPolicy.Regression(
                    tracked[r.Session.DeploymentId], r.Session.Runbook,
                    [
                        .. r.Evaluations.Select(e => e.Evaluation).Where(e => e.IsRegression)
                            .Select(e => new MetricEvidence(e.Metric, e.Value, e.Reference, e.AllowedValue, VerdictNames.Of(e.Verdict), e.Explanation, Shown(r.Session, e))),
                    ])),
            ],
            cancellationToken);

        await transaction.CommitAsync(cancellationToken);

        foreach (var result in done.Where(r => r.Evaluations.Count > 0))
        {
            metrics.WatchIntervalStored(result.Evaluations.Select(e => VerdictNames.Of(e.Evaluation.Verdict)), now - result.At);
        }

        foreach (var result in done)
        {
            if (result.Trigger is null)
            {
                result.Session.Advance(result.At, result.Evaluations.Select(e => e.Evaluation));
            }
            else
            {
                _sessions.Remove(result.Session.DeploymentId);
                LogConcluded(logger, result.Session.DeploymentId, result.Conclusion.Outcome, result.At, result.Conclusion.Reason);
            }
        }

        return done.Sum(r => r.Evaluations.Count);
    }

    /// <summary>The evaluation's value, baseline and threshold in its metric's unit, as messages show them.</summary>
    private static string? Shown(WatchSession session, MetricEvaluation e) =>
        session.Plan.Metrics.FirstOrDefault(m => m.Name == e.Metric) is { } metric
            ? MetricValues.Figures(metric.Spec, e.Kind, e.Value, e.Reference, e.AllowedValue)
            : null;

    /// <summary>
    /// The audit event of each metric whose verdict changed (the first evaluation is compared with healthy, and so is the
    /// first after a warm-up, whose waiting is not a verdict: see <see cref="WatchSession.IsWarmingUp"/>).
    /// </summary>
    private static IEnumerable<AuditEntry> VerdictChanges(Result result)
    {
        foreach (var evaluation in result.Evaluations)
        {
            var e = evaluation.Evaluation;
            var verdict = VerdictNames.Of(e.Verdict);
            var previous = result.Session.Verdicts.GetValueOrDefault(e.Metric) ?? VerdictNames.Of(Verdict.Healthy);
            if (verdict != previous && !result.Session.IsWarmingUp(e.At, verdict))
            {
                yield return new AuditEntry(AuditEventTypes.Evaluation, result.Session.DeploymentId, result.Session.Service, Actor, new
                {
                    metric = e.Metric,
                    at = e.At,
                    from = previous,
                    verdict,
                    value = e.Value,
                    baseline = e.Reference,
                    threshold = e.AllowedValue,
                    statistic = e.Statistic,
                    statisticThreshold = e.StatisticThreshold,
                    explanation = e.Explanation,
                    shown = Shown(result.Session, e),
                    query = evaluation.Query,
                });
            }
        }
    }

    private static async Task SetDueAsync(RolloutGateDbContext db, string[] ids, DateTimeOffset[] dues, CancellationToken cancellationToken)
    {
        if (ids.Length == 0)
        {
            return;
        }

        await db.Database.ExecuteSqlAsync($"""
            UPDATE deployments d SET watch_due_at = x.due
            FROM unnest({ids}::text[], {dues}::timestamptz[]) AS x(id, due)
            WHERE d.id = x.id AND d.state = 'watching'
            """, cancellationToken);
    }
}
