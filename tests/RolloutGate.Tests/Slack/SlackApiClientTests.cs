using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Infrastructure;
using RolloutGate.Slack;

namespace RolloutGate.Tests.Slack;

public sealed class SlackApiClientTests : IAsyncLifetime
{
    private FakeSlack slack = null!;
    private ServiceProvider services = null!;

    private SlackApiClient Client => services.GetRequiredService<SlackApiClient>();

    public async Task InitializeAsync()
    {
        slack = await FakeSlack.StartAsync();
        services = Services(slack.ApiBaseUrl);
    }

    /// <summary>The Slack services as the host registers them, calling <paramref name="apiBaseUrl"/> with the fake's bot token.</summary>
    private static ServiceProvider Services(string apiBaseUrl)
    {
        var collection = new ServiceCollection();
        collection.AddLogging();
        collection.AddSingleton(TimeProvider.System);
        collection.AddOptions<RolloutGateOptions>().Configure(options =>
        {
            options.Slack.ApiBaseUrl = apiBaseUrl;
            options.Slack.BotToken = FakeSlack.BotToken;
        });
        collection.AddSlack();
        return collection.BuildServiceProvider();
    }

    public async Task DisposeAsync()
    {
        await services.DisposeAsync();
        await slack.DisposeAsync();
    }

