using System.Globalization;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Watch;
using RolloutGate.Prometheus;

namespace RolloutGate.Watch;

/// <summary>
/// Reads the watch's metrics from Prometheus at an explicit time. NaN (histogram_quantile without traffic, 0/0) and an
/// empty result are "no data"; an interval without a single request is no data too, so an idle service is reported blind
/// rather than healthy. A Prometheus that cannot be asked throws, and the interval is retried later.
/// </summary>
public sealed class PrometheusMetricSource(IPrometheusClient prometheus) : IMetricSource
{
    public async Task<MetricObservation> ObserveAsync(WatchMetric metric, DateTimeOffset at, CancellationToken cancellationToken)
    {
        var query = metric.Query;
        var value = Single(await prometheus.QueryAsync(query.Value, at, cancellationToken));
        var requests = await CountAsync(query, query.Requests, at, cancellationToken);
        var errors = await CountAsync(query, query.Errors, at, cancellationToken);
        var observation = Observe(metric, at, value, requests, errors);
        string? note = null;
        if (observation.Value is not null && query.Buckets is not null)
        {
            var buckets = await prometheus.QueryAsync(query.Buckets, at, cancellationToken);
            note = BeyondLastBucket(buckets);
        }

        return new MetricObservation(observation, note);
    }

    public async Task<IReadOnlyList<Observation>> BaselineAsync(
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

    /// <summary>A count over the query's window, scaled to one interval; null when the query gave nothing.</summary>
    private async Task<long?> CountAsync(MetricQuery query, string? promql, DateTimeOffset at, CancellationToken cancellationToken) =>
        promql is not null && Single(await prometheus.QueryAsync(promql, at, cancellationToken)) is { } count
            ? query.PerInterval(count)
            : null;

    private static double? Single(IReadOnlyList<PrometheusSample> samples) =>
        samples.Count > 0 && double.IsFinite(samples[0].Value) ? samples[0].Value : null;

    private static Dictionary<DateTimeOffset, double?> Points(IReadOnlyList<PrometheusSeries> series) =>
        series.Count == 0 ? [] : series[0].Points.ToDictionary(p => p.Timestamp, p => double.IsFinite(p.Value) ? p.Value : (double?)null);

    private static string? BeyondLastBucket(IReadOnlyList<PrometheusSample> samples)
    {
        var buckets = samples
            .Where(s => s.Labels.TryGetValue("le", out _))
            .Select(s => new HistogramBucket(PrometheusFormat.ParseValue(s.Labels["le"]), s.Value))
            .ToList();
        return HistogramTail.QuantileBeyondLastFiniteBucket(buckets, MetricQueries.LatencyQuantile) is { } le
            ? string.Create(CultureInfo.InvariantCulture,
                $"The 95th percentile lies beyond the histogram's last finite bucket (le=\"{PrometheusFormat.FormatValue(le)}\"): the true value is at least {le / 1000:0.###} s.")
            : null;
    }
}
