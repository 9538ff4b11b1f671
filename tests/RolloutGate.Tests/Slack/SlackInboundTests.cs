using System.Net;
using RolloutGate.Deployments;
using RolloutGate.Slack;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Slack;

public sealed class SlackInboundTests
{
    private const string Approver = SlackTestService.Approver;
    private const string Stranger = SlackTestService.Stranger;

    [Fact]
    public async Task Requests_WrongOrStaleOrUnconfiguredSignature_Refused401AndChangeNothing()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-sig-1");
        var form = "user_id=U024BE7LH&command=%2Frolloutgate&text=stop+gh-sig-1";

        Assert.Equal(HttpStatusCode.Unauthorized, (await test.PostSignedAsync("/slack/commands", form, secret: "not-the-secret")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized,
            (await test.PostSignedAsync("/slack/commands", form, timestamp: DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 400)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized,
            (await test.PostSignedAsync("/slack/interactions", "payload=%7B%7D", timestamp: DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 400)).StatusCode);
        Assert.Equal("watching", await test.StateAsync("gh-sig-1"));

        await using var unconfigured = await SlackTestService.StartAsync(signingSecret: "");
        await unconfigured.WatchAsync("gh-sig-2");
        var response = await unconfigured.CommandAsync("U024BE7LH", "stop gh-sig-2");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("no signing secret", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("watching", await unconfigured.StateAsync("gh-sig-2"));
    }

    [Fact]
    public async Task Regression_Recommend_PostsEvidenceWithTheDeploymentLinkAndThreeButtons()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-rec-1");
        await test.RegressThroughWatchAsync("gh-rec-1", SlackTestService.P95Regressed);
        await test.AllDeliveredAsync();

        // Every message with evidence links to the deployment, as the root does; in its text too, which is what
        // notifications and screen readers show.
        const string Link = "<https://rolloutgate.example/api/v1/deployments/gh-rec-1|gh-rec-1>";
        var posts = test.Slack.Delivered(SlackMethods.PostMessage);
        var root = posts[0];
        Assert.Equal("checkout 2.4.0 in production: regressed", test.Slack.MessageText(root.Ts!));
        var verdict = posts.Single(p => p.Body.GetProperty("text").GetString()!.Contains("a verdict changed", StringComparison.Ordinal));
        Assert.Equal($"checkout 2.4.0: a verdict changed · {Link}", verdict.Body.GetProperty("text").GetString());
        var evidence = verdict.Body.GetProperty("blocks")[0].GetProperty("text").GetProperty("text").GetString();
        Assert.StartsWith($"*A verdict changed* · {Link}\n", evidence, StringComparison.Ordinal);
        Assert.Contains("*p95-latency*: 0.912 (baseline 0.64, threshold 0.768) → regressed: p95 rose 43% over the baseline", evidence, StringComparison.Ordinal);

        var recommendation = posts.Last();
        Assert.Equal(root.Ts, recommendation.Body.GetProperty("thread_ts").GetString());
        Assert.Equal($"checkout 2.4.0 regressed: roll back? · {Link}", recommendation.Body.GetProperty("text").GetString());
        var asked = recommendation.Body.GetProperty("blocks")[0].GetProperty("text").GetProperty("text").GetString();
        Assert.StartsWith($"*checkout `2.4.0` regressed* · {Link}\nRolloutGate recommends a rollback.\n", asked, StringComparison.Ordinal);
        Assert.Contains("*p95-latency*: 0.912 (baseline 0.64, threshold 0.768)", asked, StringComparison.Ordinal);
        var buttons = recommendation.Body.GetProperty("blocks")[1];
        Assert.Equal("actions", buttons.GetProperty("type").GetString());
        Assert.Equal(["rollback", "dismiss", "stop"], buttons.GetProperty("elements").EnumerateArray().Select(b => b.GetProperty("action_id").GetString()));
        Assert.Equal(["Roll back", "Keep", "Stop automation"], buttons.GetProperty("elements").EnumerateArray().Select(b => b.GetProperty("text").GetProperty("text").GetString()));
        Assert.All(buttons.GetProperty("elements").EnumerateArray(), b => Assert.Equal("gh-rec-1", b.GetProperty("value").GetString()));
        Assert.Empty(test.Slack.Violations);
    }

    [Fact]
    public async Task RollbackButton_PressedByApprover_RollsBackOnceAndAuditsTheSlackUser()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-press-1");
        await test.RegressThroughWatchAsync("gh-press-1", SlackTestService.P95Regressed);

        // Slack waits 3 s for the answer, so the press must not wait on Slack: with every Web API call hanging, it is
        // answered and decided all the same. An answer that waited on a hanging call would come after the client's attempt
        // timeout at the earliest, so that is the bound here (how fast the answer is, is not this test's business).
        test.Slack.Hold();
        var first = await test.PressAsync(Approver, "rollback", "gh-press-1").WaitAsync(SlackResilience.AttemptTimeout);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("rolling-back", await test.StateAsync("gh-press-1"));
        test.Slack.Release();
        Assert.Equal(1, await test.Service.CountAsync("audit_events",
            $"type = 'decision' AND actor = '{Approver}' AND deployment_id = 'gh-press-1' AND data LIKE '%\"source\":\"slack\"%'"));
        Assert.Equal(1, await test.Service.CountAsync("audit_events",
            $"type = 'deployment.state-changed' AND actor = '{Approver}' AND data LIKE '%\"to\":\"rolling-back\"%'"));

        var second = await test.PressAsync(SlackTestService.Owner, "rollback", "gh-press-1");
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("rolling-back", await test.StateAsync("gh-press-1"));
        Assert.Equal(1, await test.Service.CountAsync("decisions", "deployment_id = 'gh-press-1'"));
        Assert.Equal(1, await test.Service.CountAsync("audit_events", "type = 'slack.action' AND data LIKE '%no effect%'"));

        await test.AllDeliveredAsync();
        var ephemeral = Assert.Single(test.Slack.Delivered(SlackMethods.PostEphemeral));
        Assert.Equal(SlackTestService.Owner, ephemeral.Body.GetProperty("user").GetString());
        Assert.Equal($"Already rolled back by <@{Approver}> (gh-press-1 is rolling-back); nothing changed.", ephemeral.Body.GetProperty("text").GetString());
        var decisionReply = test.Slack.Delivered(SlackMethods.PostMessage).Last();
        Assert.Equal($"<@{Approver}> decided *rollback* (via slack): via Slack", decisionReply.Body.GetProperty("text").GetString());
        Assert.Empty(test.Slack.Violations);
    }

