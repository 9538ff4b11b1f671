using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;
using Polly.Timeout;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure;

namespace RolloutGate.Slack;

/// <summary>
/// A message for <c>chat.postMessage</c>: <paramref name="Blocks"/> are Block Kit objects (see <see cref="SlackBlocks"/>),
/// <paramref name="Text"/> is the notification fallback, <paramref name="ThreadTs"/> makes it a reply in a thread,
/// <paramref name="Metadata"/> is attached for apps (RolloutGate finds its own messages by it).
/// </summary>
public sealed record SlackMessage(
    string Channel, string Text, IReadOnlyList<object>? Blocks = null, string? ThreadTs = null, SlackMetadata? Metadata = null);

/// <summary>
/// Message metadata (https://docs.slack.dev/messaging/message-metadata): an event type and a free-form payload that
/// travel with the message and come back from <c>conversations.history</c> and <c>conversations.replies</c> with
/// <c>include_all_metadata</c>.
/// </summary>
public sealed record SlackMetadata(string EventType, IReadOnlyDictionary<string, string> EventPayload);

/// <summary>
/// A message as <c>conversations.history</c> and <c>conversations.replies</c> return it: its ts and its metadata, if any
/// (another app's payload may hold any JSON, so it is read as it comes).
/// </summary>
public sealed record SlackHistoryMessage(string Ts, string? EventType, JsonElement EventPayload)
{
    /// <summary>Whether the metadata is of <paramref name="metadata"/>'s type and holds every field of its payload.</summary>
    public bool Carries(SlackMetadata metadata) =>
        EventType == metadata.EventType && EventPayload.ValueKind == JsonValueKind.Object
        && metadata.EventPayload.All(field =>
            EventPayload.TryGetProperty(field.Key, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() == field.Value);
}

/// <summary>Where Slack put a message: the channel id and the message's ts, which names it for edits and threads.</summary>
public sealed record SlackPosted(string Channel, string Ts);

/// <summary>Slack answered <c>ok:false</c>; <see cref="Error"/> is Slack's error code (channel_not_found, not_authed, ...).</summary>
public sealed class SlackApiException(string method, string error)
    : Exception($"Slack {method} answered ok:false with error '{error}'")
{
    public string Error { get; } = error;
}

/// <summary>
/// Slack could not be reached or kept failing (5xx, timeouts, open circuit); worth trying again later.
/// <see cref="MayHaveArrived"/> is false only when the request certainly never reached Slack (no connection, an open
/// circuit): after a timeout or a 5xx, Slack may have carried out the call even though its answer did not come back.
/// </summary>
public sealed class SlackUnavailableException(string message, Exception? inner = null, bool mayHaveArrived = true) : Exception(message, inner)
{
    public bool MayHaveArrived { get; } = mayHaveArrived;
}

/// <summary>Slack asked us to wait longer than the client waits by itself; try again after <see cref="RetryAfter"/>.</summary>
public sealed class SlackRateLimitedException(string method, TimeSpan retryAfter)
    : Exception($"Slack rate-limited {method}; retry after {retryAfter.TotalSeconds:0} s")
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>
/// The Slack Web API methods RolloutGate uses, as POSTs with the bot token: JSON for the chat.* methods, form fields
/// for conversations.history and conversations.replies. The resilience pipeline (<see cref="SlackResilience"/>) retries
/// transient failures with jitter and honours short Retry-After waits (a post only when it cannot have arrived); what
/// is left over becomes one of the exceptions above, for the outbox dispatcher to schedule.
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

    public async Task<SlackPosted> PostMessageAsync(SlackMessage message, CancellationToken cancellationToken) =>
        Posted(await CallAsync<SlackResponse>(SlackMethods.PostMessage, JsonContent.Create(message, options: Json), cancellationToken));

    public async Task<SlackPosted> UpdateAsync(string channel, string ts, string text, IReadOnlyList<object>? blocks, CancellationToken cancellationToken) =>
        Posted(await CallAsync<SlackResponse>(
            SlackMethods.Update, JsonContent.Create(new UpdateRequest(channel, ts, text, blocks), options: Json), cancellationToken));

    /// <summary>A message only <paramref name="user"/> sees; Slack answers with message_ts rather than ts.</summary>
    public async Task PostEphemeralAsync(string channel, string user, string text, string? threadTs, CancellationToken cancellationToken) =>
        await CallAsync<SlackResponse>(
            SlackMethods.PostEphemeral, JsonContent.Create(new EphemeralRequest(channel, user, text, threadTs), options: Json), cancellationToken);

    /// <summary>
    /// The channel's top-level messages posted since <paramref name="oldest"/>, newest first, with their metadata, one
    /// page of <paramref name="pageSize"/> after another. Needs the bot's <c>channels:history</c> (or
    /// <c>groups:history</c>) scope; thread replies are not among them.
    /// </summary>
    public IAsyncEnumerable<SlackHistoryMessage> HistoryAsync(string channel, DateTimeOffset oldest, int pageSize, CancellationToken cancellationToken) =>
        PagesAsync(SlackMethods.History, new Dictionary<string, string> { ["channel"] = channel }, oldest, pageSize, cancellationToken);

