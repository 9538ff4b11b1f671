using System.Collections.Concurrent;
using System.Globalization;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Watch;
using RolloutGate.Prometheus;

namespace RolloutGate.Watch;

/// <summary>
/// Reads the watch's metrics from Prometheus at an explicit time. NaN (histogram_quantile without traffic, 0/0) and an
/// empty result are "no data"; an interval without a single request is no data too, so an idle service is reported blind
/// rather than healthy. A custom query must give one number: no series, several series, NaN or an infinity is no data
/// for its metric, with what the query gave instead in the note (never the first of several series, chosen silently).
/// A Prometheus that cannot be asked throws, and the interval is retried later; a query Prometheus rejects (bad PromQL,
/// an execution error), or answers with what no metric can use (a range vector, native histograms, more than
/// <c>RolloutGate:Prometheus:MaxAnswerBytes</c>: <see cref="PrometheusQueryException.Unusable"/>), is no data for its
/// metric alone, with the reason and the query in the note.
/// <para>
/// Preset metrics are read in batches: for all the metrics asked at one t, each distinct query grouped by workload
/// (<see cref="MetricQueryBatch"/>) is sent once and every watch picks its workload's series from the answer, so the
/// number of queries per t depends on the presets in use, not on the number of watches. Custom queries are sent as
/// written, each distinct one once.
/// </para>
/// </summary>
public sealed class PrometheusMetricSource(IPrometheusClient prometheus) : IMetricSource
{
    /// <summary>Queries in flight at once for one t.</summary>
    private const int Parallelism = 4;

