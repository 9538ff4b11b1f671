using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using RolloutGate.Webhooks;

namespace RolloutGate.Benchmarks.Webhooks;

/// <summary>
/// Signed CD webhook deliveries per second that one instance sustains, every delivery audited, with p50/p99 latency.
/// The real service runs in this process on Kestrel over loopback HTTP against a real PostgreSQL
/// (ROLLOUTGATE_BENCH_CONNECTION, normally set by run-with-postgres.sh). Each worker owns its own services and walks
/// predeploy (allowed: built-in rules, runbook version, audit) then cancelled, so every delivery does the full work
/// and none is refused by the one-change-at-a-time rule. Client and server share the machine's cores.
/// </summary>
public static class WebhookBenchmark
{
    internal const string Secret = "benchmark-secret";
    private const string ReaderToken = "benchmark-reader";

    public static async Task<int> RunAsync(string[] args)
    {
        var seconds = Option(args, "--seconds", 20);
        var concurrency = Option(args, "--concurrency", 16);
        var connection = BenchmarkHost.AdminConnection;
        if (string.IsNullOrEmpty(connection))
        {
            await Console.Error.WriteLineAsync("ROLLOUTGATE_BENCH_CONNECTION is not set: run tests/RolloutGate.Benchmarks/run-with-postgres.sh webhooks");
            return 2;
        }

        using var runbooks = new RunbooksFolder();
        for (var worker = 0; worker < concurrency; worker++)
        {
            await runbooks.WriteAsync($"svc-{worker}.yaml", Runbook($"svc-{worker}"));
        }

        await using var host = await BenchmarkHost.StartAsync(connection, new Dictionary<string, string?>
        {
            ["RolloutGate:Webhook:Secret"] = Secret,
            ["RolloutGate:Api:ReaderTokens:0"] = ReaderToken,
            ["RolloutGate:RunbooksPath"] = runbooks.Folder,
        });
        var address = host.Address;

        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency * 2 }) { BaseAddress = address };
        // Warm-up: JIT, connection pools, EF model.
        await RunWorkersAsync(http, concurrency, TimeSpan.FromSeconds(3), "warmup");
        var measured = await RunWorkersAsync(http, concurrency, TimeSpan.FromSeconds(seconds), "run");

        var latencies = measured.SelectMany(w => w.Latencies).Order().ToArray();
        var failures = measured.Sum(w => w.Failures);
        var elapsed = measured.Max(w => w.Elapsed);
        var audited = await host.ScalarAsync("SELECT count(*) FROM audit_events WHERE type LIKE 'webhook.%'");
        var delivered = await host.ScalarAsync("SELECT count(*) FROM webhook_deliveries");
        http.DefaultRequestHeaders.Authorization = new("Bearer", ReaderToken);
        var verify = await http.GetStringAsync(new Uri("/api/v1/audit/verify", UriKind.Relative));

        Console.WriteLine($"command: dotnet run -c Release --project tests/RolloutGate.Benchmarks -- webhooks --seconds {seconds} --concurrency {concurrency}");
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {RuntimeName()}");
        Console.WriteLine();
        Console.WriteLine("| concurrency | deliveries | failed | deliveries/s | p50 ms | p99 ms | max ms | audited webhook events | audit chain |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {concurrency} | {latencies.Length} | {failures} | {latencies.Length / elapsed.TotalSeconds:F0} | {Percentile(latencies, 0.50):F1} | {Percentile(latencies, 0.99):F1} | {latencies[^1]:F1} | {audited} of {delivered} deliveries | {verify} |"));

        return failures == 0 && audited == delivered ? 0 : 1;
    }

    /// <summary>
    /// Workers that each walk predeploy then cancelled on their own service (svc-{worker}) until the duration is over or
    /// <paramref name="stop"/> is signalled.
    /// </summary>
    internal static async Task<WorkerResult[]> RunWorkersAsync(
        HttpClient http, int concurrency, TimeSpan duration, string phase, CancellationToken stop = default)
    {
        var deadline = Stopwatch.StartNew();
        return await Task.WhenAll(Enumerable.Range(0, concurrency).Select(worker => Task.Run(async () =>
        {
            var result = new WorkerResult();
            var clock = Stopwatch.StartNew();
            for (var change = 0; deadline.Elapsed < duration && !stop.IsCancellationRequested; change++)
            {
                var id = $"{phase}-{worker}-{change}";
                foreach (var @event in new[] { "predeploy", "cancelled" })
                {
                    var started = Stopwatch.GetTimestamp();
                    using var response = await SendAsync(http, @event, id, $"svc-{worker}");
                    result.Latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        result.Failures++;
                    }
                }
            }

            result.Elapsed = clock.Elapsed;
            return result;
        })));
    }

    internal static Task<HttpResponseMessage> SendAsync(HttpClient http, string @event, string deploymentId, string service)
    {
        var body = JsonSerializer.Serialize(new { @event, deploymentId, service, environment = "production", version = "2.4.0", initiator = "bench" });
        var timestamp = TimeProvider.System.GetUtcNow().ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/api/v1/deployments", UriKind.Relative))
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-RolloutGate-Delivery", $"{deploymentId}-{@event}");
        request.Headers.Add("X-RolloutGate-Timestamp", timestamp);
        request.Headers.Add("X-RolloutGate-Signature", WebhookAuthenticator.SignatureHeaderValue(Secret, timestamp, Encoding.UTF8.GetBytes(body)));
        return http.SendAsync(request);
    }

    private static string Runbook(string service) => BenchmarkRunbook.Istio(service, "shop", """
        watch:
          metrics:
            - name: p95-latency
              preset: p95-latency
              maxIncrease: 20%
        """);

    internal static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    internal static int Option(string[] args, string name, int fallback)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? int.Parse(args[index + 1], CultureInfo.InvariantCulture) : fallback;
    }

    private static string RuntimeName() => System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;

    internal sealed class WorkerResult
    {
        public List<double> Latencies { get; } = [];

        public int Failures { get; set; }

        public TimeSpan Elapsed { get; set; }
    }
}
