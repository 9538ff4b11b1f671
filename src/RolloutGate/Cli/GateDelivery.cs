using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using Polly;
using Polly.Retry;
using RolloutGate.Checks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Deployments;
using RolloutGate.Webhooks;

namespace RolloutGate.Cli;

/// <summary>How the gate proves it may speak: an HMAC secret (preferred) or a webhook bearer token.</summary>
public sealed record GateCredentials(string? Secret, string? Token);

/// <summary>
/// What came back, if anything: the last HTTP answer, or why there was none. <paramref name="ReplayedOtherBody"/>: the
/// answer is the first answer of this delivery id, given to another body before (<see cref="WebhookOutcome.ReplayHeader"/>).
/// </summary>
public sealed record GateAnswer(HttpStatusCode? Status, string Body, string? Failure, int Attempts, bool ReplayedOtherBody = false);

/// <summary>
/// Sends one webhook delivery (CONTRACT section 4) until it gets an answer that retrying cannot change.
/// The delivery id is fixed for all attempts, so the server's idempotency makes a retry of a delivery that did
/// arrive harmless; the timestamp and signature are made afresh per attempt, so a long retry never presents a
/// timestamp the server would refuse as stale. 4xx answers are final; 5xx, 408, 429, timeouts and connection
/// errors are retried with exponential backoff and jitter, all within one overall deadline.
/// </summary>
public sealed class GateDelivery(HttpClient http, TimeProvider time, TextWriter progress)
{
    public const string WebhookPath = "api/v1/deployments";
    public static readonly TimeSpan DefaultRetryBaseDelay = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(15);

    /// <summary>
    /// The most of an answer that is read: no answer of RolloutGate's comes near it, so one beyond it (a proxy's page, a
    /// runaway stream) is no answer, and is not held in memory (the same limit as deploy/ci/rolloutgate-gate.sh).
    /// </summary>
    public const int MaxAnswerBytes = 1024 * 1024;

    public Task<GateAnswer> SendAsync(
        Uri baseUrl, byte[] body, string deliveryId, GateCredentials credentials, int retries, TimeSpan timeout, TimeSpan retryBaseDelay)
    {
        var endpoint = Urls.Under(baseUrl, WebhookPath);
        var basic = Urls.BasicCredentials(baseUrl.AbsoluteUri);
        return ExchangeAsync(() => BuildRequest(endpoint, basic, body, deliveryId, credentials), retries, timeout, retryBaseDelay, CancellationToken.None);
    }

    /// <summary>
    /// One read with a reader token (<c>gate wait</c>), retried as a delivery is. <paramref name="cancellationToken"/>
    /// ends it at once (a signal), as an <see cref="OperationCanceledException"/>; the deadline ends it as no answer.
    /// </summary>
    public Task<GateAnswer> GetAsync(Uri endpoint, string readerToken, int retries, TimeSpan timeout, TimeSpan retryBaseDelay, CancellationToken cancellationToken)
    {
        return ExchangeAsync(
            () =>
            {
                var request = new HttpRequestMessage(HttpMethod.Get, endpoint);
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", readerToken);
                request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
                return request;
            },
            retries, timeout, retryBaseDelay, cancellationToken);
    }

