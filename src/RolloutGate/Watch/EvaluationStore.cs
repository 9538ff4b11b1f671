using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Watch;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Watch;

/// <summary>
/// Stored baseline samples per deployment and metric, still in their stored form (checked, decoded by
/// <see cref="StoredSamples.Decode(byte[])"/> where they are used, so that thousands of baselines need not be held as objects at
/// once), and the deployments whose baseline could not be read, with why.
/// </summary>
public sealed record StoredBaselines(Dictionary<string, Dictionary<string, byte[]>> Encoded, IReadOnlyDictionary<string, string> Unreadable)
{
    /// <summary>Every baseline's samples, decoded.</summary>
    public Dictionary<string, Dictionary<string, IReadOnlyList<Observation>>> Decoded() =>
        Encoded.ToDictionary(d => d.Key, d => StoredSamples.Decode(d.Value), StringComparer.Ordinal);
}

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
                   verdict AS "Verdict", state::text AS "State", detector AS "Detector"
            FROM evaluations WHERE deployment_id = ANY({ids}) ORDER BY deployment_id, metric, at DESC
            """).ToListAsync(cancellationToken);
        return rows.GroupBy(r => r.DeploymentId, StringComparer.Ordinal).ToDictionary(
            g => g.Key,
            g => g.ToDictionary(
                r => r.Metric,
                r => new StoredEvaluation(r.Metric, r.At, r.Verdict,
                    r.Detector is { } detector ? StoredState.Decode(detector) : JsonSerializer.Deserialize<DetectorState>(r.State!, Json)!),
                StringComparer.Ordinal),
            StringComparer.Ordinal);
    }

    /// <summary>
    /// Each deployment's stored baseline samples per metric, in their compact stored form (<see cref="StoredSamples"/>):
    /// after a restart every running watch's baselines are read again, 1,440 samples a metric for a 24-hour baseline.
    /// A deployment with a baseline this version cannot read (written by a newer one, say) is returned apart, with the
    /// reason, so that it stops only its own watch.
    /// </summary>
    public static async Task<StoredBaselines> BaselinesAsync(
        RolloutGateDbContext db, IReadOnlyCollection<string> deploymentIds, CancellationToken cancellationToken)
    {
        var baselines = new Dictionary<string, Dictionary<string, byte[]>>(StringComparer.Ordinal);
        var unreadable = new Dictionary<string, string>(StringComparer.Ordinal);
        await ReadPerMetricAsync(db, "samples", "", deploymentIds, (id, metric, samples) =>
        {
            try
            {
                StoredSamples.Check(samples);
            }
            catch (InvalidDataException ex)
            {
                unreadable[id] = $"the baseline of {metric}: {ex.Message}";
                return;
            }

            Add(baselines, id, metric, samples);
        }, cancellationToken);

        foreach (var id in unreadable.Keys)
        {
            baselines.Remove(id);
        }

        return new StoredBaselines(baselines, unreadable);
    }

    /// <summary>
    /// Each deployment's stored reductions per metric (<see cref="BaselineWindow.Encode"/>), where a service has stored
    /// one: what a rebuilt watch reads instead of its samples. Their version and inputs are checked where they are decoded.
    /// </summary>
    public static async Task<Dictionary<string, Dictionary<string, byte[]>>> ReducedAsync(
        RolloutGateDbContext db, IReadOnlyCollection<string> deploymentIds, CancellationToken cancellationToken)
    {
        var reduced = new Dictionary<string, Dictionary<string, byte[]>>(StringComparer.Ordinal);
        await ReadPerMetricAsync(db, "reduced", " AND reduced IS NOT NULL", deploymentIds, (id, metric, bytes) => Add(reduced, id, metric, bytes), cancellationToken);
        return reduced;
    }

    /// <summary>
    /// Stores the reductions of stored baselines in one statement, replacing whatever was stored before (another
    /// version's, or one reduced from other inputs): a reduction is a cache of the samples, which stay as they were.
    /// Only for deployments still watching: one that stopped meanwhile had its reductions dropped (migrations/0011), and
    /// nothing would ever read or drop them again.
    /// </summary>
    public static async Task StoreReducedAsync(
        RolloutGateDbContext db, IReadOnlyList<(string DeploymentId, string Metric, byte[] Reduced)> reductions, CancellationToken cancellationToken)
    {
        if (reductions.Count == 0)
        {
            return;
        }

        await OnConnectionAsync(db, async (connection, transaction) =>
        {
            await using var command = new NpgsqlCommand("""
                UPDATE watch_baselines b SET reduced = x.r
                FROM unnest($1::text[], $2::text[], $3::bytea[]) AS x(d, m, r)
                JOIN deployments d ON d.id = x.d AND d.state = 'watching'
                WHERE b.deployment_id = x.d AND b.metric = x.m
                """, connection, transaction);
            command.Parameters.Add(new NpgsqlParameter { Value = reductions.Select(r => r.DeploymentId).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = reductions.Select(r => r.Metric).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = reductions.Select(r => r.Reduced).ToArray() });
            await command.ExecuteNonQueryAsync(cancellationToken);
        }, cancellationToken);
    }

    /// <summary>Stores captured baselines in one round trip; a (deployment, metric) stored already, by another replica say, is left as it was.</summary>
    public static async Task InsertBaselinesAsync(
        RolloutGateDbContext db, IReadOnlyList<(string DeploymentId, string Metric, IReadOnlyList<Observation> Samples)> baselines, DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        await OnConnectionAsync(db, (connection, transaction) => InsertBaselinesAsync(connection, transaction, baselines, now, cancellationToken), cancellationToken);
    }

    /// <inheritdoc cref="InsertBaselinesAsync(RolloutGateDbContext, IReadOnlyList{ValueTuple{string, string, IReadOnlyList{Observation}}}, DateTimeOffset, CancellationToken)"/>
    public static async Task InsertBaselinesAsync(
        NpgsqlConnection connection, NpgsqlTransaction? transaction,
        IReadOnlyList<(string DeploymentId, string Metric, IReadOnlyList<Observation> Samples)> baselines, DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        if (baselines.Count == 0)
        {
            return;
        }

        await using var batch = new NpgsqlBatch(connection, transaction);
        foreach (var (deploymentId, metric, samples) in baselines)
        {
            var command = new NpgsqlBatchCommand("""
                INSERT INTO watch_baselines (deployment_id, metric, captured_at, samples) VALUES ($1, $2, $3, $4)
                ON CONFLICT (deployment_id, metric) DO NOTHING
                """);
            command.Parameters.Add(new NpgsqlParameter { Value = deploymentId });
            command.Parameters.Add(new NpgsqlParameter { Value = metric });
            command.Parameters.Add(new NpgsqlParameter { Value = now });
            command.Parameters.Add(new NpgsqlParameter { Value = StoredSamples.Encode(samples) });
            batch.BatchCommands.Add(command);
        }

        await batch.ExecuteNonQueryAsync(cancellationToken);
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
        // Each query's text is stored once (migrations/0012_evaluation_queries.sql): first the texts not stored yet, then
        // the evaluations pointing at theirs. Two statements, so that the second sees a text another transaction stored
        // while the first waited for it; the texts go in in one order (of the index), so two stores that share texts wait
        // for each other rather than deadlock. Were a text missing all the same, the row's check constraint would fail
        // the store loudly (and the watch retry), where an inner join would drop the evaluation without a word.
        var queries = rows.Select(r => r.Evaluation.Query).ToArray();
        await using (var texts = new NpgsqlCommand("""
            INSERT INTO evaluation_queries (query) SELECT q FROM unnest($1::text[]) AS x(q) ORDER BY md5(q)
            ON CONFLICT ((md5(query))) DO NOTHING
            """, connection, transaction))
        {
            texts.Parameters.Add(new NpgsqlParameter { Value = queries.Distinct(StringComparer.Ordinal).ToArray() });
            await texts.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var command = new NpgsqlCommand("""
            INSERT INTO evaluations (deployment_id, metric, at, value, baseline, threshold, statistic, verdict, explanation, query_id, detector, evaluated_at)
            SELECT d, m, a, v, b, t, s, r, e, eq.id, j::float8[], $12
            FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::text[], $9::text[], $10::text[], $11::text[])
                 AS x(d, m, a, v, b, t, s, r, e, q, j)
            LEFT JOIN evaluation_queries eq ON md5(eq.query) = md5(x.q) AND eq.query = x.q
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
        command.Parameters.Add(new NpgsqlParameter { Value = queries });
        // Each state as an array literal ('{1,0.5,NaN,...}'): unnest would flatten an array of arrays into its elements.
        command.Parameters.Add(new NpgsqlParameter { Value = evaluations.Select(e => ArrayLiteral(StoredState.Encode(e.State))).ToArray() });
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

    /// <summary>Calls <paramref name="row"/> with each (deployment, metric, bytes of <paramref name="column"/>) of the deployments' baselines.</summary>
    private static async Task ReadPerMetricAsync(
        RolloutGateDbContext db, string column, string condition, IReadOnlyCollection<string> deploymentIds, Action<string, string, byte[]> row,
        CancellationToken cancellationToken)
    {
        if (deploymentIds.Count == 0)
        {
            return;
        }

        await OnConnectionAsync(db, async (connection, transaction) =>
        {
            await using var command = new NpgsqlCommand(
                $"SELECT deployment_id, metric, {column} FROM watch_baselines WHERE deployment_id = ANY($1){condition}", connection, transaction);
            command.Parameters.Add(new NpgsqlParameter { Value = deploymentIds.ToArray() });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                row(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<byte[]>(2));
            }
        }, cancellationToken);
    }

    private static void Add(Dictionary<string, Dictionary<string, byte[]>> perDeployment, string deploymentId, string metric, byte[] bytes)
    {
        if (!perDeployment.TryGetValue(deploymentId, out var metrics))
        {
            perDeployment[deploymentId] = metrics = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        }

        metrics[metric] = bytes;
    }

    /// <summary>Runs plain Npgsql commands on the context's connection (opened for them if it was not), in its transaction if it has one.</summary>
    private static async Task OnConnectionAsync(RolloutGateDbContext db, Func<NpgsqlConnection, NpgsqlTransaction?, Task> action, CancellationToken cancellationToken)
    {
        await db.Database.OpenConnectionAsync(cancellationToken);
        try
        {
            await action((NpgsqlConnection)db.Database.GetDbConnection(), (NpgsqlTransaction?)db.Database.CurrentTransaction?.GetDbTransaction());
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }
    }

    private static double Finite(double value) => double.IsFinite(value) ? value : 0;

    /// <summary>A float8[] literal; .NET's shortest round-trip form reads back as the same double ("NaN" included).</summary>
    private static string ArrayLiteral(double[] values) =>
        "{" + string.Join(',', values.Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture))) + "}";

    /// <summary>A row holds its state as an array (<see cref="StoredState"/>), or as JSON if it was written before migration 0013.</summary>
    private sealed record LatestRow(string DeploymentId, string Metric, DateTimeOffset At, string Verdict, string? State, double[]? Detector);

    private sealed record ViewRow(string DeploymentId, string Metric, DateTimeOffset At, double? Value, double? Baseline, double? Threshold, string Verdict, string Explanation);
}
