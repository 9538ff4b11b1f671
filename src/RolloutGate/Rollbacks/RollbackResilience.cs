using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using Polly.Timeout;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure;
using RolloutGate.Kubernetes;

namespace RolloutGate.Rollbacks;

/// <summary>
/// How hard a rollback tries. Longer than a query's budget: nobody waits on a rollback synchronously, and giving up
/// leaves a regressed version serving. No circuit breaker: every rollback should get its own full set of tries.
/// </summary>
public sealed class RollbackResilienceOptions
{
    public const int DefaultMaxRetryAttempts = 4;
    public static readonly TimeSpan DefaultBaseDelay = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan DefaultMaxDelay = TimeSpan.FromSeconds(15);
    public static readonly TimeSpan DefaultAttemptTimeout = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan DefaultTotalTimeout = TimeSpan.FromMinutes(2);

    public int MaxRetryAttempts { get; set; } = DefaultMaxRetryAttempts;

    public TimeSpan BaseDelay { get; set; } = DefaultBaseDelay;

    /// <summary>Also caps a server's Retry-After, so one answer cannot park a rollback for an hour.</summary>
    public TimeSpan MaxDelay { get; set; } = DefaultMaxDelay;

    public TimeSpan AttemptTimeout { get; set; } = DefaultAttemptTimeout;

    public TimeSpan TotalTimeout { get; set; } = DefaultTotalTimeout;

    /// <summary>Inside the host's 25 s shutdown timeout, with time left to release the claim.</summary>
    public static readonly TimeSpan DefaultStopGrace = TimeSpan.FromSeconds(20);

    /// <summary>
    /// How long an action under way goes on once the host is stopping, so that its outcome is recorded; past it the action
    /// is abandoned and its claim released (see <see cref="RollbackDispatcher"/>).
    /// </summary>
    public TimeSpan StopGrace { get; set; } = DefaultStopGrace;

    public static readonly TimeSpan DefaultClaimLease = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan DefaultClaimRenewal = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a rollback's claim holds without being renewed: one not renewed for this long belonged to a replica that
    /// died mid-action, and another takes it over (see <see cref="RollbackDispatcher"/>). Renewed every
    /// <see cref="ClaimRenewal"/> while the action runs, however long it takes (retries, Retry-After waits), so it may be
    /// short: it is how long a decided rollback waits, with nothing under way, after its replica was killed. Measured on
    /// the database's clock, so a replica whose clock is off does not cut it short or stretch it.
    /// </summary>
    public TimeSpan ClaimLease { get; set; } = DefaultClaimLease;

    /// <summary>How often a claim is renewed while its action runs: three times within <see cref="ClaimLease"/>.</summary>
    public TimeSpan ClaimRenewal { get; set; } = DefaultClaimRenewal;
}

