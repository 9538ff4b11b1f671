using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using RolloutGate.Benchmarks.Webhooks;
using RolloutGate.Slack;

namespace RolloutGate.Benchmarks.Slack;

/// <summary>
/// How fast a Slack button press is answered, against Slack's 3 seconds (CONTRACT section 6), while CD webhooks keep
/// the service busy. The real service runs in this process on Kestrel against a real PostgreSQL (run-with-postgres.sh),
/// with a bot token and a small local stand-in for the Slack Web API and for each runbook's rollback webhook, so the
/// outbox and the rollback actions run as in production. Each of N deployments (one service each) is watched and then
/// marked regressed; workers press "rollback" on them as their owner, signed like Slack, one press per deployment,
/// while other workers send signed predeploy/cancelled webhooks without pause. Latency is measured at the client, from
/// send to full answer. Afterwards it checks that every press decided its deployment once and that the audit chain holds.
/// </summary>
public static class SlackPressBenchmark
{
    internal const string SigningSecret = "benchmark-slack-signing-secret";
    private const string ReaderToken = "benchmark-reader";
    private static readonly TimeSpan SlackDeadline = TimeSpan.FromSeconds(3);

    public static async Task<int> RunAsync(string[] args)
    {
        var presses = WebhookBenchmark.Option(args, "--presses", 400);
        var concurrency = WebhookBenchmark.Option(args, "--concurrency", 16);
        var webhookWorkers = WebhookBenchmark.Option(args, "--webhook-workers", 8);
        var connection = BenchmarkHost.AdminConnection;
        if (string.IsNullOrEmpty(connection))
        {
            await Console.Error.WriteLineAsync("ROLLOUTGATE_BENCH_CONNECTION is not set: run tests/RolloutGate.Benchmarks/run-with-postgres.sh slack");
            return 2;
        }

        await using var stand = await StandInAsync();
        using var runbooks = new RunbooksFolder();
        for (var i = 0; i < presses; i++)
        {
            await runbooks.WriteAsync($"pressed-{i}.yaml", Runbook($"pressed-{i}", stand.Url));
        }

        for (var worker = 0; worker < webhookWorkers; worker++)
        {
            await runbooks.WriteAsync($"svc-{worker}.yaml", Runbook($"svc-{worker}", stand.Url));
        }

        await using var host = await BenchmarkHost.StartAsync(connection, new Dictionary<string, string?>
        {
            ["RolloutGate:Webhook:Secret"] = WebhookBenchmark.Secret,
            ["RolloutGate:Api:ReaderTokens:0"] = ReaderToken,
            ["RolloutGate:RunbooksPath"] = runbooks.Folder,
            ["RolloutGate:Slack:ApiBaseUrl"] = stand.Url + "/api",
            ["RolloutGate:Slack:BotToken"] = "xoxb-benchmark",
            ["RolloutGate:Slack:SigningSecret"] = SigningSecret,
            // No Prometheus: the watches the deploys start cannot read their baselines, which is not what is measured.
            ["RolloutGate:Prometheus:Url"] = "http://127.0.0.1:9",
            ["Logging:LogLevel:RolloutGate.Watch"] = "Error",
            ["Logging:LogLevel:RolloutGate.Prometheus"] = "Error",
            ["Logging:LogLevel:Polly"] = "Critical",
        });
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = (concurrency + webhookWorkers) * 2 }) { BaseAddress = host.Address };

        // Every deployment watched, then regressed as the watch would leave it (the recommendation's own path is the
        // watch's; what is measured here is the press).
        await Parallel.ForEachAsync(Enumerable.Range(0, presses), new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (i, _) =>
        {
            foreach (var @event in new[] { "predeploy", "deployed" })
            {
                using var response = await WebhookBenchmark.SendAsync(http, @event, $"press-{i}", $"pressed-{i}");
                if (!response.IsSuccessStatusCode)
                {
                    throw new InvalidOperationException($"{@event} press-{i}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                }
            }
        });
        await host.ExecuteAsync("UPDATE deployments SET state = 'regressed' WHERE id LIKE 'press-%'");

        // Warm-up: JIT and pools, on the webhook path and on a press that finds nothing to decide.
        await WebhookBenchmark.RunWorkersAsync(http, webhookWorkers, TimeSpan.FromSeconds(3), "warmup");
        for (var i = 0; i < 20; i++)
        {
            using var warm = await PressAsync(http, "dismiss", "no-such-deployment");
        }

        var queue = new ConcurrentQueue<int>(Enumerable.Range(0, presses));
        using var pressing = new CancellationTokenSource();
        var load = WebhookBenchmark.RunWorkersAsync(http, webhookWorkers, TimeSpan.MaxValue, "load", pressing.Token);
        var clock = Stopwatch.StartNew();
        var workers = await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            var latencies = new List<double>();
            var failures = 0;
            while (queue.TryDequeue(out var i))
            {
                var started = Stopwatch.GetTimestamp();
                using var response = await PressAsync(http, "rollback", $"press-{i}");
                latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                failures += response.StatusCode == HttpStatusCode.OK ? 0 : 1;
            }

            return (Latencies: latencies, Failures: failures);
        })));
        var pressedFor = clock.Elapsed;
        await pressing.CancelAsync();
        var webhooks = await load;

        var latencies = workers.SelectMany(w => w.Latencies).Order().ToArray();
        var failures = workers.Sum(w => w.Failures);
        var decided = await host.ScalarAsync("SELECT count(*) FROM decisions WHERE deployment_id LIKE 'press-%' AND kind = 'rollback'");
        var deployments = await host.ScalarAsync("SELECT count(DISTINCT deployment_id) FROM decisions WHERE deployment_id LIKE 'press-%'");
        var late = latencies.Count(l => l >= SlackDeadline.TotalMilliseconds);
        var webhookCount = webhooks.Sum(w => w.Latencies.Count);
        var webhookFailures = webhooks.Sum(w => w.Failures);
        http.DefaultRequestHeaders.Authorization = new("Bearer", ReaderToken);
        var verify = await http.GetStringAsync(new Uri("/api/v1/audit/verify", UriKind.Relative));

        Console.WriteLine($"command: tests/RolloutGate.Benchmarks/run-with-postgres.sh slack --presses {presses} --concurrency {concurrency} --webhook-workers {webhookWorkers}");
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}");
        Console.WriteLine();
        Console.WriteLine("| presses | concurrency | webhooks meanwhile | failed | presses/s | p50 ms | p99 ms | max ms | 3 s or more | decided once | audit chain |");
        Console.WriteLine("|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {latencies.Length} | {concurrency} | {webhookCount} from {webhookWorkers} workers ({webhookCount / pressedFor.TotalSeconds:F0}/s, {webhookFailures} failed) | {failures} | {latencies.Length / pressedFor.TotalSeconds:F0} | {WebhookBenchmark.Percentile(latencies, 0.50):F1} | {WebhookBenchmark.Percentile(latencies, 0.99):F1} | {latencies[^1]:F1} | {late} | {decided} decisions on {deployments} of {presses} deployments | {verify} |"));

        return failures == 0 && webhookFailures == 0 && decided == presses && deployments == presses ? 0 : 1;
    }

    internal static Task<HttpResponseMessage> PressAsync(HttpClient http, string actionId, string deploymentId)
    {
        var payload = JsonSerializer.Serialize(new
        {
            type = "block_actions",
            user = new { id = BenchmarkRunbook.Owner, username = "owner", team_id = "T0BENCH" },
            container = new { type = "message", message_ts = "1700000000.000001", channel_id = "C0DECIDE01" },
            channel = new { id = "C0DECIDE01" },
            actions = new[] { new { action_id = actionId, type = "button", value = deploymentId } },
        });
        return SendSignedAsync(http, "/slack/interactions", "payload=" + Uri.EscapeDataString(payload));
    }

    /// <summary>A slash command as Slack sends it: `/rolloutgate {text}` typed by the runbook's owner.</summary>
    internal static Task<HttpResponseMessage> CommandAsync(HttpClient http, string text) =>
        SendSignedAsync(http, "/slack/commands",
            $"command=%2Frolloutgate&text={Uri.EscapeDataString(text)}&user_id={BenchmarkRunbook.Owner}&user_name=owner&team_id=T0BENCH&channel_id=C0DECIDE01");

    /// <summary>A form posted to one of the Slack endpoints, signed as Slack signs it.</summary>
    private static Task<HttpResponseMessage> SendSignedAsync(HttpClient http, string path, string form)
    {
        var timestamp = TimeProvider.System.GetUtcNow().ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative))
        {
            Content = new StringContent(form, Encoding.UTF8, "application/x-www-form-urlencoded"),
        };
        request.Headers.Add(SlackRequestVerifier.TimestampHeader, timestamp);
        request.Headers.Add(SlackRequestVerifier.SignatureHeader, SlackRequestVerifier.Signature(SigningSecret, timestamp, Encoding.UTF8.GetBytes(form)));
        return http.SendAsync(request);
    }

    /// <summary>
    /// One local server for what the service calls out to: the Slack Web API (every method answers ok with a fresh ts, as
    /// chat.postMessage does) and the runbooks' rollback webhook (200).
    /// </summary>
    internal static async Task<StandIn> StandInAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        long sequence = 0;
        app.MapPost("/api/{method}", (string method) => Results.Json(new
        {
            ok = true,
            channel = "C0DECIDE01",
            ts = string.Create(CultureInfo.InvariantCulture, $"1700000000.{Interlocked.Increment(ref sequence):D6}"),
        }));
        app.MapPost("/rollback", () => Results.Ok());
        await app.StartAsync();
        return new StandIn(app, app.Urls.Single());
    }

    private static string Runbook(string service, string standIn) => BenchmarkRunbook.Istio(service, "shop", """
        watch:
          interval: 1h
          metrics:
            - name: p95-latency
              preset: p95-latency
              maxIncrease: 20%

        """ + BenchmarkRunbook.RecommendedRollback(standIn));

    internal sealed record StandIn(WebApplication App, string Url) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => App.DisposeAsync();
    }
}
