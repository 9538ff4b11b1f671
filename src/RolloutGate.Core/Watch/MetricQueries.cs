using System.Globalization;
using System.Text.RegularExpressions;
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
/// <param name="Batch">The same metric for every workload at once (presets); null for a custom query.</param>
public sealed record MetricQuery(
    string Value, string? Requests, string? Errors, string? Buckets, TimeSpan Window, TimeSpan Interval, MetricQueryBatch? Batch = null)
{
    /// <summary>A count over the window, scaled to one interval (the window is longer when the interval is short).</summary>
    public long PerInterval(double countInWindow) => (long)Math.Round(countInWindow * (Interval / Window));
}

/// <summary>
/// A preset metric's queries for every workload of the mesh at once: each grouped by the labels that name a workload
/// (<see cref="GroupLabels"/>), so that one query at time t answers for every watch due at t (the watch evaluates all its
/// watches at the same times, see <see cref="WatchSchedule"/>) instead of one query per watch. This workload's value is
/// the series whose <see cref="GroupLabels"/> have the values <see cref="Key"/>; per group the arithmetic is exactly that of
/// the single-workload <see cref="MetricQuery"/>, which stays the evidence shown with the evaluation.
/// </summary>
/// <param name="Value">
/// The metric per workload; null for cost per request, which is combined from <see cref="Cost"/>, and for error rate,
/// whose value is errors / requests from the counts (the single-workload ratio stays the evidence).
/// </param>
public sealed record MetricQueryBatch(
    IReadOnlyList<string> GroupLabels, IReadOnlyList<string> Key, string? Value, string? Requests, string? Errors, string? Buckets, CostQueries? Cost = null);