    /// <summary>
    /// The thread of the message <paramref name="threadTs"/>: that message first, then its replies posted since
    /// <paramref name="oldest"/>, oldest first, with their metadata, one page of <paramref name="pageSize"/> after another
    /// (https://docs.slack.dev/reference/methods/conversations.replies). A bot token may read a channel's threads with the
    /// same scopes as its history, <c>channels:history</c> (or <c>groups:history</c>), in a channel the bot is a member
    /// of (https://docs.slack.dev/reference/scopes/channels.history lists bot tokens and conversations.replies). Slack
    /// answers thread_not_found when <paramref name="threadTs"/> names no message (it was deleted).
    /// </summary>
    public IAsyncEnumerable<SlackHistoryMessage> RepliesAsync(
        string channel, string threadTs, DateTimeOffset oldest, int pageSize, CancellationToken cancellationToken) =>
        PagesAsync(SlackMethods.Replies, new Dictionary<string, string> { ["channel"] = channel, ["ts"] = threadTs }, oldest, pageSize, cancellationToken);

    /// <summary>
    /// The messages a conversations.* read method answers, asked for with form fields, page after page by Slack's cursor
    /// until it has no more.
    /// </summary>
    private async IAsyncEnumerable<SlackHistoryMessage> PagesAsync(
        string method, Dictionary<string, string> fields, DateTimeOffset oldest, int pageSize, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        fields["oldest"] = SlackTs(oldest);
        fields["limit"] = pageSize.ToString(CultureInfo.InvariantCulture);
        fields["include_all_metadata"] = "true";
        string? cursor = null;
        do
        {
            if (cursor is not null)
            {
                fields["cursor"] = cursor;
            }

            var page = await CallAsync<HistoryResponse>(method, new FormUrlEncodedContent(fields), cancellationToken);
            foreach (var message in page.Messages ?? [])
            {
                if (message.Ts is not null)
                {
                    yield return new SlackHistoryMessage(message.Ts, message.Metadata?.EventType, message.Metadata?.EventPayload ?? default);
                }
            }

            cursor = page.HasMore ? page.ResponseMetadata?.NextCursor : null;
        }
        while (!string.IsNullOrEmpty(cursor));
    }

    /// <summary>A time as Slack writes a ts: unix seconds with six decimals.</summary>
    public static string SlackTs(DateTimeOffset time) =>
        (time.ToUnixTimeMilliseconds() / 1000m).ToString("0.000000", CultureInfo.InvariantCulture);

    private static SlackPosted Posted(SlackResponse answer) => new(answer.Channel ?? "", answer.Ts ?? answer.MessageTs ?? "");

    private async Task<TResponse> CallAsync<TResponse>(string method, HttpContent content, CancellationToken cancellationToken)
        where TResponse : SlackAnswer
    {
        var slack = options.CurrentValue.Slack;
        if (string.IsNullOrWhiteSpace(slack.BotToken))
        {
            throw new InvalidOperationException("no Slack bot token is configured (RolloutGate__Slack__BotToken)");
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, Urls.Under(new Uri(slack.ApiBaseUrl, UriKind.Absolute), method))
        {
            Content = content,
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
            throw new SlackUnavailableException($"Slack {method} failed: {ex.Message}", ex, !SlackResilience.NeverSent(ex));
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

            TResponse? answer;
            try
            {
                answer = await response.Content.ReadFromJsonAsync<TResponse>(Json, cancellationToken);
            }
            catch (JsonException ex)
            {
                throw new SlackUnavailableException($"Slack {method} answered {(int)response.StatusCode} without a JSON body", ex);
            }

            if (answer is { Ok: false, Error: RateLimited })
            {
                // Slack's error code for a rate limit, which it sends with its 429: a wait, whatever the status said.
                throw new SlackRateLimitedException(method, RetryAfter(response) ?? SlackResilience.DefaultRetryAfter);
            }

            if (answer is not { Ok: true })
            {
                throw new SlackApiException(method, answer?.Error ?? "no_error_code");
            }

            return answer;
        }
    }

    /// <summary>The error code of a call Slack rate-limited (https://docs.slack.dev/apis/web-api/rate-limits).</summary>
    private const string RateLimited = "ratelimited";

    private static TimeSpan? RetryAfter(HttpResponseMessage response) =>
        response.Headers.RetryAfter switch
        {
            { Delta: { } delta } => delta < SlackResilience.MinRetryAfter ? SlackResilience.MinRetryAfter : delta,
            _ => null,
        };

    private sealed record UpdateRequest(string Channel, string Ts, string Text, IReadOnlyList<object>? Blocks);

    private sealed record EphemeralRequest(string Channel, string User, string Text, string? ThreadTs);

    /// <summary>What every Web API answer has.</summary>
    private abstract record SlackAnswer(bool Ok, string? Error);

    private sealed record SlackResponse(bool Ok, string? Error, string? Channel, string? Ts, string? MessageTs) : SlackAnswer(Ok, Error);

    private sealed record HistoryResponse(bool Ok, string? Error, IReadOnlyList<HistoryMessage>? Messages, bool HasMore, HistoryCursor? ResponseMetadata)
        : SlackAnswer(Ok, Error);

    private sealed record HistoryMessage(string? Ts, HistoryMetadata? Metadata);

    private sealed record HistoryMetadata(string? EventType, JsonElement EventPayload);

    private sealed record HistoryCursor(string? NextCursor);
}

/// <summary>The Web API method names, as they appear in the URL path.</summary>
public static class SlackMethods
{
    public const string PostMessage = "chat.postMessage";
    public const string Update = "chat.update";
    public const string PostEphemeral = "chat.postEphemeral";
    public const string History = "conversations.history";
    public const string Replies = "conversations.replies";

    /// <summary>Methods that Slack carries out again when they are sent again: a new message each time.</summary>
    public static bool Posts(string method) => method is PostMessage or PostEphemeral;
}
