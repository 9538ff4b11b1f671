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

    public RolloutGateMetrics()
    {
        httpRequests = meter.CreateCounter<long>("rolloutgate_http_requests", description: "HTTP requests served, by method, route and status code.");
        httpDuration = meter.CreateHistogram<double>("rolloutgate_http_request_duration_seconds", "s", "Time to answer an HTTP request, by route.");
        webhooks = meter.CreateCounter<long>("rolloutgate_webhooks", description: "CD webhook deliveries answered, by event and status code (replays included).");
        webhooksRefused = meter.CreateCounter<long>("rolloutgate_webhooks_refused", description: "CD webhook deliveries refused before they were applied, by reason.");
    }

    public Meter Meter => meter;

    public void HttpRequest(string method, string route, int status, TimeSpan elapsed)
    {
        var tags = new TagList { { "method", method }, { "route", route }, { "status", status.ToString(System.Globalization.CultureInfo.InvariantCulture) } };
        httpRequests.Add(1, tags);
        httpDuration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("route", route));
    }

    public void WebhookAnswered(string webhookEvent, int status) =>
        webhooks.Add(1, new("event", webhookEvent), new("status", status.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    public void WebhookRefused(string reason) => webhooksRefused.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void Dispose() => meter.Dispose();
}
