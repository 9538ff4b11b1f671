using System.Globalization;
using System.Text;

namespace RolloutGate.Demo;

/// <summary>
/// A simulated "checkout" service in namespace "shop" that exports what Istio's sidecar and cAdvisor would export
/// for it, so that <c>deploy/local/run.sh</c> can point a local Prometheus at it and the sample runbook has real
/// series to check and watch. Traffic follows a daily cycle (about 40 requests per second at the daily peak);
/// latency is log-normal around 120 ms; 0.2% of requests fail with 503. Counters advance with the injected clock,
/// so a scrape shows what happened since the previous one. Enabled only with <c>RolloutGate__Demo__Enabled=true</c>.
/// A <see cref="DemoFault"/> (<c>POST /demo/faults</c>) makes it slower or fail more from the moment it is set: every
/// counter and histogram bucket accumulates what was served under the fault in force at the time, so the series stay
/// monotonic and the buckets cumulative whenever the fault changes.
/// </summary>
public sealed class DemoWorkload(TimeProvider time)
{
    public const string Namespace = "shop";
    public const string Workload = "checkout";

    /// <summary>Istio's default request-duration buckets, in milliseconds.</summary>
    private static readonly double[] BucketsMs = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

    private const double MedianLatencyMs = 120;
    private const double LatencySigma = 0.45;
    public const double ErrorShare = 0.002;
    private const double CpuCoresPerRequestPerSecond = 0.004;
    private const double MemoryBytes = 412 * 1024 * 1024;

    private readonly Lock gate = new();
    private readonly double[] buckets = new double[BucketsMs.Length];
    private DateTimeOffset? last;
    private double succeeded;
    private double failed;
    private double durationSumMs;
    private double cpuSeconds;
    private DemoFault fault = DemoFault.Healthy;
    private DateTimeOffset? faultSince;

    /// <summary>The fault in force, and since when (null: healthy since the start).</summary>
    public (DemoFault Fault, DateTimeOffset? Since) Fault
    {
        get
        {
            lock (gate)
            {
                return (fault, faultSince);
            }
        }
    }

    /// <summary>Puts <paramref name="next"/> in force from now on; what was served until now is counted under the previous fault.</summary>
    public void SetFault(DemoFault next)
    {
        lock (gate)
        {
            var now = time.GetUtcNow();
            Advance(now);
            fault = next;
            faultSince = now;
        }
    }

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
        failed += served * fault.ErrorRate;
        succeeded += served * (1 - fault.ErrorRate);
        // Each bucket grows by what fell under its bound at the latency in force: increments never shrink with le, so
        // the buckets stay cumulative, and never shrink over time, so they stay monotonic.
        for (var i = 0; i < BucketsMs.Length; i++)
        {
            buckets[i] += served * LogNormalCdf(BucketsMs[i] / fault.Latency);
        }

