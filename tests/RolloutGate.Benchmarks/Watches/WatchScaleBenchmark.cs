using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using RolloutGate.Benchmarks.Slack;
using RolloutGate.Benchmarks.Webhooks;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Runbooks;
using RolloutGate.Core.Watch;
using RolloutGate.Tests.Watch;
using RolloutGate.Watch;

namespace RolloutGate.Benchmarks.Watches;

/// <summary>
/// Concurrent watches one instance sustains at a 1-minute interval against a real Prometheus, with the lag of every
/// evaluation (evaluations.evaluated_at − at: when the row was written against the time t it evaluates). For each N the
/// real service runs in this process (the sweep as a clustered Quartz job in PostgreSQL, the real Prometheus client) on
/// a fresh database; N deployments in state watching are written straight into the database, spread over `--workloads`
/// Istio workloads (the webhook itself sustains about 80 deliveries/s on 2 cores, too slow to start 10,000), each with
/// its baseline: every workload's is read once through the service's own <see cref="PrometheusMetricSource"/> and stored
/// for each of its deployments, because N deploys within one minute is a burst the steady state never sees (10,000
/// 24-hour watches mean about 7 deploys a minute, each capturing its own baseline). Then the watches run for a few
/// intervals and the stored evaluations are read back.
/// With <c>--burst B</c>, B more deployments arrive at once half-way through the second interval, without a stored
/// baseline, so the sweep captures each one's through Prometheus while the N watches keep running: the second table
/// says how soon the burst was watched and how late the running watches' evaluations were meanwhile.
/// With <c>--restart</c>, the service is stopped after those intervals and a new one started on the same database,
/// which rebuilds every watch from the stored baselines and evaluations (no Prometheus range query), and watches for as
/// many intervals again, as a supervisor would restart a crashed process: the third table says how soon a t missed
/// while down was caught up (if one fell in the downtime), how long until every watch was evaluated again, and how late
/// the evaluations of the t after the restart were. <c>--restart-lead S</c> (implies <c>--restart</c>) stops the service
/// once a t's evaluations are in, waits until S seconds before the next t and restarts then, so the new instance has S
/// seconds to rebuild before its first t and no t falls in the downtime.
/// <c>--baseline-hours H</c> stores H hours of baseline per metric (the 1-hour
/// reading repeated an hour earlier each time), the size a 24-hour baseline has in the database and in memory.
/// With <c>--answers R</c>, <see cref="AnswerProbes"/> times what people and pipelines send meanwhile (Slack presses and
/// commands, predeploy webhooks, reader API queries), R a second of each; with <c>--regress P%</c> (given to the series
/// as well) P% of the watches regress at one t, and the answers are tabled for the steady state, that t's minute and after.
/// Needs ROLLOUTGATE_BENCH_CONNECTION and ROLLOUTGATE_BENCH_PROMETHEUS_URL, normally set by run-watches.sh, which also
/// backfills Prometheus with <see cref="Series"/>.
/// </summary>
public static class WatchScaleBenchmark
{

    private const string Namespace = "shop";
    private static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Baseline = TimeSpan.FromHours(1);
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(10);
    private static readonly string[] Metrics = ["p95-latency", "error-rate", "cost-per-request"];

    /// <summary>
    /// `watch-series FILE [--workloads N] [--regress P% [--regress-in M]]`: the OpenMetrics the Prometheus is backfilled
    /// with, healthy traffic of N workloads from the baseline to 2 h ahead. With <c>--regress</c>, the first P% of the
    /// workloads (so P% of the watched deployments, which are spread over them in turn) regress together at the whole
    /// minute M minutes ahead (8 by default): p95 latency from 225 to about 860 ms and errors from 0.2% to 5%. That minute
    /// is written to FILE.regression-at (Unix seconds), which run-watches.sh hands to the benchmark.
    /// </summary>
    public static int Series(string[] args)
    {
        var now = Minute(TimeProvider.System.GetUtcNow());
        var count = WorkloadsOf(args);
        var regressed = (int)Math.Round(count * RegressedShareOf(args));
        var regressionAt = now.AddMinutes(int.Parse(Option(args, "--regress-in", "8"), CultureInfo.InvariantCulture));
        var workloads = Enumerable.Range(0, count)
            .Select(w => new Workload("istio", Namespace, Service(w), TrafficShape.Healthy, w < regressed ? Regressed : TrafficShape.Healthy))
            .ToList();
        File.WriteAllText(args[0], MeshTraffic.OpenMetrics(workloads, now - Baseline - TimeSpan.FromMinutes(15), now.AddHours(2), regressionAt));
        var marker = args[0] + ".regression-at";
        File.Delete(marker);
        if (regressed > 0)
        {
            File.WriteAllText(marker, regressionAt.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));
        }

