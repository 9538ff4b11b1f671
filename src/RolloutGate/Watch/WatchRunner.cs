using Microsoft.EntityFrameworkCore;
using RolloutGate.Audit;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Deployments;
using RolloutGate.Core.Watch;
using RolloutGate.Decisions;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Prometheus;
using RolloutGate.Runbooks;
using RolloutGate.Slack;

namespace RolloutGate.Watch;

/// <summary>
/// One fire of a deployment's watch: evaluate every due interval in order, each at its own time t, store each with its
/// evidence, and move the deployment when the watch concludes. Each t is committed in its own transaction together with
/// any state change and audit event, so a crash loses at most the interval in flight, which the next fire evaluates again.
/// </summary>
public sealed partial class WatchRunner(
    RolloutGateDbContext db,
    RunbookCatalog runbooks,
    IMetricSource source,
    AuditTrail audit,
    DecisionPolicy decisions,
    TimeProvider time,
    ILogger<WatchRunner> logger)
{
    public const string Actor = "rolloutgate";

    /// <summary>Runs the due evaluations; true when the watch is over (the deployment left watching) and its job can go.</summary>
    public async Task<bool> RunAsync(string deploymentId, CancellationToken cancellationToken)
    {
        var deployment = await db.Deployments.AsNoTracking().Include(d => d.RunbookVersion)
            .SingleOrDefaultAsync(d => d.Id == deploymentId, cancellationToken);
        if (deployment is not { State: DeploymentState.Watching, DeployedAt: { } deployedAt, WatchUntil: { } until })
        {
            LogNotWatching(logger, deploymentId, deployment?.State);
            return true;
        }

        var runbook = runbooks.VersionOf(deployment);
        var plan = WatchPlan.From(runbook);
        var latest = await EvaluationStore.LatestAsync(db, deploymentId, cancellationToken);
        DateTimeOffset? lastAt = latest.Count == 0 ? null : latest.Values.Max(e => e.At);
        var due = WatchSchedule.DueTimes(deployedAt, plan.Watch.Interval, lastAt, time.GetUtcNow(), until);
        if (due.Count == 0)
        {
            return false;
        }

        var states = latest.ToDictionary(p => p.Key, p => p.Value.State, StringComparer.Ordinal);
        var verdicts = latest.ToDictionary(p => p.Key, p => p.Value.Verdict, StringComparer.Ordinal);
        try
        {
            var baselines = WatchEvaluator.Baselines(plan, await BaselineSamplesAsync(deployment, plan, cancellationToken));
            foreach (var at in due)
            {
                var evaluations = await WatchEvaluator.EvaluateAsync(source, plan, baselines, states, at, cancellationToken);
                var conclusion = WatchConclusion.After(
                    [.. evaluations.Select(e => e.Evaluation)], at, until, plan.Watch.Interval, plan.Watch.StopRules.MaxBlind);
                var stored = await StoreAsync(deploymentId, runbook, evaluations, verdicts, conclusion, cancellationToken);
                if (stored != Stored.Committed)
                {
                    return stored == Stored.NotWatching;
                }

                foreach (var e in evaluations)
                {
                    states[e.Evaluation.Metric] = e.Evaluation.State;
                    verdicts[e.Evaluation.Metric] = VerdictNames.Of(e.Evaluation.Verdict);
                }

                if (conclusion.Outcome != WatchOutcome.Continue)
                {
                    LogConcluded(logger, deploymentId, conclusion.Outcome, at, conclusion.Reason);
                    return true;
                }
            }
        }
        catch (PrometheusException ex)
        {
            // Nothing is stored for an interval the source could not answer: it is evaluated at the next fire, never read as healthy.
            LogSourceFailed(logger, deploymentId, ex.Message);
        }

        return false;
    }

    /// <summary>The baseline captured once per deployment and metric, then reused; captured now where missing.</summary>
    private async Task<Dictionary<string, IReadOnlyList<Observation>>> BaselineSamplesAsync(
        DeploymentRow deployment, WatchPlan plan, CancellationToken cancellationToken)
    {
        var stored = await EvaluationStore.BaselinesAsync(db, deployment.Id, cancellationToken);
        var missing = plan.Metrics.Where(m => !stored.ContainsKey(m.Name)).ToList();
        if (missing.Count == 0)
        {
            return stored;
        }

        var captured = await WatchEvaluator.CaptureBaselineAsync(
            source, plan, missing, deployment.BaselineFrom!.Value, deployment.BaselineTo!.Value, cancellationToken);
        var now = time.GetUtcNow();
        foreach (var (metric, samples) in captured)
        {
            await EvaluationStore.InsertBaselineAsync(db, deployment.Id, metric, samples, now, cancellationToken);
        }

        // Read back: a replica that captured first wins, and everyone compares with the same baseline.
        return await EvaluationStore.BaselinesAsync(db, deployment.Id, cancellationToken);
    }

    private async Task<Stored> StoreAsync(
        string deploymentId,
        Core.Runbooks.Runbook runbook,
        IReadOnlyList<WatchEvaluation> evaluations,
        IReadOnlyDictionary<string, string> previousVerdicts,
        WatchConclusion conclusion,
        CancellationToken cancellationToken)
    {
        // A tracked row from the previous interval would be returned as it was, not as the database has it now.
        db.ChangeTracker.Clear();
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        // Locks the deployment: a webhook or an operator moving it meanwhile waits, or has already moved it.
        var deployment = await db.Deployments.FromSql($"SELECT * FROM deployments WHERE id = {deploymentId} FOR UPDATE")
            .SingleAsync(cancellationToken);
        if (deployment.State != DeploymentState.Watching)
        {
            await transaction.RollbackAsync(cancellationToken);
            LogNotWatching(logger, deploymentId, deployment.State);
            return Stored.NotWatching;
        }

        var now = time.GetUtcNow();
        var entries = new List<AuditEntry>();
        foreach (var evaluation in evaluations)
        {
            if (!await EvaluationStore.InsertAsync(db, deploymentId, evaluation, now, cancellationToken))
            {
                await transaction.RollbackAsync(cancellationToken);
                LogAlreadyEvaluated(logger, deploymentId, evaluation.Evaluation.At);
                return Stored.AlreadyDone;
            }

            var e = evaluation.Evaluation;
            var verdict = VerdictNames.Of(e.Verdict);
            var previous = previousVerdicts.GetValueOrDefault(e.Metric) ?? VerdictNames.Of(Verdict.Healthy);
            if (verdict != previous)
            {
                entries.Add(new AuditEntry(AuditEventTypes.Evaluation, deploymentId, deployment.Service, Actor, new
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
                    query = evaluation.Query,
                }));
            }
        }

        var trigger = conclusion.Outcome switch
        {
            WatchOutcome.Regressed => DeploymentTrigger.Regressed,
            WatchOutcome.StoppedBlind => DeploymentTrigger.Stop,
            WatchOutcome.Completed => DeploymentTrigger.WatchCompleted,
            _ => (DeploymentTrigger?)null,
        };
        if (trigger is { } move)
        {
            var change = WebhookProcessor.ChangeState(deployment, move, Actor, now);
            entries.Add(change with
            {
                Data = new { from = DeploymentState.Watching, to = deployment.State, trigger = move.ToString(), reason = conclusion.Reason },
            });
            await db.SaveChangesAsync(cancellationToken);
        }

        await audit.AppendAsync(db, entries, cancellationToken);
        if (trigger == DeploymentTrigger.Regressed)
        {
            // The decision (auto: roll back now; recommend: ask the decision channel) commits with the regression itself.
            var evidence = evaluations.Select(e => e.Evaluation).Where(e => e.IsRegression)
                .Select(e => new MetricEvidence(e.Metric, e.Value, e.Reference, e.AllowedValue, VerdictNames.Of(e.Verdict), e.Explanation))
                .ToList();
            await decisions.OnRegressedAsync(db, deployment, runbook, evidence, cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return Stored.Committed;
    }

    private enum Stored
    {
        Committed,
        AlreadyDone,
        NotWatching,
    }

    [LoggerMessage(EventId = 3101, Level = LogLevel.Information, Message = "Deployment {DeploymentId} is not watching (state {State}); its watch ends")]
    private static partial void LogNotWatching(ILogger logger, string deploymentId, string? state);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Watch of {DeploymentId}: the metric source failed ({Reason}); the interval is evaluated again at the next fire")]
    private static partial void LogSourceFailed(ILogger logger, string deploymentId, string reason);

    [LoggerMessage(EventId = 3103, Level = LogLevel.Information, Message = "Watch of {DeploymentId}: {At} was already evaluated elsewhere; resuming at the next fire")]
    private static partial void LogAlreadyEvaluated(ILogger logger, string deploymentId, DateTimeOffset at);

    [LoggerMessage(EventId = 3104, Level = LogLevel.Information, Message = "Watch of {DeploymentId} concluded {Outcome} at {At}: {Reason}")]
    private static partial void LogConcluded(ILogger logger, string deploymentId, WatchOutcome outcome, DateTimeOffset at, string? reason);
}