        durationSumMs += served * MedianLatencyMs * fault.Latency * Math.Exp(LatencySigma * LatencySigma / 2);
        cpuSeconds += seconds * (0.05 + (CpuCoresPerRequestPerSecond * RequestsPerSecond(now)));
        last = now;
    }

    /// <summary>
    /// The last <paramref name="span"/> of this workload as OpenMetrics, one sample per <paramref name="step"/>, for
    /// <c>promtool tsdb create-blocks-from openmetrics</c>: deploy/local/run.sh backfills a fresh local Prometheus with
    /// it, so the sample runbook's watch has a baseline at once. Families are not interleaved, as the format requires.
    /// </summary>
    public static string History(DateTimeOffset end, TimeSpan span, TimeSpan step)
    {
        var simulated = new DemoWorkload(TimeProvider.System);
        var families = new Dictionary<string, StringBuilder>(StringComparer.Ordinal);
        for (var at = end - span; at <= end; at += step)
        {
            simulated.Advance(at);
            var timestamp = at.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
            foreach (var (family, lines) in simulated.Families())
            {
                if (!families.TryGetValue(family.Name, out var text))
                {
                    text = new StringBuilder().Append(CultureInfo.InvariantCulture, $"# TYPE {family.Name} {family.Type}\n");
                    families[family.Name] = text;
                }

                foreach (var line in lines)
                {
                    text.Append(line).Append(' ').Append(timestamp).Append('\n');
                }
            }
        }

        return string.Concat(families.Values.Select(text => text.ToString())) + "# EOF\n";
    }

    private string Render()
    {
        var text = new StringBuilder();
        foreach (var (family, lines) in Families())
        {
            text.Append(CultureInfo.InvariantCulture, $"# HELP {family.Exposed} {family.Help}\n# TYPE {family.Exposed} {family.Type}\n");
            foreach (var line in lines)
            {
                text.Append(line).Append('\n');
            }
        }

        return text.ToString();
    }

    /// <summary>The current value of every series, by family: what both the live scrape and the history render.</summary>
    private IEnumerable<(Family Family, List<string> Lines)> Families()
    {
        var destination = $"reporter=\"destination\",destination_workload=\"{Workload}\",destination_workload_namespace=\"{Namespace}\"";
        var ok = Math.Floor(succeeded);
        var errors = Math.Floor(failed);
        var total = ok + errors;
        yield return (new Family("istio_requests", "istio_requests_total", "counter", "Requests served (simulated by RolloutGate's demo workload)."),
        [
            string.Create(CultureInfo.InvariantCulture, $"istio_requests_total{{{destination},response_code=\"200\"}} {ok}"),
            string.Create(CultureInfo.InvariantCulture, $"istio_requests_total{{{destination},response_code=\"503\"}} {errors}"),
        ]);

        // Capped at the count: the buckets add up fractions of requests the two counters floor separately.
        var histogram = BucketsMs
            .Select((le, i) => string.Create(CultureInfo.InvariantCulture, $"istio_request_duration_milliseconds_bucket{{{destination},le=\"{le}\"}} {Math.Min(Math.Floor(buckets[i]), total)}"))
            .Append(string.Create(CultureInfo.InvariantCulture, $"istio_request_duration_milliseconds_bucket{{{destination},le=\"+Inf\"}} {total}"))
            .Append(string.Create(CultureInfo.InvariantCulture, $"istio_request_duration_milliseconds_sum{{{destination}}} {durationSumMs:F1}"))
            .Append(string.Create(CultureInfo.InvariantCulture, $"istio_request_duration_milliseconds_count{{{destination}}} {total}"))
            .ToList();
        yield return (new Family("istio_request_duration_milliseconds", "istio_request_duration_milliseconds", "histogram",
            "Request duration (simulated by RolloutGate's demo workload)."), histogram);

        var container = $"namespace=\"{Namespace}\",pod=\"{Workload}-6f7d9c5b8-x2k4q\",container=\"{Workload}\"";
        yield return (new Family("container_cpu_usage_seconds", "container_cpu_usage_seconds_total", "counter", "CPU time consumed (simulated cAdvisor series)."),
            [string.Create(CultureInfo.InvariantCulture, $"container_cpu_usage_seconds_total{{{container}}} {cpuSeconds:F3}")]);
        yield return (new Family("container_memory_working_set_bytes", "container_memory_working_set_bytes", "gauge", "Working set (simulated cAdvisor series)."),
            [string.Create(CultureInfo.InvariantCulture, $"container_memory_working_set_bytes{{{container}}} {MemoryBytes}")]);
    }

    /// <summary>A metric family: its OpenMetrics name (no _total), its text-format name, type and help.</summary>
    private sealed record Family(string Name, string Exposed, string Type, string Help);

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

    /// <summary>
    /// Maps the demo workload's scrape endpoint and its fault switch (<see cref="DemoFaultEndpoints"/>) when
    /// <c>RolloutGate:Demo:Enabled</c> is true; outside demo mode neither exists.
    /// </summary>
    public static IEndpointRouteBuilder MapDemoWorkload(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        if (configuration.GetValue<bool>("RolloutGate:Demo:Enabled"))
        {
            var workload = app.ServiceProvider.GetRequiredService<DemoWorkload>();
            app.MapGet(Path, () => TypedResults.Text(workload.Scrape(), "text/plain; version=0.0.4; charset=utf-8")).ExcludeFromDescription();
            app.MapDemoFaults();
        }

        return app;
    }
}