        return 0;
    }

    /// <summary>What a regressed workload serves from the regression on: p95 about 860 ms (225 before), 5% errors (0.2%).</summary>
    private static readonly TrafficShape Regressed = new(1200, 0.05, [0.10, 0.30, 0.55, 0.80, 0.90, 0.97, 1.0], 0.5);

    private static double RegressedShareOf(string[] args) =>
        double.Parse(Option(args, "--regress", "0%").TrimEnd('%'), CultureInfo.InvariantCulture) / 100;

    public static async Task<int> RunAsync(string[] args)
    {
        var counts = Option(args, "--watches", "100,1000").Split(',').Select(n => int.Parse(n, CultureInfo.InvariantCulture)).ToArray();
        var minutes = int.Parse(Option(args, "--minutes", "3"), CultureInfo.InvariantCulture);
        var workloads = WorkloadsOf(args);
        var burst = int.Parse(Option(args, "--burst", "0"), CultureInfo.InvariantCulture);
        int? restartLead = args.Contains("--restart-lead") ? int.Parse(Option(args, "--restart-lead", "0"), CultureInfo.InvariantCulture) : null;
        var restart = args.Contains("--restart") || restartLead is not null;
        var baselineHours = int.Parse(Option(args, "--baseline-hours", "1"), CultureInfo.InvariantCulture);
        var settings = Options(args, "--set");
        var answersPerSecond = double.Parse(Option(args, "--answers", "0"), CultureInfo.InvariantCulture);
        var regressionAt = Environment.GetEnvironmentVariable("ROLLOUTGATE_BENCH_WATCH_REGRESSION_AT") is { Length: > 0 } unix
            ? DateTimeOffset.FromUnixTimeSeconds(long.Parse(unix, CultureInfo.InvariantCulture))
            : (DateTimeOffset?)null;
        if (regressionAt is not null && counts.Length > 1)
        {
            await Console.Error.WriteLineAsync("--regress: one N at a time (the series regress at one minute)");
            return 2;
        }

        var connection = Environment.GetEnvironmentVariable("ROLLOUTGATE_BENCH_CONNECTION");
        var prometheus = Environment.GetEnvironmentVariable("ROLLOUTGATE_BENCH_PROMETHEUS_URL");
        if (string.IsNullOrEmpty(connection) || string.IsNullOrEmpty(prometheus))
        {
            await Console.Error.WriteLineAsync("ROLLOUTGATE_BENCH_CONNECTION / ROLLOUTGATE_BENCH_PROMETHEUS_URL are not set: run tests/RolloutGate.Benchmarks/run-watches.sh");
            return 2;
        }

        var rows = new List<string>();
        var burstRows = new List<string>();
        var restartRows = new List<string>();
        var answerRows = new List<string>();
        var ok = true;
        foreach (var n in counts)
        {
            var result = await RunOneAsync(connection, prometheus, n, workloads, minutes, burst, restart, restartLead, baselineHours, settings, answersPerSecond, regressionAt);
            rows.Add(result.Row);
            answerRows.AddRange(result.AnswerRows);
            burstRows.Add(result.BurstRow);
            restartRows.Add(result.RestartRow);
            ok &= result.Duplicates == 0;
            await Console.Error.WriteLineAsync($"[watches] N={n}: {result.Row}");
        }

        var set = string.Concat(settings.Select(s => $" --set {s.Key}={s.Value}"));
        Console.WriteLine($"command: tests/RolloutGate.Benchmarks/run-watches.sh --watches {string.Join(',', counts)} --workloads {workloads} --minutes {minutes}{(burst > 0 ? $" --burst {burst}" : "")}{(restartLead is { } lead ? $" --restart-lead {lead}" : restart ? " --restart" : "")}{(baselineHours != 1 ? $" --baseline-hours {baselineHours}" : "")}{(answersPerSecond > 0 ? $" --answers {answersPerSecond}" : "")}{(regressionAt is not null ? $" --regress {Option(args, "--regress", "0%")}" : "")}{set}");
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}");
        Console.WriteLine();
        Console.WriteLine("| watches | workloads | seeding s | due evaluations | stored | late > 10 s or missing | duplicates | evaluations/min (needed) | lag p50 s | lag p99 s | lag max s | Prometheus queries/s | service CPU cores | Prometheus CPU cores | verdicts |");
        Console.WriteLine("|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|");
        foreach (var row in rows)
        {
            Console.WriteLine(row);
        }

        if (burst > 0)
        {
            Console.WriteLine();
            Console.WriteLine("| watches running | burst deploys | baselines captured | watched (a first evaluation stored) | deploy → first evaluation p50 s | max s | running watches' lag after the burst p50 s | p99 s | max s |");
            Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var row in burstRows)
            {
                Console.WriteLine(row);
            }
        }

        if (restart)
        {
            Console.WriteLine();
            Console.WriteLine("| watches | baseline h | down s | next t after s | missed t caught up: evaluations, done s after the restart | restart → every watch evaluated again s | evaluations due after the restart | stored | late > 10 s or missing | lag p50 s | p99 s | max s |");
            Console.WriteLine("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var row in restartRows)
            {
                Console.WriteLine(row);
            }
        }

        if (answerRows.Count > 0)
        {
            Console.WriteLine();
            Console.WriteLine(AnswerProbes.Header);
            foreach (var row in answerRows)
            {
                Console.WriteLine(row);
            }
        }

        return ok ? 0 : 1;
    }

    private static async Task<Result> RunOneAsync(
        string connection, string prometheusUrl, int n, int workloads, int minutes, int burst, bool restart, int? restartLead, int baselineHours,
        IReadOnlyDictionary<string, string> settings, double answersPerSecond, DateTimeOffset? regressionAt)
    {
        var database = await BenchmarkDatabase.CreateAsync(connection, "rg_bench_watch_");
        var runbooks = Directory.CreateTempSubdirectory("rg-bench-watch-runbooks-").FullName;
        // With answers timed or a regression, Slack and the rollback webhook are a local stand-in, so a regression's
        // messages go out and a press's rollback runs as in production.
        await using var standIn = answersPerSecond > 0 || regressionAt is not null ? await SlackPressBenchmark.StandInAsync() : null;
        for (var w = 0; w < workloads; w++)
        {
            await File.WriteAllTextAsync(Path.Combine(runbooks, $"{Service(w)}.yaml"), Runbook(Service(w), standIn?.Url));
        }

        // The predeploys go to services of their own, in turn, none with a running watch.
        var hookServices = answersPerSecond > 0 ? Enumerable.Range(0, 64).Select(h => $"hook-svc-{h}").ToList() : [];
        foreach (var service in hookServices)
        {
            await File.WriteAllTextAsync(Path.Combine(runbooks, $"{service}.yaml"), Runbook(service, standIn?.Url));
        }

        var configuration = new Dictionary<string, string?>
        {
            ["ConnectionStrings:RolloutGate"] = database,
            ["RolloutGate:Webhook:Secret"] = WebhookBenchmark.Secret,
            ["RolloutGate:Api:ReaderTokens:0"] = AnswerProbes.ReaderToken,
            ["RolloutGate:RunbooksPath"] = runbooks,
            ["RolloutGate:Prometheus:Url"] = prometheusUrl,
        };
        if (standIn is not null)
        {
            configuration["RolloutGate:Slack:ApiBaseUrl"] = standIn.Url + "/api";
            configuration["RolloutGate:Slack:BotToken"] = "xoxb-benchmark";
            configuration["RolloutGate:Slack:SigningSecret"] = SlackPressBenchmark.SigningSecret;
            // Every webhook and decision logs a line at Information; the tables are what is read.
            configuration["Logging:LogLevel:RolloutGate"] = "Warning";
        }

        foreach (var (key, value) in settings)
        {
            configuration[key] = value;
        }

        async Task<WebApplication> StartServiceAsync()
        {
            var builder = WebApplication.CreateBuilder(["--urls", "http://127.0.0.1:0"]);
            builder.Configuration.AddInMemoryCollection(configuration);
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
            builder.AddRolloutGate();
            var started = builder.Build();
            started.MapRolloutGate();
            await started.StartAsync();
            return started;
        }

        var app = await StartServiceAsync();

        var versions = new Dictionary<string, long>(StringComparer.Ordinal);
        var loaded = Stopwatch.StartNew();
        await using (var db = new NpgsqlConnection(database))
        {
            await db.OpenAsync();
            // The runbook loader stores every runbook version at start-up; with many workloads that takes a moment.
            while (versions.Count < workloads + hookServices.Count && loaded.Elapsed < TimeSpan.FromMinutes(2))
            {
                versions.Clear();
                await using var read = new NpgsqlCommand("SELECT name, id FROM runbook_versions", db);
                await using var reader = await read.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    versions[reader.GetString(0)] = reader.GetInt64(1);
                }

                await Task.Delay(versions.Count < workloads + hookServices.Count ? 500 : 0);
            }
        }

        using var http = new HttpClient { BaseAddress = new Uri(prometheusUrl) };
        var before = await PrometheusCountersAsync(http);
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();

        // Seeding: the deployments are committed as watching with their deploy times spread evenly over one interval
        // starting once seeding is done (as if deployed webhooks had arrived at a steady rate), each with its workload's
        // baseline. Written in bulk, as one webhook at a time would take minutes for 10,000.
        var first = TimeProvider.System.GetUtcNow() + TimeSpan.FromSeconds(20) + TimeSpan.FromMilliseconds(4 * n);
        var deployments = Enumerable.Range(0, n)
            .Select(i => (Id: $"watch-{n}-{i:D5}", Service: Service(i % workloads), At: first + Interval * i / n))
            .ToList();
        var baselines = await WorkloadBaselinesAsync(app.Services, workloads, first - Baseline, first, baselineHours);
        var dataSource = NpgsqlDataSource.Create(database);
        async Task InsertAsync(IReadOnlyList<(string Id, string Service, DateTimeOffset At)> rows, NpgsqlConnection db, NpgsqlTransaction transaction, string state = "watching")
        {
            await using var insert = new NpgsqlCommand("""
                INSERT INTO deployments (id, service, environment, version, initiator, state, runbook_version_id, created_at, updated_at,
                                         deployed_at, watch_started_at, watch_until, baseline_from, baseline_to)
                SELECT id, service, 'production', '2.4.0', 'bench', $6, version, at, at, at, at, at + interval '24 hours', at - make_interval(hours => $5), at
                FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[]) AS d (id, service, version, at)
                """, db, transaction);
            insert.Parameters.AddWithValue(rows.Select(d => d.Id).ToArray());
            insert.Parameters.AddWithValue(rows.Select(d => d.Service).ToArray());
            insert.Parameters.AddWithValue(rows.Select(d => versions[d.Service]).ToArray());
            insert.Parameters.AddWithValue(rows.Select(d => d.At).ToArray());
            insert.Parameters.AddWithValue(baselineHours);
            insert.Parameters.AddWithValue(state);
            await insert.ExecuteNonQueryAsync();
        }

        foreach (var chunk in deployments.Chunk(500))
        {
            // Each deployment with its baseline in one transaction, or the sweep would capture one of its own meanwhile.
            await using var db = await dataSource.OpenConnectionAsync();
            await using var transaction = await db.BeginTransactionAsync();
            await InsertAsync(chunk, db, transaction);
            await EvaluationStore.InsertBaselinesAsync(
                db, transaction, [.. chunk.SelectMany(d => Metrics.Select(m => (d.Id, m, baselines[(d.Service, m)])))], TimeProvider.System.GetUtcNow(), CancellationToken.None);
            await transaction.CommitAsync();
        }

        var seeding = clock.Elapsed;
        if (TimeProvider.System.GetUtcNow() > first)
        {
            await Console.Error.WriteLineAsync($"[watches] N={n}: seeding took {seeding.TotalSeconds:F1} s, past the first deploy time: the first fires are late");
        }

        // Every deployment gets `minutes` full intervals after its deploy time.
        var end = first + Interval * (minutes + 1);
        if (regressionAt is { } regression)
        {
            // The minute of the regression, the t that finds it and one more.
            end = end > regression + Interval * 3 ? end : regression + Interval * 3;
            if (regression < first + Interval * 2)
            {
                await Console.Error.WriteLineAsync($"[watches] N={n}: the regression at {regression:HH:mm:ss} leaves less than a minute of steady state after the deploys (from {first:HH:mm:ss}): pass a larger --regress-in");
            }
        }

        var answering = Task.CompletedTask;
        var probes = new AnswerProbes();
        using var stopAnswers = new CancellationTokenSource();
        using var answered = new HttpClient { BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()) };
        if (answersPerSecond > 0)
        {
            // Regressed deployments to press, one per press, as the watch would leave them (the recommendation's own
            // path is the watch's; what is timed is the press).
            var presses = (int)Math.Ceiling(answersPerSecond * (end - TimeProvider.System.GetUtcNow() + Grace).TotalSeconds);
            var pressable = Enumerable.Range(0, presses).Select(i => (Id: $"press-{n}-{i:D5}", Service: Service(i % workloads), At: first)).ToList();
            await using (var db = await dataSource.OpenConnectionAsync())
            await using (var transaction = await db.BeginTransactionAsync())
            {
                await InsertAsync(pressable, db, transaction, "regressed");
                await transaction.CommitAsync();
            }

            answering = probes.RunAsync(answered, database, answersPerSecond, [.. deployments.Select(d => d.Id)],
                new ConcurrentQueue<string>(pressable.Select(p => p.Id)), hookServices, stopAnswers.Token);
        }

        await Console.Error.WriteLineAsync($"[watches] N={n}: seeded in {seeding.TotalSeconds:F1} s; deploys from {first:HH:mm:ss}, watching until {end:HH:mm:ss}");
        var burstAt = first + Interval + TimeSpan.FromSeconds(30);
        if (burst > 0)
        {
            // The burst: committed at once, deployed now, no stored baseline (the sweep captures each one's).
            await Task.Delay(burstAt - TimeProvider.System.GetUtcNow());
            burstAt = TimeProvider.System.GetUtcNow();
            var arrivals = Enumerable.Range(0, burst).Select(i => (Id: $"burst-{n}-{i:D5}", Service: Service(i % workloads), At: burstAt)).ToList();
            await using var db = await dataSource.OpenConnectionAsync();
            await using var transaction = await db.BeginTransactionAsync();
            foreach (var chunk in arrivals.Chunk(500))
            {
                await InsertAsync(chunk, db, transaction);
            }

            await transaction.CommitAsync();

            await Console.Error.WriteLineAsync($"[watches] N={n}: {burst} deployments arrived at {burstAt:HH:mm:ss.fff}");
        }

        await Task.Delay(end - TimeProvider.System.GetUtcNow() + Grace);
        await stopAnswers.CancelAsync();
        await answering;

        var wall = clock.Elapsed;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
        var after = await PrometheusCountersAsync(http);
        List<double> lags, runningAfterBurst = [], burstFirst = [];
        long captured = 0;
        var verdicts = new List<string>();
        long due, duplicates;
        var answerRows = new List<string>();
        Dictionary<string, DateTimeOffset> stopped;
        await using (var db = await dataSource.OpenConnectionAsync())
        {
            // A watch that regressed is due up to the t that found it (its last evaluation, stored at updated_at).
            stopped = await StoppedAsync(db);
            due = deployments.Sum(d => (long)WatchSchedule.DueTimes(d.At, Interval, null, end,
                stopped.TryGetValue(d.Id, out var at) ? at : d.At + TimeSpan.FromHours(24)).Count) * Metrics.Length;
            duplicates = await ScalarAsync(db, "SELECT count(*) FROM (SELECT 1 FROM evaluations GROUP BY deployment_id, metric, at HAVING count(*) > 1) d");
            if (answersPerSecond > 0)
            {
                answerRows.AddRange(probes.Rows("steady", n, first + Interval, regressionAt ?? end));
                if (stopped.Count > 0)
                {
                    // The minute from the first t that found a regression (every regressed watch stored, Slack told), and
                    // the answers meanwhile.
                    var found = Minute(stopped.Values.Min());
                    var inMinute = stopped.Values.Where(at => at < found + Interval).ToList();
                    var messages = await ScalarAsync(db, "SELECT count(*) FROM outbox WHERE deployment_id LIKE 'watch-%'");
                    var told = await DoublesAsync(db,
                        "SELECT extract(epoch FROM delivered_at - $1)::float8 FROM outbox WHERE deployment_id LIKE 'watch-%' AND delivered_at IS NOT NULL ORDER BY 1", found);
                    answerRows.Add(string.Create(CultureInfo.InvariantCulture,
                        $"| {n:N0} | regression at t {found:HH:mm}: {inMinute.Count:N0} watches regressed at that t, the last stored {(inMinute.Max() - found).TotalSeconds:F1} s after it ({stopped.Count:N0} by the end); {messages:N0} Slack messages about them, {told.Count:N0} sent by the end, the last {(told.Count > 0 ? told[^1] : 0):F1} s after the t | | | | | | | | | | | |"));
                    answerRows.AddRange(probes.Rows($"regression minute (from t {found:HH:mm})", n, found, found + Interval));
                    answerRows.AddRange(probes.Rows("after it", n, found + Interval, end));
                }
            }

            // The evaluations due by the end, as the lags: not the next round, stored during the grace after it.
            await using (var byVerdict = new NpgsqlCommand("SELECT verdict || ' ' || count(*) FROM evaluations WHERE at <= $1 GROUP BY verdict ORDER BY count(*) DESC", db))
            {
                byVerdict.Parameters.AddWithValue(end);
                await using var verdictReader = await byVerdict.ExecuteReaderAsync();
                while (await verdictReader.ReadAsync())
                {
                    verdicts.Add(verdictReader.GetString(0));
                }
            }

            // What the watch leaves in the database (deploy/README.md, "How much the database grows").
            await using (var storage = new NpgsqlCommand("""
                SELECT (SELECT pg_total_relation_size('evaluations')::float8 / greatest(count(*), 1) FROM evaluations),
                       (SELECT avg(pg_column_size(samples))::float8 FROM watch_baselines),
                       (SELECT coalesce(avg(pg_column_size(reduced)), 0)::float8 FROM watch_baselines WHERE reduced IS NOT NULL)
                """, db))
            await using (var sizes = await storage.ExecuteReaderAsync())
            {
                await sizes.ReadAsync();
                await Console.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"[watches] N={n}: storage: evaluations {sizes.GetDouble(0):F0} bytes a row with its indexes; baseline samples {sizes.GetDouble(1) / 1024:F1} KB a metric as stored; reductions {sizes.GetDouble(2) / 1024:F1} KB a metric"));
            }

            lags = await DoublesAsync(db, "SELECT extract(epoch FROM evaluated_at - at)::float8 FROM evaluations WHERE at <= $1 AND deployment_id LIKE 'watch-%'", end);
            if (burst > 0)
            {
                runningAfterBurst = await DoublesAsync(db,
                    "SELECT extract(epoch FROM evaluated_at - at)::float8 FROM evaluations WHERE at <= $1 AND at >= $2 AND deployment_id LIKE 'watch-%' ORDER BY 1", end, burstAt);
                burstFirst = await DoublesAsync(db,
                    "SELECT extract(epoch FROM min(evaluated_at) - $1)::float8 FROM evaluations WHERE deployment_id LIKE 'burst-%' GROUP BY deployment_id ORDER BY 1", burstAt);
                captured = await ScalarAsync(db, "SELECT count(DISTINCT deployment_id) FROM watch_baselines WHERE deployment_id LIKE 'burst-%'");
            }
        }

        var restartRow = "";
        if (restart)
        {
            restartRow = await RestartAsync();
        }

        await app.StopAsync();
        await app.DisposeAsync();
        await dataSource.DisposeAsync();
        await BenchmarkDatabase.DropAsync(connection, database);
        Directory.Delete(runbooks, recursive: true);
        if (stopped.Count > 0)
        {
            await Console.Error.WriteLineAsync($"[watches] N={n}: {stopped.Count} watches stopped (regressed), the first at {stopped.Values.Min():HH:mm:ss.fff}; each is due up to then");
        }

        // Evaluations still missing 10 s after the end are at least that late: they count as +∞ in the percentiles.
        var sorted = lags.Order().ToArray();
        var missing = Math.Max(0, due - sorted.Length);
        var lateOrMissing = missing + sorted.Count(l => l > Grace.TotalSeconds);
        string Lag(double p)
        {
            var index = (int)Math.Ceiling(p * (sorted.Length + missing)) - 1;
            return index < sorted.Length ? sorted[Math.Max(index, 0)].ToString("F2", CultureInfo.InvariantCulture) : $"> {Grace.TotalSeconds:F0} (missing)";
        }

        var queries = after.Queries - before.Queries;
        var row = string.Create(CultureInfo.InvariantCulture,
            $"| {n:N0} | {workloads:N0} | {seeding.TotalSeconds:F1} | {due:N0} | {sorted.Length:N0} | {lateOrMissing:N0} | {duplicates} | {sorted.Length / ((end - first) / Interval - 1):N0} ({n * Metrics.Length:N0}) | {Lag(0.50)} | {Lag(0.99)} | {(missing > 0 ? Lag(1) : sorted.Length > 0 ? sorted[^1].ToString("F2", CultureInfo.InvariantCulture) : "-")} | {queries / wall.TotalSeconds:F0} | {cpu.TotalSeconds / wall.TotalSeconds:F2} | {(after.CpuSeconds - before.CpuSeconds) / wall.TotalSeconds:F2} | {string.Join(", ", verdicts)} |");
        string At(List<double> values, double p) =>
            values.Count == 0 ? "-" : values[Math.Clamp((int)Math.Ceiling(p * values.Count) - 1, 0, values.Count - 1)].ToString("F2", CultureInfo.InvariantCulture);
        var burstRow = string.Create(CultureInfo.InvariantCulture,
            $"| {n:N0} | {burst:N0} | {captured:N0} | {burstFirst.Count:N0} | {At(burstFirst, 0.5)} | {At(burstFirst, 1)} | {At(runningAfterBurst, 0.5)} | {At(runningAfterBurst, 0.99)} | {At(runningAfterBurst, 1)} |");
        return new Result(row, burstRow, restartRow, answerRows, duplicates);

        // A new instance on the same database after this one stops: every watch rebuilt from what is stored.
        async Task<string> RestartAsync()
        {
            if (restartLead is { } settle)
            {
                // Stopped only once the last t's evaluations are in (20 s after it) and early enough to wait for the lead,
                // so no t falls in the downtime.
                var since = TimeProvider.System.GetUtcNow() - Minute(TimeProvider.System.GetUtcNow());
                var stopAt = since < TimeSpan.FromSeconds(20) ? TimeSpan.FromSeconds(20) - since
                    : since > Interval - TimeSpan.FromSeconds(settle) ? Interval + TimeSpan.FromSeconds(20) - since
                    : TimeSpan.Zero;
                await Task.Delay(stopAt);
            }

            await app.StopAsync();
            await app.DisposeAsync();
            var stoppedAt = TimeProvider.System.GetUtcNow();
            if (restartLead is { } lead)
            {
                var at = Minute(stoppedAt) + Interval - TimeSpan.FromSeconds(lead);
                await Task.Delay(at > stoppedAt ? at - stoppedAt : at + Interval - stoppedAt);
            }

            var restartAt = TimeProvider.System.GetUtcNow();
            app = await StartServiceAsync();
            var restartEnd = Minute(restartAt) + Interval * (minutes + 1);
            await Console.Error.WriteLineAsync($"[watches] N={n}: restarted at {restartAt:HH:mm:ss.fff}, watching until {restartEnd:HH:mm:ss}");
            await Task.Delay(restartEnd - TimeProvider.System.GetUtcNow() + Grace);
            await using var db = await dataSource.OpenConnectionAsync();
            // t after the restart: due while the new instance runs. t missed while no instance ran are caught up first.
            var dueAfter = deployments.Sum(d =>
                (long)WatchSchedule.DueTimes(d.At, Interval, null, restartEnd, d.At + TimeSpan.FromHours(24)).Count
                - WatchSchedule.DueTimes(d.At, Interval, null, restartAt, d.At + TimeSpan.FromHours(24)).Count) * Metrics.Length;
            var after = await DoublesAsync(db,
                "SELECT extract(epoch FROM evaluated_at - at)::float8 FROM evaluations WHERE at > $1 AND at <= $2 AND deployment_id LIKE 'watch-%' ORDER BY 1", restartAt, restartEnd);
            var caughtUp = await DoublesAsync(db,
                "SELECT extract(epoch FROM evaluated_at - $1)::float8 FROM evaluations WHERE at <= $1 AND evaluated_at >= $1 AND deployment_id LIKE 'watch-%' ORDER BY 1", restartAt);
            var again = await DoublesAsync(db,
                "SELECT extract(epoch FROM min(evaluated_at) - $1)::float8 FROM evaluations WHERE evaluated_at >= $1 AND deployment_id LIKE 'watch-%' GROUP BY deployment_id ORDER BY 1", restartAt);
            var missingAfter = Math.Max(0, dueAfter - after.Count);
            var everyWatch = again.Count < n ? $"> {(restartEnd - restartAt).TotalSeconds:F0} ({n - again.Count:N0} never)" : At(again, 1);
            return string.Create(CultureInfo.InvariantCulture,
                $"| {n:N0} | {baselineHours} | {(restartAt - stoppedAt).TotalSeconds:F1} | {(Minute(restartAt) + Interval - restartAt).TotalSeconds:F0} | {caughtUp.Count:N0}, {(caughtUp.Count > 0 ? At(caughtUp, 1) : "-")} | {everyWatch} | {dueAfter:N0} | {after.Count:N0} | {missingAfter + after.Count(l => l > Grace.TotalSeconds):N0} | {At(after, 0.5)} | {At(after, 0.99)} | {At(after, 1)} |");
        }
    }

    private static async Task<List<double>> DoublesAsync(NpgsqlConnection db, string sql, params object[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, db);
        foreach (var parameter in parameters)
        {
            command.Parameters.AddWithValue(parameter);
        }

        var values = new List<double>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            values.Add(reader.GetDouble(0));
        }

        return values;
    }

    /// <summary>The benchmark's watched deployments no longer watching at the end, and when they stopped.</summary>
    private static async Task<Dictionary<string, DateTimeOffset>> StoppedAsync(NpgsqlConnection db)
    {
        await using var command = new NpgsqlCommand("SELECT id, updated_at FROM deployments WHERE id LIKE 'watch-%' AND state <> 'watching'", db);
        await using var reader = await command.ExecuteReaderAsync();
        var stopped = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        while (await reader.ReadAsync())
        {
            stopped[reader.GetString(0)] = reader.GetFieldValue<DateTimeOffset>(1);
        }

        return stopped;
    }

    private static string Service(int workload) => $"svc-{workload}";

    private static int WorkloadsOf(string[] args) => int.Parse(Option(args, "--workloads", "5"), CultureInfo.InvariantCulture);

    /// <summary>Each workload's baseline of each metric, as the watch's own source reads it.</summary>
    private static async Task<Dictionary<(string Service, string Metric), IReadOnlyList<Observation>>> WorkloadBaselinesAsync(
        IServiceProvider services, int workloads, DateTimeOffset from, DateTimeOffset to, int hours)
    {
        await using var scope = services.CreateAsyncScope();
        var source = scope.ServiceProvider.GetRequiredService<IMetricSource>();
        var baselines = new Dictionary<(string, string), IReadOnlyList<Observation>>();
        for (var w = 0; w < workloads; w++)
        {
            var plan = WatchPlan.From(RunbookParser.Parse(Runbook(Service(w), null), $"{Service(w)}.yaml").Runbook!, "production");
            foreach (var metric in plan.Metrics)
            {
                var hour = await source.BaselineAsync(metric, from, to, Interval, CancellationToken.None);
                baselines[(Service(w), metric.Name)] = [.. Enumerable.Range(0, hours).Reverse().SelectMany(k => hour.Select(o => o with { At = o.At.AddHours(-k) }))];
            }
        }

        return baselines;
    }

    private static DateTimeOffset Minute(DateTimeOffset at) => DateTimeOffset.FromUnixTimeSeconds(at.ToUnixTimeSeconds() / 60 * 60);

    /// <param name="standIn">The local stand-in for Slack and the rollback webhook, if any: a regression is then recommended
    /// for rollback in Slack, and a press rolls back through the stand-in.</param>
    private static string Runbook(string service, string? standIn) => BenchmarkRunbook.Istio(service, Namespace, """
        watch:
          duration: 24h
          interval: 1m
          baseline: 1h
          metrics:
            - name: p95-latency
              preset: p95-latency
              maxIncrease: 20%
            - name: error-rate
              preset: error-rate
              maxIncrease: 50%
            - name: cost-per-request
              preset: cost-per-request
              pricing:
                cpuCoreHour: 0.031
                memoryGiBHour: 0.0042
              maxIncrease: 15%

        """ + (standIn is null ? "" : BenchmarkRunbook.RecommendedRollback(standIn)));

    /// <summary>Instant and range queries Prometheus has answered, and its CPU seconds, from its own /metrics.</summary>
    private static async Task<(double Queries, double CpuSeconds)> PrometheusCountersAsync(HttpClient http)
    {
        var text = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        double queries = 0, cpu = 0;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith("prometheus_http_requests_total{", StringComparison.Ordinal)
                && (line.Contains("handler=\"/api/v1/query\"", StringComparison.Ordinal) || line.Contains("handler=\"/api/v1/query_range\"", StringComparison.Ordinal)))
            {
                queries += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("process_cpu_seconds_total ", StringComparison.Ordinal))
            {
                cpu = double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return (queries, cpu);
    }

    private static async Task<long> ScalarAsync(NpgsqlConnection db, string sql, params object[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, db);
        foreach (var parameter in parameters)
        {
            command.Parameters.AddWithValue(parameter);
        }

        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    private static string Option(string[] args, string name, string fallback)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : fallback;
    }

    /// <summary>Every `--set Key=Value`: configuration of the service under test, e.g. RolloutGate:Watch options.</summary>
    private static Dictionary<string, string> Options(string[] args, string name)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < args.Length; i++)
        {
            if (args[i] == name && args[i + 1].Split('=', 2) is [var key, var value])
            {
                options[key] = value;
            }
        }

        return options;
    }

    private sealed record Result(string Row, string BurstRow, string RestartRow, IReadOnlyList<string> AnswerRows, long Duplicates);
}