    private async Task<GateAnswer> ExchangeAsync(
        Func<HttpRequestMessage> buildRequest, int retries, TimeSpan timeout, TimeSpan retryBaseDelay, CancellationToken cancellationToken)
    {
        var attempts = 0;
        var tooLarge = false;
        string? lastFailure = null;
        var pipeline = BuildPipeline(retries, retryBaseDelay, failure => lastFailure = failure);

        using var deadline = new CancellationTokenSource(timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, cancellationToken);
        try
        {
            using var response = await pipeline.ExecuteAsync(
                async token =>
                {
                    attempts++;
                    using var request = buildRequest();
                    var answer = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, token);
                    try
                    {
                        // Read within the attempt, as SendAsync reads a whole answer: a connection lost mid-answer is retried.
                        await answer.Content.LoadIntoBufferAsync(MaxAnswerBytes, token);
                        tooLarge = false;
                    }
                    catch (HttpRequestException ex) when (ex.HttpRequestError == HttpRequestError.ConfigurationLimitExceeded)
                    {
                        tooLarge = true;
                    }
                    catch
                    {
                        answer.Dispose();
                        throw;
                    }

                    return answer;
                },
                linked.Token);
            if (tooLarge)
            {
                var tried = $"{attempts} attempt{(attempts == 1 ? "" : "s")}";
                return new GateAnswer(null, "", $"answer too large: HTTP {(int)response.StatusCode} with more than 1 MiB, which no answer of RolloutGate's is ({tried})", attempts);
            }

            var text = await response.Content.ReadAsStringAsync(linked.Token);
            return new GateAnswer(response.StatusCode, text, null, attempts, response.Headers.Contains(WebhookOutcome.ReplayHeader));
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            var last = lastFailure is null ? "" : $"; last attempt: {lastFailure}";
            return new GateAnswer(null, "", $"no answer within {CheckFormat.Duration(timeout)} ({attempts} attempt{(attempts == 1 ? "" : "s")}){last}", attempts);
        }
        catch (HttpRequestException ex)
        {
            return new GateAnswer(null, "", $"{Describe(ex)} ({attempts} attempt{(attempts == 1 ? "" : "s")})", attempts);
        }
    }

    public static bool IsRetryable(HttpStatusCode status) =>
        (int)status >= 500 || status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests;

    private ResiliencePipeline<HttpResponseMessage> BuildPipeline(int retries, TimeSpan baseDelay, Action<string> recordFailure)
    {
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = time };
        if (retries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = retries,
                Delay = baseDelay,
                MaxDelay = MaxRetryDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldHandle = new PredicateBuilder<HttpResponseMessage>()
                    .Handle<HttpRequestException>()
                    .HandleResult(response => IsRetryable(response.StatusCode)),
                // The service's Retry-After (a 503 while its database is away, a 429), within MaxRetryDelay; else the backoff.
                DelayGenerator = args => ValueTask.FromResult(RetryAfter(args.Outcome.Result)),
                OnRetry = async args =>
                {
                    var failure = args.Outcome.Exception is HttpRequestException ex
                        ? Describe(ex)
                        : $"HTTP {(int)args.Outcome.Result!.StatusCode} {args.Outcome.Result.ReasonPhrase}";
                    recordFailure(failure);
                    args.Outcome.Result?.Dispose();
                    await progress.WriteLineAsync(
                        $"gate: attempt {args.AttemptNumber + 1} failed ({failure}); retrying in {CheckFormat.Duration(args.RetryDelay)}");
                },
            });
        }

        return builder.Build();
    }

    private TimeSpan? RetryAfter(HttpResponseMessage? response)
    {
        var header = response?.Headers.RetryAfter;
        var after = header?.Delta ?? (header?.Date is { } date ? date - time.GetUtcNow() : null);
        return after is { } wait && wait > TimeSpan.Zero ? (wait < MaxRetryDelay ? wait : MaxRetryDelay) : null;
    }

    /// <summary>
    /// <paramref name="basic"/>: the URL's user info as basic credentials (a proxy's in front), sent only beside a signature,
    /// which leaves the Authorization header free; with a bearer token the command refuses such a URL
    /// (<see cref="GateCommand.UserInfoRefusal"/>).
    /// </summary>
    private HttpRequestMessage BuildRequest(Uri endpoint, string? basic, byte[] body, string deliveryId, GateCredentials credentials)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, endpoint) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        request.Headers.Add(DeploymentEndpoints.DeliveryHeader, deliveryId);
        if (credentials.Secret is { Length: > 0 } secret)
        {
            var timestamp = time.GetUtcNow().ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
            request.Headers.Add(WebhookAuthenticator.TimestampHeader, timestamp);
            request.Headers.Add(WebhookAuthenticator.SignatureHeader, WebhookAuthenticator.SignatureHeaderValue(secret, timestamp, body));
            if (basic is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Basic", basic);
            }
        }
        else
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", credentials.Token);
        }

        return request;
    }

    private static string Describe(HttpRequestException ex) =>
        ex.HttpRequestError is HttpRequestError.Unknown ? ex.Message : $"{ex.HttpRequestError}: {ex.Message}";
}
