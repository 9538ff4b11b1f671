using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace RolloutGate.Tests.Slack;

/// <summary>One call as the fake Slack Web API received it.</summary>
public sealed record SlackCall(string Method, JsonElement Body, int AnsweredStatus, string? Ts);

/// <summary>
/// A local stand-in for the Slack Web API (https://api.slack.com/methods) on 127.0.0.1: it checks every request the way
/// Slack documents it (POST, /api/{method}, Bearer bot token, JSON with charset for chat.*, form fields for
/// conversations.history and conversations.replies, required arguments, a ts it issued for chat.update, thread_ts and
/// conversations.replies, the shape of message metadata, Block Kit's limits and the text all blocks may hold together, a
/// text Slack would truncate) and answers like Slack ({ok, channel, ts}; history newest first,
/// a thread its root first and then its replies oldest first, both cursor-paginated, metadata only with
/// include_all_metadata). Tests can script failures.
/// </summary>
public sealed class FakeSlack : IAsyncDisposable
{
    public const string BotToken = "xoxb-test-bot-token";

    private readonly WebApplication app;
    private readonly ConcurrentQueue<Func<HttpContext, Task<bool>>> scripted = new();
    private readonly ConcurrentDictionary<string, StoredMessage> messages = new();
    private readonly ConcurrentDictionary<string, bool> deleted = new();
    private long sequence;

    private FakeSlack(WebApplication app) => this.app = app;

    public string ApiBaseUrl { get; private set; } = "";

    public ConcurrentQueue<SlackCall> Calls { get; } = new();

    /// <summary>Each Web API call's path and query as they arrived (a query comes from the configured ApiBaseUrl).</summary>
    public ConcurrentQueue<string> Targets { get; } = new();

    /// <summary>Every way a request departed from the documented API; a test expects none.</summary>
    public ConcurrentQueue<string> Violations { get; } = new();

    /// <summary>While set, every call is answered 503 (a Slack outage).</summary>
    public volatile bool Down;

    private volatile TaskCompletionSource? held;

    /// <summary>From now until <see cref="Release"/>, every call waits for an answer (a Slack that hangs).</summary>
    public void Hold() => held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Answers the calls held since <see cref="Hold"/>, and those that come after, as usual.</summary>
    public void Release() => Interlocked.Exchange(ref held, null)?.TrySetResult();

    private Action? afterPost;

    /// <summary>Runs once the next chat.postMessage has been posted, before Slack answers it.</summary>
    public void AfterNextPost(Action action) => afterPost = action;

    public IReadOnlyList<SlackCall> Delivered(string method) =>
        Calls.Where(c => c.Method == method && c.AnsweredStatus == 200 && c.Ts is not null).ToList();

    /// <summary>The text of a message as Slack holds it now (after edits).</summary>
    public string? MessageText(string ts) => messages.TryGetValue(ts, out var message) ? message.Text : null;

    /// <summary>The channel's top-level messages, oldest first, as Slack holds them now.</summary>
    public IReadOnlyList<string> RootMessages(string channel) =>
        messages.Values.Where(m => m.Channel == channel && m.ThreadTs is null).OrderBy(m => m.Ts, StringComparer.Ordinal).Select(m => m.Ts).ToList();

    /// <summary>The replies in the thread of <paramref name="threadTs"/>, oldest first, as Slack holds them now.</summary>
    public IReadOnlyList<string> Replies(string threadTs) =>
        messages.Values.Where(m => m.ThreadTs == threadTs).OrderBy(m => m.Ts, StringComparer.Ordinal).Select(m => m.Ts).ToList();

    /// <summary>The next chat.postMessage is posted, but answered with <paramref name="status"/>: its answer is lost.</summary>
    public void LoseNextAnswer(int status = 500) => scripted.Enqueue(async context =>
    {
        if (context.Request.RouteValues["method"] as string != "chat.postMessage")
        {
            return false;
        }

        var body = (await JsonDocument.ParseAsync(context.Request.Body)).RootElement.Clone();
        Store(body, NextTs());
        context.Response.StatusCode = status;
        return true;
    });

