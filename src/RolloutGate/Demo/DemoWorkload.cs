using System.Globalization;
using System.Text;

namespace RolloutGate.Demo;

/// <summary>
/// A simulated "checkout" service in namespace "shop" that exports what Istio's sidecar and cAdvisor would export
/// for it, so that <c>deploy/local/run.sh</c> can point a local Prometheus at it and the sample runbook has real
/// series to check and watch. Traffic follows a daily cycle (about 40 requests per second at the daily peak);
/// latency is log-normal around 120 ms; 0.2% of requests fail with 503. Counters advance with the injected clock,
/// so a scrape shows what happened since the previous one. Enabled only with <c>RolloutGate__Demo__Enabled=true</c>.
/// </summary>
public sealed class DemoWorkload(TimeProvider time)
{
    public const string Namespace = "shop";
    public const string Workload = "checkout";

    /// <summary>Istio's default request-duration buckets, in milliseconds.</summary>
    private static readonly double[] BucketsMs = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

    private const double MedianLatencyMs = 120;
    private const double LatencySigma = 0.45;
    private const double ErrorShare = 0.002;
    private const double CpuCoresPerRequestPerSecond = 0.004;
    private const double MemoryBytes = 412 * 1024 * 1024;

    private readonly Lock gate = new();
    private DateTimeOffset? last;
    private double requests;
    private double durationSumMs;
    private double cpuSeconds;

    public string Scrape()
    {
        lock (gate)
        {
            Advance(time.GetUtcNow());
            return Render();
        }
    }

    /// <summary>Requests per second at a time of day: a trough at night, a peak in the afternoon (UTC).</summary>
    public static double RequestsPerSecond(DateTimeOffset at)
    {
        var hour = at.UtcDateTime.TimeOfDay.TotalHours;
        return 25 + (15 * Math.Sin((hour - 9) / 24 * 2 * Math.PI));
    }

    private void Advance(DateTimeOffset now)
    {
        var previous = last ?? now;
        var seconds = Math.Max(0, (now - previous).TotalSeconds);
        var served = RequestsPerSecond(now) * seconds;
        requests += served;
        durationSumMs += served * MedianLatencyMs * Math.Exp(LatencySigma * LatencySigma / 2);
        cpuSeconds += seconds * (0.05 + (CpuCoresPerRequestPerSecond * RequestsPerSecond(now)));
        last = now;
    }

    private string Render()
    {
        var text = new StringBuilder();
        var destination = $"reporter=\"destination\",destination_workload=\"{Workload}\",destination_workload_namespace=\"{Namespace}\"";
        var ok = Math.Floor(requests * (1 - ErrorShare));
        var failed = Math.Floor(requests * ErrorShare);
        text.Append("# HELP istio_requests_total Requests served (simulated by RolloutGate's demo workload).\n");
        text.Append("# TYPE istio_requests_total counter\n");
        text.Append(CultureInfo.InvariantCulture, $"istio_requests_total{{{destination},response_code=\"200\"}} {ok}\n");
        text.Append(CultureInfo.InvariantCulture, $"istio_requests_total{{{destination},response_code=\"503\"}} {failed}\n");

        text.Append("# HELP istio_request_duration_milliseconds Request duration (simulated by RolloutGate's demo workload).\n");
        text.Append("# TYPE istio_request_duration_milliseconds histogram\n");
        var total = ok + failed;
        foreach (var le in BucketsMs)
        {
            var below = Math.Floor(total * LogNormalCdf(le));
            text.Append(CultureInfo.InvariantCulture, $"istio_request_duration_milliseconds_bucket{{{destination},le=\"{le}\"}} {below}\n");
        }

        text.Append(CultureInfo.InvariantCulture, $"istio_request_duration_milliseconds_bucket{{{destination},le=\"+Inf\"}} {total}\n");
        text.Append(CultureInfo.InvariantCulture, $"istio_request_duration_milliseconds_sum{{{destination}}} {durationSumMs:F1}\n");
        text.Append(CultureInfo.InvariantCulture, $"istio_request_duration_milliseconds_count{{{destination}}} {total}\n");

        var container = $"namespace=\"{Namespace}\",pod=\"{Workload}-6f7d9c5b8-x2k4q\",container=\"{Workload}\"";
        text.Append("# HELP container_cpu_usage_seconds_total CPU time consumed (simulated cAdvisor series).\n");
        text.Append("# TYPE container_cpu_usage_seconds_total counter\n");
        text.Append(CultureInfo.InvariantCulture, $"container_cpu_usage_seconds_total{{{container}}} {cpuSeconds:F3}\n");
        text.Append("# HELP container_memory_working_set_bytes Working set (simulated cAdvisor series).\n");
        text.Append("# TYPE container_memory_working_set_bytes gauge\n");
        text.Append(CultureInfo.InvariantCulture, $"container_memory_working_set_bytes{{{container}}} {MemoryBytes}\n");
        return text.ToString();
    }

    private static double LogNormalCdf(double valueMs) =>
        0.5 * (1 + Erf((Math.Log(valueMs) - Math.Log(MedianLatencyMs)) / (LatencySigma * Math.Sqrt(2))));

    /// <summary>Abramowitz and Stegun 7.1.26; accurate to 1.5e-7, plenty for a demo histogram.</summary>
    private static double Erf(double x)
    {
        var sign = Math.Sign(x);
        x = Math.Abs(x);
        var t = 1 / (1 + (0.3275911 * x));
        var y = 1 - ((((((1.061405429 * t) - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.Exp(-x * x);
        return sign * y;
    }
}

public static class DemoWorkloadEndpoints
{
    public const string Path = "/demo/metrics";

    /// <summary>Maps the demo workload's scrape endpoint when <c>RolloutGate:Demo:Enabled</c> is true.</summary>
    public static IEndpointRouteBuilder MapDemoWorkload(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        if (configuration.GetValue<bool>("RolloutGate:Demo:Enabled"))
        {
            var workload = new DemoWorkload(app.ServiceProvider.GetRequiredService<TimeProvider>());
            app.MapGet(Path, () => TypedResults.Text(workload.Scrape(), "text/plain; version=0.0.4; charset=utf-8")).ExcludeFromDescription();
        }

        return app;
    }
}