    [Fact]
    public async Task Button_PressedByStranger_RefusedEphemerallyAuditedAndNothingChanges()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-stranger-1");
        await test.RegressAsync("gh-stranger-1");

        Assert.Equal(HttpStatusCode.OK, (await test.PressAsync(Stranger, "rollback", "gh-stranger-1")).StatusCode);

        Assert.Equal("regressed", await test.StateAsync("gh-stranger-1"));
        Assert.Equal(0, await test.Service.CountAsync("decisions"));
        Assert.Equal(1, await test.Service.CountAsync("audit_events", $"type = 'refusal' AND actor = '{Stranger}' AND deployment_id = 'gh-stranger-1'"));
        await test.AllDeliveredAsync();
        var ephemeral = Assert.Single(test.Slack.Delivered(SlackMethods.PostEphemeral));
        Assert.Equal(Stranger, ephemeral.Body.GetProperty("user").GetString());
        Assert.Equal("C0DECIDE01", ephemeral.Body.GetProperty("channel").GetString());
        Assert.Equal("Only the owner and approvers of runbook checkout may rollback gh-stranger-1; nothing changed.", ephemeral.Body.GetProperty("text").GetString());
        Assert.Contains(test.Slack.Delivered(SlackMethods.PostMessage), p => p.Body.GetProperty("text").GetString()!.StartsWith($"Refused: <@{Stranger}>", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Button_PressedByStranger_SlackGivesUpBeforeTheAnswer_TheRefusalIsStillAuditedAndSaid()
    {
        // Slack waits 3 s for the answer. A refusal decided while the audit trail is busy (a mass regression being stored)
        // was cut short with the request: not on the record, which CONTRACT section 6 says it is, and never said to the user.
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-stranger-2");
        await test.RegressAsync("gh-stranger-2");
        await test.AllDeliveredAsync();
        var ephemeralsBefore = test.Slack.Delivered(SlackMethods.PostEphemeral).Count;
        await using var hold = await DatabaseHold.TakeAsync(test.Service.Database, "the audit trail", "LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE");
        using var slackGivesUp = new CancellationTokenSource();

        var pressing = test.PressAsync(Stranger, "rollback", "gh-stranger-2", cancellationToken: slackGivesUp.Token);
        await hold.WaitForWaitersAsync(1, 30);
        await slackGivesUp.CancelAsync();
        await hold.ReleaseAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pressing);

        await SlackTestService.EventuallyAsync(async () => await test.Service.CountAsync("audit_events",
            $"type = 'refusal' AND actor = '{Stranger}' AND deployment_id = 'gh-stranger-2'") == 1, "the refusal audited", 30);
        Assert.Equal("regressed", await test.StateAsync("gh-stranger-2"));
        await test.AllDeliveredAsync();
        var ephemeral = Assert.Single(test.Slack.Delivered(SlackMethods.PostEphemeral).Skip(ephemeralsBefore));
        Assert.Equal("Only the owner and approvers of runbook checkout may rollback gh-stranger-2; nothing changed.", ephemeral.Body.GetProperty("text").GetString());
    }

    [Fact]
    public async Task Replies_NamingADeploymentIdWithMarkup_EscapeIt()
    {
        // A deployment id is any text but a path's; in Slack's mrkdwn <!here> would be a mention and & starts an escape.
        const string id = "gh-<!here>&1";
        const string shown = "gh-&lt;!here&gt;&amp;1";
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync(id);

        var refused = await (await test.CommandAsync(Stranger, $"stop {id}")).JsonAsync();
        Assert.Equal($"Only the owner and approvers of runbook checkout may stop {shown}; nothing changed.", refused.GetProperty("text").GetString());
        var notApplicable = await (await test.CommandAsync(SlackTestService.Owner, $"dismiss {id}")).JsonAsync();
        Assert.Equal($"Dismiss does not apply to {shown} while it is watching; nothing changed.", notApplicable.GetProperty("text").GetString());
        var done = await (await test.CommandAsync(SlackTestService.Owner, $"stop {id}")).JsonAsync();
        Assert.Equal($"Done: checkout {shown} is now stopped.", done.GetProperty("text").GetString());
        var already = await (await test.CommandAsync(SlackTestService.Owner, $"rollback {id}")).JsonAsync();
        Assert.Equal($"Already stopped by <@{SlackTestService.Owner}> ({shown} is stopped); nothing changed.", already.GetProperty("text").GetString());
    }

    [Fact]
    public async Task Button_ForAnUnknownDeployment_TellsThePresserPrivatelyAndIsAudited()
    {
        await using var test = await SlackTestService.StartAsync();

        Assert.Equal(HttpStatusCode.OK, (await test.PressAsync(SlackTestService.Owner, "rollback", "nope")).StatusCode);

        await test.AllDeliveredAsync();
        var ephemeral = Assert.Single(test.Slack.Delivered(SlackMethods.PostEphemeral));
        Assert.Equal(SlackTestService.Owner, ephemeral.Body.GetProperty("user").GetString());
        Assert.Equal("C0DECIDE01", ephemeral.Body.GetProperty("channel").GetString());
        Assert.Equal("Deployment nope is unknown.", ephemeral.Body.GetProperty("text").GetString());
        Assert.Empty(test.Slack.Delivered(SlackMethods.PostMessage));
        Assert.Equal(1, await test.Service.CountAsync("audit_events",
            $"type = 'slack.action' AND actor = '{SlackTestService.Owner}' AND deployment_id IS NULL "
            + "AND data::jsonb->>'deploymentId' = 'nope' AND data::jsonb->>'outcome' = 'unknown deployment'"));

        // The slash command says the same, as its own answer.
        var typed = await (await test.CommandAsync(SlackTestService.Owner, "stop nope")).JsonAsync();
        Assert.Equal("Deployment nope is unknown.", typed.GetProperty("text").GetString());
        Assert.Empty(test.Slack.Violations);
    }

    [Fact]
    public async Task Interactions_MalformedPayloads_Answer400ProblemAndChangeNothing()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-malformed-1");
        const string Owner = SlackTestService.Owner;
        const string Stop = """{"action_id":"stop","value":"gh-malformed-1"}""";
        const string Channel = "\"channel\":{\"id\":\"C0DECIDE01\"}";
        string[] malformed =
        [
            "null",
            $$"""{"type":"block_actions","user":{"id":"{{Owner}}"},"actions":[null]}""",
            // A good action first: nothing is carried out unless every action can be.
            $$"""{"type":"block_actions","user":{"id":"{{Owner}}"},{{Channel}},"actions":[{{Stop}},null]}""",
            $$"""{"type":"block_actions","user":null,{{Channel}},"actions":[{{Stop}}]}""",
            $$"""{"type":"block_actions",{{Channel}},"actions":[{{Stop}}]}""",
            $$"""{"type":"block_actions","user":{"id":null},{{Channel}},"actions":[{{Stop}}]}""",
            $$"""{"type":"block_actions","user":{"id":""},{{Channel}},"actions":[{{Stop}}]}""",
            $$"""{"type":"block_actions","user":{"id":"{{Owner}}"},{{Channel}},"actions":null}""",
            $$"""{"type":"block_actions","user":{"id":"{{Owner}}"},{{Channel}}}""",
            $$"""{"type":"block_actions","user":{"id":"{{Owner}}"},{{Channel}},"actions":[{"value":"gh-malformed-1"}]}""",
            $$"""{"type":"block_actions","user":{"id":"{{Owner}}"},{{Channel}},"actions":[{"action_id":null,"value":"gh-malformed-1"}]}""",
            $$"""{"type":"block_actions","user":{"id":"{{Owner}}"},{{Channel}},"actions":[{"action_id":"stop"}]}""",
            $$"""{"type":"block_actions","user":{"id":"{{Owner}}"},{{Channel}},"actions":[{"action_id":"stop","value":null}]}""",
            $$"""{"type":"block_actions","user":{"id":"{{Owner}}"},{{Channel}},"actions":[{"action_id":"stop","value":""}]}""",
            // PostgreSQL cannot store U+0000: as an id, a channel or a deployment id it must not reach the database.
            $$"""{"type":"block_actions","user":{"id":"U0\u0000X"},{{Channel}},"actions":[{{Stop}}]}""",
            $$"""{"type":"block_actions","user":{"id":"{{Owner}}"},"channel":{"id":"C0\u0000X"},"actions":[{{Stop}}]}""",
            $$"""{"type":"block_actions","user":{"id":"{{Owner}}"},{{Channel}},"actions":[{"action_id":"stop","value":"gh-\u0000"}]}""",
        ];
        foreach (var payload in malformed)
        {
            var response = await test.PostSignedAsync("/slack/interactions", "payload=" + Uri.EscapeDataString(payload));
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode} for {payload}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }

