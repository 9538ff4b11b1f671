using System.Globalization;
using System.Text;

namespace RolloutGate.Tests.Watch;

/// <summary>How a synthetic workload behaves before and after the deploy.</summary>
/// <param name="RequestsPerMinute">Requests per minute (0 = no traffic).</param>
/// <param name="ErrorRatio">Share of failed requests.</param>
/// <param name="LatencyShares">Cumulative share of requests at or below each of <see cref="MeshTraffic.BucketBounds"/>.</param>
/// <param name="CpuCores">CPU cores used by the workload's pods.</param>
public sealed record TrafficShape(double RequestsPerMinute, double ErrorRatio, double[] LatencyShares, double CpuCores)
{
    /// <summary>p95 at 225 ms: 100 + 150 × (0.95 − 0.85) / (0.97 − 0.85).</summary>
    public static readonly double[] HealthyLatency = [0.30, 0.60, 0.85, 0.97, 0.995, 1.0, 1.0];

    /// <summary>Only 92% within the last finite bucket (2500 ms): p95 lies in +Inf.</summary>
    public static readonly double[] SlowLatency = [0.02, 0.05, 0.20, 0.45, 0.70, 0.85, 0.92];

    public static TrafficShape Healthy { get; } = new(1200, 0.002, HealthyLatency, 0.5);
}

/// <summary>A workload of the test data: its mesh, names and behaviour before and after the deploy.</summary>
/// <param name="Pod">Its pod's name; by default a Deployment's, <c>{Name}-7d9f8b6c5-x2x4z</c>.</param>
public sealed record Workload(string Mesh, string Namespace, string Name, TrafficShape Before, TrafficShape After, string? Pod = null)
{
    public string PodName => Pod ?? $"{Name}-7d9f8b6c5-x2x4z";
}

/// <summary>
/// Writes Istio- and Linkerd-shaped series (OpenMetrics, one sample a minute) for <c>promtool tsdb create-blocks-from
/// openmetrics</c>: request counters by response code or classification, cumulative latency histograms with le labels,
/// and cAdvisor CPU and memory of the workload's pod. Counters are monotonic across the deploy.
/// </summary>
public static class MeshTraffic
{
    public static readonly double[] BucketBounds = [25, 50, 100, 250, 500, 1000, 2500];

    public const double MemoryBytes = 512 * 1024 * 1024;

    /// <summary>The pause container's (<c>container="POD"</c>) CPU cores and working set, with <c>podCgroups</c>.</summary>
    public const double PauseCores = 0.001;

    public const double PauseMemoryBytes = 1024 * 1024;

    /// <param name="podCgroups">
    /// Also what a kubelet's cAdvisor exports beside each container: the pause container (<c>container="POD"</c>) and the
    /// pod's own cgroup, the total of its containers (<c>container=""</c>).
    /// </param>
    public static string OpenMetrics(IReadOnlyList<Workload> workloads, DateTimeOffset from, DateTimeOffset to, DateTimeOffset deployedAt, bool podCgroups = false)
    {
        var minutes = (int)((to - from).TotalMinutes);
        var families = new SortedDictionary<string, StringBuilder>(StringComparer.Ordinal);
        void Add(string family, string labels, double value, DateTimeOffset at)
        {
            if (!families.TryGetValue(family, out var text))
            {
                families[family] = text = new StringBuilder();
            }

            text.Append(family).Append('{').Append(labels).Append("} ")
                .Append(value.ToString("R", CultureInfo.InvariantCulture)).Append(' ')
                .Append(at.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        foreach (var workload in workloads)
        {
            double requests = 0, errors = 0, cpu = 0;
            var buckets = new double[BucketBounds.Length + 1];
            var pod = $"namespace=\"{workload.Namespace}\",pod=\"{workload.PodName}\"";
            for (var i = 0; i <= minutes; i++)
            {
                var at = from.AddMinutes(i);
                var shape = at < deployedAt ? workload.Before : workload.After;
                if (i > 0)
                {
                    requests += shape.RequestsPerMinute;
                    errors += shape.RequestsPerMinute * shape.ErrorRatio;
                    cpu += shape.CpuCores * 60;
                    for (var b = 0; b < BucketBounds.Length; b++)
                    {
                        buckets[b] += shape.RequestsPerMinute * shape.LatencyShares[b];
                    }

                    buckets[^1] += shape.RequestsPerMinute;
                }

                // Whole numbers, as a counter of requests is; floor keeps each one monotonic.
                var (ok, failed) = (Math.Floor(requests) - Math.Floor(errors), Math.Floor(errors));
                if (workload.Mesh == "istio")
                {
                    var selector = $"reporter=\"destination\",destination_workload=\"{workload.Name}\",destination_workload_namespace=\"{workload.Namespace}\"";
                    Add("istio_requests_total", $"{selector},response_code=\"200\"", ok, at);
                    Add("istio_requests_total", $"{selector},response_code=\"503\"", failed, at);
                    AddHistogram("istio_request_duration_milliseconds_bucket", selector, buckets, at, Add);
                }
                else
                {
                    var selector = $"direction=\"inbound\",deployment=\"{workload.Name}\",namespace=\"{workload.Namespace}\"";
                    Add("response_total", $"{selector},classification=\"success\"", ok, at);
                    Add("response_total", $"{selector},classification=\"failure\"", failed, at);
                    AddHistogram("response_latency_ms_bucket", selector, buckets, at, Add);
                }

                Add("container_cpu_usage_seconds_total", $"{pod},container=\"app\"", cpu, at);
                Add("container_memory_working_set_bytes", $"{pod},container=\"app\"", MemoryBytes, at);
                if (podCgroups)
                {
                    var pause = PauseCores * 60 * i;
                    Add("container_cpu_usage_seconds_total", $"{pod},container=\"POD\"", pause, at);
                    Add("container_memory_working_set_bytes", $"{pod},container=\"POD\"", PauseMemoryBytes, at);
                    Add("container_cpu_usage_seconds_total", $"{pod},container=\"\"", cpu + pause, at);
                    Add("container_memory_working_set_bytes", $"{pod},container=\"\"", MemoryBytes + PauseMemoryBytes, at);
                }
            }
        }

        var file = new StringBuilder();
        foreach (var (family, samples) in families)
        {
            file.Append("# TYPE ").Append(family).Append(" gauge\n").Append(samples);
        }

        return file.Append("# EOF\n").ToString();
    }

    private static void AddHistogram(string family, string selector, double[] buckets, DateTimeOffset at, Action<string, string, double, DateTimeOffset> add)
    {
        for (var b = 0; b < BucketBounds.Length; b++)
        {
            add(family, $"{selector},le=\"{BucketBounds[b].ToString(CultureInfo.InvariantCulture)}\"", Math.Floor(buckets[b]), at);
        }

        add(family, $"{selector},le=\"+Inf\"", Math.Floor(buckets[^1]), at);
    }
}