    public async Task<IReadOnlyList<MetricObservation>> ObserveAsync(
        IReadOnlyList<WatchMetric> metrics, DateTimeOffset at, CancellationToken cancellationToken)
    {
        var answers = new ConcurrentDictionary<string, Answer>(StringComparer.Ordinal);
        var queries = metrics.SelectMany(QueriesOf).Distinct(StringComparer.Ordinal).ToList();
        await Parallel.ForEachAsync(
            queries,
            new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken },
            async (query, token) => answers[query] = await AskAsync(query, at, token));
        return [.. metrics.Select(metric => Observe(metric, at, answers))];
    }

    /// <summary>
    /// The baseline; a query Prometheus rejects gives no baseline samples (its evaluations say why), so one bad custom
    /// query cannot hold back the watch of the other metrics.
    /// </summary>
    public async Task<IReadOnlyList<Observation>> BaselineAsync(
        WatchMetric metric, DateTimeOffset from, DateTimeOffset to, TimeSpan step, CancellationToken cancellationToken)
    {
        try
        {
            return await ReadBaselineAsync(metric, from, to, step, cancellationToken);
        }
        catch (PrometheusQueryException rejected) when (rejected.IsPermanent)
        {
            return [];
        }
    }

    private async Task<IReadOnlyList<Observation>> ReadBaselineAsync(
        WatchMetric metric, DateTimeOffset from, DateTimeOffset to, TimeSpan step, CancellationToken cancellationToken)
    {
        var query = metric.Query;
        var values = Points(await prometheus.QueryRangeAsync(query.Value, from, to, step, cancellationToken));
        var requests = query.Requests is null ? null : Points(await prometheus.QueryRangeAsync(query.Requests, from, to, step, cancellationToken));
        var errors = query.Errors is null ? null : Points(await prometheus.QueryRangeAsync(query.Errors, from, to, step, cancellationToken));
        var times = values.Keys.Union(requests?.Keys ?? Enumerable.Empty<DateTimeOffset>()).Order().ToList();
        return [.. times.Select(t => Observe(metric, t, values.GetValueOrDefault(t),
            requests is null ? null : query.PerInterval(requests.GetValueOrDefault(t) ?? 0),
            errors is null ? null : query.PerInterval(errors.GetValueOrDefault(t) ?? 0)))];
    }

    /// <summary>The observation the detector gets; no request at all in the interval is no data.</summary>
    internal static Observation Observe(WatchMetric metric, DateTimeOffset at, double? value, long? requests, long? errors)
    {
        if (metric.Query.Requests is not null && requests is null or 0 && metric.Kind != MetricKind.RequestRate)
        {
            return new Observation(at, null);
        }

        return metric.Kind == MetricKind.ErrorRate
            ? new Observation(at, requests > 0 ? (double)(errors ?? 0) / requests.Value : null, requests, errors ?? 0)
            : new Observation(at, value, requests);
    }

    /// <summary>The PromQL a metric needs at t: its batch's grouped queries, or its custom query.</summary>
    private static IEnumerable<string> QueriesOf(WatchMetric metric)
    {
        if (metric.Query.Batch is not { } batch)
        {
            return [metric.Query.Value];
        }

        string?[] queries = [batch.Value, batch.Requests, batch.Errors, batch.Buckets, batch.Cost?.CpuByPod, batch.Cost?.MemoryByPod, batch.Cost?.RequestRate];
        return queries.OfType<string>();
    }

    private async Task<Answer> AskAsync(string query, DateTimeOffset at, CancellationToken cancellationToken)
    {
        try
        {
            return new Answer(await prometheus.QueryAsync(query, at, cancellationToken), null);
        }
        catch (PrometheusQueryException rejected) when (rejected.IsPermanent)
        {
            // The metric is reported with the rejection rather than retried for ever.
            return new Answer([], rejected);
        }
    }

    private static MetricObservation Observe(WatchMetric metric, DateTimeOffset at, IReadOnlyDictionary<string, Answer> answers)
    {
        var rejected = QueriesOf(metric).Select(q => answers[q].Rejected).FirstOrDefault(r => r is not null);
        if (rejected is not null)
        {
            return new MetricObservation(new Observation(at, null), $"No data because {rejected.Message}");
        }

        var query = metric.Query;
        if (query.Batch is not { } batch)
        {
            var (one, instead) = OneNumber(answers[query.Value].Samples);
            return new MetricObservation(Observe(metric, at, one, null, null),
                instead is null ? null : $"No data because the query '{query.Value}' returned {instead}.");
        }

        var key = Answer.KeyOf(batch.Key);
        double? Grouped(string? promql) => promql is null ? null : answers[promql].ByGroup(batch.GroupLabels).GetValueOrDefault(key);
        long? Count(string? promql) => Grouped(promql) is { } count ? query.PerInterval(count) : null;

        var value = batch.Cost is { } cost ? CostPerRequest(cost, answers, Grouped(cost.RequestRate)) : Grouped(batch.Value);
        var observation = Observe(metric, at, value, Count(batch.Requests), Count(batch.Errors));
        var note = observation.Value is not null && batch.Buckets is not null
            ? BeyondLastBucket(answers[batch.Buckets].Buckets(batch.GroupLabels).GetValueOrDefault(key) ?? [])
            : null;
        return new MetricObservation(observation, note);
    }

    /// <summary>What the single-workload cost query gives: null unless CPU, memory and requests all have data.</summary>
    private static double? CostPerRequest(CostQueries cost, IReadOnlyDictionary<string, Answer> answers, double? requestsPerSecond)
    {
        var cpu = answers[cost.CpuByPod].ByWorkloadPods().GetValueOrDefault(Answer.KeyOf([cost.Namespace, cost.Workload]));
        var memory = answers[cost.MemoryByPod].ByWorkloadPods().GetValueOrDefault(Answer.KeyOf([cost.Namespace, cost.Workload]));
        return cpu is { } cores && memory is { } bytes && requestsPerSecond is { } rate ? cost.PerRequest(cores, bytes, rate) : null;
    }

    /// <summary>The one finite number a query gave, or what it gave instead, in words.</summary>
    private static (double? Value, string? Instead) OneNumber(IReadOnlyList<PrometheusSample> samples) => samples switch
    {
        [] => (null, "no series"),
        [{ Value: var value }] when double.IsFinite(value) => (value, null),
        [{ Value: double.NaN }] => (null, "NaN (0/0, or histogram_quantile without traffic)"),
        [{ Value: var infinite }] => (null, $"{PrometheusFormat.FormatValue(infinite)} (a division by zero)"),
        _ => (null, $"{samples.Count} series ({string.Join(", ", samples.Take(3).Select(s => PrometheusFormat.Series(s.Labels)))}{(samples.Count > 3 ? ", ..." : "")}) where one number is needed: aggregate them, with sum(...) for example"),
    };

    /// <summary>
    /// The value at each time: no data where it is not finite, and, as at t, where several series have a point at that
    /// time (not the first series' value).
    /// </summary>
    private static Dictionary<DateTimeOffset, double?> Points(IReadOnlyList<PrometheusSeries> series) =>
        series.SelectMany(s => s.Points)
            .GroupBy(p => p.Timestamp)
            .ToDictionary(g => g.Key, g => g.Count() == 1 && double.IsFinite(g.First().Value) ? g.First().Value : (double?)null);

    private static string? BeyondLastBucket(IReadOnlyList<HistogramBucket> buckets) =>
        HistogramTail.QuantileBeyondLastFiniteBucket(buckets, MetricQueries.LatencyQuantile) is { } le
            ? string.Create(CultureInfo.InvariantCulture,
                $"The 95th percentile lies beyond the histogram's last finite bucket (le=\"{PrometheusFormat.FormatValue(le)}\"): the true value is at least {le / 1000:0.###} s.")
            : null;

    /// <summary>One query's answer at t, indexed on first use by the labels that name a workload.</summary>
    private sealed class Answer(IReadOnlyList<PrometheusSample> samples, PrometheusQueryException? rejected)
    {
        private readonly Lock _index = new();
        private Dictionary<string, double?>? _byGroup;
        private Dictionary<string, List<HistogramBucket>>? _buckets;
        private Dictionary<string, double>? _byWorkloadPods;

        public IReadOnlyList<PrometheusSample> Samples => samples;

        public PrometheusQueryException? Rejected => rejected;

        public static string KeyOf(IEnumerable<string> values) => string.Join('\u001f', values);

        /// <summary>Each series' value by its workload (the group labels' values); NaN and infinities are no data.</summary>
        public Dictionary<string, double?> ByGroup(IReadOnlyList<string> labels)
        {
            lock (_index)
            {
                return _byGroup ??= samples
                    .GroupBy(s => KeyOf(labels.Select(l => s.Labels.GetValueOrDefault(l) ?? "")), StringComparer.Ordinal)
                    .ToDictionary(g => g.Key, g => double.IsFinite(g.First().Value) ? g.First().Value : (double?)null, StringComparer.Ordinal);
            }
        }

        /// <summary>
        /// The cumulative histogram of each workload, by <c>le</c>. A series whose <c>le</c> is not a number (relabelled,
        /// or written with a decimal comma) is passed over, as histogram_quantile passes over it with a PromQL warning: the
        /// answer is shared by every watch due at t, and one such series anywhere in the mesh must not fail them all.
        /// </summary>
        public Dictionary<string, List<HistogramBucket>> Buckets(IReadOnlyList<string> labels)
        {
            lock (_index)
            {
                return _buckets ??= samples
                    .Select(s => (Sample: s, Bound: s.Labels.TryGetValue("le", out var le) && PrometheusFormat.TryParseValue(le, out var bound) ? bound : (double?)null))
                    .Where(b => b.Bound is not null)
                    .GroupBy(b => KeyOf(labels.Select(l => b.Sample.Labels.GetValueOrDefault(l) ?? "")), StringComparer.Ordinal)
                    .ToDictionary(
                        g => g.Key,
                        g => g.Select(b => new HistogramBucket(b.Bound!.Value, b.Sample.Value)).ToList(),
                        StringComparer.Ordinal);
            }
        }

        /// <summary>
        /// Per-pod series (labels namespace and pod) summed for every workload a pod may belong to
        /// (<see cref="MetricQueries.IsPodOf"/>): a pod named <c>checkout-7d4f9b6c5-x2x4z</c> counts for <c>checkout</c>
        /// (a Deployment's pod) and for <c>checkout-7d4f9b6c5</c> (a DaemonSet's), what the single-workload query's pod
        /// regex selects for each. Keyed by namespace and workload.
        /// </summary>
        public Dictionary<string, double> ByWorkloadPods()
        {
            lock (_index)
            {
                if (_byWorkloadPods is not null)
                {
                    return _byWorkloadPods;
                }

                var sums = new Dictionary<string, double>(StringComparer.Ordinal);
                foreach (var sample in samples)
                {
                    var ns = sample.Labels.GetValueOrDefault("namespace") ?? "";
                    var pod = sample.Labels.GetValueOrDefault("pod") ?? "";
                    for (var dash = pod.IndexOf('-', StringComparison.Ordinal); dash > 0; dash = pod.IndexOf('-', dash + 1))
                    {
                        // The pod of the workload named by what stands before this dash, if what follows is Kubernetes' suffix.
                        if (MetricQueries.IsPodNameSuffix(pod[(dash + 1)..]))
                        {
                            var key = KeyOf([ns, pod[..dash]]);
                            sums[key] = sums.GetValueOrDefault(key) + sample.Value;
                        }
                    }
                }

                return _byWorkloadPods = sums;
            }
        }
    }
}