        // Past the body limit, signed or not: refused before it is read further, at either endpoint.
        var large = "payload=" + Uri.EscapeDataString($$"""{"type":"block_actions","user":{"id":"{{Owner}}"},{{Channel}},"actions":[{{Stop}}],"x":"{{new string('x', DeploymentEndpoints.MaxBodyBytes)}}"}""");
        foreach (var path in new[] { "/slack/interactions", "/slack/commands" })
        {
            var tooLarge = await test.PostSignedAsync(path, large);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
            Assert.Equal("application/problem+json", tooLarge.Content.Headers.ContentType?.MediaType);
        }

        // The same character sent raw in the form, to either endpoint.
        Assert.Equal(HttpStatusCode.BadRequest, (await test.PostSignedAsync("/slack/interactions", "payload=%00")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await test.CommandAsync(Owner, "stop gh-malformed-1 a\0b")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await test.CommandAsync(Owner, "status gh-\0")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await test.CommandAsync("U0\0X", "stop gh-malformed-1")).StatusCode);

        // A field given twice: its values would be read joined by a comma, and these two halves make one press.
        var halves = new[] { $$"""{"type":"block_actions","user":{"id":"{{Owner}}"},{{Channel}}""", "\"actions\":[" + Stop + "]}" };
        var twice = await test.PostSignedAsync("/slack/interactions", string.Join('&', halves.Select(half => "payload=" + Uri.EscapeDataString(half))));
        Assert.Equal(HttpStatusCode.BadRequest, twice.StatusCode);
        Assert.Contains("'payload' more than once", (await twice.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, (await test.PostSignedAsync("/slack/commands",
            $"user_id={Owner}&text=stop&text=gh-malformed-1&command=%2Frolloutgate")).StatusCode);

        Assert.Equal("watching", await test.StateAsync("gh-malformed-1"));
        Assert.Equal(0, await test.Service.CountAsync("decisions"));
        Assert.Equal(0, await test.Service.CountAsync("audit_events", "type IN ('refusal', 'slack.action')"));

        // Not RolloutGate's interaction types: nothing to do, and fine.
        Assert.Equal(HttpStatusCode.OK, (await test.PostSignedAsync("/slack/interactions",
            "payload=" + Uri.EscapeDataString("""{"type":"view_submission","user":null,"actions":[null]}"""))).StatusCode);

        // Without a channel or a container, the press still counts; only a private answer has nowhere to go.
        var noChannel = $$"""{"type":"block_actions","user":{"id":"{{Owner}}"},"channel":null,"container":null,"actions":[{{Stop}}]}""";
        Assert.Equal(HttpStatusCode.OK, (await test.PostSignedAsync("/slack/interactions", "payload=" + Uri.EscapeDataString(noChannel))).StatusCode);
        Assert.Equal("stopped", await test.StateAsync("gh-malformed-1"));
    }