    /// <summary>
    /// Deletes a message, as a person may in Slack: chat.update of it then answers message_not_found and a reply to it
    /// thread_not_found, as Slack does, which is not counted as a violation.
    /// </summary>
    public void Delete(string ts)
    {
        deleted[ts] = true;
        messages.TryRemove(ts, out _);
    }

    /// <summary>Puts a message in a channel as if it had been posted earlier (by a replica that died before recording it).</summary>
    public string Seed(object message)
    {
        var ts = NextTs();
        Store(JsonSerializer.SerializeToElement(message, RolloutGate.Slack.SlackApiClient.Json), ts);
        return ts;
    }

    public void AnswerNext(int status, string? retryAfterSeconds = null) => scripted.Enqueue(async context =>
    {
        context.Response.StatusCode = status;
        if (retryAfterSeconds is not null)
        {
            context.Response.Headers.RetryAfter = retryAfterSeconds;
        }

        await context.Response.WriteAsync("");
        return true;
    });

    public void FailNext(string error, string? retryAfterSeconds = null) => scripted.Enqueue(async context =>
    {
        if (retryAfterSeconds is not null)
        {
            context.Response.Headers.RetryAfter = retryAfterSeconds;
        }

        await context.Response.WriteAsJsonAsync(new { ok = false, error });
        return true;
    });