/// <summary>
/// Cost per request for every workload at once. cAdvisor names pods, not workloads, so PromQL cannot group its series by
/// workload; CPU and memory are therefore read per pod and summed by the caller over the workload's pods
/// (<see cref="MetricQueries.IsPodOf"/>, what the single-workload query's pod regex selects), then priced and divided by
/// the request rate exactly as the single-workload query does.
/// </summary>
public sealed record CostQueries(
    string CpuByPod, string MemoryByPod, string RequestRate, string Namespace, string Workload, double CpuCoreHour, double MemoryGiBHour)
{
    /// <summary>Currency per request from the workload's CPU cores, working-set bytes and requests per second.</summary>
    public double? PerRequest(double cpuCores, double memoryBytes, double requestsPerSecond)
    {
        var perRequest = (cpuCores * CpuCoreHour + memoryBytes / MetricQueries.BytesPerGiB * MemoryGiBHour) / 3600 / requestsPerSecond;
        return double.IsFinite(perRequest) ? perRequest : null;
    }
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

    /// <summary>
    /// What follows <c>{workload}-</c> in the name of a pod of that workload, as Kubernetes names them: a Deployment's (or
    /// Argo Rollout's) pod template hash and a 5-character suffix, a DaemonSet's suffix alone, both in the alphabet of
    /// Kubernetes' generated names (<c>bcdfghjklmnpqrstvwxz2456789</c>), or a StatefulSet's ordinal. So the pods of
    /// <c>checkout-worker</c> (<c>checkout-worker-6b8c9d5f4-q2w8z</c>) or <c>checkout-db</c> (<c>checkout-db-0</c>) are not
    /// taken for pods of <c>checkout</c>, as <c>checkout-.*</c> took them.
    /// </summary>
    public const string PodNameSuffix = "(?:[bcdfghjklmnpqrstvwxz2456789]+-)?[bcdfghjklmnpqrstvwxz2456789]{5}|[0-9]+";

    private static readonly Regex PodNameSuffixPattern = new($"^(?:{PodNameSuffix})$", RegexOptions.CultureInvariant);

    /// <summary>Whether <paramref name="pod"/> is a pod of <paramref name="workload"/> (see <see cref="PodNameSuffix"/>).</summary>
    public static bool IsPodOf(string pod, string workload) =>
        pod.Length > workload.Length + 1 && pod.StartsWith(workload, StringComparison.Ordinal) && pod[workload.Length] == '-'
        && IsPodNameSuffix(pod[(workload.Length + 1)..]);

    /// <summary>Whether <paramref name="suffix"/> is what Kubernetes puts after <c>{workload}-</c> in a pod's name (<see cref="PodNameSuffix"/>).</summary>
    public static bool IsPodNameSuffix(string suffix) => PodNameSuffixPattern.IsMatch(suffix);

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
        var batch = names.Batch();
        var batchRequests = $"sum by ({batch.By}) (increase({names.Requests}{batch.All}[{w}]))";
        return metric.Preset switch
        {
            "p95-latency" => new MetricQuery(
                $"histogram_quantile({Number(LatencyQuantile)}, sum by (le) (rate({names.Histogram}{all}[{w}]))) / 1000",
                $"sum(increase({names.Histogram}{names.Selector("le=\"+Inf\"")}[{w}]))",
                null,
                $"sum by (le) (increase({names.Histogram}{all}[{w}]))",
                window,
                interval,
                batch.With(
                    $"histogram_quantile({Number(LatencyQuantile)}, sum by ({batch.By}, le) (rate({names.Histogram}{batch.All}[{w}]))) / 1000",
                    $"sum by ({batch.By}) (increase({names.Histogram}{names.BatchSelector("le=\"+Inf\"")}[{w}]))",
                    null,
                    $"sum by ({batch.By}, le) (increase({names.Histogram}{batch.All}[{w}]))")),
            "error-rate" => new MetricQuery(
                $"sum(rate({names.Requests}{failed}[{w}])) / sum(rate({names.Requests}{all}[{w}]))",
                requests,
                $"sum(increase({names.Requests}{failed}[{w}]))",
                null,
                window,
                interval,
                batch.With(
                    null,
                    batchRequests,
                    $"sum by ({batch.By}) (increase({names.Requests}{batch.Failed}[{w}]))",
                    null)),
            "request-rate" => new MetricQuery($"sum(rate({names.Requests}{all}[{w}]))", requests, null, null, window, interval,
                batch.With($"sum by ({batch.By}) (rate({names.Requests}{batch.All}[{w}]))", batchRequests, null, null)),
            "cost-per-request" => new MetricQuery(CostPerRequest(metric, mesh, names, w), requests, null, null, window, interval,
                batch.With(null, batchRequests, null, null) with { Cost = CostPerRequestBatch(metric, mesh, names, w) }),
            _ => throw new ArgumentException($"unknown preset '{metric.Preset}'", nameof(metric)),
        };
    }

    /// <summary>
    /// Currency per request: CPU cores used × cpuCoreHour plus GiB of working set × memoryGiBHour gives currency per hour;
    /// / 3600 per second; divided by requests per second, per request. cAdvisor's series of the workload's pods
    /// (<see cref="PodNameSuffix"/>), of their containers only (<see cref="Containers"/>).
    /// </summary>
    private static string CostPerRequest(MetricSpec metric, MeshSpec mesh, MeshNames names, string w)
    {
        var pricing = metric.Pricing ?? throw new ArgumentException($"metric {metric.Name}: cost-per-request needs pricing", nameof(metric));
        var pods = $"{{namespace=\"{Escape(mesh.Namespace)}\",pod=~\"{Escape(RegexLiteral(mesh.Workload))}-(?:{PodNameSuffix})\",{Containers}}}";
        return $"(sum(rate(container_cpu_usage_seconds_total{pods}[{w}])) * {Number(pricing.CpuCoreHour)}"
            + $" + sum(avg_over_time(container_memory_working_set_bytes{pods}[{w}])) / {Number(BytesPerGiB)} * {Number(pricing.MemoryGiBHour)})"
            + $" / 3600 / sum(rate({names.Requests}{names.Selector()}[{w}]))";
    }

    /// <summary>The parts of <see cref="CostPerRequest"/> for every workload at once (see <see cref="CostQueries"/>).</summary>
    private static CostQueries CostPerRequestBatch(MetricSpec metric, MeshSpec mesh, MeshNames names, string w)
    {
        var pricing = metric.Pricing!;
        const string containers = $"{{{Containers}}}";
        var batch = names.Batch();
        return new CostQueries(
            $"sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{containers}[{w}]))",
            $"sum by (namespace, pod) (avg_over_time(container_memory_working_set_bytes{containers}[{w}]))",
            $"sum by ({batch.By}) (rate({names.Requests}{batch.All}[{w}]))",
            mesh.Namespace ?? "",
            mesh.Workload ?? "",
            pricing.CpuCoreHour,
            pricing.MemoryGiBHour);
    }

    /// <summary>
    /// cAdvisor's series of a pod's containers: not the pod's own cgroup (<c>container=""</c>), the total of its
    /// containers, which would count them twice, nor the pause container (<c>container="POD"</c>, as Docker-based
    /// runtimes name it).
    /// </summary>
    private const string Containers = "container!=\"\",container!=\"POD\"";

    /// <summary>A workload name matched literally inside an RE2 regex (a Kubernetes name may hold a '.').</summary>
    internal static string RegexLiteral(string? value) =>
        Regex.Replace(value ?? "", @"[\\.+*?()|\[\]{}^$]", @"\$0");

    /// <summary>A PromQL duration: whole hours, minutes or seconds.</summary>
    public static string Duration(TimeSpan span) =>
        span.TotalHours == Math.Floor(span.TotalHours) ? $"{span.TotalHours:0}h"
        : span.TotalMinutes == Math.Floor(span.TotalMinutes) ? $"{span.TotalMinutes:0}m"
        : $"{Math.Ceiling(span.TotalSeconds):0}s";

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    internal static string Escape(string? value) =>
        (value ?? "").Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);

    /// <summary>The series and labels each mesh's proxies export for a workload.</summary>
    /// <param name="Fixed">The matchers every query of the mesh has (which side reports), without the workload's.</param>
    /// <param name="GroupLabels">The labels naming a workload: its namespace, then its name.</param>
    private sealed record MeshNames(string Requests, string Histogram, string ErrorMatcher, string Fixed, string[] GroupLabels, string Namespace, string Workload)
    {
        public static MeshNames For(MeshSpec mesh)
        {
            var ns = mesh.Namespace ?? "";
            var workload = mesh.Workload ?? "";
            return mesh.Provider switch
            {
                MeshProvider.Istio => new MeshNames(
                    "istio_requests_total",
                    "istio_request_duration_milliseconds_bucket",
                    "response_code=~\"5..\"",
                    "reporter=\"destination\"",
                    ["destination_workload_namespace", "destination_workload"],
                    ns,
                    workload),
                MeshProvider.Linkerd => new MeshNames(
                    "response_total",
                    "response_latency_ms_bucket",
                    "classification=\"failure\"",
                    "direction=\"inbound\"",
                    ["namespace", "deployment"],
                    ns,
                    workload),
                _ => throw new ArgumentException("presets need mesh.provider istio or linkerd", nameof(mesh)),
            };
        }

        private string BaseSelector =>
            $"{Fixed},{GroupLabels[1]}=\"{Escape(Workload)}\",{GroupLabels[0]}=\"{Escape(Namespace)}\"";

        public string Selector(string? extra = null) => extra is null ? $"{{{BaseSelector}}}" : $"{{{BaseSelector},{extra}}}";

        /// <summary>The selector of every workload's series (no workload matchers).</summary>
        public string BatchSelector(string? extra = null) => extra is null ? $"{{{Fixed}}}" : $"{{{Fixed},{extra}}}";

        public BatchParts Batch() => new(string.Join(", ", GroupLabels), BatchSelector(), BatchSelector(ErrorMatcher), GroupLabels, [Namespace, Workload]);
    }

    /// <summary>What the batched queries of one mesh share: the grouping, the selectors and this workload's key.</summary>
    private sealed record BatchParts(string By, string All, string Failed, string[] GroupLabels, string[] Key)
    {
        public MetricQueryBatch With(string? value, string? requests, string? errors, string? buckets) =>
            new(GroupLabels, Key, value, requests, errors, buckets);
    }
}
