using System.Net;
using Microsoft.Extensions.Http.Resilience;
using Polly;
using Polly.CircuitBreaker;

namespace RolloutGate.Slack;

/// <summary>
/// The resilience pipeline for Slack Web API calls: a per-attempt timeout, a few retries with exponential backoff and
/// jitter on 5xx, 408, timeouts and connection errors, 429 retried after its Retry-After when that is short, and a
/// circuit breaker so a Slack outage fails fast. Longer waits are the outbox's business: it keeps the row and tries again.
/// A post (chat.postMessage, chat.postEphemeral) is a new message each time Slack receives it, and Slack takes no
/// idempotency key, so a post is retried here only when it cannot have reached Slack (no connection; a 429). After a
/// timeout or a 5xx it may have been posted: the outbox looks for it before it posts again.
/// </summary>
public static class SlackResilience
{
    public const string HttpClientName = "slack";

    public static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan TotalTimeout = TimeSpan.FromSeconds(30);
    public const int MaxRetryAttempts = 3;
    public static readonly TimeSpan RetryBaseDelay = TimeSpan.FromMilliseconds(300);

    /// <summary>A Retry-After up to this long is waited out inside the call; a longer one goes back to the outbox.</summary>
    public static readonly TimeSpan MaxInlineRetryAfter = TimeSpan.FromSeconds(5);

    /// <summary>Slack always sends Retry-After with a 429; this is for a proxy that does not.</summary>
    public static readonly TimeSpan DefaultRetryAfter = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The shortest wait a rate limit is given: a Retry-After of 0 (or an <c>ok:false</c> "ratelimited" with it, which as a
    /// 200 no circuit breaker counts) would have the outbox claim the row again at once, as fast as Slack answers.
    /// </summary>
    public static readonly TimeSpan MinRetryAfter = TimeSpan.FromSeconds(1);

    public static readonly TimeSpan BreakerSamplingDuration = TimeSpan.FromSeconds(30);
    public const double BreakerFailureRatio = 0.5;
    public const int BreakerMinimumThroughput = 10;
    public static readonly TimeSpan BreakerBreakDuration = TimeSpan.FromSeconds(15);

    public static IHttpClientBuilder AddSlackResilience(this IHttpClientBuilder builder)
    {
        builder.AddStandardResilienceHandler(options =>
        {
            options.AttemptTimeout.Timeout = AttemptTimeout;
            options.TotalRequestTimeout.Timeout = TotalTimeout;
            options.Retry.MaxRetryAttempts = MaxRetryAttempts;
            options.Retry.Delay = RetryBaseDelay;
            options.Retry.BackoffType = DelayBackoffType.Exponential;
            options.Retry.UseJitter = true;
            options.Retry.ShouldRetryAfterHeader = true;
            options.Retry.ShouldHandle = args => ValueTask.FromResult(ShouldRetry(args.Outcome, args.Context.GetRequestMessage()));
            options.CircuitBreaker.SamplingDuration = BreakerSamplingDuration;
            options.CircuitBreaker.FailureRatio = BreakerFailureRatio;
            options.CircuitBreaker.MinimumThroughput = BreakerMinimumThroughput;
            options.CircuitBreaker.BreakDuration = BreakerBreakDuration;
        });
        return builder;
    }

    /// <summary>Whether <paramref name="exception"/> means the request never left: no connection was made, or the circuit is open.</summary>
    public static bool NeverSent(Exception exception) => exception switch
    {
        BrokenCircuitException => true,
        HttpRequestException { HttpRequestError: HttpRequestError.NameResolutionError or HttpRequestError.ConnectionError
            or HttpRequestError.SecureConnectionError or HttpRequestError.ProxyTunnelError } => true,
        _ => false,
    };

    private static bool ShouldRetry(Outcome<HttpResponseMessage> outcome, HttpRequestMessage? request)
    {
        if (outcome.Result is { StatusCode: HttpStatusCode.TooManyRequests } limited)
        {
            return limited.Headers.RetryAfter?.Delta is { } wait && wait <= MaxInlineRetryAfter;
        }

        if (request?.RequestUri is { } uri && SlackMethods.Posts(uri.Segments[^1]))
        {
            return outcome.Exception is { } exception && NeverSent(exception);
        }

        return HttpClientResiliencePredicates.IsTransient(outcome);
    }
}
