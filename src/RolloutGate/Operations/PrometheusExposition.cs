using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace RolloutGate.Operations;

/// <summary>
/// Renders the <see cref="RolloutGateMetrics"/> meter in the Prometheus text format (version 0.0.4), written by
/// hand because no Prometheus client library is available to this project. Counters become <c>_total</c> series,
/// histograms get cumulative <c>_bucket</c>, <c>_sum</c> and <c>_count</c>. Checked with <c>promtool check metrics</c> in the tests.
/// </summary>
public sealed class PrometheusExposition : IDisposable
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>
    /// Latency buckets in seconds, from a fast in-memory answer to a slow pre-deploy gate: for every histogram that does
    /// not advise its own (<see cref="InstrumentAdvice{T}.HistogramBucketBoundaries"/>).
    /// </summary>
    public static readonly double[] Buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private readonly MeterListener listener = new();
    private readonly Lock gate = new();
    private readonly Dictionary<string, Family> families = new(StringComparer.Ordinal);

    public PrometheusExposition(RolloutGateMetrics metrics)
    {
        // This service's own meter instance only: another host in the same process (tests) has its own.
        var meter = metrics.Meter;
        listener.InstrumentPublished = (instrument, meterListener) =>
        {
            if (!ReferenceEquals(instrument.Meter, meter))
            {
                return;
            }

            lock (gate)
            {
                var buckets = instrument is Histogram<double> histogram ? histogram.Advice?.HistogramBucketBoundaries ?? Buckets : null;
                families.TryAdd(instrument.Name, new Family(instrument.Name, instrument.Description ?? instrument.Name, buckets is null ? null : [.. buckets]));
            }

            meterListener.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
        listener.Start();
    }

    /// <summary>Writes every series, then the gauges the caller computed at scrape time (such as deployments by state).</summary>
    public string Render(IEnumerable<GaugeFamily> gauges)
    {
        var text = new StringBuilder();
        lock (gate)
        {
            foreach (var family in families.Values.OrderBy(f => f.Name, StringComparer.Ordinal))
            {
                family.Write(text);
            }
        }

        foreach (var gauge in gauges)
        {
            text.Append("# HELP ").Append(gauge.Name).Append(' ').Append(EscapeHelp(gauge.Help)).Append('\n');
            text.Append("# TYPE ").Append(gauge.Name).Append(" gauge\n");
            foreach (var (labels, value) in gauge.Series)
            {
                text.Append(gauge.Name).Append(Labels(labels)).Append(' ').Append(Number(value)).Append('\n');
            }
        }

        return text.ToString();
    }

    public void Dispose() => listener.Dispose();

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var labels = new List<KeyValuePair<string, string>>(tags.Length);
        foreach (var tag in tags)
        {
            labels.Add(new(tag.Key, Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? ""));
        }

        labels.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        lock (gate)
        {
            if (families.TryGetValue(instrument.Name, out var family))
            {
                family.Add(labels, value);
            }
        }
    }

    internal static string Labels(IReadOnlyList<KeyValuePair<string, string>> labels)
    {
        if (labels.Count == 0)
        {
            return "";
        }

        var text = new StringBuilder("{");
        for (var i = 0; i < labels.Count; i++)
        {
            if (i > 0)
            {
                text.Append(',');
            }

            text.Append(labels[i].Key).Append("=\"")
                .Append(labels[i].Value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal))
                .Append('"');
        }

        return text.Append('}').ToString();
    }

    internal static string Number(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" : value.ToString("R", CultureInfo.InvariantCulture);

    private static string EscapeHelp(string help) => help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>One instrument's series; <paramref name="buckets"/> is null for a counter.</summary>
    private sealed class Family(string name, string help, double[]? buckets)
    {
        private readonly Dictionary<string, Series> series = new(StringComparer.Ordinal);

        public string Name => name;

        public void Add(List<KeyValuePair<string, string>> labels, double value)
        {
            var key = Labels(labels);
            if (!series.TryGetValue(key, out var entry))
            {
                entry = new Series(labels, buckets is null ? null : new long[buckets.Length]);
                series[key] = entry;
            }

            entry.Count++;
            entry.Sum += value;
            if (entry.BucketCounts is { } counts)
            {
                for (var i = 0; i < counts.Length; i++)
                {
                    if (value <= buckets![i])
                    {
                        counts[i]++;
                    }
                }
            }
        }

        public void Write(StringBuilder text)
        {
            var exposed = buckets is null ? name + "_total" : name;
            text.Append("# HELP ").Append(exposed).Append(' ').Append(EscapeHelp(help)).Append('\n');
            text.Append("# TYPE ").Append(exposed).Append(buckets is null ? " counter\n" : " histogram\n");
            foreach (var entry in series.Values)
            {
                if (entry.BucketCounts is not { } counts)
                {
                    text.Append(exposed).Append(Labels(entry.Labels)).Append(' ').Append(Number(entry.Sum)).Append('\n');
                    continue;
                }

                for (var i = 0; i <= counts.Length; i++)
                {
                    var le = i < counts.Length ? Number(buckets![i]) : "+Inf";
                    var labels = entry.Labels.Append(new("le", le)).ToList();
                    text.Append(name).Append("_bucket").Append(Labels(labels)).Append(' ')
                        .Append(i < counts.Length ? counts[i] : entry.Count).Append('\n');
                }

                text.Append(name).Append("_sum").Append(Labels(entry.Labels)).Append(' ').Append(Number(entry.Sum)).Append('\n');
                text.Append(name).Append("_count").Append(Labels(entry.Labels)).Append(' ').Append(entry.Count).Append('\n');
            }
        }
    }

    private sealed class Series(List<KeyValuePair<string, string>> labels, long[]? bucketCounts)
    {
        public List<KeyValuePair<string, string>> Labels { get; } = labels;

        public long[]? BucketCounts { get; } = bucketCounts;

        public long Count { get; set; }

        public double Sum { get; set; }
    }
}

/// <summary>A gauge computed when scraped, such as the number of deployments in each state.</summary>
public sealed record GaugeFamily(string Name, string Help, IReadOnlyList<(IReadOnlyList<KeyValuePair<string, string>> Labels, double Value)> Series);
