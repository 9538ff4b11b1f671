using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Npgsql;
using RolloutGate.Benchmarks.Slack;
using RolloutGate.Benchmarks.Webhooks;

namespace RolloutGate.Benchmarks.Watches;

/// <summary>
/// What people and pipelines meet while the watches run (<c>--answers R</c>): R requests a second of each kind, sent on
/// a fixed schedule whatever the answers take (a slow answer does not slow the stream, as Slack and pipelines do not
/// wait for each other), each timed at the client from send to full answer. The kinds: a signed Slack button press
/// (rollback) on a regressed deployment, one press per deployment; a signed <c>/rolloutgate status &lt;id&gt;</c> of a
/// watched deployment; a signed <c>predeploy</c> webhook (then its <c>cancelled</c>, not timed) of a service without a
/// running watch; and the reader API's <c>GET /api/v1/deployments/{id}</c> and <c>GET /api/v1/audit/events?limit=100</c>.
/// Once a second it also samples the machine's load average and the service database's sessions in pg_stat_activity.
/// </summary>
internal sealed class AnswerProbes
{
    public const string ReaderToken = "benchmark-reader";

    private static readonly string[] Kinds =
    [
        "Slack button press (rollback)",
        "Slack /rolloutgate status",
        "predeploy webhook",
        "GET /api/v1/deployments/{id}",
        "GET /api/v1/audit/events?limit=100",
    ];

    private readonly ConcurrentQueue<Answer> answers = new();
    private readonly ConcurrentQueue<Sample> samples = new();

    /// <summary>
    /// Sends <paramref name="perSecond"/> requests a second of each kind until <paramref name="stop"/>, then waits for the
    /// answers still outstanding.
    /// </summary>
    /// <param name="watched">Deployments whose status and record are read.</param>
    /// <param name="toPress">Regressed deployments, each pressed once; the stream of presses ends when they run out.</param>
    /// <param name="hookServices">Services the predeploys go to, in turn (each walks predeploy then cancelled).</param>
    public async Task RunAsync(
        HttpClient http, string database, double perSecond, IReadOnlyList<string> watched, ConcurrentQueue<string> toPress,
        IReadOnlyList<string> hookServices, CancellationToken stop)
    {
        var outstanding = new List<Task>();
        var sampling = SampleAsync(database, stop);
        var period = TimeSpan.FromSeconds(1 / perSecond);
        var clock = Stopwatch.StartNew();
        for (var tick = 0; !stop.IsCancellationRequested; tick++)
        {
            var wait = period * tick - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                await Task.WhenAny(Task.Delay(wait, stop));
            }

            if (stop.IsCancellationRequested)
            {
                break;
            }

            var deployment = watched[(tick * 7919) % watched.Count];
            if (toPress.TryDequeue(out var pressed))
            {
                outstanding.Add(TimeAsync(Kinds[0], () => SlackPressBenchmark.PressAsync(http, "rollback", pressed)));
            }

            outstanding.Add(TimeAsync(Kinds[1], () => SlackPressBenchmark.CommandAsync(http, $"status {deployment}")));
            var service = hookServices[tick % hookServices.Count];
            outstanding.Add(PredeployAsync(http, $"hook-{tick}", service));
            outstanding.Add(TimeAsync(Kinds[3], () => ReadAsync(http, $"/api/v1/deployments/{deployment}")));
            outstanding.Add(TimeAsync(Kinds[4], () => ReadAsync(http, "/api/v1/audit/events?limit=100")));
        }

        await Task.WhenAll(outstanding);
        await sampling;
    }

    /// <summary>
    /// One table row per kind for the requests sent in [from, to): count, failed (not 200), p50/p95/p99/max ms and how
    /// many took 3 s or more; with the highest 1-minute load average and the most sessions waiting on a lock (and active)
    /// sampled meanwhile.
    /// </summary>
    public IEnumerable<string> Rows(string label, int watches, DateTimeOffset from, DateTimeOffset to)
    {
        var during = samples.Where(s => s.At >= from && s.At < to).ToList();
        var load = during.Count == 0 ? "-" : during.Max(s => s.LoadAverage).ToString("F2", CultureInfo.InvariantCulture);
        var sessions = during.Count == 0 ? "-" : $"{during.Max(s => s.LockWaits)} / {during.Max(s => s.Active)}";
        foreach (var kind in Kinds)
        {
            var of = answers.Where(a => a.Kind == kind && a.SentAt >= from && a.SentAt < to).ToList();
            var sorted = of.Select(a => a.Milliseconds).Order().ToArray();
            string At(double p) => sorted.Length == 0 ? "-" : WebhookBenchmark.Percentile(sorted, p).ToString("F0", CultureInfo.InvariantCulture);
            yield return string.Create(CultureInfo.InvariantCulture,
                $"| {watches:N0} | {label} | {(to - from).TotalSeconds:F0} | {kind} | {of.Count} | {of.Count(a => !a.Ok)} | {At(0.50)} | {At(0.95)} | {At(0.99)} | {At(1)} | {sorted.Count(ms => ms >= 3000)} | {load} | {sessions} |");
        }
    }

    public const string Header = """
        | watches | window | s | request | sent | failed | p50 ms | p95 ms | p99 ms | max ms | 3 s or more | load average (1 min, highest) | sessions waiting on a lock / active (most) |
        |---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
        """;

    private async Task TimeAsync(string kind, Func<Task<HttpResponseMessage>> send)
    {
        var sentAt = TimeProvider.System.GetUtcNow();
        var started = Stopwatch.GetTimestamp();
        bool ok;
        try
        {
            using var response = await send();
            await response.Content.ReadAsByteArrayAsync();
            ok = response.StatusCode == HttpStatusCode.OK;
        }
        catch (HttpRequestException)
        {
            ok = false;
        }

        answers.Enqueue(new Answer(kind, sentAt, Stopwatch.GetElapsedTime(started).TotalMilliseconds, ok));
    }

    private async Task PredeployAsync(HttpClient http, string deploymentId, string service)
    {
        await TimeAsync(Kinds[2], () => WebhookBenchmark.SendAsync(http, "predeploy", deploymentId, service));
        using var cancelled = await WebhookBenchmark.SendAsync(http, "cancelled", deploymentId, service);
    }

    private static Task<HttpResponseMessage> ReadAsync(HttpClient http, string path)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri(path, UriKind.Relative));
        request.Headers.Authorization = new("Bearer", ReaderToken);
        return http.SendAsync(request);
    }

    private async Task SampleAsync(string database, CancellationToken stop)
    {
        await using var db = new NpgsqlConnection(database);
        await db.OpenAsync(CancellationToken.None);
        while (!stop.IsCancellationRequested)
        {
            await using (var command = new NpgsqlCommand("""
                SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*) FILTER (WHERE state = 'active')
                FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                """, db))
            await using (var reader = await command.ExecuteReaderAsync(CancellationToken.None))
            {
                await reader.ReadAsync(CancellationToken.None);
                var load = double.Parse((await File.ReadAllTextAsync("/proc/loadavg", CancellationToken.None)).Split(' ')[0], CultureInfo.InvariantCulture);
                samples.Enqueue(new Sample(TimeProvider.System.GetUtcNow(), load, reader.GetInt64(0), reader.GetInt64(1)));
            }

            await Task.WhenAny(Task.Delay(TimeSpan.FromSeconds(1), stop));
        }
    }

    private sealed record Answer(string Kind, DateTimeOffset SentAt, double Milliseconds, bool Ok);

    private sealed record Sample(DateTimeOffset At, double LoadAverage, long LockWaits, long Active);
}