    [Fact]
    public async Task PostMessage_ThenUpdateAndReply_SlackSeesDocumentedRequests()
    {
        var blocks = new object[]
        {
            new SectionBlock(SlackText.Markdown("*checkout* 2.4.0")),
            new ActionsBlock("decide", [new ButtonElement("rollback", SlackText.Plain("Roll back"), "gh-1", "danger")]),
        };
        var root = await Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "checkout 2.4.0", blocks), CancellationToken.None);
        await Client.UpdateAsync(root.Channel, root.Ts, "checkout 2.4.0 regressed", null, CancellationToken.None);
        var reply = await Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "p95 went up", ThreadTs: root.Ts), CancellationToken.None);

        Assert.Empty(slack.Violations);
        Assert.Equal("C0DECIDE01", root.Channel);
        Assert.NotEqual(root.Ts, reply.Ts);
        Assert.Equal("checkout 2.4.0 regressed", slack.MessageText(root.Ts));
        var posted = slack.Delivered(SlackMethods.PostMessage)[0].Body;
        Assert.Equal("rollback", posted.GetProperty("blocks")[1].GetProperty("elements")[0].GetProperty("action_id").GetString());
        Assert.Equal("gh-1", posted.GetProperty("blocks")[1].GetProperty("elements")[0].GetProperty("value").GetString());
        Assert.Equal(root.Ts, slack.Delivered(SlackMethods.PostMessage)[1].Body.GetProperty("thread_ts").GetString());
    }

    [Theory]
    [InlineData("?team=T0TEST")]
    [InlineData("/?team=T0TEST")]
    public async Task ApiBaseUrlWithAQuery_EachCallGoesToItsMethodUnderTheBase_KeepingTheQuery(string query)
    {
        await using var withQuery = Services(slack.ApiBaseUrl + query);
        var client = withQuery.GetRequiredService<SlackApiClient>();

        var root = await client.PostMessageAsync(new SlackMessage("C0DECIDE01", "checkout 2.4.0"), CancellationToken.None);
        await client.UpdateAsync(root.Channel, root.Ts, "checkout 2.4.0 regressed", null, CancellationToken.None);

        Assert.Empty(slack.Violations);
        Assert.Equal(["/api/chat.postMessage?team=T0TEST", "/api/chat.update?team=T0TEST"], slack.Targets.ToArray());
    }

    [Fact]
    public async Task PostMessage_SlackAnswersOkFalse_ThrowsWithSlacksErrorCode()
    {
        slack.FailNext("channel_not_found");
        var error = await Assert.ThrowsAsync<SlackApiException>(() =>
            Client.PostMessageAsync(new SlackMessage("C0NOPE", "hello"), CancellationToken.None));
        Assert.Equal("channel_not_found", error.Error);
    }

    [Fact]
    public async Task PostMessage_ShortRetryAfter_WaitsThenSucceeds()
    {
        slack.AnswerNext(429, retryAfterSeconds: "1");
        var clock = Stopwatch.StartNew();
        var posted = await Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "hello"), CancellationToken.None);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.9), $"retried after {clock.Elapsed}");
        Assert.NotEmpty(posted.Ts);
        Assert.Equal(2, slack.Calls.Count);
    }

    [Fact]
    public async Task PostMessage_LongRetryAfter_LeavesTheWaitToTheCaller()
    {
        slack.AnswerNext(429, retryAfterSeconds: "30");
        var limited = await Assert.ThrowsAsync<SlackRateLimitedException>(() =>
            Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "hello"), CancellationToken.None));
        Assert.Equal(TimeSpan.FromSeconds(30), limited.RetryAfter);
        Assert.Single(slack.Calls);
    }

    [Fact]
    public async Task Update_TransientServerErrors_RetriedUntilSlackAnswers()
    {
        var root = await Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "hello"), CancellationToken.None);
        slack.AnswerNext(503);
        slack.AnswerNext(502);
        var updated = await Client.UpdateAsync(root.Channel, root.Ts, "hello again", null, CancellationToken.None);
        Assert.Equal(root.Ts, updated.Ts);
        Assert.Equal(4, slack.Calls.Count);
        Assert.Equal("hello again", slack.MessageText(root.Ts));
    }

    [Fact]
    public async Task Update_SlackDown_ThrowsUnavailableAfterRetries()
    {
        var root = await Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "hello"), CancellationToken.None);
        slack.Down = true;
        await Assert.ThrowsAsync<SlackUnavailableException>(() =>
            Client.UpdateAsync(root.Channel, root.Ts, "hello again", null, CancellationToken.None));
        Assert.Equal(1 + 1 + SlackResilience.MaxRetryAttempts, slack.Calls.Count);
    }

    [Fact]
    public async Task PostMessage_ServerErrorAfterSlackPostedIt_IsNotRetriedAndMayHaveArrived()
    {
        // Slack posted the message, then its answer was a 500: sending it again would post it twice.
        slack.LoseNextAnswer(500);
        var unavailable = await Assert.ThrowsAsync<SlackUnavailableException>(() =>
            Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "hello"), CancellationToken.None));

        Assert.True(unavailable.MayHaveArrived);
        Assert.Single(slack.Calls);
        Assert.Single(slack.RootMessages("C0DECIDE01"));
    }

    [Fact]
    public async Task PostMessage_NoConnection_RetriedAndCertainlyNotPosted()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var closedPort = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var options = services.GetRequiredService<Microsoft.Extensions.Options.IOptionsMonitor<RolloutGateOptions>>().CurrentValue;
        options.Slack.ApiBaseUrl = $"http://127.0.0.1:{closedPort}/api";

        var stopwatch = Stopwatch.StartNew();
        var unavailable = await Assert.ThrowsAsync<SlackUnavailableException>(() =>
            Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "hello"), CancellationToken.None));

        Assert.False(unavailable.MayHaveArrived);
        // Retried: the pipeline waited between attempts (300 ms, then about 600 and 1,200, with jitter).
        Assert.True(stopwatch.Elapsed > TimeSpan.FromMilliseconds(500), $"no retry wait: {stopwatch.Elapsed}");
    }

    [Fact]
    public async Task History_PagesThroughTheChannelNewestFirstWithMetadata()
    {
        var marker = SlackOutboxDispatcher.Marker(42, "gh-1");
        var since = DateTimeOffset.UtcNow.AddMinutes(-1);
        var posted = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            posted.Add((await Client.PostMessageAsync(
                new SlackMessage("C0DECIDE01", $"message {i}", Metadata: i == 1 ? marker : null), CancellationToken.None)).Ts);
        }

        await Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "a reply", ThreadTs: posted[0]), CancellationToken.None);
        await Client.PostMessageAsync(new SlackMessage("C0OTHER", "another channel"), CancellationToken.None);

        var history = new List<SlackHistoryMessage>();
        await foreach (var message in Client.HistoryAsync("C0DECIDE01", since, pageSize: 2, CancellationToken.None))
        {
            history.Add(message);
        }

        Assert.Equal(Enumerable.Reverse(posted), history.Select(m => m.Ts));
        Assert.Equal(posted[1], Assert.Single(history, m => m.Carries(marker)).Ts);
        Assert.False(history[0].Carries(SlackOutboxDispatcher.Marker(43, "gh-1")));
        Assert.Equal(3, slack.Calls.Count(c => c.Method == SlackMethods.History));
        Assert.Empty(slack.Violations);
    }

    [Fact]
    public async Task Replies_PagesThroughTheThreadRootFirstThenRepliesOldestFirstWithMetadata()
    {
        var marker = SlackOutboxDispatcher.Marker(42, "gh-1");
        var since = DateTimeOffset.UtcNow.AddMinutes(-1);
        var root = (await Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "the root"), CancellationToken.None)).Ts;
        var replies = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            replies.Add((await Client.PostMessageAsync(
                new SlackMessage("C0DECIDE01", $"reply {i}", ThreadTs: root, Metadata: i == 2 ? marker : null), CancellationToken.None)).Ts);
        }

        await Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "another message in the channel"), CancellationToken.None);
        var other = (await Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "another thread"), CancellationToken.None)).Ts;
        await Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "a reply in another thread", ThreadTs: other), CancellationToken.None);

        var thread = new List<SlackHistoryMessage>();
        await foreach (var message in Client.RepliesAsync("C0DECIDE01", root, since, pageSize: 2, CancellationToken.None))
        {
            thread.Add(message);
        }

        Assert.Equal([root, .. replies], thread.Select(m => m.Ts));
        Assert.Equal(replies[2], Assert.Single(thread, m => m.Carries(marker)).Ts);
        var calls = slack.Calls.Where(c => c.Method == SlackMethods.Replies).ToList();
        Assert.Equal(3, calls.Count);
        Assert.All(calls, c => Assert.Equal(root, c.Body.GetProperty("ts").GetString()));
        Assert.Empty(slack.Violations);
    }

    [Fact]
    public async Task Replies_OfAMessageThatIsGone_ThrowsThreadNotFound()
    {
        var root = (await Client.PostMessageAsync(new SlackMessage("C0DECIDE01", "the root"), CancellationToken.None)).Ts;
        slack.Delete(root);
        var error = await Assert.ThrowsAsync<SlackApiException>(async () =>
        {
            await foreach (var _ in Client.RepliesAsync("C0DECIDE01", root, DateTimeOffset.UtcNow.AddMinutes(-1), 200, CancellationToken.None))
            {
            }
        });
        Assert.Equal("thread_not_found", error.Error);
        Assert.Empty(slack.Violations);
    }

    [Fact]
    public async Task OkFalseRatelimited_IsARateLimitNotAnError()
    {
        // Slack's error code for a rate limit: a wait, not a refusal (a look-up refused falls back to posting again).
        slack.FailNext("ratelimited");
        var limited = await Assert.ThrowsAsync<SlackRateLimitedException>(async () =>
        {
            await foreach (var _ in Client.HistoryAsync("C0DECIDE01", DateTimeOffset.UtcNow.AddMinutes(-1), 200, CancellationToken.None))
            {
            }
        });
        Assert.Equal(SlackResilience.DefaultRetryAfter, limited.RetryAfter);
    }

    [Theory]
    [InlineData(200)]
    [InlineData(429)]
    public async Task RateLimit_WithARetryAfterOfZero_WaitsAtLeastASecond(int status)
    {
        // A wait of nothing had the outbox claim the row again at once; at 200 ("ratelimited") no breaker counts it.
        if (status == 200)
        {
            slack.FailNext("ratelimited", retryAfterSeconds: "0");
        }
        else
        {
            foreach (var _ in Enumerable.Range(0, 10))
            {
                slack.AnswerNext(429, retryAfterSeconds: "0");
            }
        }

        var limited = await Assert.ThrowsAsync<SlackRateLimitedException>(async () =>
        {
            await foreach (var _ in Client.HistoryAsync("C0DECIDE01", DateTimeOffset.UtcNow.AddMinutes(-1), 200, CancellationToken.None))
            {
            }
        });
        Assert.Equal(SlackResilience.MinRetryAfter, limited.RetryAfter);
    }
}
