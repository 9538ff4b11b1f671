namespace RolloutGate.Prometheus;

public static class PrometheusConstants
{
    /// <summary>The name of the typed <see cref="HttpClient"/>.</summary>
    public const string HttpClientName = "RolloutGate.Prometheus";

    /// <summary>Relative, so that a Prometheus behind a path prefix (http://host/prometheus/) works.</summary>
    public const string QueryPath = "api/v1/query";

    public const string QueryRangePath = "api/v1/query_range";
}