/// <summary>
/// Runs one rollback action's attempt (read, rewrite, write) under retry with jitter. The whole attempt is retried, not
/// a single request, so a 409 conflict re-reads the object before patching again. Failures become outcomes.
/// </summary>
internal sealed partial class RollbackAttempts(
    IOptionsMonitor<RollbackResilienceOptions> options, TimeProvider time, ILogger<RollbackAttempts> logger)
{
    /// <summary>
    /// Runs <paramref name="attempt"/> until it succeeds or fails for good; <paramref name="beforeEachAttempt"/> (the
    /// request's <see cref="RollbackRequest.BeforeEachAttempt"/>) is awaited before each one, and an attempt it cancels is not counted.
    /// </summary>
    public async Task<RollbackOutcome> RunAsync(
        string action, string target, Func<CancellationToken, Task>? beforeEachAttempt, Func<CancellationToken, Task<string>> attempt, CancellationToken cancellationToken)
    {
        var settings = options.CurrentValue;
        var attempts = 0;
        try
        {
            var detail = await Pipeline(settings, action).ExecuteAsync(
                async token =>
                {
                    if (beforeEachAttempt is not null)
                    {
                        await beforeEachAttempt(token);
                    }

                    attempts++;
                    return await attempt(token);
                },
                cancellationToken);
            LogSucceeded(logger, action, attempts, LogText.OneLine(detail));
            return new RollbackOutcome(true, action, detail, attempts);
        }
        catch (OperationCanceledException cancelled) when (cancellationToken.IsCancellationRequested)
        {
            throw new RollbackCancelledException(action, attempts, cancelled);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested && Describe(exception, target, attempts, settings) is { } reason)
        {
            // The reason keeps its line breaks for the audit trail and the channel (an admission webhook's denial is often a
            // violation a line); its log line is one line, as every log line holding text from outside.
            LogFailed(logger, action, attempts, LogText.OneLine(reason));
            return new RollbackOutcome(false, action, reason, attempts);
        }
    }

    private ResiliencePipeline Pipeline(RollbackResilienceOptions settings, string action) =>
        new ResiliencePipelineBuilder { TimeProvider = time }
            .AddTimeout(settings.TotalTimeout)
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = settings.MaxRetryAttempts,
                Delay = settings.BaseDelay,
                MaxDelay = settings.MaxDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldHandle = new PredicateBuilder()
                    .Handle<KubernetesApiException>(e => e.IsTransient)
                    .Handle<RollbackAttemptException>(e => e.Transient)
                    .Handle<HttpRequestException>()
                    .Handle<TimeoutRejectedException>(),
                // Honour the server's Retry-After (429, 503), within MaxDelay; otherwise the exponential backoff.
                DelayGenerator = args => ValueTask.FromResult(
                    RetryAfter(args.Outcome.Exception) is { } after ? TimeSpan.FromTicks(Math.Min(after.Ticks, settings.MaxDelay.Ticks)) : (TimeSpan?)null),
                OnRetry = args =>
                {
                    // AttemptNumber is the zero-based number of the attempt that failed; the log names the one to come.
                    LogRetrying(logger, action, args.AttemptNumber + 2, DurationText.Format(args.RetryDelay), LogText.OneLine(args.Outcome.Exception?.Message));
                    return ValueTask.CompletedTask;
                },
            })
            .AddTimeout(settings.AttemptTimeout)
            .Build();

    private static TimeSpan? RetryAfter(Exception? exception) => exception switch
    {
        KubernetesApiException { RetryAfter: { } after } when after > TimeSpan.Zero => after,
        RollbackAttemptException { RetryAfter: { } after } when after > TimeSpan.Zero => after,
        _ => null,
    };

    /// <summary>The reason for people, or null for an exception that is a bug rather than an expected failure.</summary>
    private static string? Describe(Exception exception, string target, int attempts, RollbackResilienceOptions settings)
    {
        var tries = attempts == 1 ? "1 attempt" : $"{attempts} attempts";
        return exception switch
        {
            KubernetesApiException api => $"{api.Message} ({(int)api.StatusCode}{(api.Reason is null ? "" : " " + api.Reason)}, after {tries})",
            RollbackAttemptException refused => $"{refused.Message} (after {tries})",
            HttpRequestException unreachable => $"{target} is unreachable after {tries}: {unreachable.Message}",
            TimeoutRejectedException =>
                $"{target} did not answer in time after {tries} (each attempt at most {settings.AttemptTimeout.TotalSeconds:0} s, all at most {settings.TotalTimeout.TotalSeconds:0} s)",
            _ => null,
        };
    }

    [LoggerMessage(EventId = 1601, Level = LogLevel.Information, Message = "Rollback {Action} succeeded after {Attempts} attempt(s): {Detail}")]
    private static partial void LogSucceeded(ILogger logger, string action, int attempts, string detail);

    [LoggerMessage(EventId = 1602, Level = LogLevel.Warning, Message = "Rollback {Action} failed after {Attempts} attempt(s): {Reason}")]
    private static partial void LogFailed(ILogger logger, string action, int attempts, string reason);

    [LoggerMessage(EventId = 1603, Level = LogLevel.Information, Message = "Rollback {Action}: attempt {Attempt} in {Delay}, the last one failed: {Error}")]
    private static partial void LogRetrying(ILogger logger, string action, int attempt, string delay, string? error);
}
