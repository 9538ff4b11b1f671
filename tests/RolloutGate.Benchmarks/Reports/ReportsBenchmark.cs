using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;

namespace RolloutGate.Benchmarks.Reports;

/// <summary>
/// Report and audit queries over a year of history: N audit events (default 1,000,000) for 40,000 deployments of 20
/// services with their decisions, seeded in bulk by SQL (generate_series) straight into the tables, then every report
/// query asked through the real HTTP API, 100 times each after 3 warm-up rounds, in rounds that ask every query once,
/// with p50/p95/max. The seeded rows carry placeholder hashes: this measures queries, not the chain.
/// </summary>
public static class ReportsBenchmark
{
    private const string ReaderToken = "benchmark-reader";
    private const int Deployments = 40_000;
    private const int Services = 20;
    private const int Repetitions = 100;
    private const int WarmUpRounds = 3;
    private const string Json = "application/json";
    private const string Csv = "text/csv";
    private const string Markdown = "text/markdown";

    /// <param name="verify">Time <c>audit verify</c> over the seeded year (<see cref="VerifyBenchmark"/>) instead of the report queries.</param>
    public static async Task<int> RunAsync(string[] args, bool verify = false)
    {
        var events = args.Length >= 2 && args[0] == "--events" ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1_000_000;
        if (BenchmarkHost.AdminConnection is not { Length: > 0 } connection)
        {
            await Console.Error.WriteLineAsync($"ROLLOUTGATE_BENCH_CONNECTION is not set: run tests/RolloutGate.Benchmarks/run-with-postgres.sh {(verify ? "verify" : "reports")}");
            return 2;
        }

        using var runbooks = new RunbooksFolder();
        await using var host = await BenchmarkHost.StartAsync(connection, new Dictionary<string, string?>
        {
            ["RolloutGate:Api:ReaderTokens:0"] = ReaderToken,
            ["RolloutGate:RunbooksPath"] = runbooks.Folder,
        });

        var seeding = Stopwatch.StartNew();
        await SeedAsync(host, events);
        var seeded = await host.ScalarAsync("SELECT count(*) FROM audit_events");
        Console.WriteLine($"seeded {seeded} audit events, {Deployments} deployments in {seeding.Elapsed.TotalSeconds:F0} s");

        using var http = new HttpClient { BaseAddress = host.Address, Timeout = TimeSpan.FromMinutes(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ReaderToken);
        if (verify)
        {
            return await VerifyBenchmark.RunAsync(host, http, events);
        }

        var year = "from=2025-11-23T00:00:00Z&to=2026-11-23T00:00:00Z";
        var queries = new (string Name, string Path, string Accept)[]
        {
            ("events of one deployment", "/api/v1/audit/events?deploymentId=d-12345", Json),
            ("events of one service, first page", "/api/v1/audit/events?service=svc-7&limit=100", Json),
            ("events of one service, a page deep in", "/api/v1/audit/events?service=svc-7&limit=100&after=900000", Json),
            ("events by type (decisions)", "/api/v1/audit/events?type=decision&limit=100", Json),
            ("events by actor in a month", "/api/v1/audit/events?actor=U0APPROVER3&from=2026-06-01T00:00:00Z&to=2026-07-01T00:00:00Z&limit=100", Json),
            ("events in a day, as CSV", "/api/v1/audit/events?from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z&limit=1000", Csv),
            ("summary, all services, a year", "/api/v1/reports/summary?" + year, Json),
            ("summary, one service, a year", "/api/v1/reports/summary?service=svc-3&" + year, Json),
            ("summary as CSV", "/api/v1/reports/summary?" + year, Csv),
            ("alert quality, a year", "/api/v1/reports/alert-quality?" + year, Json),
            ("decision log of a runbook (decisions.md)", "/api/v1/runbooks/svc-0/decisions.md", Markdown),
            ("deployments of one service", "/api/v1/deployments?service=svc-3&limit=100", Json),
        };

        Console.WriteLine();
        Console.WriteLine($"command: tests/RolloutGate.Benchmarks/run-with-postgres.sh reports --events {events}");
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {CpuModel()}, {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}");

        // Round robin: every round asks each query once, so a burst of load from elsewhere on the shared machine falls
        // on all queries alike instead of on whichever one was being repeated at the time.
        var timings = queries.Select(_ => new List<double>()).ToArray();
        var sizes = new int[queries.Length];
        using var sampling = new CancellationTokenSource();
        var load = SampleLoadAsync(sampling.Token);
        for (var round = 0; round < WarmUpRounds + Repetitions; round++)
        {
            for (var q = 0; q < queries.Length; q++)
            {
                var (elapsed, size) = await AskAsync(http, queries[q].Path, queries[q].Accept);
                if (round >= WarmUpRounds)
                {
                    timings[q].Add(elapsed);
                }

                sizes[q] = size;
            }
        }

        await sampling.CancelAsync();
        var loads = await load;
        Console.WriteLine(loads.Count == 0 ? "load average: not available"
            : string.Create(CultureInfo.InvariantCulture, $"load average (1 min) while the queries ran: {loads.Min():F2} to {loads.Max():F2}"));
        Console.WriteLine($"{Repetitions} rounds after {WarmUpRounds} warm-up rounds, each round every query once in turn");
        Console.WriteLine();
        Console.WriteLine("| query | rows | p50 ms | p95 ms | max ms | under 200 ms (p95) |");
        Console.WriteLine("|---|---:|---:|---:|---:|---|");
        var allFast = true;
        for (var q = 0; q < queries.Length; q++)
        {
            double[] sorted = [.. timings[q].Order()];
            var p95 = Percentile(sorted, 0.95);
            allFast &= p95 < 200;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {queries[q].Name} | {sizes[q]} | {Percentile(sorted, 0.5):F1} | {p95:F1} | {sorted[^1]:F1} | {(p95 < 200 ? "yes" : "NO")} |"));
        }

        return allFast ? 0 : 1;
    }

    /// <summary>One request, timed from send to the full answer; the size is its rows (CSV lines, JSON array items, Markdown sections).</summary>
    private static async Task<(double Elapsed, int Size)> AskAsync(HttpClient http, string path, string accept)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(path, UriKind.Relative));
        request.Headers.Accept.ParseAdd(accept);
        var started = Stopwatch.GetTimestamp();
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        response.EnsureSuccessStatusCode();
        var size = accept switch
        {
            Csv => body.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length - 1,
            Markdown => body.Split('\n').Count(line => line.StartsWith("## ", StringComparison.Ordinal)),
            _ => CountRows(body),
        };
        return (elapsed, size);
    }

    /// <summary>The 1-minute load average every second until cancelled (empty where /proc/loadavg does not exist).</summary>
    internal static async Task<List<double>> SampleLoadAsync(CancellationToken cancellationToken)
    {
        var loads = new List<double>();
        while (File.Exists("/proc/loadavg"))
        {
            var text = await File.ReadAllTextAsync("/proc/loadavg", CancellationToken.None);
            loads.Add(double.Parse(text.Split(' ')[0], CultureInfo.InvariantCulture));
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return loads;
    }

    internal static string CpuModel() =>
        File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(line => line.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU"
            : "unknown CPU";

    /// <summary>Rows in a JSON answer: the length of its one top-level array.</summary>
    private static int CountRows(string body)
    {
        using var document = System.Text.Json.JsonDocument.Parse(body);
        foreach (var property in document.RootElement.EnumerateObject())
        {
            if (property.Value.ValueKind == System.Text.Json.JsonValueKind.Array)
            {
                return property.Value.GetArrayLength();
            }
        }

        return 1;
    }

    /// <summary>
    /// A year (2025-11-23 to 2026-11-23) of 40,000 deployments over 20 services. Every deployment has its webhook and
    /// state-change events; one in ten regressed (with a verdict-change event) and was decided: two in three rolled back
    /// by an approver, one in three kept. The rest of the event budget is check results spread over the deployments.
    /// </summary>
    internal static async Task SeedAsync(BenchmarkHost host, int events)
    {
        await host.ExecuteAsync($$"""
            INSERT INTO runbook_versions (name, version, sha256, content, file_path, loaded_at)
            SELECT 'svc-' || s, 1, md5('svc-' || s) || md5('v1' || s), 'seeded', 'seeded', '2025-11-01'
            FROM generate_series(0, {{Services - 1}}) s;

            INSERT INTO deployments (id, service, environment, version, previous_version, initiator, state, runbook_version_id,
                                     created_at, updated_at, deployed_at, watch_started_at, watch_until, baseline_from, baseline_to,
                                     regressed_at, rolled_back_at)
            SELECT 'd-' || i, 'svc-' || (i % {{Services}}), 'production', '1.' || i, '1.' || (i - 1), 'dev' || (i % 50),
                   CASE WHEN i % 10 = 0 THEN (CASE WHEN i % 30 = 0 THEN 'kept' ELSE 'rolled-back' END) ELSE 'completed' END,
                   (SELECT id FROM runbook_versions WHERE name = 'svc-' || (i % {{Services}})),
                   t, t + interval '1 day', t, t, t + interval '1 day', t - interval '1 day', t,
                   CASE WHEN i % 10 = 0 THEN t + interval '600 seconds' END,
                   CASE WHEN i % 10 = 0 AND i % 30 <> 0 THEN t + interval '1260 seconds' END
            FROM (SELECT i, timestamptz '2025-11-23' + (i * interval '788 seconds') AS t FROM generate_series(1, {{Deployments}}) i) g;

            INSERT INTO decisions (deployment_id, at, kind, actor, reason)
            SELECT id, deployed_at + interval '20 minutes', CASE WHEN state = 'kept' THEN 'dismiss' ELSE 'rollback' END,
                   'U0APPROVER' || (substr(id, 3)::int % 7), 'seeded'
            FROM deployments WHERE state IN ('kept', 'rolled-back');

            -- Per deployment: webhook.deployed, watching, and for the regressed ones the verdict change, regressed, decision
            -- and the final state; then check results to reach the requested total.
            CREATE TEMP TABLE seeded_events AS
            SELECT d.id AS deployment_id, d.service, d.state, e.kind, d.deployed_at + e.offset_s * interval '1 second' AS at, e.ord
            FROM deployments d
            CROSS JOIN LATERAL (VALUES
                ('webhook.deployed', 0, 1), ('deployment.state-changed:watching', 1, 2),
                ('evaluation.verdict-changed', 600, 3), ('deployment.state-changed:regressed', 600, 4),
                ('decision', 1200, 5), ('deployment.state-changed:final', 1260, 6)) AS e(kind, offset_s, ord)
            WHERE e.ord <= 2 OR d.state IN ('kept', 'rolled-back');

            INSERT INTO seeded_events
            SELECT 'd-' || (1 + (n % {{Deployments}})), 'svc-' || ((1 + (n % {{Deployments}})) % {{Services}}), 'completed', 'check.result',
                   timestamptz '2025-11-23' + ((1 + (n % {{Deployments}})) * interval '788 seconds') - interval '1 minute', 0
            FROM generate_series(1, greatest(0, {{events}} - (SELECT count(*) FROM seeded_events))) n;

            INSERT INTO audit_events (at, type, deployment_id, service, actor, data, prev_hash, hash)
            SELECT at,
                   split_part(kind, ':', 1),
                   deployment_id, service,
                   CASE WHEN kind = 'decision' THEN 'U0APPROVER' || (substr(deployment_id, 3)::int % 7) ELSE 'rolloutgate' END,
                   CASE kind
                     WHEN 'deployment.state-changed:watching' THEN '{"from":"allowed","to":"watching"}'
                     WHEN 'deployment.state-changed:regressed' THEN '{"from":"watching","to":"regressed"}'
                     WHEN 'deployment.state-changed:final' THEN '{"from":"regressed","to":"' || state || '"}'
                     WHEN 'evaluation.verdict-changed' THEN '{"metric":"p95-latency","from":"healthy","verdict":"regressed","value":0.9,"baseline":0.6,"threshold":0.72}'
                     WHEN 'decision' THEN '{"kind":"rollback","source":"slack"}'
                     ELSE '{"name":"error-budget","status":"pass","detail":"seeded"}' END,
                   md5(gen_random_uuid()::text) || md5(gen_random_uuid()::text),
                   md5(gen_random_uuid()::text) || md5(gen_random_uuid()::text)
            FROM seeded_events ORDER BY at;
            ANALYZE;
            """);
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
}
