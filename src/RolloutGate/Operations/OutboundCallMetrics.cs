using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;
using Polly.Timeout;
using RolloutGate.Checks;
using RolloutGate.Kubernetes;
using RolloutGate.Prometheus;
using RolloutGate.Rollbacks;
using RolloutGate.Slack;

namespace RolloutGate.Operations;

/// <summary>
/// Counts every call the service makes to another service (<c>rolloutgate_outbound_requests</c>), by target and
/// outcome, with its duration: the first place to look when watches go blind or Slack messages pile up. The handler is
/// the outermost of each named <see cref="HttpClient"/>, outside its resilience pipeline, so a call is counted once with
/// its retries, and its outcome is the one the caller saw.
/// </summary>
internal sealed class OutboundCallMetrics(RolloutGateMetrics metrics, string target) : DelegatingHandler
{
    /// <summary>The named clients' targets as the series show them; any other client is shown by its name.</summary>
    private static readonly Dictionary<string, string> Targets = new(StringComparer.Ordinal)
    {
        [PrometheusConstants.HttpClientName] = "prometheus",
        [CheckConstants.AlertmanagerHttpClient] = "alertmanager",
        [CheckConstants.HttpCheckHttpClient] = "http-check",
        [SlackResilience.HttpClientName] = "slack",
        [KubernetesExtensions.HttpClientName] = "kubernetes",
        [WebhookRollbackAction.HttpClientName] = "rollback-webhook",
    };

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var outcome = "error";
        try
        {
            var response = await base.SendAsync(request, cancellationToken);
            outcome = $"{(int)response.StatusCode / 100}xx";
            return response;
        }
        catch (Exception exception)
        {
            outcome = Outcome(exception, cancellationToken);
            throw;
        }
        finally
        {
            if (outcome != "cancelled")
            {
                metrics.OutboundCall(target, outcome, Stopwatch.GetElapsedTime(started));
            }
        }
    }

    /// <summary>A call the caller gave up (the service stopping, a gate's deadline) is not the target's failure, and is not counted.</summary>
    private static string Outcome(Exception exception, CancellationToken cancellationToken) => exception switch
    {
        OperationCanceledException when cancellationToken.IsCancellationRequested => "cancelled",
        TimeoutRejectedException or TaskCanceledException or HttpRequestException { InnerException: TimeoutException } => "timeout",
        BrokenCircuitException => "circuit-open",
        HttpRequestException { StatusCode: HttpStatusCode status } => $"{(int)status / 100}xx",
        _ => "error",
    };

    /// <summary>Puts the handler first in every named client's pipeline, whenever the factory builds one.</summary>
    internal sealed class Setup(RolloutGateMetrics metrics) : IConfigureNamedOptions<HttpClientFactoryOptions>
    {
        public void Configure(string? name, HttpClientFactoryOptions options)
        {
            var target = Targets.GetValueOrDefault(name ?? "", string.IsNullOrEmpty(name) ? "default" : name);
            options.HttpMessageHandlerBuilderActions.Add(builder => builder.AdditionalHandlers.Insert(0, new OutboundCallMetrics(metrics, target)));
        }

        public void Configure(HttpClientFactoryOptions options) => Configure(Options.DefaultName, options);
    }
}
