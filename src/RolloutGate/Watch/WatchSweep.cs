using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
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
    private readonly Dictionary<long, WatchPlan> _plans = [];
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private DateTimeOffset _nextPrewarm = DateTimeOffset.MinValue;

    /// <summary>When the metric source last answered this instance (a baseline or an interval).</summary>
    private DateTimeOffset _sourceAnsweredAt = DateTimeOffset.MinValue;

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
    /// The session this instance holds for the row's watch, if it is where the database says the watch is, and, for one
    /// still without a baseline, not yet due to read it again.
    /// </summary>
    private WatchSession? Held(DueRow row) =>
        _sessions.TryGetValue(row.Id, out var session) && row.DueAt == session.NextDue
            && !(session.Unbaselined is { } missing && missing.RetryAt <= time.GetUtcNow())
            ? session
            : null;

    /// <summary>The session of each due deployment: kept if it is where the database says the watch is, else rebuilt.</summary>
    private async Task<List<WatchSession>> SessionsAsync(
        RolloutGateDbContext db, IMetricSource source, List<DueRow> due, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var sessions = new List<WatchSession>(due.Count);
        var missing = new List<string>();
        foreach (var row in due)
        {
            if (Held(row) is { } session)
            {
                session.LastUsed = now;
                sessions.Add(session);
            }
            else
            {
                missing.Add(row.Id);
            }
        }

        if (missing.Count == 0)
        {
            return sessions;
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var deployments = await db.Deployments.AsNoTracking().Include(d => d.RunbookVersion)
            .Where(d => missing.Contains(d.Id)).ToListAsync(cancellationToken);
        var latest = await EvaluationStore.LatestAsync(db, missing, cancellationToken);
        var plans = new Dictionary<string, (DeploymentRow Row, Core.Runbooks.Runbook Runbook, WatchPlan Plan)>(StringComparer.Ordinal);
        foreach (var deployment in deployments)
        {
            try
            {
                if (deployment is not { DeployedAt: not null, WatchUntil: not null, BaselineFrom: not null, BaselineTo: not null })
                {
                    throw new InvalidOperationException("the deployment is watching but has no deploy time, watch end or baseline window");
                }

                var runbook = runbooks.VersionOf(deployment);
                if (!_plans.TryGetValue(deployment.RunbookVersionId, out var plan))
                {
                    _plans[deployment.RunbookVersionId] = plan = WatchPlan.From(runbook);
                }

                plans[deployment.Id] = (deployment, runbook, plan);
            }
            catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
            {
                HoldBack([deployment.Id], BrokenDelay);
                LogCannotWatch(logger, deployment.Id, ex.Message);
            }
        }

        var rowsRead = clock.Elapsed;
        var (baselines, deferred, failed) = await BaselinesAsync(db, source, [.. plans.Values.Select(p => (p.Row, p.Plan))], cancellationToken);
        LogRebuilt(logger, baselines.Count, clock.Elapsed.TotalMilliseconds, rowsRead.TotalMilliseconds, (clock.Elapsed - rowsRead).TotalMilliseconds);
        foreach (var (id, windows) in baselines)
        {
            sessions.Add(Session(plans[id], windows, null));
        }

        // A watch whose baseline the source could not give (Prometheus down when it began) still has its intervals: it
        // gets a session that can only record them blind, past the grace (see SourceFailed), so the outage is seen and
        // stopRules.maxBlind applies; the baseline is read again after RetryDelay, which rebuilds the session.
        foreach (var (id, reason) in failed)
        {
            var (row, _, plan) = plans[id];
            var failedAt = time.GetUtcNow();
            _failingSince.TryAdd(id, failedAt);
            var empty = WatchEvaluator.Baselines(plan, new Dictionary<string, IReadOnlyList<Observation>>(), row.WatchUntil!.Value);
            sessions.Add(Session(plans[id], empty, new MissingBaseline(reason, failedAt, failedAt + RetryDelay)));
        }

        // Whatever could not be made a session (gone meanwhile, say) waits, so a round always makes progress; a watch whose
        // baseline capture was left for the next round does not wait.
        var built = sessions.Select(s => s.DeploymentId).ToHashSet(StringComparer.Ordinal);
        HoldBack(missing.Where(id => !built.Contains(id) && !deferred.Contains(id) && !_retryAt.ContainsKey(id)), RetryDelay);
        return sessions;

        WatchSession Session(
            (DeploymentRow Row, Core.Runbooks.Runbook Runbook, WatchPlan Plan) planned,
            IReadOnlyDictionary<string, BaselineWindow> windows,
            MissingBaseline? unbaselined)
        {
            var session = new WatchSession
            {
                DeploymentId = planned.Row.Id,
                Service = planned.Row.Service,
                Runbook = planned.Runbook,
                Plan = planned.Plan,
                DeployedAt = planned.Row.DeployedAt!.Value,
                Until = planned.Row.WatchUntil!.Value,
                Baselines = windows,
                Unbaselined = unbaselined,
                LastUsed = now,
            };
            session.Resume(latest.GetValueOrDefault(planned.Row.Id) ?? []);
            _sessions[planned.Row.Id] = session;
            return session;
        }
    }

    /// <summary>
    /// The baseline of each deployment, reduced to what its watch compares with: read from the database, or captured from
    /// the source first where a metric's is missing (the first time the watch sees the deployment), for at most
    /// <see cref="WatchOptions.CapturesPerRound"/> deployments; the others are returned as deferred, for the next round,
    /// and those the source could not answer for as failed, with the reason.
    /// Captured baselines are read back after storing, so everyone compares with the baseline stored first. Stored ones are
    /// read and reduced <see cref="ReadChunk"/> deployments at a time: after a restart that is every running watch, and
    /// holding all their samples at once (1,440 a metric for a 24-hour baseline) would cost gigabytes.
    /// </summary>
    private async Task<(Dictionary<string, Dictionary<string, BaselineWindow>> Baselines, HashSet<string> Deferred, IReadOnlyDictionary<string, string> Failed)> BaselinesAsync(
        RolloutGateDbContext db, IMetricSource source, List<(DeploymentRow Row, WatchPlan Plan)> deployments, CancellationToken cancellationToken)
    {
        var reduced = new Dictionary<string, Dictionary<string, BaselineWindow>>(StringComparer.Ordinal);
        var incomplete = new List<(DeploymentRow Row, WatchPlan Plan, List<WatchMetric> Missing)>();
        foreach (var chunk in deployments.Chunk(ReadChunk))
        {
            // A watch rebuilt after a restart reads its baselines' stored reductions; only one without a usable reduction
            // (a watch never reduced before, or reduced by another version) reads its samples, and stores the reduction.
            var storedReductions = await EvaluationStore.ReducedAsync(db, [.. chunk.Select(d => d.Row.Id)], cancellationToken);
            var unreduced = new List<(DeploymentRow Row, WatchPlan Plan)>();
            foreach (var (row, plan) in chunk)
            {
                if (StoredReductions(row, plan, storedReductions.GetValueOrDefault(row.Id)) is { } windows)
                {
                    reduced[row.Id] = windows;
                }
                else
                {
                    unreduced.Add((row, plan));
                }
            }

            if (unreduced.Count == 0)
            {
                continue;
            }

            var (stored, unreadable) = await EvaluationStore.BaselinesAsync(db, [.. unreduced.Select(d => d.Row.Id)], cancellationToken);
            Unreadable(unreadable);
            var complete = new List<(DeploymentRow Row, WatchPlan Plan, Dictionary<string, byte[]> Samples)>();
            foreach (var (row, plan) in unreduced.Where(d => !unreadable.ContainsKey(d.Row.Id)))
            {
                var samples = stored.GetValueOrDefault(row.Id) ?? [];
                var missing = plan.Metrics.Where(m => !samples.ContainsKey(m.Name)).ToList();
                if (missing.Count > 0)
                {
                    incomplete.Add((row, plan, missing));
                }
                else
                {
                    complete.Add((row, plan, samples));
                }
            }

            await EvaluationStore.StoreReducedAsync(db, Reduce(complete, reduced, cancellationToken), cancellationToken);
        }

        var toCapture = incomplete.Take(Math.Max(1, options.Value.CapturesPerRound)).ToList();
        var deferred = incomplete.Skip(toCapture.Count).Select(d => d.Row.Id).ToHashSet(StringComparer.Ordinal);
        if (deferred.Count > 0)
        {
            LogCaptureDeferred(logger, deferred.Count, toCapture.Count);
        }

        var failed = new System.Collections.Concurrent.ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        if (toCapture.Count == 0)
        {
            return (reduced, deferred, failed);
        }

        var captured = new System.Collections.Concurrent.ConcurrentBag<(string Id, Dictionary<string, IReadOnlyList<Observation>> Samples)>();
        await Parallel.ForEachAsync(
            toCapture,
            new ParallelOptions { MaxDegreeOfParallelism = CaptureParallelism, CancellationToken = cancellationToken },
            async (d, token) =>
            {
                try
                {
                    captured.Add((d.Row.Id, await WatchEvaluator.CaptureBaselineAsync(
                        source, d.Plan, d.Missing, d.Row.BaselineFrom!.Value, d.Row.BaselineTo!.Value, token)));
                }
                catch (PrometheusException ex)
                {
                    failed[d.Row.Id] = $"{ex.Message.TrimEnd('.')} (reading the baseline before the deploy)";
                    LogBaselineFailed(logger, d.Row.Id, ex.Message);
                }
            });

        if (!captured.IsEmpty)
        {
            _sourceAnsweredAt = time.GetUtcNow();
        }

        await EvaluationStore.InsertBaselinesAsync(
            db, [.. captured.SelectMany(c => c.Samples.Select(s => (c.Id, s.Key, s.Value)))], time.GetUtcNow(), cancellationToken);

        // Only what was just captured is read back (another replica may have stored its own first), every metric of it.
        var readBack = await EvaluationStore.BaselinesAsync(db, [.. captured.Select(c => c.Id)], cancellationToken);
        Unreadable(readBack.Unreadable);
        var reductions = Reduce(
            [.. toCapture.Where(d => readBack.Encoded.ContainsKey(d.Row.Id)).Select(d => (d.Row, d.Plan, readBack.Encoded[d.Row.Id]))],
            reduced,
            cancellationToken);
        await EvaluationStore.StoreReducedAsync(db, reductions, cancellationToken);
        return (reduced, deferred, failed);
    }

    /// <summary>
    /// Every metric's baseline of one watch from its stored reduction (<see cref="BaselineWindow.Decode"/>), or null when one
    /// has none this version can use (none stored, another version's, reduced from other inputs): its samples are then
    /// reduced again. A damaged reduction is logged and replaced the same way; it is a cache, the samples are the record.
    /// </summary>
    private Dictionary<string, BaselineWindow>? StoredReductions(DeploymentRow row, WatchPlan plan, Dictionary<string, byte[]>? stored)
    {
        if (stored is null)
        {
            return null;
        }

        var windows = new Dictionary<string, BaselineWindow>(StringComparer.Ordinal);
        foreach (var metric in plan.Metrics)
        {
            try
            {
                if (!stored.TryGetValue(metric.Name, out var bytes) || BaselineWindow.Decode(bytes, metric.Kind, plan.Options, row.WatchUntil) is not { } window)
                {
                    return null;
                }

                windows[metric.Name] = window;
            }
            catch (InvalidDataException ex)
            {
                LogReductionUnreadable(logger, row.Id, metric.Name, ex.Message);
                return null;
            }
        }

        return windows;
    }

    /// <summary>
    /// Decodes and reduces stored baselines (<see cref="WatchEvaluator.Baselines"/>) on all cores into
    /// <paramref name="into"/>, and returns the reductions in their stored form (<see cref="BaselineWindow.Encode"/>), to
    /// be stored for the next rebuild. Each deployment's samples are decoded just before their reduction and dropped after it.
    /// </summary>
    private static List<(string DeploymentId, string Metric, byte[] Reduced)> Reduce(
        List<(DeploymentRow Row, WatchPlan Plan, Dictionary<string, byte[]> Samples)> deployments,
        Dictionary<string, Dictionary<string, BaselineWindow>> into,
        CancellationToken cancellationToken)
    {
        var windows = new Dictionary<string, BaselineWindow>[deployments.Count];
        var encoded = new (string Metric, byte[] Reduced)[deployments.Count][];
        Parallel.For(
            0,
            deployments.Count,
            new ParallelOptions { CancellationToken = cancellationToken },
            i =>
            {
                windows[i] = WatchEvaluator.Baselines(deployments[i].Plan, StoredSamples.Decode(deployments[i].Samples), deployments[i].Row.WatchUntil!.Value);
                encoded[i] = [.. windows[i].Select(w => (w.Key, w.Value.Encode()))];
            });
        var reductions = new List<(string DeploymentId, string Metric, byte[] Reduced)>();
        for (var i = 0; i < deployments.Count; i++)
        {
            into[deployments[i].Row.Id] = windows[i];
            reductions.AddRange(encoded[i].Select(e => (deployments[i].Row.Id, e.Metric, e.Reduced)));
        }

        return reductions;
    }

    /// <summary>Watches whose stored baseline this version cannot read wait as broken ones do, each with its reason in the log.</summary>
    private void Unreadable(IReadOnlyDictionary<string, string> unreadable)
    {
        foreach (var (id, reason) in unreadable)
        {
            HoldBack([id], BrokenDelay);
            LogCannotWatch(logger, id, reason);
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

        _sourceAnsweredAt = time.GetUtcNow();
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

        if (waiting.Count > 0)
        {
            HoldBack(waiting.Select(s => s.DeploymentId), RetryDelay);
            LogSourceFailed(logger, waiting.Count, at, reason, grace);
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
        var evaluations = WatchEvaluator.Evaluate(session.Plan, session.Baselines, session.States, seen);
        var watch = session.Plan.Watch;
        var conclusion = WatchConclusion.After([.. evaluations.Select(e => e.Evaluation)], at, session.Until, watch.Interval, watch.StopRules.MaxBlind);
        return new Result(session, at, evaluations, conclusion);
    }

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
        foreach (var result in done.Where(r => r.Trigger == DeploymentTrigger.Regressed))
        {
            // The decision (auto: roll back now; recommend: ask the decision channel) commits with the regression itself.
            var evidence = result.Evaluations.Select(e => e.Evaluation).Where(e => e.IsRegression)
                .Select(e => new MetricEvidence(e.Metric, e.Value, e.Reference, e.AllowedValue, VerdictNames.Of(e.Verdict), e.Explanation))
                .ToList();
            await decisions.OnRegressedAsync(db, tracked[result.Session.DeploymentId], result.Session.Runbook, evidence, cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);

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

    /// <summary>The audit event of each metric whose verdict changed (the first evaluation is compared with healthy).</summary>
    private static IEnumerable<AuditEntry> VerdictChanges(Result result)
    {
        foreach (var evaluation in result.Evaluations)
        {
            var e = evaluation.Evaluation;
            var verdict = VerdictNames.Of(e.Verdict);
            var previous = result.Session.Verdicts.GetValueOrDefault(e.Metric) ?? VerdictNames.Of(Verdict.Healthy);
            if (verdict != previous)
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

    private void HoldBack(IEnumerable<string> deploymentIds, TimeSpan delay)
    {
        var until = time.GetUtcNow() + delay;
        foreach (var id in deploymentIds)
        {
            _retryAt[id] = until;
        }
    }

    /// <summary>Forgets sessions not used for two intervals: their watch ended, or another replica has it.</summary>
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

    [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Watch: the metric source failed for {Count} watches at {At} ({Reason}); they are evaluated again at the next sweep, and recorded blind if it still fails {Grace} after that time and after their first failure")]
    private static partial void LogSourceFailed(ILogger logger, int count, DateTimeOffset at, string reason, TimeSpan grace);

    [LoggerMessage(EventId = 3111, Level = LogLevel.Warning, Message = "Watch: the metric source still fails for {Count} watches at {At}, longer than the {Grace} grace ({Reason}); that interval is recorded blind")]
    private static partial void LogStoredBlind(ILogger logger, int count, DateTimeOffset at, TimeSpan grace, string reason);

    [LoggerMessage(EventId = 3103, Level = LogLevel.Information, Message = "Watch of {DeploymentId}: {At} was already evaluated elsewhere; resuming from the database")]
    private static partial void LogAlreadyEvaluated(ILogger logger, string deploymentId, DateTimeOffset at);

    [LoggerMessage(EventId = 3104, Level = LogLevel.Information, Message = "Watch of {DeploymentId} concluded {Outcome} at {At}: {Reason}")]
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