    [Fact]
    public async Task Requests_UserIdLongerThanTheAuditIndexTakes_Answer400ProblemAndChangeNothing()
    {
        // Slack's user ids are a dozen characters; one of 10,000 random ones (which TOAST cannot compress under the 2,704
        // bytes a btree entry of audit_events.actor takes) was audited as a refusal and made PostgreSQL refuse it: a 500.
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-long-user");
        var random = new Random(11);
        var user = "U" + new string([.. Enumerable.Range(0, 9_999).Select(_ => (char)random.Next('A', 'Z' + 1))]);

        foreach (var response in new[]
        {
            await test.PressAsync(user, "stop", "gh-long-user"),
            await test.PressAsync(user, "stop", "not-a-deployment"),
            await test.CommandAsync(user, "stop gh-long-user"),
            await test.CommandAsync(user, "rollback not-a-deployment"),
        })
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains("user id is 10000 characters long; at most 256", (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        Assert.Equal("watching", await test.StateAsync("gh-long-user"));
        Assert.Equal(0, await test.Service.CountAsync("audit_events", "type IN ('refusal', 'slack.action')"));
        // No private answer to that user either (the watched deployment's own messages come and go meanwhile).
        Assert.Equal(0, await test.Service.CountAsync("outbox", "kind = 'slack.ephemeral'"));
    }

    [Fact]
    public async Task Requests_AnyResponseUrl_IsNeverCalled_AnswersGoThroughTheWebApiOnly()
    {
        // A response_url is a URL in the request: calling it would let whoever can get a request signed make RolloutGate
        // send to any address. Private answers go to chat.postEphemeral at the configured Web API instead.
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var elsewhere = $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/internal/admin";
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-response-url");

        Assert.Equal(HttpStatusCode.OK, (await test.PressAsync(Stranger, "stop", "gh-response-url", responseUrl: elsewhere)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await test.PressAsync(SlackTestService.Owner, "stop", "not-a-deployment", responseUrl: elsewhere)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await test.PostSignedAsync("/slack/commands",
            $"user_id={Stranger}&command=%2Frolloutgate&text=stop+gh-response-url&response_url={Uri.EscapeDataString(elsewhere)}")).StatusCode);
        await test.AllDeliveredAsync();

        Assert.Equal(2, test.Slack.Delivered(SlackMethods.PostEphemeral).Count);
        Assert.False(listener.Pending(), $"something connected to the response_url {elsewhere}");
        Assert.Equal("watching", await test.StateAsync("gh-response-url"));
    }

    [Fact]
    public async Task SlashCommands_StatusAndStop()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-cmd-1");

        var status = await (await test.CommandAsync(Stranger, "status gh-cmd-1")).JsonAsync();
        Assert.Equal("ephemeral", status.GetProperty("response_type").GetString());
        Assert.Contains("checkout `2.4.0` in production: *watching*", status.GetProperty("text").GetString(), StringComparison.Ordinal);

        var shouted = await (await test.CommandAsync(Stranger, "STATUS\u00a0 gh-cmd-1")).JsonAsync();
        Assert.Equal(status.GetProperty("text").GetString(), shouted.GetProperty("text").GetString());

        var byService = await (await test.CommandAsync(Stranger, "status checkout")).JsonAsync();
        Assert.StartsWith("Latest deployments of checkout:\n• <https://rolloutgate.example/api/v1/deployments/gh-cmd-1|gh-cmd-1>",
            byService.GetProperty("text").GetString(), StringComparison.Ordinal);

        // Dismiss keeps a deployment recommended for rollback; while it is watched there is nothing to keep.
        var notApplicable = await (await test.CommandAsync(SlackTestService.Owner, "dismiss gh-cmd-1")).JsonAsync();
        Assert.Equal("Dismiss does not apply to gh-cmd-1 while it is watching; nothing changed.", notApplicable.GetProperty("text").GetString());

        var refused = await (await test.CommandAsync(Stranger, "stop gh-cmd-1")).JsonAsync();
        Assert.Equal("Only the owner and approvers of runbook checkout may stop gh-cmd-1; nothing changed.", refused.GetProperty("text").GetString());
        Assert.Equal("watching", await test.StateAsync("gh-cmd-1"));
        Assert.Equal(1, await test.Service.CountAsync("audit_events", $"type = 'refusal' AND actor = '{Stranger}'"));

        var stopped = await (await test.CommandAsync(SlackTestService.Owner, "stop gh-cmd-1 pager storm, investigating")).JsonAsync();
        Assert.Equal("Done: checkout gh-cmd-1 is now stopped.", stopped.GetProperty("text").GetString());
        Assert.Equal("stopped", await test.StateAsync("gh-cmd-1"));
        Assert.Equal(1, await test.Service.CountAsync("decisions",
            $"actor = '{SlackTestService.Owner}' AND kind = 'stop' AND reason = 'pager storm, investigating'"));

        var usage = await (await test.CommandAsync(SlackTestService.Owner, "launch rockets")).JsonAsync();
        Assert.Equal(SlackEndpoints.Usage, usage.GetProperty("text").GetString());
        var unknown = await (await test.CommandAsync(SlackTestService.Owner, "status nothing-here")).JsonAsync();
        Assert.Equal("No deployment or service is called nothing-here.", unknown.GetProperty("text").GetString());

        // The host logs at trace level: neither Slack secret may show, including in the outgoing calls of the thread.
        await test.AllDeliveredAsync();
        Assert.NotEmpty(test.Slack.Delivered(SlackMethods.PostMessage));
        Assert.DoesNotContain(test.Service.Host.Logs.Lines, line =>
            line.Contains(FakeSlack.BotToken, StringComparison.Ordinal) || line.Contains(SlackTestService.SigningSecret, StringComparison.Ordinal));
    }

    /// <summary>
    /// A deployment id may hold spaces (the webhook refuses only '/', control characters, '.' and '..'); split at
    /// whitespace, <c>/rolloutgate stop run 8812</c> named 'run' with the reason '8812'. Between double quotes, straight or
    /// the curly ones Slack clients put in their place, it names the whole id; a quote left open is refused, and nothing changes.
    /// </summary>
    [Fact]
    public async Task SlashCommands_AnIdWithSpacesBetweenStraightOrCurlyQuotes_NamesIt_AQuoteLeftOpenIsRefusedAndChangesNothing()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("run 8812");

        var straight = await StatusTextAsync(test, "status \"run 8812\"");
        var curly = await StatusTextAsync(test, "status \u201crun 8812\u201d");
        var open = await (await test.CommandAsync(SlackTestService.Owner, "stop \"run 8812 pager storm")).JsonAsync();
        var glued = await (await test.CommandAsync(SlackTestService.Owner, "stop \"run 8812\"now")).JsonAsync();
        var empty = await (await test.CommandAsync(SlackTestService.Owner, "stop \"\" pager storm")).JsonAsync();
        var unquoted = await StatusTextAsync(test, "status run 8812");

        Assert.Equal("<https://rolloutgate.example/api/v1/deployments/run%208812|run 8812> checkout `2.4.0` in production: *watching*", straight);
        Assert.Equal(straight, curly);
        Assert.Equal("ephemeral", open.GetProperty("response_type").GetString());
        Assert.Equal("The quote before run 8812 pager storm is never closed: write an id with spaces between two quotes, "
            + "such as `/rolloutgate stop \"run 8812\"`. Nothing changed.", open.GetProperty("text").GetString());
        Assert.Equal("The closing quote after run 8812 is followed by now: leave a space after it. Nothing changed.", glued.GetProperty("text").GetString());
        Assert.Equal("The quotes hold no deployment id. Nothing changed.", empty.GetProperty("text").GetString());
        Assert.Equal("watching", await test.StateAsync("run 8812"));
        Assert.Equal(0, await test.Service.CountAsync("decisions", "true"));
        // Unquoted, the words are read as before: a status names one word, and takes no more.
        Assert.Equal(SlackEndpoints.Usage, unquoted);
        Assert.Equal(SlackEndpoints.Usage, await StatusTextAsync(test, "launch \"rockets"));

        var stopped = await (await test.CommandAsync(SlackTestService.Owner, "stop \u201crun 8812\u201d  pager\tstorm")).JsonAsync();

        Assert.Equal("Done: checkout run 8812 is now stopped.", stopped.GetProperty("text").GetString());
        Assert.Equal("stopped", await test.StateAsync("run 8812"));
        Assert.Equal(1, await test.Service.CountAsync("decisions",
            $"deployment_id = 'run 8812' AND actor = '{SlackTestService.Owner}' AND kind = 'stop' AND reason = 'pager storm'"));
    }

