namespace RolloutGate.Prometheus;

public static class PrometheusConstants
{
    /// <summary>The name of the typed <see cref="HttpClient"/>.</summary>
    public const string HttpClientName = "RolloutGate.Prometheus";

    /// <summary>Relative, so that a Prometheus behind a path prefix (http://host/prometheus/) works.</summary>
    public const string QueryPath = "api/v1/query";

    public const string QueryRangePath = "api/v1/query_range";

    /// <summary>
    /// The most steps one range query spans. Prometheus refuses a range of more than 11,000 steps ("exceeded maximum
    /// resolution of 11,000 points per timeseries", bad_data: the check is (end − start) / step > 11000 in
    /// web/api/v1/api.go, "sufficient for 60s resolution for a week"), and so do the Prometheus-compatible queriers that
    /// copied it: a 7-day baseline at a 30 s interval is 20,160. Longer ranges are asked in pieces.
    /// </summary>
    public const int MaxStepsPerRangeQuery = 11_000;
}
