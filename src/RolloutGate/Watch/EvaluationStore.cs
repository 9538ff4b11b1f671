using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Watch;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Watch;

/// <summary>A metric's last stored evaluation: where the watch resumes.</summary>
public sealed record StoredEvaluation(string Metric, DateTimeOffset At, string Verdict, DetectorState State);

/// <summary>
/// The watch's tables (migrations/0002_watch.sql) in plain SQL. Inserts use ON CONFLICT DO NOTHING on the natural keys,
/// so a second replica or a re-run after a crash cannot duplicate a baseline or an evaluation.
/// </summary>
public static class EvaluationStore
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static async Task<Dictionary<string, StoredEvaluation>> LatestAsync(RolloutGateDbContext db, string deploymentId, CancellationToken cancellationToken)
    {
        var rows = await db.Database.SqlQuery<LatestRow>($"""
            SELECT DISTINCT ON (metric) metric AS "Metric", at AS "At", verdict AS "Verdict", state::text AS "State"
            FROM evaluations WHERE deployment_id = {deploymentId} ORDER BY metric, at DESC
            """).ToListAsync(cancellationToken);
        return rows.ToDictionary(
            r => r.Metric,
            r => new StoredEvaluation(r.Metric, r.At, r.Verdict, JsonSerializer.Deserialize<DetectorState>(r.State, Json)!),
            StringComparer.Ordinal);
    }

    public static async Task<Dictionary<string, IReadOnlyList<Observation>>> BaselinesAsync(
        RolloutGateDbContext db, string deploymentId, CancellationToken cancellationToken)
    {
        var rows = await db.Database.SqlQuery<BaselineRow>($"""
            SELECT metric AS "Metric", samples::text AS "Samples" FROM watch_baselines WHERE deployment_id = {deploymentId}
            """).ToListAsync(cancellationToken);
        return rows.ToDictionary(
            r => r.Metric,
            r => (IReadOnlyList<Observation>)JsonSerializer.Deserialize<List<Observation>>(r.Samples, Json)!,
            StringComparer.Ordinal);
    }

    public static async Task InsertBaselineAsync(
        RolloutGateDbContext db, string deploymentId, string metric, IReadOnlyList<Observation> samples, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var json = JsonSerializer.Serialize(samples, Json);
        await db.Database.ExecuteSqlAsync($"""
            INSERT INTO watch_baselines (deployment_id, metric, captured_at, samples)
            VALUES ({deploymentId}, {metric}, {now}, {json}::jsonb)
            ON CONFLICT (deployment_id, metric) DO NOTHING
            """, cancellationToken);
    }

    /// <summary>Inserts one evaluation; false when that (deployment, metric, t) was already stored.</summary>
    public static async Task<bool> InsertAsync(
        RolloutGateDbContext db, string deploymentId, WatchEvaluation evaluation, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var e = evaluation.Evaluation;
        var state = JsonSerializer.Serialize(e.State, Json);
        var verdict = VerdictNames.Of(e.Verdict);
        var inserted = await db.Database.ExecuteSqlAsync($"""
            INSERT INTO evaluations (deployment_id, metric, at, value, baseline, threshold, statistic, verdict, explanation, query, state, evaluated_at)
            VALUES ({deploymentId}, {e.Metric}, {e.At}, {e.Value}, {e.Reference}, {e.AllowedValue}, {Finite(e.Statistic)}, {verdict},
                    {e.Explanation}, {evaluation.Query}, {state}::jsonb, {now})
            ON CONFLICT (deployment_id, metric, at) DO NOTHING
            """, cancellationToken);
        return inserted == 1;
    }

    /// <summary>The latest evaluation time of a deployment, with every metric's result at it (GET /api/v1/deployments/{id}).</summary>
    public static async Task<EvaluationView?> LatestViewAsync(RolloutGateDbContext db, string deploymentId, CancellationToken cancellationToken) =>
        (await LatestViewsAsync(db, [deploymentId], cancellationToken)).GetValueOrDefault(deploymentId);

    /// <summary>The same for a page of deployments, in one query (GET /api/v1/deployments); those never evaluated are absent.</summary>
    public static async Task<Dictionary<string, EvaluationView>> LatestViewsAsync(
        RolloutGateDbContext db, IReadOnlyCollection<string> deploymentIds, CancellationToken cancellationToken)
    {
        var ids = deploymentIds.ToArray();
        var rows = await db.Database.SqlQuery<ViewRow>($"""
            SELECT e.deployment_id AS "DeploymentId", e.metric AS "Metric", e.at AS "At", e.value AS "Value", e.baseline AS "Baseline",
                   e.threshold AS "Threshold", e.verdict AS "Verdict", e.explanation AS "Explanation"
            FROM evaluations e
            JOIN (SELECT deployment_id, max(at) AS at FROM evaluations WHERE deployment_id = ANY({ids}) GROUP BY deployment_id) latest
              ON latest.deployment_id = e.deployment_id AND latest.at = e.at
            ORDER BY e.deployment_id, e.metric
            """).ToListAsync(cancellationToken);
        return rows.GroupBy(r => r.DeploymentId, StringComparer.Ordinal).ToDictionary(
            g => g.Key,
            g => new EvaluationView(g.First().At, [.. g.Select(r => new MetricEvaluationView(r.Metric, r.Value, r.Baseline, r.Threshold, r.Verdict, r.Explanation))]),
            StringComparer.Ordinal);
    }

    private static double Finite(double value) => double.IsFinite(value) ? value : 0;

    private sealed record LatestRow(string Metric, DateTimeOffset At, string Verdict, string State);

    private sealed record BaselineRow(string Metric, string Samples);

    private sealed record ViewRow(string DeploymentId, string Metric, DateTimeOffset At, double? Value, double? Baseline, double? Threshold, string Verdict, string Explanation);
}