    /// <summary>
    /// A predeploy held back by a change allowed and never deployed names the slash command that stops it; pasted into
    /// Slack as printed, it stops that change, whatever its id holds, and the next change is let through.
    /// </summary>
    [Theory]
    [InlineData("gh-run-8812", "gh-run-8812")]
    [InlineData("run 8812", "\"run 8812\"")]
    [InlineData("say \"hi\" C:\\ now", "\"say \\\"hi\\\" C:\\\\ now\"")]
    [InlineData("\u201cquoted\u201d", "\"\\\u201cquoted\\\u201d\"")]
    public async Task SlashCommand_TheStopAHeldBackPredeployNames_PastedAsPrinted_StopsTheChangeThatHoldsIt(string id, string printed)
    {
        await using var test = await SlackTestService.StartAsync();
        (await test.Service.Webhooks.SendEventAsync("predeploy", id)).EnsureSuccessStatusCode();
        var held = await (await test.Service.Webhooks.SendEventAsync("predeploy", "held")).JsonAsync();
        var detail = held.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "one-change-at-a-time")
            .GetProperty("detail").GetString()!;
        var command = System.Text.RegularExpressions.Regex.Match(detail, @"or /rolloutgate (stop .+) in Slack\)").Groups[1].Value;

        var stopped = await (await test.CommandAsync(SlackTestService.Owner, command + " never deployed")).JsonAsync();
        var next = await (await test.Service.Webhooks.SendEventAsync("predeploy", "next")).JsonAsync();

