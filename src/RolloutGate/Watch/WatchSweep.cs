using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RolloutGate.Audit;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Deployments;
using RolloutGate.Core.Watch;
using RolloutGate.Decisions;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Operations;
using RolloutGate.Prometheus;
using RolloutGate.Runbooks;

namespace RolloutGate.Watch;

/// <summary>
/// Evaluates every watch that is due, all together. Every watch with the same interval evaluates at the same times
/// (<see cref="WatchSchedule"/>), so the watches due at t are read from Prometheus with one query per preset for all of
/// them (<see cref="PrometheusMetricSource"/>), evaluated in memory, and stored many deployments to a transaction, each
/// evaluation under its unique key (deployment, metric, t) together with any state change, audit event and decision it
/// causes. A crash loses at most what was not committed, which the next sweep evaluates again; a watch that fell behind
/// (the service was down) evaluates each missed t in order, one per round. A watch whose source or store fails is
/// held back for a few seconds and tried again, its t still due; but once its source has failed for longer than
/// <see cref="WatchOptions.SourceOutageGrace"/>, counted both from t and from the watch's first failed attempt, t is
/// stored blind with the source's error, so that an outage shows in the latest evaluation, the audit trail and Slack,
/// and the runbook's stopRules.maxBlind applies to it. An interval stored blind is not evaluated again. The same holds
/// for a watch whose baseline the source could not give when it began: it records its intervals blind past the grace,
/// and reads the baseline again every few seconds (the window lies before the deploy, so it is still there afterwards).
/// <para>
/// Run by <see cref="WatchSweepJob"/>, a single clustered Quartz job: one replica sweeps at a time, and another takes over
/// if it dies. The per-deployment state lives in the database (watch_due_at, the evaluations with their detector state,
/// the baselines); the sessions kept here only save reading it again, and are rebuilt whenever they are out of date.
/// </para>
/// </summary>
public sealed partial class WatchSweep(
    IServiceScopeFactory scopes,
    RunbookCatalog runbooks,
    AuditTrail audit,
    DecisionPolicy decisions,
    RolloutGateMetrics metrics,
    IOptions<WatchOptions> options,
    TimeProvider time,
    ILogger<WatchSweep> logger)
{
    public const string Actor = "rolloutgate";

    /// <summary>Baselines captured at once for watches seen for the first time (each is a few range queries).</summary>
    private const int CaptureParallelism = 8;

    /// <summary>Deployments whose stored baselines are read together (about 70 MB in their stored form for 24-hour baselines), then reduced.</summary>
    private const int ReadChunk = 500;

    /// <summary>
    /// Watches rebuilt ahead of their next t at a time, when the sweep is idle (after a restart every watch must be rebuilt
    /// from the database; doing it between evaluation times keeps that work off the first t after the restart).
    /// </summary>
    private const int PrewarmChunk = 250;

    /// <summary>
    /// How long one idle fire of the sweep goes on rebuilding, chunk after chunk, unless a watch comes due first: long
    /// enough to rebuild thousands of watches before their t, short enough that new deployments are seen within seconds.
    /// </summary>
    private static readonly TimeSpan PrewarmBudget = TimeSpan.FromSeconds(5);

    /// <summary>How far ahead of its next t a watch is rebuilt, and how long the sweep waits before looking again when all are.</summary>
    private static readonly TimeSpan PrewarmHorizon = TimeSpan.FromMinutes(1);

    private static readonly TimeSpan PrewarmPause = TimeSpan.FromSeconds(10);

    /// <summary>How long a watch whose source or store failed waits before it is tried again (its t is not lost).</summary>
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(10);

    /// <summary>How long a watch that cannot run at all (its runbook version no longer parses, say) waits before it is tried again.</summary>
    private static readonly TimeSpan BrokenDelay = TimeSpan.FromMinutes(1);

    private readonly Dictionary<string, WatchSession> _sessions = new(StringComparer.Ordinal);

    /// <summary>Watches held back after a failure, until when. In memory only: after a restart everything is tried at once.</summary>
    private readonly Dictionary<string, DateTimeOffset> _retryAt = new(StringComparer.Ordinal);
    /// <summary>
    /// When the metric source first failed for each watch in its current run of failures; forgotten when the source
    /// answers for it. In memory only: after a restart (or on another replica) an outage is counted from the first failure
    /// seen there, so it waits a full grace again before storing anything blind; it never stores blind early.
    /// </summary>
    private readonly Dictionary<string, DateTimeOffset> _failingSince = new(StringComparer.Ordinal);
    private readonly Dictionary<(long RunbookVersionId, string Environment), WatchPlan> _plans = [];
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private DateTimeOffset _nextPrewarm = DateTimeOffset.MinValue;

    /// <summary>When the metric source last answered this instance (a baseline or an interval).</summary>
    private DateTimeOffset _sourceAnsweredAt = DateTimeOffset.MinValue;

    /// <summary>
    /// The outage of the metric source this instance is in, if any: since when it fails, when it last said so in the log and
    /// how many failed attempts that line has not told yet. Each held-back watch is tried again every
    /// <see cref="RetryDelay"/>; the log says so at most every <see cref="DatabaseOutageLog.Every"/>, and once when the
    /// source answers again.
    /// </summary>
    private (DateTimeOffset Since, DateTimeOffset Logged, int Attempts, int Unlogged)? _sourceOutage;

    /// <summary>Sweeps until nothing is due; returns the number of evaluations stored.</summary>
    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        await _oneAtATime.WaitAsync(cancellationToken);
        try
        {
            return await SweepAsync(cancellationToken);
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    private async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        var stored = 0;
        while (true)
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
            var source = scope.ServiceProvider.GetRequiredService<IMetricSource>();
            var now = time.GetUtcNow();
            var due = await DueAsync(db, now, cancellationToken);
            if (due.Count == 0)
            {
                Evict(now);
                await PrewarmAsync(db, source, now, cancellationToken);
                return stored;
            }

            var sessions = await SessionsAsync(db, source, due, now, cancellationToken);
            // Watches not due yet: remember when they are, so the sweep does not look at them again until then.
            var later = sessions.Where(s => s.NextDue > now && s.NextDue <= s.Until).ToList();
            await SetDueAsync(db, [.. later.Select(s => s.DeploymentId)], [.. later.Select(s => s.NextDue)], cancellationToken);

            // A watch too short for any evaluation time before its end has nothing to evaluate: it completes.
            var results = sessions.Where(s => s.NextDue > s.Until)
                .Select(s => new Result(s, s.Until, [], new WatchConclusion(WatchOutcome.Completed, "the watch reached its end with no evaluation time left")))
                .ToList();
            foreach (var group in sessions.Where(s => s.NextDue <= now && s.NextDue <= s.Until).GroupBy(s => s.NextDue).OrderBy(g => g.Key))
            {
                results.AddRange(await EvaluateAsync(source, group.Key, [.. group], cancellationToken));
            }

            foreach (var chunk in results.Chunk(options.Value.StoreBatchSize))
            {
                stored += await StoreIsolatingFailuresAsync(db, chunk, cancellationToken);
            }
        }
    }

    /// <summary>
    /// Watching deployments whose next evaluation is due, then those the sweep has not seen yet: the running watches come
    /// first, so a burst of new ones waits for the next round rather than pushing them out of this one.
    /// </summary>
    private async Task<List<DueRow>> DueAsync(RolloutGateDbContext db, DateTimeOffset now, CancellationToken cancellationToken)
    {
        foreach (var (id, _) in _retryAt.Where(r => r.Value <= now).ToList())
        {
            _retryAt.Remove(id);
        }

        var skip = _retryAt.Keys.ToArray();
        var limit = options.Value.BatchSize;
        return await db.Database.SqlQuery<DueRow>($"""
            SELECT id AS "Id", watch_due_at AS "DueAt" FROM deployments
            WHERE state = 'watching' AND (watch_due_at IS NULL OR watch_due_at <= {now}) AND NOT (id = ANY({skip}))
            ORDER BY watch_due_at NULLS LAST, id
            LIMIT {limit}
            """).ToListAsync(cancellationToken);
    }

    /// <summary>
    /// With nothing due, rebuilds the sessions of watches due within <see cref="PrewarmHorizon"/> that this instance does
    /// not hold (all of them after a restart), <see cref="PrewarmChunk"/> at a time for at most <see cref="PrewarmBudget"/>
    /// and never past the earliest of their due times, so their next t finds them ready.
    /// </summary>
    private async Task PrewarmAsync(RolloutGateDbContext db, IMetricSource source, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (now < _nextPrewarm)
        {
            return;
        }

        var horizon = now + PrewarmHorizon;
        var limit = options.Value.BatchSize;
        var soon = await db.Database.SqlQuery<DueRow>($"""
            SELECT id AS "Id", watch_due_at AS "DueAt" FROM deployments
            WHERE state = 'watching' AND watch_due_at IS NOT NULL AND watch_due_at <= {horizon}
            ORDER BY watch_due_at, id
            LIMIT {limit}
            """).ToListAsync(cancellationToken);
        var missing = soon.Where(r => !_retryAt.ContainsKey(r.Id) && Held(r) is null).ToList();
        _nextPrewarm = missing.Count == 0 ? now + PrewarmPause : now;
        var earliestDue = soon.Count > 0 ? soon[0].DueAt!.Value : horizon;
        foreach (var chunk in missing.Chunk(PrewarmChunk))
        {
            var at = time.GetUtcNow();
            if (at >= earliestDue || at - now >= PrewarmBudget)
            {
                return;
            }

            await SessionsAsync(db, source, [.. chunk], at, cancellationToken);
        }
    }

    /// <summary>
    /// Reads every metric of the watches due at <paramref name="at"/> in one go and runs the detector on each. When the
    /// source cannot answer, see <see cref="SourceFailed"/>.
    /// </summary>
    private async Task<List<Result>> EvaluateAsync(
        IMetricSource source, DateTimeOffset at, List<WatchSession> due, CancellationToken cancellationToken)
    {
        var results = new List<Result>(due.Count);
        foreach (var failed in due.Where(s => s.Unbaselined is not null).GroupBy(s => s.Unbaselined!.Reason, StringComparer.Ordinal))
        {
            results.AddRange(Unbaselined(at, [.. failed], failed.Key));
        }

        var sessions = due.Where(s => s.Unbaselined is null).ToList();
        if (sessions.Count == 0)
        {
            return results;
        }

        IReadOnlyList<MetricObservation> seen;
        try
        {
            seen = await source.ObserveAsync([.. sessions.SelectMany(s => s.Plan.Metrics)], at, cancellationToken);
        }
        catch (PrometheusException ex)
        {
            results.AddRange(SourceFailed(at, sessions, ex.Message));
            return results;
        }

        SourceAnswered();
        var offset = 0;
        foreach (var session in sessions)
        {
            _failingSince.Remove(session.DeploymentId);
            var metrics = session.Plan.Metrics.Count;
            results.Add(Conclude(session, at, [.. seen.Skip(offset).Take(metrics)]));
            offset += metrics;
        }

        return results;
    }

    /// <summary>
    /// Watches due at <paramref name="at"/> whose baseline could not be read: as if the source had failed for t (see
    /// <see cref="SourceFailed"/>), unless it has answered since, in which case the session is dropped, so that the next
    /// round reads the baseline and evaluates t with data.
    /// </summary>
    private List<Result> Unbaselined(DateTimeOffset at, List<WatchSession> sessions, string reason)
    {
        var answeredSince = sessions.Where(s => s.Unbaselined!.FailedAt < _sourceAnsweredAt).ToList();
        foreach (var session in answeredSince)
        {
            _sessions.Remove(session.DeploymentId);
        }

        return SourceFailed(at, [.. sessions.Except(answeredSince)], reason);
    }

    /// <summary>
    /// The source could not answer for <paramref name="at"/>. Within the grace (<see cref="WatchOptions.SourceOutageGrace"/>
    /// since t, or since the watch's first failed attempt of this outage) nothing is stored: the watch is tried again at a
    /// later sweep, so a short outage is evaluated afterwards at its own t with real data, and never read as healthy. Past
    /// both, every metric of t is evaluated without data, blind, with the source's error in the explanation: the outage
    /// is then seen where any blindness is (latest evaluation, verdict-change audit, Slack, stopRules.maxBlind), and t,
    /// stored under its unique key, is not evaluated again.
    /// </summary>
    private List<Result> SourceFailed(DateTimeOffset at, List<WatchSession> sessions, string reason)
    {
        var now = time.GetUtcNow();
        var grace = options.Value.SourceOutageGrace;
        var blind = new List<WatchSession>();
        var waiting = new List<WatchSession>();
        foreach (var session in sessions)
        {
            if (!_failingSince.TryGetValue(session.DeploymentId, out var since))
            {
                _failingSince[session.DeploymentId] = since = now;
            }

            (now - at >= grace && now - since >= grace ? blind : waiting).Add(session);
        }

        var outage = _sourceOutage ?? (now, DateTimeOffset.MinValue, 0, 0);
        outage = (outage.Since, outage.Logged, outage.Attempts + 1, outage.Unlogged + 1);
        if (waiting.Count > 0 && now - outage.Logged >= DatabaseOutageLog.Every)
        {
            LogSourceFailed(logger, waiting.Count, at, reason, grace, outage.Unlogged);
            outage = (outage.Since, now, outage.Attempts, 0);
        }

        _sourceOutage = outage;
        if (waiting.Count > 0)
        {
            HoldBack(waiting.Select(s => s.DeploymentId), RetryDelay);
        }

        if (blind.Count == 0)
        {
            return [];
        }

        LogStoredBlind(logger, blind.Count, at, grace, reason);
        var note = $"Prometheus could not be asked: {reason.TrimEnd('.')}. It still failed {MetricQueries.Duration(grace)} after this interval's time, so the interval is recorded blind and not evaluated again.";
        return [.. blind.Select(s => Conclude(s, at, [.. s.Plan.Metrics.Select(_ => new MetricObservation(new Observation(at, null), note))]))];
    }

    /// <summary>Runs the detector on what was seen of one watch's metrics at <paramref name="at"/> and decides what follows.</summary>
    private static Result Conclude(WatchSession session, DateTimeOffset at, IReadOnlyList<MetricObservation> seen)
    {
        var evaluations = WatchEvaluator.Evaluate(session.Plan, session.DeployedAt, session.Baselines, session.States, seen);
        var watch = session.Plan.Watch;
        var conclusion = WatchConclusion.After([.. evaluations.Select(e => e.Evaluation)], at, session.Until, watch.Interval, watch.StopRules.MaxBlind);
        return new Result(session, at, evaluations, conclusion);
    }

    /// <summary>The metric source answered (a baseline or an interval); after an outage, the log says it is over.</summary>
    private void SourceAnswered()
    {
        _sourceAnsweredAt = time.GetUtcNow();
        if (_sourceOutage is { } outage)
        {
            _sourceOutage = null;
            LogSourceAnswersAgain(logger, MetricQueries.Duration(_sourceAnsweredAt - outage.Since), outage.Since, outage.Attempts);
        }
    }

    private void HoldBack(IEnumerable<string> deploymentIds, TimeSpan delay)
    {
        var until = time.GetUtcNow() + delay;
        foreach (var id in deploymentIds)
        {
            _retryAt[id] = until;
        }
    }

    /// <summary>
    /// Forgets sessions not used for two intervals (their watch ended, or another replica has it), and the plans of runbook
    /// versions no session uses any more: every edit of a runbook is a new version, and a service that runs for months
    /// would otherwise keep the plan of each one it ever watched.
    /// </summary>
    private void Evict(DateTimeOffset now)
    {
        foreach (var (id, session) in _sessions.ToList())
        {
            if (now - session.LastUsed > 2 * session.Plan.Watch.Interval + TimeSpan.FromMinutes(1))
            {
                _sessions.Remove(id);
            }
        }

        foreach (var id in _failingSince.Keys.Where(id => !_sessions.ContainsKey(id)).ToList())
        {
            _failingSince.Remove(id);
        }

        var planned = _sessions.Values.Select(s => s.Plan).ToHashSet(ReferenceEqualityComparer.Instance);
        foreach (var (key, plan) in _plans.ToList())
        {
            if (!planned.Contains(plan))
            {
                _plans.Remove(key);
            }
        }
    }

    /// <summary>The runbook versions whose watch plan this instance keeps, read between sweeps (tests look at it).</summary>
    internal async Task<IReadOnlyList<long>> PlannedVersionsAsync()
    {
        await _oneAtATime.WaitAsync();
        try
        {
            return [.. _plans.Keys.Select(k => k.RunbookVersionId).Distinct().Order()];
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    private sealed record DueRow(string Id, DateTimeOffset? DueAt);

    /// <summary>A watch's evaluations at one t and what follows from them.</summary>
    private sealed record Result(WatchSession Session, DateTimeOffset At, IReadOnlyList<WatchEvaluation> Evaluations, WatchConclusion Conclusion)
    {
        public DeploymentTrigger? Trigger => Conclusion.Outcome switch
        {
            WatchOutcome.Regressed => DeploymentTrigger.Regressed,
            WatchOutcome.StoppedBlind => DeploymentTrigger.Stop,
            WatchOutcome.Completed => DeploymentTrigger.WatchCompleted,
            _ => null,
        };

        /// <summary>The watch's next evaluation time once this one is stored.</summary>
        public DateTimeOffset NextDue => WatchSchedule.Next(Session.DeployedAt, Session.Plan.Watch.Interval, At);
    }

    [LoggerMessage(EventId = 3101, Level = LogLevel.Information, Message = "Deployment {DeploymentId} is no longer watching; its watch ends")]
    private static partial void LogNotWatching(ILogger logger, string deploymentId);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Watch: the metric source failed for {Count} watches at {At:O} ({Reason}); they are evaluated again at the next sweep, and recorded blind if it still fails {Grace} after that time and after their first failure; {Attempts} attempt(s) failed since the last such line")]
    private static partial void LogSourceFailed(ILogger logger, int count, DateTimeOffset at, string reason, TimeSpan grace, int attempts);

    [LoggerMessage(EventId = 3112, Level = LogLevel.Information, Message = "Watch: the metric source answers again after {Duration} (failing since {Since:O}, {Attempts} failed attempt(s)); the intervals not recorded blind are evaluated at their own times")]
    private static partial void LogSourceAnswersAgain(ILogger logger, string duration, DateTimeOffset since, int attempts);

    [LoggerMessage(EventId = 3111, Level = LogLevel.Warning, Message = "Watch: the metric source still fails for {Count} watches at {At:O}, longer than the {Grace} grace ({Reason}); that interval is recorded blind")]
    private static partial void LogStoredBlind(ILogger logger, int count, DateTimeOffset at, TimeSpan grace, string reason);

    [LoggerMessage(EventId = 3103, Level = LogLevel.Information, Message = "Watch of {DeploymentId}: {At:O} was already evaluated elsewhere; resuming from the database")]
    private static partial void LogAlreadyEvaluated(ILogger logger, string deploymentId, DateTimeOffset at);

    [LoggerMessage(EventId = 3104, Level = LogLevel.Information, Message = "Watch of {DeploymentId} concluded {Outcome} at {At:O}: {Reason}")]
    private static partial void LogConcluded(ILogger logger, string deploymentId, WatchOutcome outcome, DateTimeOffset at, string? reason);

    [LoggerMessage(EventId = 3105, Level = LogLevel.Warning, Message = "Watch of {DeploymentId}: the baseline could not be read ({Reason}); trying again in a few seconds, its intervals recorded blind meanwhile once older than the grace")]
    private static partial void LogBaselineFailed(ILogger logger, string deploymentId, string reason);

    [LoggerMessage(EventId = 3110, Level = LogLevel.Warning, Message = "Watch of {DeploymentId}: the stored reduction of the {Metric} baseline is unreadable ({Reason}); its samples are reduced again and the reduction replaced")]
    private static partial void LogReductionUnreadable(ILogger logger, string deploymentId, string metric, string reason);

    [LoggerMessage(EventId = 3106, Level = LogLevel.Error, Message = "Watch of {DeploymentId} cannot run: {Reason}")]
    private static partial void LogCannotWatch(ILogger logger, string deploymentId, string reason);

    [LoggerMessage(EventId = 3107, Level = LogLevel.Error, Message = "Watch of {DeploymentId}: storing its evaluation failed; trying again at the next sweep")]
    private static partial void LogStoreFailed(ILogger logger, string deploymentId, Exception exception);

    [LoggerMessage(EventId = 3108, Level = LogLevel.Information, Message = "Watch: {Deferred} new watches wait for a later round of the sweep to capture their baselines ({PerRound} a round)")]
    private static partial void LogCaptureDeferred(ILogger logger, int deferred, int perRound);

    [LoggerMessage(EventId = 3109, Level = LogLevel.Debug, Message = "Watch: {Count} watches rebuilt in {Total:F0} ms (deployments and states {Rows:F0} ms, baselines read, captured and reduced {Baselines:F0} ms)")]
    private static partial void LogRebuilt(ILogger logger, int count, double total, double rows, double baselines);
}
