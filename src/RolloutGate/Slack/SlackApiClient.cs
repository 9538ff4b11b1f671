using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;
using Polly.Timeout;
using RolloutGate.Infrastructure;

namespace RolloutGate.Slack;

/// <summary>
/// A message for <c>chat.postMessage</c>: <paramref name="Blocks"/> are Block Kit objects (see <see cref="SlackBlocks"/>),
/// <paramref name="Text"/> is the notification fallback, <paramref name="ThreadTs"/> makes it a reply in a thread.
/// </summary>
public sealed record SlackMessage(string Channel, string Text, IReadOnlyList<object>? Blocks = null, string? ThreadTs = null);

/// <summary>Where Slack put a message: the channel id and the message's ts, which names it for edits and threads.</summary>
public sealed record SlackPosted(string Channel, string Ts);

/// <summary>Slack answered <c>ok:false</c>; <see cref="Error"/> is Slack's error code (channel_not_found, not_authed, ...).</summary>
public sealed class SlackApiException(string method, string error)
    : Exception($"Slack {method} answered ok:false with error '{error}'")
{
    public string Error { get; } = error;
}

/// <summary>Slack could not be reached or kept failing (5xx, timeouts, open circuit); worth trying again later.</summary>
public sealed class SlackUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Slack asked us to wait longer than the client waits by itself; try again after <see cref="RetryAfter"/>.</summary>
public sealed class SlackRateLimitedException(string method, TimeSpan retryAfter)
    : Exception($"Slack rate-limited {method}; retry after {retryAfter.TotalSeconds:0} s")
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>
/// The Slack Web API methods RolloutGate uses, as JSON POSTs with the bot token. The resilience pipeline
/// (<see cref="SlackResilience"/>) retries transient failures with jitter and honours short Retry-After waits;
/// what is left over becomes one of the exceptions above, for the outbox dispatcher to schedule.
/// </summary>
public sealed class SlackApiClient(HttpClient http, IOptionsMonitor<RolloutGateOptions> options)
{
    /// <summary>Slack's own spelling: snake_case, absent rather than null.</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public bool IsConfigured => !string.IsNullOrWhiteSpace(options.CurrentValue.Slack.BotToken);

    public Task<SlackPosted> PostMessageAsync(SlackMessage message, CancellationToken cancellationToken) =>
        CallAsync(SlackMethods.PostMessage, message, cancellationToken);

    public Task<SlackPosted> UpdateAsync(string channel, string ts, string text, IReadOnlyList<object>? blocks, CancellationToken cancellationToken) =>
        CallAsync(SlackMethods.Update, new UpdateRequest(channel, ts, text, blocks), cancellationToken);

    /// <summary>A message only <paramref name="user"/> sees; Slack answers with message_ts rather than ts.</summary>
    public async Task PostEphemeralAsync(string channel, string user, string text, string? threadTs, CancellationToken cancellationToken) =>
        await CallAsync(SlackMethods.PostEphemeral, new EphemeralRequest(channel, user, text, threadTs), cancellationToken);

    private async Task<SlackPosted> CallAsync<TRequest>(string method, TRequest body, CancellationToken cancellationToken)
    {
        var slack = options.CurrentValue.Slack;
        if (string.IsNullOrWhiteSpace(slack.BotToken))
        {
            throw new InvalidOperationException("no Slack bot token is configured (RolloutGate__Slack__BotToken)");
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"{slack.ApiBaseUrl.TrimEnd('/')}/{method}"))
        {
            Content = JsonContent.Create(body, options: Json),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", slack.BotToken);

        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, cancellationToken);
        }
        catch (Exception ex) when (ex is HttpRequestException or TimeoutRejectedException or BrokenCircuitException
            || (ex is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new SlackUnavailableException($"Slack {method} failed: {ex.Message}", ex);
        }

        using (response)
        {
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                throw new SlackRateLimitedException(method, RetryAfter(response) ?? SlackResilience.DefaultRetryAfter);
            }

            if (!response.IsSuccessStatusCode)
            {
                throw new SlackUnavailableException($"Slack {method} answered {(int)response.StatusCode} {response.ReasonPhrase}");
            }

            SlackResponse? answer;
            try
            {
                answer = await response.Content.ReadFromJsonAsync<SlackResponse>(Json, cancellationToken);
            }
            catch (JsonException ex)
            {
                throw new SlackUnavailableException($"Slack {method} answered {(int)response.StatusCode} without a JSON body", ex);
            }

            if (answer is not { Ok: true })
            {
                throw new SlackApiException(method, answer?.Error ?? "no_error_code");
            }

            return new SlackPosted(answer.Channel ?? "", answer.Ts ?? answer.MessageTs ?? "");
        }
    }

    private static TimeSpan? RetryAfter(HttpResponseMessage response) =>
        response.Headers.RetryAfter switch
        {
            { Delta: { } delta } => delta,
            _ => null,
        };

    private sealed record UpdateRequest(string Channel, string Ts, string Text, IReadOnlyList<object>? Blocks);

    private sealed record EphemeralRequest(string Channel, string User, string Text, string? ThreadTs);

    private sealed record SlackResponse(bool Ok, string? Error, string? Channel, string? Ts, string? MessageTs);
}

/// <summary>The Web API method names, as they appear in the URL path.</summary>
public static class SlackMethods
{
    public const string PostMessage = "chat.postMessage";
    public const string Update = "chat.update";
    public const string PostEphemeral = "chat.postEphemeral";
}
