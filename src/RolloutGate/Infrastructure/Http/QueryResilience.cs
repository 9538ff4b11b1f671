using Microsoft.Extensions.Http.Resilience;

namespace RolloutGate.Infrastructure.Http;

/// <summary>
/// The resilience pipeline for read-only queries to monitoring back-ends (Prometheus, Alertmanager):
/// a per-attempt timeout, a few quick retries with jitter on 5xx, 408, 429, timeouts and connection errors,
/// and a circuit breaker per host. The delays are short on purpose: a gate answers a CD pipeline that is waiting,
/// and the caller's own deadline (a runbook's preDeploy.timeout) bounds the whole thing anyway.
/// </summary>
public static class QueryResilience
{
    public static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan TotalTimeout = TimeSpan.FromSeconds(30);
    public const int MaxRetryAttempts = 3;
    public static readonly TimeSpan RetryBaseDelay = TimeSpan.FromMilliseconds(200);

    /// <summary>Failures seen within this period open the breaker (must be at least twice the attempt timeout).</summary>
    public static readonly TimeSpan BreakerSamplingDuration = TimeSpan.FromSeconds(30);
    public const double BreakerFailureRatio = 0.5;
    public const int BreakerMinimumThroughput = 10;
    public static readonly TimeSpan BreakerBreakDuration = TimeSpan.FromSeconds(15);

    public static IHttpClientBuilder AddQueryResilience(this IHttpClientBuilder builder)
    {
        builder.AddStandardResilienceHandler(options =>
            {
                options.AttemptTimeout.Timeout = AttemptTimeout;
                options.TotalRequestTimeout.Timeout = TotalTimeout;
                options.Retry.MaxRetryAttempts = MaxRetryAttempts;
                options.Retry.Delay = RetryBaseDelay;
                options.Retry.BackoffType = Polly.DelayBackoffType.Exponential;
                options.Retry.UseJitter = true;
                options.CircuitBreaker.SamplingDuration = BreakerSamplingDuration;
                options.CircuitBreaker.FailureRatio = BreakerFailureRatio;
                options.CircuitBreaker.MinimumThroughput = BreakerMinimumThroughput;
                options.CircuitBreaker.BreakDuration = BreakerBreakDuration;
            })
            // One breaker per host: a dead Prometheus must not open the breaker for a healthy one.
            .SelectPipelineByAuthority();
        return builder;
    }
}