    public static async Task<FakeSlack> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var fake = new FakeSlack(app);
        app.MapPost("/api/{method}", fake.HandleAsync);
        app.MapFallback(context =>
        {
            fake.Violations.Enqueue($"{context.Request.Method} {context.Request.Path}: not a Web API call");
            context.Response.StatusCode = 404;
            return Task.CompletedTask;
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        fake.ApiBaseUrl = address.TrimEnd('/') + "/api";
        return fake;
    }

    private async Task HandleAsync(string method, HttpContext context)
    {
        var request = context.Request;
        Targets.Enqueue($"{request.Path}{request.QueryString}");
        request.EnableBuffering();
        if (request.Headers.Authorization.ToString() != $"Bearer {BotToken}")
        {
            Violations.Enqueue($"{method}: Authorization is '{request.Headers.Authorization}'");
            await context.Response.WriteAsJsonAsync(new { ok = false, error = "not_authed" });
            return;
        }

        if (method is "conversations.history" or "conversations.replies")
        {
            await ReadAsync(method, context);
            return;
        }

        if (!string.Equals(request.ContentType, "application/json; charset=utf-8", StringComparison.OrdinalIgnoreCase))
        {
            Violations.Enqueue($"{method}: Content-Type is '{request.ContentType}'");
        }

        JsonElement body;
        try
        {
            body = (await JsonDocument.ParseAsync(request.Body)).RootElement.Clone();
        }
        catch (JsonException)
        {
            Violations.Enqueue($"{method}: body is not JSON");
            await context.Response.WriteAsJsonAsync(new { ok = false, error = "invalid_json" });
            return;
        }

        if (await AnsweredBeforehandAsync(method, body, context))
        {
            return;
        }

        // Slack posts a longer text cut at 40,000 characters, wherever that falls, answering a message_truncated warning
        // (https://api.slack.com/changelog/2018-04-truncating-really-long-messages): not what RolloutGate wrote.
        if (body.TryGetProperty("text", out var whole) && whole.GetString() is { Length: > 40_000 } truncated)
        {
            Violations.Enqueue($"{method}: text of {truncated.Length} characters, which Slack truncates at 40,000");
        }

        var error = Check(method, body);
        if (error is not null)
        {
            if (!new[] { "ts", "thread_ts" }.Any(name => body.TryGetProperty(name, out var ts) && deleted.ContainsKey(ts.GetString() ?? "")))
            {
                Violations.Enqueue($"{method}: {error} in {body}");
            }

            Calls.Enqueue(new SlackCall(method, body, 200, null));
            await context.Response.WriteAsJsonAsync(new { ok = false, error });
            return;
        }

        var channel = body.GetProperty("channel").GetString()!;
        var text = body.TryGetProperty("text", out var t) ? t.GetString() ?? "" : "";
        string ts;
        switch (method)
        {
            case "chat.update":
                ts = body.GetProperty("ts").GetString()!;
                messages[ts] = messages[ts] with { Text = text };
                break;
            case "chat.postEphemeral":
                ts = NextTs();
                Calls.Enqueue(new SlackCall(method, body, 200, ts));
                await context.Response.WriteAsJsonAsync(new { ok = true, message_ts = ts });
                return;
            default:
                ts = NextTs();
                Store(body, ts);
                Interlocked.Exchange(ref afterPost, null)?.Invoke();
                break;
        }

        Calls.Enqueue(new SlackCall(method, body, 200, ts));
        await context.Response.WriteAsJsonAsync(new { ok = true, channel, ts, message = new { text } });
    }

    /// <summary>
    /// What comes before Slack's own answer: a hold (<see cref="Hold"/>), an outage (<see cref="Down"/>) or a scripted
    /// answer; true when the call has been answered by one of them.
    /// </summary>
    private async Task<bool> AnsweredBeforehandAsync(string method, JsonElement body, HttpContext context)
    {
        if (held is { } hold)
        {
            await hold.Task.WaitAsync(context.RequestAborted);
        }

        if (Down)
        {
            Calls.Enqueue(new SlackCall(method, body, 503, null));
            context.Response.StatusCode = 503;
            return true;
        }

        return await ScriptedAsync(method, body, context);
    }

    /// <summary>A scripted answer, if one is queued for this call; the body is read again by the script if it needs it.</summary>
    private async Task<bool> ScriptedAsync(string method, JsonElement body, HttpContext context)
    {
        if (!scripted.TryPeek(out var answer))
        {
            return false;
        }

        context.Request.Body.Position = 0;
        if (!await answer(context))
        {
            return false;
        }

        scripted.TryDequeue(out _);
        Calls.Enqueue(new SlackCall(method, body, 0, null));
        return true;
    }

    private void Store(JsonElement body, string ts) =>
        messages[ts] = new StoredMessage(
            body.GetProperty("channel").GetString()!,
            ts,
            body.TryGetProperty("text", out var text) ? text.GetString() ?? "" : "",
            body.TryGetProperty("thread_ts", out var thread) ? thread.GetString() : null,
            body.TryGetProperty("metadata", out var metadata) ? metadata.Clone() : null);

    /// <summary>
    /// conversations.history (https://docs.slack.dev/reference/methods/conversations.history) and conversations.replies
    /// (https://docs.slack.dev/reference/methods/conversations.replies): form fields, not JSON; channel required, and ts
    /// for replies, the ts of a message in that channel (thread_not_found otherwise, as for a deleted one). History: the
    /// top-level messages newer than oldest, newest first. Replies: the thread's root message first, whatever oldest,
    /// then its replies newer than oldest, oldest first. At most limit a page, with response_metadata.next_cursor while
    /// has_more; metadata only with include_all_metadata.
    /// </summary>
    private async Task ReadAsync(string method, HttpContext context)
    {
        if (!context.Request.HasFormContentType)
        {
            Violations.Enqueue($"{method}: Content-Type is '{context.Request.ContentType}', not form fields");
            await context.Response.WriteAsJsonAsync(new { ok = false, error = "invalid_arguments" });
            return;
        }

        var form = await context.Request.ReadFormAsync();
        var body = JsonSerializer.SerializeToElement(form.ToDictionary(f => f.Key, f => f.Value.ToString()));
        if (await AnsweredBeforehandAsync(method, body, context))
        {
            return;
        }

        Calls.Enqueue(new SlackCall(method, body, 200, null));
        var channel = form["channel"].ToString();
        if (channel.Length == 0)
        {
            Violations.Enqueue($"{method}: no channel");
            await context.Response.WriteAsJsonAsync(new { ok = false, error = "channel_not_found" });
            return;
        }

        var oldest = decimal.Parse(form["oldest"].ToString() is { Length: > 0 } o ? o : "0", CultureInfo.InvariantCulture);
        var limit = int.Parse(form["limit"].ToString() is { Length: > 0 } l ? l : "100", CultureInfo.InvariantCulture);
        var offset = form["cursor"].ToString() is { Length: > 0 } cursor ? int.Parse(cursor[7..], CultureInfo.InvariantCulture) : 0;
        var withMetadata = form["include_all_metadata"].ToString() is "true" or "1";
        bool Newer(StoredMessage m) => decimal.Parse(m.Ts, CultureInfo.InvariantCulture) > oldest;
        List<StoredMessage> all;
        if (method == "conversations.history")
        {
            all = messages.Values.Where(m => m.Channel == channel && m.ThreadTs is null && Newer(m))
                .OrderByDescending(m => m.Ts, StringComparer.Ordinal).ToList();
        }
        else
        {
            var ts = form["ts"].ToString();
            if (!messages.TryGetValue(ts, out var named) || named.Channel != channel
                || !messages.TryGetValue(named.ThreadTs ?? named.Ts, out var root))
            {
                if (!deleted.ContainsKey(ts))
                {
                    Violations.Enqueue($"{method}: ts '{ts}' is no message of {channel}");
                }

                await context.Response.WriteAsJsonAsync(new { ok = false, error = "thread_not_found" });
                return;
            }

            all = [root, .. messages.Values.Where(m => m.Channel == channel && m.ThreadTs == root.Ts && Newer(m))
                .OrderBy(m => m.Ts, StringComparer.Ordinal)];
        }

        var page = all.Skip(offset).Take(limit).Select(m =>
        {
            var message = new Dictionary<string, object> { ["type"] = "message", ["ts"] = m.Ts, ["text"] = m.Text };
            // A reply names its thread, and so does a message that has replies (the thread's parent).
            if ((m.ThreadTs ?? (messages.Values.Any(r => r.ThreadTs == m.Ts) ? m.Ts : null)) is { } thread)
            {
                message["thread_ts"] = thread;
            }

            if (withMetadata && m.Metadata is { } metadata)
            {
                message["metadata"] = metadata;
            }

            return message;
        }).ToList();
        var hasMore = offset + limit < all.Count;
        await context.Response.WriteAsJsonAsync(new
        {
            ok = true,
            messages = page,
            has_more = hasMore,
            response_metadata = new { next_cursor = hasMore ? $"offset:{offset + limit}" : "" },
        });
    }

    /// <summary>The documented required arguments of each method; null when the call is well-formed.</summary>
    private string? Check(string method, JsonElement body)
    {
        if (!body.TryGetProperty("channel", out var channel) || channel.GetString() is not { Length: > 0 })
        {
            return "channel_not_found";
        }

        var hasText = body.TryGetProperty("text", out var text) && text.GetString() is { Length: > 0 };
        var hasBlocks = body.TryGetProperty("blocks", out var blocks) && blocks.ValueKind == JsonValueKind.Array;
        if (!hasText && !hasBlocks)
        {
            return "no_text";
        }

        if (hasBlocks && !WithinBlockKitLimits(blocks))
        {
            return "invalid_blocks";
        }

        if (hasBlocks && TextIn(blocks) > MessageBlocksText)
        {
            return "msg_blocks_too_long";
        }

        switch (method)
        {
            case "chat.postMessage":
                if (body.TryGetProperty("thread_ts", out var thread) && !messages.ContainsKey(thread.GetString() ?? ""))
                {
                    return "thread_not_found";
                }

                if (body.TryGetProperty("metadata", out var metadata)
                    && !(metadata.ValueKind == JsonValueKind.Object
                         && metadata.TryGetProperty("event_type", out var eventType) && eventType.GetString() is { Length: > 0 }
                         && metadata.TryGetProperty("event_payload", out var payload) && payload.ValueKind == JsonValueKind.Object))
                {
                    return "invalid_metadata_format";
                }

                return null;
            case "chat.update":
                return body.TryGetProperty("ts", out var ts) && messages.ContainsKey(ts.GetString() ?? "") ? null : "message_not_found";
            case "chat.postEphemeral":
                return body.TryGetProperty("user", out var user) && user.GetString() is { Length: > 0 } ? null : "user_not_in_channel";
            default:
                return "unknown_method";
        }
    }

    /// <summary>
    /// Block Kit's documented limits, past any of which Slack answers invalid_blocks and posts nothing: at most 50 blocks
    /// (https://docs.slack.dev/reference/block-kit/blocks), block_id at most 255 characters; a section's text 1 to 3,000
    /// characters and at most 10 fields of at most 2,000 (…/blocks/section-block); a context at most 10 elements
    /// (…/blocks/context-block); a header's text at most 150 (…/blocks/header-block); actions at most 25 elements
    /// (…/blocks/actions-block); a button's text at most 75, its value at most 2,000, its action_id at most 255
    /// (…/block-elements/button-element).
    /// </summary>
    private static bool WithinBlockKitLimits(JsonElement blocks)
    {
        static int Length(JsonElement element, string name) =>
            element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()!.Length : 0;
        static int TextLength(JsonElement element) =>
            element.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.Object ? Length(text, "text") : 0;
        static int Count(JsonElement element, string name) =>
            element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Array ? value.GetArrayLength() : 0;

        if (blocks.GetArrayLength() > 50)
        {
            return false;
        }

        foreach (var block in blocks.EnumerateArray())
        {
            if (!block.TryGetProperty("type", out var type) || Length(block, "block_id") > 255)
            {
                return false;
            }

            var fits = type.GetString() switch
            {
                "section" => (block.TryGetProperty("text", out _) ? TextLength(block) is >= 1 and <= 3000 : Count(block, "fields") > 0)
                    && Count(block, "fields") <= 10
                    && (!block.TryGetProperty("fields", out var fields) || fields.EnumerateArray().All(field => Length(field, "text") <= 2000)),
                "context" => Count(block, "elements") is >= 1 and <= 10,
                "header" => TextLength(block) is >= 1 and <= 150,
                "actions" => Count(block, "elements") is >= 1 and <= 25
                    && block.GetProperty("elements").EnumerateArray().All(element =>
                        TextLength(element) <= 75 && Length(element, "value") <= 2000 && Length(element, "action_id") <= 255),
                _ => true,
            };
            if (!fits)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// The text all blocks of a message may hold together. Not documented: Slack answers msg_blocks_too_long past about
    /// 13,200 characters, each block within its own limits (https://github.com/slackapi/bolt-js/issues/2509: 13,297 in
    /// markdown blocks, 13,172 with a divider beside them); the fake refuses a little earlier.
    /// </summary>
    private const int MessageBlocksText = 13_000;

    /// <summary>The characters of every text in <paramref name="element"/> and the elements it holds.</summary>
    private static int TextIn(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Array => element.EnumerateArray().Sum(TextIn),
        JsonValueKind.Object => element.EnumerateObject().Sum(property =>
            property.Name == "text" && property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString()!.Length : TextIn(property.Value)),
        _ => 0,
    };

    private sealed record StoredMessage(string Channel, string Ts, string Text, string? ThreadTs, JsonElement? Metadata);

    /// <summary>Like Slack's: the time of posting in unix seconds with six decimals, unique and increasing.</summary>
    private string NextTs()
    {
        var micros = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000;
        long last, next;
        do
        {
            last = Interlocked.Read(ref sequence);
            next = Math.Max(micros, last + 1);
        }
        while (Interlocked.CompareExchange(ref sequence, next, last) != last);

        return string.Create(CultureInfo.InvariantCulture, $"{next / 1_000_000}.{next % 1_000_000:D6}");
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}
