using Microsoft.EntityFrameworkCore;
using RolloutGate.Core.Analysis;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Prometheus;

namespace RolloutGate.Watch;

// The sweep's sessions: kept, or rebuilt from the database, with each watch's baseline read, captured or reduced.
public sealed partial class WatchSweep
{
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
                // Per version and environment: the queries of a runbook with placeholders differ between its environments.
                if (!_plans.TryGetValue((deployment.RunbookVersionId, deployment.Environment), out var plan))
                {
                    _plans[(deployment.RunbookVersionId, deployment.Environment)] = plan = WatchPlan.From(runbook, deployment.Environment);
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
            SourceAnswered();
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
                if (!stored.TryGetValue(metric.Name, out var bytes) || BaselineWindow.Decode(bytes, metric.Kind, plan.Options, row.WatchUntil, plan.TimeZone) is not { } window)
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
}
