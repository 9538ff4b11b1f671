using System.Globalization;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Watch;

/// <summary>
/// The PromQL a watched metric is evaluated with, at one evaluation time t (an instant query) or over the baseline
/// (a range query with step = interval). <see cref="Value"/> is the metric in base units; <see cref="Requests"/> and
/// <see cref="Errors"/> count requests and failed requests over <see cref="Window"/> so the detector's minimum request
/// count and its count-based error-rate test apply; <see cref="Buckets"/> gives the latency histogram's cumulative
/// counts per <c>le</c>, to tell when the quantile lies beyond the last finite bucket.
/// </summary>
/// <param name="Value">The metric's value; NaN or no result means no data.</param>
/// <param name="Requests">Requests in the window (null for a custom query).</param>
/// <param name="Errors">Failed requests in the window (error rate only).</param>
/// <param name="Buckets">Cumulative histogram counts in the window by <c>le</c> (latency presets only).</param>
/// <param name="Window">The range of the rate() and increase() selectors.</param>
/// <param name="Interval">The evaluation interval; counts are scaled from the window to it.</param>
public sealed record MetricQuery(string Value, string? Requests, string? Errors, string? Buckets, TimeSpan Window, TimeSpan Interval)
{
    /// <summary>A count over the window, scaled to one interval (the window is longer when the interval is short).</summary>
    public long PerInterval(double countInWindow) => (long)Math.Round(countInWindow * (Interval / Window));
}

/// <summary>
/// Builds the preset queries of runbooks/README.md ("Metric presets") for Istio and Linkerd, and wraps custom queries.
/// Pure text: unit-tested for the exact PromQL.
/// </summary>
public static class MetricQueries
{
    /// <summary>
    /// The shortest range for rate() and increase(): they need two samples inside it, and with the common 1-minute
    /// scrape a 1-minute range often holds only one. Counts over a longer window are scaled back to one interval.
    /// </summary>
    public static readonly TimeSpan MinimumWindow = TimeSpan.FromMinutes(2);

    /// <summary>Bytes in a GiB, for memory priced per GiB-hour.</summary>
    public const double BytesPerGiB = 1073741824;

    public const double LatencyQuantile = 0.95;

    public static TimeSpan WindowFor(TimeSpan interval) => interval < MinimumWindow ? MinimumWindow : interval;

    /// <summary>The queries for one runbook metric under a mesh, evaluated every <paramref name="interval"/>.</summary>
    public static MetricQuery For(MetricSpec metric, MeshSpec mesh, TimeSpan interval)
    {
        ArgumentNullException.ThrowIfNull(metric);
        ArgumentNullException.ThrowIfNull(mesh);
        var window = WindowFor(interval);
        if (metric.Preset is null)
        {
            return new MetricQuery(metric.Query ?? throw new ArgumentException($"metric {metric.Name} has neither preset nor query", nameof(metric)),
                null, null, null, window, interval);
        }

        var names = MeshNames.For(mesh);
        var w = Duration(window);
        var all = names.Selector();
        var failed = names.Selector(names.ErrorMatcher);
        var requests = $"sum(increase({names.Requests}{all}[{w}]))";
        return metric.Preset switch
        {
            "p95-latency" => new MetricQuery(
                $"histogram_quantile({Number(LatencyQuantile)}, sum by (le) (rate({names.Histogram}{all}[{w}]))) / 1000",
                $"sum(increase({names.Histogram}{names.Selector("le=\"+Inf\"")}[{w}]))",
                null,
                $"sum by (le) (increase({names.Histogram}{all}[{w}]))",
                window,
                interval),
            "error-rate" => new MetricQuery(
                $"sum(rate({names.Requests}{failed}[{w}])) / sum(rate({names.Requests}{all}[{w}]))",
                requests,
                $"sum(increase({names.Requests}{failed}[{w}]))",
                null,
                window,
                interval),
            "request-rate" => new MetricQuery($"sum(rate({names.Requests}{all}[{w}]))", requests, null, null, window, interval),
            "cost-per-request" => new MetricQuery(CostPerRequest(metric, mesh, names, w), requests, null, null, window, interval),
            _ => throw new ArgumentException($"unknown preset '{metric.Preset}'", nameof(metric)),
        };
    }

    /// <summary>
    /// Currency per request: CPU cores used × cpuCoreHour plus GiB of working set × memoryGiBHour gives currency per hour;
    /// / 3600 per second; divided by requests per second, per request. cAdvisor's series of the workload's pods, without
    /// the pod-level aggregate (container="").
    /// </summary>
    private static string CostPerRequest(MetricSpec metric, MeshSpec mesh, MeshNames names, string w)
    {
        var pricing = metric.Pricing ?? throw new ArgumentException($"metric {metric.Name}: cost-per-request needs pricing", nameof(metric));
        var pods = $"{{namespace=\"{Escape(mesh.Namespace)}\",pod=~\"{Escape(mesh.Workload)}-.*\",container!=\"\"}}";
        return $"(sum(rate(container_cpu_usage_seconds_total{pods}[{w}])) * {Number(pricing.CpuCoreHour)}"
            + $" + sum(avg_over_time(container_memory_working_set_bytes{pods}[{w}])) / {Number(BytesPerGiB)} * {Number(pricing.MemoryGiBHour)})"
            + $" / 3600 / sum(rate({names.Requests}{names.Selector()}[{w}]))";
    }

    /// <summary>A PromQL duration: whole hours, minutes or seconds.</summary>
    public static string Duration(TimeSpan span) =>
        span.TotalHours == Math.Floor(span.TotalHours) ? $"{span.TotalHours:0}h"
        : span.TotalMinutes == Math.Floor(span.TotalMinutes) ? $"{span.TotalMinutes:0}m"
        : $"{Math.Ceiling(span.TotalSeconds):0}s";

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    internal static string Escape(string? value) =>
        (value ?? "").Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);

    /// <summary>The series and labels each mesh's proxies export for a workload.</summary>
    private sealed record MeshNames(string Requests, string Histogram, string ErrorMatcher, string BaseSelector)
    {
        public static MeshNames For(MeshSpec mesh)
        {
            var ns = Escape(mesh.Namespace);
            var workload = Escape(mesh.Workload);
            return mesh.Provider switch
            {
                MeshProvider.Istio => new MeshNames(
                    "istio_requests_total",
                    "istio_request_duration_milliseconds_bucket",
                    "response_code=~\"5..\"",
                    $"reporter=\"destination\",destination_workload=\"{workload}\",destination_workload_namespace=\"{ns}\""),
                MeshProvider.Linkerd => new MeshNames(
                    "response_total",
                    "response_latency_ms_bucket",
                    "classification=\"failure\"",
                    $"direction=\"inbound\",deployment=\"{workload}\",namespace=\"{ns}\""),
                _ => throw new ArgumentException("presets need mesh.provider istio or linkerd", nameof(mesh)),
            };
        }

        public string Selector(string? extra = null) => extra is null ? $"{{{BaseSelector}}}" : $"{{{BaseSelector},{extra}}}";
    }
}
