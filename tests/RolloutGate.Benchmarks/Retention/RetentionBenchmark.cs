using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using RolloutGate.Audit;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Watch;

namespace RolloutGate.Benchmarks.Retention;

/// <summary>
/// Evaluation retention over a backlog: N finished deployments (default 200), each with 3 metrics evaluated every minute
/// for 24 hours (4,320 evaluations, as the default runbook leaves them) and one baseline per metric, seeded by SQL, all
/// past the retention. One retention pass (<see cref="EvaluationRetention.ThinAsync"/>) then thins them all, as the first
/// pass after an operator turns retention on does. It prints the pass's time, evaluations deleted per second, and the
/// table's size before, after the pass and after <c>VACUUM FULL</c>.
/// </summary>
public static class RetentionBenchmark
{
    private const int Minutes = 1440;

    public static async Task<int> RunAsync(string[] args)
    {
        var deployments = args.Length >= 2 && args[0] == "--deployments" ? int.Parse(args[1], CultureInfo.InvariantCulture) : 200;
        if (BenchmarkHost.AdminConnection is not { Length: > 0 } connection)
        {
            await Console.Error.WriteLineAsync("ROLLOUTGATE_BENCH_CONNECTION is not set: run tests/RolloutGate.Benchmarks/run-with-postgres.sh retention");
            return 2;
        }

        using var runbooks = new RunbooksFolder();
        // Retention is off in the host (its own hourly pass stays out of the measurement); the pass measured is built below.
        await using var host = await BenchmarkHost.StartAsync(connection, new Dictionary<string, string?> { ["RolloutGate:RunbooksPath"] = runbooks.Folder });

        var seeding = Stopwatch.StartNew();
        await SeedAsync(host, deployments);
        var before = await host.ScalarAsync("SELECT count(*) FROM evaluations");
        var sizeBefore = await host.ScalarAsync("SELECT pg_total_relation_size('evaluations')");
        Console.WriteLine($"seeded {before} evaluations of {deployments} deployments in {seeding.Elapsed.TotalSeconds:F0} s");

        var services = host.App.Services;
        var retention = new EvaluationRetention(
            services.GetRequiredService<IServiceScopeFactory>(), services.GetRequiredService<AuditTrail>(),
            new FixedOptions(new WatchOptions { EvaluationRetentionDays = 90 }), TimeProvider.System,
            services.GetRequiredService<DatabaseOutageLog>(), NullLogger<EvaluationRetention>.Instance);
        var started = Stopwatch.GetTimestamp();
        var pass = await retention.ThinAsync(CancellationToken.None);
        var elapsed = Stopwatch.GetElapsedTime(started);

        var after = await host.ScalarAsync("SELECT count(*) FROM evaluations");
        var sizeAfter = await host.ScalarAsync("SELECT pg_total_relation_size('evaluations')");
        await host.ExecuteAsync("VACUUM FULL evaluations");
        var sizeVacuumed = await host.ScalarAsync("SELECT pg_total_relation_size('evaluations')");
        var events = await host.ScalarAsync("SELECT count(*) FROM audit_events WHERE type = 'evaluations.thinned'");

        Console.WriteLine();
        Console.WriteLine($"command: tests/RolloutGate.Benchmarks/run-with-postgres.sh retention --deployments {deployments}");
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}");
        Console.WriteLine();
        Console.WriteLine("| deployments thinned | evaluations before | deleted | kept | baselines deleted | pass s | deleted/s | evaluations MB before | after pass | after VACUUM FULL | audit events |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {pass.Deployments} | {before} | {pass.EvaluationsRemoved} | {after} | {pass.BaselinesRemoved} | {elapsed.TotalSeconds:F1} | {pass.EvaluationsRemoved / elapsed.TotalSeconds:F0} | {sizeBefore / 1048576.0:F0} | {sizeAfter / 1048576.0:F0} | {sizeVacuumed / 1048576.0:F0} | {events} |"));
        return pass.Deployments == deployments && before - after == pass.EvaluationsRemoved ? 0 : 1;
    }

    /// <summary>
    /// Finished deployments 100 days old; every minute of 24 hours evaluated for 3 metrics with evidence of the size the
    /// watch stores; one deployment in ten regressed on p95-latency after 10 hours and was rolled back.
    /// </summary>
    private static async Task SeedAsync(BenchmarkHost host, int deployments) =>
        await host.ExecuteAsync($$"""
            INSERT INTO runbook_versions (name, version, sha256, content, file_path, loaded_at)
            VALUES ('svc', 1, md5('svc') || md5('v1'), 'seeded', 'seeded', now() - interval '200 days');

            INSERT INTO deployments (id, service, environment, version, state, runbook_version_id, created_at, updated_at,
                                     deployed_at, watch_started_at, watch_until, baseline_from, baseline_to)
            SELECT 'd-' || i, 'svc', 'production', '1.' || i, CASE WHEN i % 10 = 0 THEN 'rolled-back' ELSE 'completed' END,
                   (SELECT id FROM runbook_versions), t, t + interval '1 day', t, t, t + interval '1 day', t - interval '1 day', t
            FROM (SELECT i, now() - interval '100 days' - i * interval '1 hour' AS t FROM generate_series(1, {{deployments}}) i) g;

            INSERT INTO evaluation_queries (query) VALUES ('histogram_quantile(0.95, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload="svc",destination_workload_namespace="production"}[1m])))')
            ON CONFLICT DO NOTHING;

            INSERT INTO evaluations (deployment_id, metric, at, value, baseline, threshold, statistic, verdict, explanation, query_id,
                                     detector, evaluated_at)
            SELECT d.id, m.metric, d.deployed_at + n * interval '1 minute', 200 + random() * 20, 205, 225.5, random() * 3,
                   CASE WHEN m.metric = 'p95-latency' AND substr(d.id, 3)::int % 10 = 0 AND n >= 600 THEN 'regressed' ELSE 'healthy' END,
                   'p95-latency 212 ms against a baseline of 205 ms (limit +10%, 225.5 ms): the evidence since the deploy, 0.4, is below the threshold of 5.3; healthy.',
                   (SELECT min(id) FROM evaluation_queries),
                   ARRAY[random(), random(), random(), random(), random(), random(), random(), random(), random(), random(), random(), random()],
                   d.deployed_at + n * interval '1 minute' + interval '2 seconds'
            FROM deployments d
            CROSS JOIN (VALUES ('p95-latency'), ('error-rate'), ('cost-per-request')) AS m (metric)
            CROSS JOIN generate_series(1, CASE WHEN substr(d.id, 3)::int % 10 = 0 THEN 601 ELSE {{Minutes}} END) n;

            INSERT INTO watch_baselines (deployment_id, metric, captured_at, samples)
            SELECT d.id, m.metric, d.deployed_at, '\x0100000000'::bytea
            FROM deployments d CROSS JOIN (VALUES ('p95-latency'), ('error-rate'), ('cost-per-request')) AS m (metric);
            ANALYZE;
            """);

    private sealed class FixedOptions(WatchOptions value) : IOptionsMonitor<WatchOptions>
    {
        public WatchOptions CurrentValue => value;

        public WatchOptions Get(string? name) => value;

        public IDisposable? OnChange(Action<WatchOptions, string?> listener) => null;
    }
}
