using System.Net;
using RolloutGate.Core.Runbooks;
using RolloutGate.Decisions;
using RolloutGate.Inbox;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Slack;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Slack;

public sealed class DecisionInboxTests
{
    /// <summary>
    /// Changes recorded under a runbook version an older RolloutGate accepted and this one refuses (see
    /// WebhookProcessingTests.RunbookVersionRecordedByAnOlderVersionThatNoLongerParses_...): the inbox, where a person decides
    /// such a regressed change, answered 500 for everyone, as did the dashboard page of either change. They are shown, and
    /// say that no time-out applies (its approvalTimeout and onTimeout cannot be read) or why the watch does not run.
    /// </summary>
    [Fact]
    public async Task InboxAndDashboard_WithChangesWhoseStoredRunbookNoLongerParses_ShowThemAndSayWhatCannotBeRead_NotA500()
    {
        await using var test = await SlackTestService.StartAsync(withBotToken: false);
        await test.WatchAsync("gh-inbox-old");
        await test.RegressThroughWatchAsync("gh-inbox-old", SlackTestService.P95Regressed);
        await test.WatchAsync("gh-inbox-old-watching");
        await test.Service.RetireCheckoutV1Async();
        await test.WatchAsync("gh-inbox-new");
        await test.RegressThroughWatchAsync("gh-inbox-new", SlackTestService.P95Regressed);
        const string NoTimeout = "<strong>RolloutGate recommends a rollback.</strong> No time-out applies: stored runbook version checkout v1 no longer parses";

        using var reader = test.Service.Host.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { HandleCookies = true });
        var inbox = await reader.GetAsync(new Uri($"/inbox?token={RolloutGateHost.ReaderToken}", UriKind.Relative));
        var regressed = await reader.GetAsync(new Uri("/dashboard/deployments/gh-inbox-old", UriKind.Relative));
        var watching = await reader.GetAsync(new Uri("/dashboard/deployments/gh-inbox-old-watching", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, inbox.StatusCode);
        var html = await inbox.Content.ReadAsStringAsync();
        Assert.Contains("2 deployment(s) wait for a decision.", html, StringComparison.Ordinal);
        Assert.Contains("action=\"/inbox/gh-inbox-old/decide\"", html, StringComparison.Ordinal);
        Assert.Contains("action=\"/inbox/gh-inbox-new/decide\"", html, StringComparison.Ordinal);
        Assert.Contains(NoTimeout, html, StringComparison.Ordinal);
        Assert.Contains("nothing happens until someone decides", html, StringComparison.Ordinal);
        Assert.Contains("If nobody decides by <time", html, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, regressed.StatusCode);
        Assert.Contains(NoTimeout, await regressed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, watching.StatusCode);
        Assert.Contains("class=\"state s-watching\">watching</td>", await watching.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoBotToken_MessagesGoToTheLogAndTheInboxListsARegressedDeploymentWhoseButtonsWork()
    {
        await using var test = await SlackTestService.StartAsync(withBotToken: false);
        (await test.Service.Webhooks.SendEventAsync("predeploy", "gh-inbox-2")).EnsureSuccessStatusCode();
        (await test.Service.Webhooks.SendEventAsync("cancelled", "gh-inbox-2")).EnsureSuccessStatusCode();
        await test.WatchAsync("gh-inbox-1");
        await test.RegressThroughWatchAsync("gh-inbox-1", SlackTestService.P95Regressed);
        await test.AllDeliveredAsync();

        Assert.Empty(test.Slack.Calls);
        // One line a message; those with evidence end with the link to the deployment.
        const string Link = "<https://rolloutgate.example/api/v1/deployments/gh-inbox-1|gh-inbox-1>";
        Assert.Contains(test.Service.Host.Logs.Lines, line => line.Contains(
            $"Decision inbox (slack.reply) for deployment gh-inbox-1 to C0DECIDE01: checkout 2.4.0: a verdict changed · {Link}", StringComparison.Ordinal));
        Assert.Contains(test.Service.Host.Logs.Lines, line => line.Contains(
            $"Decision inbox (slack.reply) for deployment gh-inbox-1 to C0DECIDE01: checkout 2.4.0 regressed: roll back? · {Link}", StringComparison.Ordinal));

        using var browser = test.Service.Host.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { HandleCookies = true });
        var refused = await browser.GetAsync(new Uri("/inbox", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Contains("name=\"token\"", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var page = await browser.GetAsync(new Uri($"/inbox?token={RolloutGateHost.ReaderToken}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("/inbox", page.RequestMessage!.RequestUri!.AbsolutePath);
        Assert.Empty(page.RequestMessage.RequestUri.Query);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("1 deployment(s) wait for a decision.", html, StringComparison.Ordinal);
        Assert.Contains("gh-inbox-1", html, StringComparison.Ordinal);
        Assert.DoesNotContain("gh-inbox-2", html, StringComparison.Ordinal);
        Assert.Contains("<b>p95-latency</b>: 0.912 (baseline 0.64, threshold 0.768) regressed p95 rose 43% over the baseline", html, StringComparison.Ordinal);
        Assert.Contains("action=\"/inbox/gh-inbox-1/decide\"", html, StringComparison.Ordinal);
        foreach (var kind in new[] { "rollback", "dismiss", "stop" })
        {
            Assert.Contains($"name=\"kind\" value=\"{kind}\"", html, StringComparison.Ordinal);
        }

        // A form that cannot be read (a NUL in a value, multipart without a boundary) is a 400 page, not a 500.
        foreach (var unreadable in new HttpContent[]
        {
            new StringContent("operatorToken=%00", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded"),
            new StringContent("x", System.Text.Encoding.UTF8, "multipart/form-data"),
        })
        {
            var unread = await browser.PostAsync(new Uri("/inbox/gh-inbox-1/decide", UriKind.Relative), unreadable);
            Assert.Equal(HttpStatusCode.BadRequest, unread.StatusCode);
        }

        var wrongToken = await browser.PostAsync(new Uri("/inbox/gh-inbox-1/decide", UriKind.Relative), Form(RolloutGateHost.ReaderToken, "dismiss"));
        Assert.Equal(HttpStatusCode.Unauthorized, wrongToken.StatusCode);
        Assert.Equal("regressed", await test.StateAsync("gh-inbox-1"));

        var kept = await browser.PostAsync(new Uri("/inbox/gh-inbox-1/decide", UriKind.Relative), Form(RolloutGateHost.OperatorToken, "dismiss"));
        Assert.Equal(HttpStatusCode.OK, kept.StatusCode);
        Assert.Equal("/inbox?decided=gh-inbox-1", kept.RequestMessage!.RequestUri!.PathAndQuery);
        var afterwards = await kept.Content.ReadAsStringAsync();
        Assert.Contains("0 deployment(s) wait for a decision.", afterwards, StringComparison.Ordinal);
        Assert.Contains("<a href=\"/dashboard/deployments/gh-inbox-1\">gh-inbox-1</a> is now <b>kept</b> (dismiss by carol)", afterwards, StringComparison.Ordinal);

        // The landing line reports a decision on record, not whatever a typed link names.
        await test.WatchAsync("gh-inbox-3");
        foreach (var typed in new[] { "gh-inbox-3", "gh-inbox-2", "no-such-deployment" })
        {
            var landing = await browser.GetStringAsync(new Uri($"/inbox?decided={typed}", UriKind.Relative));
            Assert.DoesNotContain("class=\"decided\"", landing, StringComparison.Ordinal);
        }

        Assert.Equal("kept", await test.StateAsync("gh-inbox-1"));
        Assert.Equal(1, await test.Service.CountAsync("decisions", "deployment_id = 'gh-inbox-1' AND kind = 'dismiss' AND actor = 'carol'"));

        var again = await browser.PostAsync(new Uri("/inbox/gh-inbox-1/decide", UriKind.Relative), Form(RolloutGateHost.OperatorToken, "rollback"));
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        Assert.Equal("kept", await test.StateAsync("gh-inbox-1"));
    }

    [Fact]
    public async Task Decide_AFormLargerThanTheInboxsOwn_IsRefusedBeforeItIsRead()
    {
        // Anyone may post to /inbox/{id}/decide, and the form is read before its operator token can be checked.
        await using var test = await SlackTestService.StartAsync(withBotToken: false);
        await test.WatchAsync("gh-inbox-big-1");
        await test.RegressAsync("gh-inbox-big-1");
        using var browser = test.Service.Host.CreateClient();
        var padding = new string('x', 100_000);
        string Body(string token) => $"operatorToken={token}&kind=dismiss&actor=carol&reason={padding}";

        var large = await browser.PostAsync(new Uri("/inbox/gh-inbox-big-1/decide", UriKind.Relative),
            new StringContent(Body("wrong"), System.Text.Encoding.UTF8, "application/x-www-form-urlencoded"));
        var chunked = new StreamContent(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(Body(RolloutGateHost.OperatorToken))));
        chunked.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-www-form-urlencoded");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/inbox/gh-inbox-big-1/decide", UriKind.Relative)) { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        var unsized = await browser.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, large.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, unsized.StatusCode);
        Assert.Equal("regressed", await test.StateAsync("gh-inbox-big-1"));
        Assert.Equal(0, await test.Service.CountAsync("decisions"));
    }

    [Fact]
    public async Task NoBotToken_AReasonWithLineBreaks_StaysOneLogLineAndForgesNone()
    {
        await using var test = await SlackTestService.StartAsync(withBotToken: false);
        await test.WatchAsync("gh-inbox-lines-1");
        const string Forged = "Decision inbox (slack.reply) for deployment gh-inbox-lines-1 to C0DECIDE01: carol decided *rollback*";
        var body = System.Text.Json.JsonSerializer.Serialize(new { actor = "mallory", reason = $"checked\n{Forged}\r\n\u2028x" });
        (await test.Service.Operator().PostAsync(new Uri("/api/v1/deployments/gh-inbox-lines-1/stop", UriKind.Relative),
            new StringContent(body, System.Text.Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
        await test.AllDeliveredAsync();

        var decision = Assert.Single(test.Service.Host.Logs.Lines, line => line.Contains("mallory decided", StringComparison.Ordinal));
        Assert.Contains($"mallory decided *stop* (via http): checked\\n{Forged}\\r\\n\\u2028x", decision, StringComparison.Ordinal);
        Assert.False(decision.Any(LogText.Breaks), decision);
        Assert.DoesNotContain(test.Service.Host.Logs.Lines, line => line.Contains("carol", StringComparison.Ordinal) && !line.Contains("mallory", StringComparison.Ordinal));
    }

    [Fact]
    public async Task MoreWaitingThanAPageHolds_ThePagesShowEachOnceLongestWaitingFirst()
    {
        // Failed rollbacks wait until someone acts, so they can pile up: the inbox listed every one on one page.
        await using var test = await SlackTestService.StartAsync(withBotToken: false);
        await test.WatchAsync("gh-many-000");
        await test.RegressAsync("gh-many-000");
        // A hundred more like it, each regressed a millisecond after the one before.
        await test.Service.Database.ExecuteAsync("""
            INSERT INTO deployments
            SELECT (jsonb_populate_record(d, jsonb_build_object(
                'id', 'gh-many-' || lpad(n::text, 3, '0'), 'updated_at', d.updated_at + make_interval(secs => n / 1000.0)))).*
            FROM deployments d, generate_series(1, 100) AS n WHERE d.id = 'gh-many-000'
            """);
        var reader = test.Service.Reader();

        var first = await reader.GetStringAsync(new Uri($"/inbox?token={RolloutGateHost.ReaderToken}", UriKind.Relative));

        Assert.Contains($"101 deployment(s) wait for a decision. Shown: {InboxEndpoints.PageSize} on this page", first, StringComparison.Ordinal);
        var shown = System.Text.RegularExpressions.Regex.Matches(first, "<small>(gh-many-\\d+)</small>").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(Enumerable.Range(0, InboxEndpoints.PageSize).Select(n => $"gh-many-{n:000}"), shown);
        var more = System.Text.RegularExpressions.Regex.Match(first, "<a class=\"later\" rel=\"next\" href=\"([^\"]+)\">").Groups[1].Value;
        var second = await reader.GetStringAsync(new Uri(System.Net.WebUtility.HtmlDecode(more), UriKind.Relative));
        Assert.Equal(["gh-many-100"], System.Text.RegularExpressions.Regex.Matches(second, "<small>(gh-many-\\d+)</small>").Select(m => m.Groups[1].Value));
        Assert.Contains("href=\"/inbox\">← Longest waiting</a>", second, StringComparison.Ordinal);
        Assert.DoesNotContain("class=\"later\"", second, StringComparison.Ordinal);

        var garbage = await reader.GetAsync(new Uri("/inbox?after=yesterday", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, garbage.StatusCode);
    }

    [Fact]
    public async Task TwoMetricsRegressedAtOnce_TheInboxShowsBoth()
    {
        await using var test = await SlackTestService.StartAsync(withBotToken: false);
        await test.WatchAsync("gh-inbox-both");
        await test.RegressThroughWatchAsync("gh-inbox-both", SlackTestService.P95Regressed, SlackTestService.ErrorRateRegressed);

        var html = await test.Service.Reader().GetStringAsync(new Uri($"/inbox?token={RolloutGateHost.ReaderToken}", UriKind.Relative));

        Assert.Contains("<b>p95-latency</b>: 0.912 (baseline 0.64, threshold 0.768) regressed", html, StringComparison.Ordinal);
        // In the metric's unit where the watch recorded it so; as plain numbers otherwise.
        Assert.Contains("<b>error-rate</b>: 5.00% (baseline 0.20%, threshold 0.30%) regressed", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Regressed_TheInboxSaysSinceWhenInUtcWhatItRecommendsWhatHappensIfNobodyDecidesAndRoundsTheEvidence()
    {
        await using var test = await SlackTestService.StartAsync(withBotToken: false);
        await test.WatchAsync("gh-inbox-when");
        await test.RegressThroughWatchAsync("gh-inbox-when", new MetricEvidence("error-rate", 0.049878345498783457, 0.0020004206048186120, 0.0030006309072279180,
            "regressed", "error-rate 4.99% (41 of 822 requests failed) against a baseline of 0.20%"));

        var html = await test.Service.Reader().GetStringAsync(new Uri($"/inbox?token={RolloutGateHost.ReaderToken}", UriKind.Relative));

        // Rounded as in Slack, not 17 digits.
        Assert.Contains("<b>error-rate</b>: 0.04988 (baseline 0.002, threshold 0.003001) regressed", html, StringComparison.Ordinal);
        // Since when, in UTC and how long ago; the deadline is the one the timeout policy applies: 15 min after it regressed.
        var regressed = await test.Service.Database.ScalarAsync<DateTime>("SELECT updated_at FROM deployments WHERE id = 'gh-inbox-when'");
        var deadline = DateTime.SpecifyKind(regressed, DateTimeKind.Utc).AddMinutes(15);
        Assert.Contains($"<b class=\"regressed\">Regressed</b> <time datetime=\"{DateTime.SpecifyKind(regressed, DateTimeKind.Utc):yyyy-MM-dd'T'HH:mm:ss'Z'}\">", html, StringComparison.Ordinal);
        Assert.Contains(" UTC (just now)</time>", html, StringComparison.Ordinal);
        Assert.Contains("<strong>RolloutGate recommends a rollback.</strong> If nobody decides by " +
            $"<time datetime=\"{deadline:yyyy-MM-dd'T'HH:mm:ss'Z'}\">{deadline:yyyy-MM-dd HH:mm:ss} UTC (in 15 min)</time>, it will <strong>roll back</strong> (runbook: onTimeout after 15 min).",
            html, StringComparison.Ordinal);
        Assert.Contains("<a href=\"/dashboard/deployments/gh-inbox-when\">Charts and audit timeline</a>", html, StringComparison.Ordinal);
    }

    [Fact]
    public void IfNobodyDecides_SaysWhenAndWhatOnTimeoutDoes_AndThatItIsDueOnceTheTimeRanOut()
    {
        var regressed = new DateTimeOffset(2026, 12, 6, 0, 16, 0, TimeSpan.Zero);
        var deployment = new DeploymentRow { Id = "d", Service = "checkout", Environment = "production", State = "regressed", UpdatedAt = regressed };
        var keep = new RollbackSpec(RollbackMode.Recommend, TimeSpan.FromMinutes(30), TimeoutAction.Keep, null);

        var waiting = InboxEndpoints.IfNobodyDecides(deployment, keep, regressed.AddMinutes(2));
        Assert.Contains("If nobody decides by <time datetime=\"2026-12-06T00:46:00Z\">2026-12-06 00:46:00 UTC (in 28 min)</time>, it will <strong>keep the new version</strong> (runbook: onTimeout after 30 min).",
            waiting, StringComparison.Ordinal);
        Assert.Equal(regressed.AddMinutes(30), DecisionPolicy.DecideBy(deployment, keep));

        var overdue = InboxEndpoints.IfNobodyDecides(deployment, keep with { OnTimeout = TimeoutAction.Rollback }, regressed.AddHours(3));
        Assert.Contains("The time to decide ran out at <time datetime=\"2026-12-06T00:46:00Z\">2026-12-06 00:46:00 UTC (2 h 30 min ago)</time>: it will <strong>roll back</strong> at its next check, within 30 s",
            overdue, StringComparison.Ordinal);

        // Auto mode decides at once: waiting, it was held for a person (the fleet's automatic rollbacks per hour), with no deadline.
        var auto = InboxEndpoints.IfNobodyDecides(deployment, keep with { Mode = RollbackMode.Auto }, regressed);
        Assert.StartsWith("<p class=\"recommend\"><strong>RolloutGate recommends a rollback.</strong> The runbook rolls back automatically, but this one is held", auto, StringComparison.Ordinal);
        Assert.EndsWith("Nothing happens until someone decides.</p>", auto, StringComparison.Ordinal);
        Assert.Null(DecisionPolicy.DecideBy(deployment, keep with { Mode = RollbackMode.Auto }));
    }

    private static FormUrlEncodedContent Form(string token, string kind) => new(new Dictionary<string, string>
    {
        ["operatorToken"] = token,
        ["actor"] = "carol",
        ["reason"] = "looked fine on the dashboard",
        ["kind"] = kind,
    });
}
