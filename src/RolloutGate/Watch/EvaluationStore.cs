using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Watch;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Watch;

/// <summary>A metric's last stored evaluation: where the watch resumes.</summary>
public sealed record StoredEvaluation(string Metric, DateTimeOffset At, string Verdict, DetectorState State);

/// <summary>
/// The watch's tables (migrations/0002_watch.sql) in plain SQL. Inserts use ON CONFLICT DO NOTHING on the natural keys,
/// so a second replica or a re-run after a crash cannot duplicate a baseline or an evaluation. Reads and
/// writes take many deployments at once: the watch evaluates all its due watches together.
/// </summary>
public static class EvaluationStore
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Each deployment's last stored evaluation per metric: where its watch resumes.</summary>
    public static async Task<Dictionary<string, Dictionary<string, StoredEvaluation>>> LatestAsync(
        RolloutGateDbContext db, IReadOnlyCollection<string> deploymentIds, CancellationToken cancellationToken)
    {
        var ids = deploymentIds.ToArray();
        var rows = await db.Database.SqlQuery<LatestRow>($"""
            SELECT DISTINCT ON (deployment_id, metric) deployment_id AS "DeploymentId", metric AS "Metric", at AS "At",
                   verdict AS "Verdict", state::text AS "State"
            FROM evaluations WHERE deployment_id = ANY({ids}) ORDER BY deployment_id, metric, at DESC
            """).ToListAsync(cancellationToken);
        return rows.GroupBy(r => r.DeploymentId, StringComparer.Ordinal).ToDictionary(
            g => g.Key,
            g => g.ToDictionary(
                r => r.Metric,
                r => new StoredEvaluation(r.Metric, r.At, r.Verdict, JsonSerializer.Deserialize<DetectorState>(r.State, Json)!),
                StringComparer.Ordinal),
            StringComparer.Ordinal);
    }

    /// <summary>Each deployment's stored baseline samples per metric.</summary>
    public static async Task<Dictionary<string, Dictionary<string, IReadOnlyList<Observation>>>> BaselinesAsync(
        RolloutGateDbContext db, IReadOnlyCollection<string> deploymentIds, CancellationToken cancellationToken)
    {
        var ids = deploymentIds.ToArray();
        var rows = await db.Database.SqlQuery<BaselineRow>($"""
            SELECT deployment_id AS "DeploymentId", metric AS "Metric", samples::text AS "Samples"
            FROM watch_baselines WHERE deployment_id = ANY({ids})
            """).ToListAsync(cancellationToken);
        return rows.GroupBy(r => r.DeploymentId, StringComparer.Ordinal).ToDictionary(
            g => g.Key,
            g => g.ToDictionary(
                r => r.Metric,
                r => (IReadOnlyList<Observation>)JsonSerializer.Deserialize<List<Observation>>(r.Samples, Json)!,
                StringComparer.Ordinal),
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

    /// <summary>
    /// Inserts the evaluations of many deployments in one statement, inside the caller's transaction; returns the
    /// deployments whose rows went in. A deployment missing from the answer had that t stored already (by another
    /// replica, or before a crash): its rows conflict on (deployment, metric, t) and are left as they were.
    /// </summary>
    public static async Task<HashSet<string>> InsertAsync(
        RolloutGateDbContext db, IReadOnlyList<(string DeploymentId, WatchEvaluation Evaluation)> rows, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var connection = (NpgsqlConnection)db.Database.GetDbConnection();
        var transaction = (NpgsqlTransaction?)db.Database.CurrentTransaction?.GetDbTransaction()
            ?? throw new InvalidOperationException("evaluations are inserted inside the transaction that stores their consequences");
        await using var command = new NpgsqlCommand("""
            INSERT INTO evaluations (deployment_id, metric, at, value, baseline, threshold, statistic, verdict, explanation, query, state, evaluated_at)
            SELECT d, m, a, v, b, t, s, r, e, q, j::jsonb, $12
            FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::text[], $9::text[], $10::text[], $11::text[])
                 AS x(d, m, a, v, b, t, s, r, e, q, j)
            ON CONFLICT (deployment_id, metric, at) DO NOTHING
            RETURNING deployment_id
            """, connection, transaction);
        var evaluations = rows.Select(r => r.Evaluation.Evaluation).ToList();
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.DeploymentId).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = evaluations.Select(e => e.Metric).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = evaluations.Select(e => e.At).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = evaluations.Select(e => e.Value).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = evaluations.Select(e => e.Reference).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = evaluations.Select(e => e.AllowedValue).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = evaluations.Select(e => Finite(e.Statistic)).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = evaluations.Select(e => VerdictNames.Of(e.Verdict)).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = evaluations.Select(e => e.Explanation).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.Evaluation.Query).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = evaluations.Select(e => JsonSerializer.Serialize(e.State, Json)).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = now });
        var inserted = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            inserted.Add(reader.GetString(0));
        }

        return inserted;
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

    private sealed record LatestRow(string DeploymentId, string Metric, DateTimeOffset At, string Verdict, string State);

    private sealed record BaselineRow(string DeploymentId, string Metric, string Samples);

    private sealed record ViewRow(string DeploymentId, string Metric, DateTimeOffset At, double? Value, double? Baseline, double? Threshold, string Verdict, string Explanation);
}
