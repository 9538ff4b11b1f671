namespace RolloutGate.Prometheus;

/// <summary>One sample of an instant query: the series' labels and its value at the evaluation time.</summary>
public sealed record PrometheusSample(IReadOnlyDictionary<string, string> Labels, DateTimeOffset Timestamp, double Value)
{
    /// <summary>The series in PromQL notation, e.g. <c>up{job="api"}</c>, for messages.</summary>
    public string SeriesName => PrometheusFormat.Series(Labels);
}

/// <summary>One point of a range query.</summary>
public sealed record PrometheusPoint(DateTimeOffset Timestamp, double Value);

/// <summary>One series of a range query: its labels and its points in time order.</summary>
public sealed record PrometheusSeries(IReadOnlyDictionary<string, string> Labels, IReadOnlyList<PrometheusPoint> Points)
{
    public string SeriesName => PrometheusFormat.Series(Labels);
}
