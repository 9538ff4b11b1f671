using System.Text.Json;
using Microsoft.Extensions.Options;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Http;
using RolloutGate.Prometheus;

namespace RolloutGate.Checks;

/// <summary>
/// Fails while Alertmanager has an active alert (not silenced, not inhibited) matching all the runbook's matchers.
/// Alertmanager only knows the present: this check asks about now whatever the context's time is.
/// </summary>
internal sealed class AlertmanagerCheck(IHttpClientFactory httpClients, IOptions<RolloutGateOptions> options) : IPreDeployCheck
{
    public string Kind => "alertmanager";

    public async Task<CheckResult> RunAsync(CheckSpec check, CheckContext context, CancellationToken cancellationToken)
    {
        var spec = check.Alertmanager ?? throw new ArgumentException($"check '{check.Name}' is not an alertmanager check", nameof(check));
        var baseUrl = options.Value.Alertmanager.Url;
        if (string.IsNullOrWhiteSpace(baseUrl))
        {
            return CheckResult.Error(check.Name, "no Alertmanager configured (RolloutGate__Alertmanager__Url)");
        }

        var url = Urls.Under(
            new Uri(baseUrl, UriKind.Absolute),
            "api/v2/alerts?active=true&silenced=false&inhibited=false" + string.Concat(spec.Matchers.Select(m => "&filter=" + Uri.EscapeDataString(m))));
        using var http = httpClients.CreateClient(CheckConstants.AlertmanagerHttpClient);
        HttpResponseMessage response;
        try
        {
            // Headers first: an error answer's body is read only as far as its excerpt needs, whatever its size.
            response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (Exception exception) when (exception is HttpRequestException or Polly.Timeout.TimeoutRejectedException or Polly.CircuitBreaker.BrokenCircuitException)
        {
            return CheckResult.Error(check.Name, $"Alertmanager at {Urls.Shown(baseUrl)} is unreachable: {exception.Message}");
        }

        using (response)
        {
            if (MonitoringAuthOptions.Refusal(response, "Alertmanager") is { } refused)
            {
                // Not the answer's body: an authenticating proxy's is a sign-in page, a redirect's is nothing.
                return CheckResult.Error(check.Name, $"Alertmanager at {Urls.Shown(baseUrl)} answered {(int)response.StatusCode} {response.ReasonPhrase}: {refused}");
            }

            if (!response.IsSuccessStatusCode)
            {
                // Its start, without the credentials: a proxy's error page may be megabytes long and repeat the request, and
                // the detail is answered and audited.
                var excerpt = await ResponseBodies.ExcerptAsync(response, [.. options.Value.Alertmanager.Secrets(), .. Urls.Hidden(baseUrl)], cancellationToken);
                return CheckResult.Error(check.Name, $"Alertmanager answered {(int)response.StatusCode}{excerpt}");
            }

            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            using var alerts = await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken);
            var names = alerts.RootElement.EnumerateArray().Select(AlertName).Order(StringComparer.Ordinal).ToList();
            var matchers = string.Join(", ", spec.Matchers);
            if (names.Count == 0)
            {
                return CheckResult.Pass(check.Name, $"no active alerts match {matchers}");
            }

            var named = string.Join(", ", names.Take(CheckConstants.MaxAlertsNamed));
            var more = names.Count > CheckConstants.MaxAlertsNamed ? $" and {names.Count - CheckConstants.MaxAlertsNamed} more" : string.Empty;
            return CheckResult.Fail(check.Name, $"{names.Count} active alert{(names.Count == 1 ? string.Empty : "s")} match {matchers}: {named}{more}");
        }
    }

    /// <summary>alertname{other labels}, like a Prometheus series.</summary>
    private static string AlertName(JsonElement alert)
    {
        var labels = alert.GetProperty("labels").EnumerateObject()
            .ToDictionary(p => p.Name == "alertname" ? "__name__" : p.Name, p => p.Value.GetString() ?? string.Empty, StringComparer.Ordinal);
        return PrometheusFormat.Series(labels);
    }
}