        Assert.Equal($"stop {printed}", command);
        Assert.Equal($"Done: checkout {id} is now stopped.", stopped.GetProperty("text").GetString());
        Assert.Equal("allow", next.GetProperty("verdict").GetString());
    }

    [Fact]
    public async Task SlashCommand_StatusOfADeploymentWithHundredsOfDecisions_ListsTheNewestAndCountsTheRestWithTheLink()
    {
        // A rollback retried again and again: every decision was listed, oldest first, in a text Slack asks to keep
        // within 4,000 characters.
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-many-decisions");
        await test.Service.Database.ExecuteAsync("""
            INSERT INTO decisions (deployment_id, at, kind, actor, reason)
            SELECT 'gh-many-decisions', now() - make_interval(secs => n), CASE n WHEN 1 THEN 'stop' ELSE 'rollback' END,
                   CASE n WHEN 1 THEN 'U024BE7LH' ELSE 'U0G9QF9C6' END, 'retry ' || n
            FROM generate_series(1, 300) AS n
            """);

        var text = (await (await test.CommandAsync(Stranger, "status gh-many-decisions")).JsonAsync()).GetProperty("text").GetString()!;

        const string Link = "<https://rolloutgate.example/api/v1/deployments/gh-many-decisions|gh-many-decisions>";
        Assert.Equal(
        [
            $"{Link} checkout `2.4.0` in production: *watching*",
            "• stop by <@U024BE7LH>",
            .. Enumerable.Repeat("• rollback by <@U0G9QF9C6>", SlackActions.MaxListedDecisions - 2),
            $"• and 291 earlier decisions: see {Link}",
        ], text.Split('\n'));
    }

    [Fact]
    public async Task SlashCommand_StatusAndUnknownNames_WithLongFieldsFullOfMarkup_StayWithinSlacksLengthWithEscapesWhole()
    {
        // Each field within the webhook's 256 characters, but escaped ('&' is "&amp;") five deployments' lines came to
        // some 23,000 characters; and a name typed into a command or a button (64 KiB of form) was repeated whole.
        var markup = new string('&', 256);
        await using var test = await SlackTestService.StartAsync(runbook: TestRunbooks.Minimal(environments: $"[production, '{markup}']"));
        var ids = Enumerable.Range(1, 5).Select(i => $"{i}{markup[1..]}").ToList();
        foreach (var id in ids)
        {
            foreach (var @event in new[] { "predeploy", "deployed" })
            {
                var body = System.Text.Json.JsonSerializer.Serialize(new { @event, deploymentId = id, service = "checkout", environment = markup, version = markup });
                (await test.Service.Webhooks.SendAsync(body)).EnsureSuccessStatusCode();
            }
        }

        await test.Service.Database.ExecuteAsync($"""
            INSERT INTO decisions (deployment_id, at, kind, actor, reason)
            SELECT '{ids[0]}', now() - make_interval(secs => n), 'rollback', repeat('<', 256), 'retry' FROM generate_series(1, 20) AS n
            """);
        var unknown = new string('&', 20_000);

        List<string> texts = [];
        foreach (var command in new[] { "status checkout", $"status {ids[0]}", $"status {unknown}", $"stop {unknown}" })
        {
            texts.Add((await (await test.CommandAsync(SlackTestService.Owner, command)).JsonAsync()).GetProperty("text").GetString()!);
        }

        Assert.EndsWith("&amp;… is unknown.", texts[3], StringComparison.Ordinal);
        (await test.PressAsync(SlackTestService.Owner, "stop", unknown)).EnsureSuccessStatusCode();
        await test.AllDeliveredAsync();
        texts.Add(Assert.Single(test.Slack.Delivered(SlackMethods.PostEphemeral)).Body.GetProperty("text").GetString()!);

        Assert.Empty(test.Slack.Violations);
        // Each shortened line ends with "…"; every decision has its line. Of the deployments, those whose links fit whole
        // (each 2,100 characters: its address alone is 815), the rest counted (SlashCommand_StatusOfAServiceWhose...).
        Assert.StartsWith($"Latest deployments of checkout:\n• {SlackMessages.LinkTo("https://rolloutgate.example", ids[^1])} checkout `&amp;", texts[0], StringComparison.Ordinal);
        Assert.Equal(3, texts[0].Split('\n').Length);
        Assert.Equal(1 + SlackActions.MaxListedDecisions, texts[1].Split('\n').Length);
        Assert.StartsWith("• and 11 earlier decisions: see ", texts[1].Split('\n')[^1], StringComparison.Ordinal);
        Assert.StartsWith("No deployment or service is called &amp;&amp;", texts[2], StringComparison.Ordinal);
        Assert.All(texts, text =>
        {
            Assert.InRange(text.Length, 1, BlockKitLimits.Text);
            Assert.DoesNotMatch("&(?!amp;|lt;|gt;)", text);
        });
    }

    [Fact]
    public async Task SlashCommand_StatusOfADeploymentWithEveryFieldAtItsLongestInMarkup_KeepsItsLinkAndStateWhole()
    {
        // Id, version, environment, initiator and previous version each 256 '&' (1,280 characters escaped; the link's address
        // 815): the status line, its link first, came to 4,700 characters, and shortened to Slack's 4,000 it lost the
        // link, the one thing that shows the rest: the answer was "…".
        var markup = new string('&', 256);
        await using var test = await SlackTestService.StartAsync(runbook: TestRunbooks.Minimal(environments: $"[production, '{markup}']"));
        foreach (var @event in new[] { "predeploy", "deployed" })
        {
            var body = System.Text.Json.JsonSerializer.Serialize(new
            {
                @event, deploymentId = markup, service = "checkout", environment = markup, version = markup, initiator = markup, previousVersion = markup,
            });
            (await test.Service.Webhooks.SendAsync(body)).EnsureSuccessStatusCode();
        }

        var link = SlackMessages.LinkTo("https://rolloutgate.example", markup);
        var alone = await StatusTextAsync(test, $"status {markup}");
        var byService = await StatusTextAsync(test, "status checkout");
        // With decisions too, by actors whose names escaped are 1,024 characters: they share what the status line leaves.
        await test.Service.Database.ExecuteAsync($"""
            INSERT INTO decisions (deployment_id, at, kind, actor, reason)
            SELECT '{markup}', now() - make_interval(secs => n), 'rollback', repeat('<', 256), 'retry' FROM generate_series(1, 20) AS n
            """);
        var decided = await StatusTextAsync(test, $"status {markup}");

        Assert.StartsWith($"{link} checkout `&amp;&amp;", alone, StringComparison.Ordinal);
        Assert.EndsWith("…: *watching*", alone, StringComparison.Ordinal);
        Assert.StartsWith($"Latest deployments of checkout:\n• {link} checkout `&amp;&amp;", byService, StringComparison.Ordinal);
        Assert.EndsWith("…: *watching*", byService, StringComparison.Ordinal);
        var lines = decided.Split('\n');
        Assert.Equal(1 + SlackActions.MaxListedDecisions, lines.Length);
        Assert.StartsWith($"{link} checkout `&amp;", lines[0], StringComparison.Ordinal);
        Assert.EndsWith("…: *watching*", lines[0], StringComparison.Ordinal);
        Assert.All(lines[1..^1], line => Assert.StartsWith("• rollback by &lt;&lt;", line, StringComparison.Ordinal));
        Assert.StartsWith("• and 11 earlier decisions: see ", lines[^1], StringComparison.Ordinal);
        Assert.All(new[] { alone, byService, decided }, text =>
        {
            Assert.InRange(text.Length, 1, BlockKitLimits.Text);
            Assert.DoesNotMatch("&(?!amp;|lt;|gt;)", text);
        });
    }

    /// <summary>
    /// Five deployments whose ids are 256 characters (of '&amp;': 1,280 escaped, and each in its link's address, 815):
    /// their lines, links and all, pass Slack's 4,000 characters. Before, every line was cut to a share, whole, and lost
    /// its link (and its state); now those listed keep theirs, as many as fit, newest first, and a last line counts the
    /// rest and links to the service's list.
    /// </summary>
    [Theory]
    [InlineData(256, 1)]
    [InlineData(128, 3)]
    public async Task SlashCommand_StatusOfAServiceWhoseDeploymentIdsAreLongInMarkup_ListsThoseWhoseLinksFitWholeAndCountsTheRest(int length, int listed)
    {
        await using var test = await SlackTestService.StartAsync();
        var ids = Enumerable.Range(1, SlackActions.MaxListedDeployments).Select(i => $"{i}{new string('&', length - 1)}").ToList();
        foreach (var id in ids)
        {
            await test.WatchAsync(id);
        }

        var text = await StatusTextAsync(test, "status checkout");

        var lines = text.Split('\n');
        Assert.Equal(
            ["Latest deployments of checkout:",
             .. ids.AsEnumerable().Reverse().Take(listed).Select(id => $"• {SlackMessages.LinkTo("https://rolloutgate.example", id)} checkout `2.4.0` in production: *watching*"),
             $"• and {ids.Count - listed} more: see <https://rolloutgate.example/api/v1/deployments?service=checkout|the list>"],
            lines);
        Assert.InRange(text.Length, 1, BlockKitLimits.Text);
    }

    private static async Task<string> StatusTextAsync(SlackTestService test, string command) =>
        (await (await test.CommandAsync(Stranger, command)).JsonAsync()).GetProperty("text").GetString()!;

    /// <summary>
    /// A change recorded under a runbook version an older RolloutGate accepted and this one refuses (see
    /// WebhookProcessingTests.RunbookVersionRecordedByAnOlderVersionThatNoLongerParses_...): who may decide about it cannot
    /// be read. The command and the button are refused as a stranger's are (privately, audited, nothing changed), saying
    /// why and where it can be decided; they answered 500, and Slack showed its bare failure.
    /// </summary>
    [Fact]
    public async Task SlashCommandAndButton_ForAChangeWhoseStoredRunbookNoLongerParses_RefusedPrivatelyAndAudited_NotA500()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-cmd-old");
        await test.Service.RetireCheckoutV1Async();
        const string Expected = "Who may stop gh-cmd-old cannot be read: stored runbook version checkout v1 no longer parses";

        var command = await test.CommandAsync(SlackTestService.Owner, "stop gh-cmd-old");
        var press = await test.PressAsync(SlackTestService.Owner, "stop", "gh-cmd-old");

        Assert.Equal(HttpStatusCode.OK, command.StatusCode);
        var text = (await command.JsonAsync()).GetProperty("text").GetString()!;
        Assert.StartsWith(Expected, text, StringComparison.Ordinal);
        Assert.EndsWith("; nothing changed. An operator can stop it over the HTTP API: POST /api/v1/deployments/gh-cmd-old/stop", text, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, press.StatusCode);
        Assert.Equal("watching", await test.StateAsync("gh-cmd-old"));
        Assert.Equal(0, await test.Service.CountAsync("decisions", "deployment_id = 'gh-cmd-old'"));
        Assert.Equal(2, await test.Service.CountAsync("audit_events",
            $"type = 'refusal' AND actor = '{SlackTestService.Owner}' AND deployment_id = 'gh-cmd-old' AND data::jsonb->>'reason' LIKE 'stored runbook version checkout v1 no longer parses%'"));
        await test.AllDeliveredAsync();
        Assert.Equal(text, Assert.Single(test.Slack.Delivered(SlackMethods.PostEphemeral)).Body.GetProperty("text").GetString());
    }

    [Fact]
    public async Task SlashCommands_DismissAndRollback_DecideARegressedDeploymentForItsApprovers()
    {
        // CONTRACT section 6: /rolloutgate stop|rollback|dismiss <deploymentId>; the buttons and stop have tests of their
        // own, these two act as the buttons do.
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-cmd-keep");
        await test.RegressThroughWatchAsync("gh-cmd-keep", SlackTestService.P95Regressed);

        var refused = await (await test.CommandAsync(Stranger, "dismiss gh-cmd-keep")).JsonAsync();
        var kept = await (await test.CommandAsync(Approver, "dismiss gh-cmd-keep checked by hand")).JsonAsync();

        Assert.Equal("ephemeral", refused.GetProperty("response_type").GetString());
        Assert.Equal("Only the owner and approvers of runbook checkout may dismiss gh-cmd-keep; nothing changed.", refused.GetProperty("text").GetString());
        Assert.Equal("Done: checkout gh-cmd-keep is now kept.", kept.GetProperty("text").GetString());
        Assert.Equal("kept", await test.StateAsync("gh-cmd-keep"));
        Assert.Equal(1, await test.Service.CountAsync("decisions",
            $"deployment_id = 'gh-cmd-keep' AND actor = '{Approver}' AND kind = 'dismiss' AND reason = 'checked by hand'"));
        Assert.Equal(1, await test.Service.CountAsync("audit_events", $"type = 'refusal' AND actor = '{Stranger}' AND deployment_id = 'gh-cmd-keep'"));

        await test.WatchAsync("gh-cmd-back");
        await test.RegressThroughWatchAsync("gh-cmd-back", SlackTestService.P95Regressed);

        var rolledBack = await (await test.CommandAsync(SlackTestService.Owner, "rollback gh-cmd-back")).JsonAsync();

        Assert.Equal("ephemeral", rolledBack.GetProperty("response_type").GetString());
        Assert.StartsWith("Done: checkout gh-cmd-back is now rolling-back", rolledBack.GetProperty("text").GetString(), StringComparison.Ordinal);
        Assert.Equal("rolling-back", await test.StateAsync("gh-cmd-back"));
        Assert.Equal(1, await test.Service.CountAsync("decisions",
            $"deployment_id = 'gh-cmd-back' AND actor = '{SlackTestService.Owner}' AND kind = 'rollback'"));
    }
}
