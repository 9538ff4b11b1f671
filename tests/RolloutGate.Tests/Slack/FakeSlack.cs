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
/// Slack documents it (POST, /api/{method}, Bearer bot token, JSON with charset, required arguments, a ts it issued
/// for chat.update and thread_ts) and answers like Slack ({ok, channel, ts}). Tests can script failures.
/// </summary>
public sealed class FakeSlack : IAsyncDisposable
{
    public const string BotToken = "xoxb-test-bot-token";

    private readonly WebApplication app;
    private readonly ConcurrentQueue<Func<HttpContext, Task<bool>>> scripted = new();
    private readonly ConcurrentDictionary<string, string> messages = new();
    private long sequence;

    private FakeSlack(WebApplication app) => this.app = app;

    public string ApiBaseUrl { get; private set; } = "";

    public ConcurrentQueue<SlackCall> Calls { get; } = new();

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
    public string? MessageText(string ts) => messages.TryGetValue(ts, out var text) ? text : null;

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

    public void FailNext(string error) => scripted.Enqueue(async context =>
    {
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
        if (request.Headers.Authorization.ToString() != $"Bearer {BotToken}")
        {
            Violations.Enqueue($"{method}: Authorization is '{request.Headers.Authorization}'");
            await context.Response.WriteAsJsonAsync(new { ok = false, error = "not_authed" });
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

        if (held is { } hold)
        {
            await hold.Task.WaitAsync(context.RequestAborted);
        }

        if (Down)
        {
            Calls.Enqueue(new SlackCall(method, body, 503, null));
            context.Response.StatusCode = 503;
            return;
        }

        if (scripted.TryDequeue(out var answer))
        {
            Calls.Enqueue(new SlackCall(method, body, 0, null));
            await answer(context);
            return;
        }

        var error = Check(method, body);
        if (error is not null)
        {
            Violations.Enqueue($"{method}: {error} in {body}");
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
                messages[ts] = text;
                break;
            case "chat.postEphemeral":
                ts = NextTs();
                Calls.Enqueue(new SlackCall(method, body, 200, ts));
                await context.Response.WriteAsJsonAsync(new { ok = true, message_ts = ts });
                return;
            default:
                ts = NextTs();
                messages[ts] = text;
                Interlocked.Exchange(ref afterPost, null)?.Invoke();
                break;
        }

        Calls.Enqueue(new SlackCall(method, body, 200, ts));
        await context.Response.WriteAsJsonAsync(new { ok = true, channel, ts, message = new { text } });
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

        if (hasBlocks)
        {
            foreach (var block in blocks.EnumerateArray())
            {
                if (!block.TryGetProperty("type", out _))
                {
                    return "invalid_blocks";
                }
            }
        }

        switch (method)
        {
            case "chat.postMessage":
                if (body.TryGetProperty("thread_ts", out var thread) && !messages.ContainsKey(thread.GetString() ?? ""))
                {
                    return "thread_not_found";
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

    private string NextTs()
    {
        var n = Interlocked.Increment(ref sequence);
        return string.Create(CultureInfo.InvariantCulture, $"1700000000.{n:D6}");
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}
