using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace RolloutGate.Operations;

/// <summary>
/// The service's own instruments, on a <see cref="Meter"/> so that any OpenTelemetry exporter could pick them up;
/// <see cref="PrometheusExposition"/> renders them at /metrics.
/// </summary>
public sealed class RolloutGateMetrics : IDisposable
{
    public const string MeterName = "RolloutGate";

    private readonly Meter meter = new(MeterName);
    private readonly Counter<long> httpRequests;
    private readonly Histogram<double> httpDuration;
    private readonly Counter<long> webhooks;
    private readonly Counter<long> webhooksRefused;
    private readonly Counter<long> webhooksPreviousSecret;
    private readonly Counter<long> evaluations;
    private readonly Histogram<double> evaluationLag;
    private readonly Counter<long> outbound;
    private readonly Histogram<double> outboundDuration;

    /// <summary>
    /// Lag buckets in seconds: a healthy sweep stores an interval within a few seconds of its t; minutes mean it is
    /// behind, or that Prometheus could not answer and the interval waited for it.
    /// </summary>
    public static readonly double[] LagBuckets = [0.5, 1, 2, 3, 5, 10, 30, 60, 120, 300, 600];

    public RolloutGateMetrics()
    {
        httpRequests = meter.CreateCounter<long>("rolloutgate_http_requests", description: "HTTP requests served, by method, route and status code.");
        httpDuration = meter.CreateHistogram<double>("rolloutgate_http_request_duration_seconds", "s", "Time to answer an HTTP request, by route.");
        webhooks = meter.CreateCounter<long>("rolloutgate_webhooks", description: "CD webhook deliveries answered, by event and status code (replays included).");
        webhooksRefused = meter.CreateCounter<long>("rolloutgate_webhooks_refused", description: "CD webhook deliveries refused before they were applied, by reason.");
        webhooksPreviousSecret = meter.CreateCounter<long>(
            "rolloutgate_webhooks_previous_secret", description: "CD webhook deliveries signed with a previous webhook secret (RolloutGate:Webhook:PreviousSecrets) rather than the current one.");
        evaluations = meter.CreateCounter<long>(
            "rolloutgate_watch_evaluations", description: "Metric evaluations the watch stored on this instance, by verdict (healthy, regressed, breach-of-max, breach-of-min, insufficient-data, blind).");
        evaluationLag = meter.CreateHistogram(
            "rolloutgate_watch_evaluation_lag_seconds", "s", "How long after its time t a watch interval was evaluated and stored on this instance.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LagBuckets });
        outbound = meter.CreateCounter<long>(
            "rolloutgate_outbound_requests",
            description: "Calls to other services, by target (prometheus, alertmanager, http-check, slack, kubernetes, rollback-webhook) and outcome (2xx, 3xx, 4xx, 5xx, timeout, circuit-open, error); a call is counted once, its retries included.");
        outboundDuration = meter.CreateHistogram<double>(
            "rolloutgate_outbound_request_duration_seconds", "s", "Time a call to another service took, retries included, by target.");
    }

    public Meter Meter => meter;

    /// <summary>
    /// The methods counted under their own name; any other is counted as <see cref="OtherMethod"/>. The method is what
    /// the client wrote, any token of up to 8 KiB: counted as sent, each new one made a series that lived as long as the
    /// process, so anyone who could reach the service could grow its memory and /metrics without bound.
    /// </summary>
    private static readonly string[] KnownMethods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"];

    /// <summary>The method label of a request whose method is none of <see cref="KnownMethods"/> (OpenTelemetry's name for it).</summary>
    public const string OtherMethod = "_OTHER";

    public void HttpRequest(string method, string route, int status, TimeSpan elapsed)
    {
        var known = Array.Find(KnownMethods, m => string.Equals(m, method, StringComparison.OrdinalIgnoreCase)) ?? OtherMethod;
        var tags = new TagList { { "method", known }, { "route", route }, { "status", status.ToString(System.Globalization.CultureInfo.InvariantCulture) } };
        httpRequests.Add(1, tags);
        httpDuration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("route", route));
    }

    public void WebhookAnswered(string webhookEvent, int status) =>
        webhooks.Add(1, new("event", webhookEvent), new("status", status.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    public void WebhookRefused(string reason) => webhooksRefused.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void WebhookSignedWithPreviousSecret() => webhooksPreviousSecret.Add(1);

    /// <summary>One watch interval stored: its evaluations by verdict, and how late after its time t it was stored.</summary>
    public void WatchIntervalStored(IEnumerable<string> verdicts, TimeSpan lag)
    {
        foreach (var verdict in verdicts)
        {
            evaluations.Add(1, new KeyValuePair<string, object?>("verdict", verdict));
        }

        evaluationLag.Record(Math.Max(0, lag.TotalSeconds));
    }

    public void OutboundCall(string target, string outcome, TimeSpan elapsed)
    {
        outbound.Add(1, new("target", target), new("outcome", outcome));
        outboundDuration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("target", target));
    }

    public void Dispose() => meter.Dispose();
}
