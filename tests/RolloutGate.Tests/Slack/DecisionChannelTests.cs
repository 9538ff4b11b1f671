using System.Data.Common;
using System.Net.Http.Json;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Audit;
using RolloutGate.Core.Deployments;
using RolloutGate.Decisions;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Kubernetes;
using RolloutGate.Rollbacks;
using RolloutGate.Slack;
using RolloutGate.Tests.Deployments;
using RolloutGate.Tests.Rollbacks;

namespace RolloutGate.Tests.Slack;

public sealed class DecisionChannelTests
{
    [Fact]
    public async Task StateChanges_PostOneRootMessageThenEditIt()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-root-1");
        await test.AllDeliveredAsync();

        var posts = test.Slack.Delivered(SlackMethods.PostMessage);
        var root = Assert.Single(posts);
        Assert.Equal("C0DECIDE01", root.Body.GetProperty("channel").GetString());
        Assert.False(root.Body.TryGetProperty("thread_ts", out _));
        var update = Assert.Single(test.Slack.Delivered(SlackMethods.Update));
        Assert.Equal(root.Ts, update.Body.GetProperty("ts").GetString());
        Assert.Equal("checkout 2.4.0 in production: watching", test.Slack.MessageText(root.Ts!));
        var section = update.Body.GetProperty("blocks")[0].GetProperty("text").GetProperty("text").GetString();
        Assert.Contains("<https://rolloutgate.example/api/v1/deployments/gh-root-1|gh-root-1>", section, StringComparison.Ordinal);
        Assert.Contains("Initiator: alice", section, StringComparison.Ordinal);
        Assert.Equal(root.Ts, await test.Service.Database.ScalarAsync<string>("SELECT root_ts FROM slack_threads WHERE deployment_id = 'gh-root-1'"));
        Assert.Empty(test.Slack.Violations);
    }

    [Fact]
    public async Task DeployedAfterADeny_RootMessageSaysTheGateWasOverridden()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-first-1");
        (await test.Service.Webhooks.SendEventAsync("predeploy", "gh-override-1")).EnsureSuccessStatusCode(); // denied: gh-first-1 is in flight
        (await test.Service.Webhooks.SendEventAsync("deployed", "gh-override-1")).EnsureSuccessStatusCode();
        await test.AllDeliveredAsync();

        var rootTs = await test.Service.Database.ScalarAsync<string>("SELECT root_ts FROM slack_threads WHERE deployment_id = 'gh-override-1'") ?? "";
        Assert.Equal("checkout 2.4.0 in production: watching", test.Slack.MessageText(rootTs));
        var update = test.Slack.Delivered(SlackMethods.Update).Last(u => u.Body.GetProperty("ts").GetString() == rootTs);
        var section = update.Body.GetProperty("blocks")[0].GetProperty("text").GetProperty("text").GetString();
        Assert.Contains(":warning: deployed although the pre-deploy gate denied it: one-change-at-a-time failed", section, StringComparison.Ordinal);
        Assert.Empty(test.Slack.Violations);
    }

    [Fact]
    public async Task ChangeEndedByANewerDeploy_ItsRootSaysStopped_AndItsThreadNamesTheNewerDeployment()
    {
        await using var test = await SlackTestService.StartAsync(runbook: SupersededWatchTests.EndingOnANewerDeploy());
        await test.WatchAsync("gh-replaced-1");
        (await test.Service.Webhooks.SendEventAsync("deployed", "gh-newer-1")).EnsureSuccessStatusCode();
        await test.AllDeliveredAsync();

        var rootTs = await test.Service.Database.ScalarAsync<string>("SELECT root_ts FROM slack_threads WHERE deployment_id = 'gh-replaced-1'") ?? "";
        Assert.Equal("checkout 2.4.0 in production: stopped", test.Slack.MessageText(rootTs));
        var reply = Assert.Single(test.Slack.Replies(rootTs));
        Assert.Contains("*stop* (via superseded): deployment 'gh-newer-1' (version 2.4.0) replaced this change in production",
            test.Slack.MessageText(reply), StringComparison.Ordinal);
        Assert.Empty(test.Slack.Violations);
    }

    [Fact]
    public async Task Redelivery_EditsTheRootAndDoesNotRepostReplies()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-redeliver-1");
        (await test.OperatorDecideAsync("gh-redeliver-1", "stop")).EnsureSuccessStatusCode();
        await test.AllDeliveredAsync();
        var postsBefore = test.Slack.Delivered(SlackMethods.PostMessage).Count;
        Assert.Equal(2, postsBefore); // the root and one reply: the decision

        // As after a crash between Slack's answer and the commit: every row is due again.
        await test.Service.Database.ExecuteAsync("UPDATE outbox SET delivered_at = NULL");
        await test.AllDeliveredAsync();

        Assert.Equal(postsBefore, test.Slack.Delivered(SlackMethods.PostMessage).Count);
        Assert.All(test.Slack.Delivered(SlackMethods.Update), u => Assert.Equal(test.Slack.Delivered(SlackMethods.PostMessage)[0].Ts, u.Body.GetProperty("ts").GetString()));
        Assert.Empty(test.Slack.Violations);
    }

    /// <summary>
    /// A sweep appends the events of every watch that regressed at one t in one transaction, under the audit trail's lock.
    /// The subscriber read each deployment, asked whether it had a root before each reply and wrote each message in a
    /// statement of its own: about seven round trips per deployment while every press and webhook waited for the lock
    /// (the watches benchmark's `--regress`). Now its statements do not grow with the deployments, and each still gets its
    /// root before its replies, then the root's edit.
    /// </summary>
    [Fact]
    public async Task ManyDeploymentsRegressInOneAppend_TheirMessagesTakeAFewStatements_AndEachThreadIsInOrder()
    {
        var statements = new StatementCounter();
        await using var test = await StartWithWatchesAsync(statements, "gh-many");

        var few = await RegressInOneAppendAsync(test, statements, [.. Enumerable.Range(1, 2).Select(i => $"gh-many-{i}")]);
        var many = await RegressInOneAppendAsync(test, statements, [.. Enumerable.Range(3, 20).Select(i => $"gh-many-{i}")]);

        Assert.Equal(few, many);
        for (var i = 1; i <= 22; i++)
        {
            var kinds = await test.Service.Database.ScalarAsync<string>(
                $"SELECT string_agg(kind, ' ' ORDER BY id) FROM outbox WHERE deployment_id = 'gh-many-{i}'");
            Assert.Equal("slack.root slack.reply slack.reply slack.root", kinds);
        }

        await test.AllDeliveredAsync();
        Assert.Equal(23, test.Slack.RootMessages("C0DECIDE01").Count);
        Assert.Empty(test.Slack.Violations);
    }

    /// <summary>
    /// A sweep stores the watches that regressed at one t together, under the audit trail's lock, and asked the decision
    /// policy for each in turn: which had a root and the recommendation, two statements per deployment (4 for 2, 40 for 20)
    /// while every press and webhook waited for the lock (the watches benchmark's `--regress 50%`: the t stored 17 s after
    /// it). Now the recommendations of them all take the same few statements, each after its thread's root.
    /// </summary>
    [Fact]
    public async Task ManyDeploymentsRegressInOneSweep_TheirRecommendationsTakeAFewStatements_EachInItsThread()
    {
        var statements = new StatementCounter();
        await using var test = await StartWithWatchesAsync(statements, "gh-sweep");

        int few = 0, many = 0;
        await test.RegressThroughWatchAsync([.. Enumerable.Range(1, 2).Select(i => $"gh-sweep-{i}")], [SlackTestService.P95Regressed],
            async (db, decide) => few = await statements.Count(db, decide));
        await test.RegressThroughWatchAsync([.. Enumerable.Range(3, 20).Select(i => $"gh-sweep-{i}")], [SlackTestService.P95Regressed],
            async (db, decide) => many = await statements.Count(db, decide));

        Assert.Equal(few, many);
        for (var i = 1; i <= 22; i++)
        {
            var kinds = await test.Service.Database.ScalarAsync<string>(
                $"SELECT string_agg(kind || ' ' || (idempotency_key LIKE 'slack:recommend:%'), ' ' ORDER BY id) FROM outbox WHERE deployment_id = 'gh-sweep-{i}'");
            Assert.Equal("slack.root false slack.reply false slack.root false slack.reply true", kinds);
        }

        await test.AllDeliveredAsync();
        Assert.Equal(23, test.Slack.RootMessages("C0DECIDE01").Count);
        Assert.Equal(22, test.Slack.Delivered(SlackMethods.PostMessage).Count(p => p.Body.TryGetProperty("blocks", out var b) && b.GetArrayLength() > 1));
        Assert.Empty(test.Slack.Violations);
    }

    /// <summary>
    /// The set-up of the tests that count statements for many deployments at once: a service whose statements
    /// <paramref name="statements"/> counts, with 22 watched deployments <paramref name="prefix"/>-1 to -22 copied from
    /// <paramref name="prefix"/>-0, whose root message is delivered.
    /// </summary>
    private static async Task<SlackTestService> StartWithWatchesAsync(StatementCounter statements, string prefix)
    {
        var test = await SlackTestService.StartAsync(services: s => s.ConfigureDbContext<RolloutGateDbContext>(o => o.AddInterceptors(statements)));
        try
        {
            await test.WatchAsync($"{prefix}-0");
            await test.AllDeliveredAsync();
            await test.CopyWatchedAsync($"{prefix}-0", prefix, 1, 22);
            return test;
        }
        catch
        {
            await test.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// The watch's audit events of a regression (two verdict changes and the state change) for every deployment, appended
    /// at once as the sweep appends a batch's; the statements on the outbox and the deployments it took.
    /// </summary>
    private static async Task<int> RegressInOneAppendAsync(SlackTestService test, StatementCounter statements, IReadOnlyList<string> deploymentIds)
    {
        await using var scope = test.Service.Host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
        await using var transaction = await db.Database.BeginTransactionAsync();
        var deployments = await db.Deployments.Where(d => deploymentIds.Contains(d.Id)).OrderBy(d => d.Id).ToListAsync();
        var now = DateTimeOffset.UtcNow;
        var entries = new List<AuditEntry>();
        foreach (var deployment in deployments)
        {
            var change = WebhookProcessor.ChangeState(deployment, DeploymentTrigger.Regressed, DecisionPolicy.AutomaticActor, now);
            entries.AddRange(new[] { SlackTestService.P95Regressed, SlackTestService.ErrorRateRegressed }.Select(e =>
                new AuditEntry(AuditEventTypes.Evaluation, deployment.Id, deployment.Service, DecisionPolicy.AutomaticActor, new
                {
                    metric = e.Metric, at = now, from = "healthy", verdict = e.Verdict, value = e.Value, baseline = e.Baseline, threshold = e.Threshold,
                    explanation = e.Explanation, shown = e.Shown,
                })));
            entries.Add(change);
        }

        await db.SaveChangesAsync();
        var appender = scope.ServiceProvider.GetRequiredService<AuditTrail>();
        var counted = await statements.Count(db, () => appender.AppendAsync(db, entries, CancellationToken.None));
        await transaction.CommitAsync();
        return counted;
    }

    /// <summary>Counts a DbContext's statements that touch the outbox or the deployments while an action runs.</summary>
    private sealed class StatementCounter : DbCommandInterceptor
    {
        private DbContext? counting;
        private int count;

        public async Task<int> Count(DbContext context, Func<Task> action)
        {
            (counting, count) = (context, 0);
            await action();
            counting = null;
            return count;
        }

        public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(
            DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        {
            Counted(command, eventData);
            return base.ReaderExecutingAsync(command, eventData, result, cancellationToken);
        }

        public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(
            DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
        {
            Counted(command, eventData);
            return base.NonQueryExecutingAsync(command, eventData, result, cancellationToken);
        }

        private void Counted(DbCommand command, CommandEventData eventData)
        {
            if (eventData.Context == counting && (command.CommandText.Contains("outbox", StringComparison.Ordinal)
                || command.CommandText.Contains("deployments", StringComparison.Ordinal)))
            {
                Interlocked.Increment(ref count);
            }
        }
    }

    [Fact]
    public async Task HostStoppingWhileSlackPosts_ThePostedMessageIsRecordedAsDelivered()
    {
        await using var test = await SlackTestService.StartAsync();
        var dispatcher = test.Service.Host.Services.GetRequiredService<SlackOutboxDispatcher>();
        var stopping = new TaskCompletionSource<Task>(TaskCreationOptions.RunContinuationsAsynchronously);
        test.Slack.AfterNextPost(() => stopping.SetResult(dispatcher.StopAsync(CancellationToken.None)));

        await test.WatchAsync("gh-stopping-1");
        var stopped = await stopping.Task.WaitAsync(TimeSpan.FromSeconds(SlackTestService.PatienceSeconds));
        await stopped.WaitAsync(TimeSpan.FromSeconds(60));

        // The dispatcher was told to stop while Slack's answer was on its way: the message is in the channel, so it is
        // delivered on record, with its ts, and a restart will not post it again.
        var root = Assert.Single(test.Slack.Delivered(SlackMethods.PostMessage));
        Assert.Equal(1, await test.Service.CountAsync("outbox", $"delivered_ts = '{root.Ts}' AND delivered_at IS NOT NULL"));
        Assert.Equal(root.Ts, await test.Service.Database.ScalarAsync<string>("SELECT root_ts FROM slack_threads WHERE deployment_id = 'gh-stopping-1'"));
    }

    [Fact]
    public async Task RootPostedButItsAnswerLost_IsFoundInTheChannelAndNotPostedAgain()
    {
        await using var test = await SlackTestService.StartAsync();
        test.Slack.LoseNextAnswer(500);
        await test.WatchAsync("gh-lost-1");
        await test.AllDeliveredAsync();

        // Slack posted the root and answered 500. The next attempt looked in the channel, found it by its metadata,
        // and recorded it: one root, edited as the state changed.
        var root = Assert.Single(test.Slack.RootMessages("C0DECIDE01"));
        Assert.Equal(root, await test.Service.Database.ScalarAsync<string>("SELECT root_ts FROM slack_threads WHERE deployment_id = 'gh-lost-1'"));
        Assert.Equal("checkout 2.4.0 in production: watching", test.Slack.MessageText(root));
        var lookup = Assert.Single(test.Slack.Calls, c => c.Method == SlackMethods.History);
        Assert.Equal("true", lookup.Body.GetProperty("include_all_metadata").GetString());
        Assert.Empty(test.Slack.Delivered(SlackMethods.PostMessage));
        Assert.Contains(test.Service.Host.Logs.Lines, line => line.Contains($"is in C0DECIDE01 (ts {root}); not posted again", StringComparison.Ordinal));
        Assert.Equal(0, await test.Service.CountAsync("outbox", "in_doubt_since IS NOT NULL OR claimed_until IS NOT NULL"));
        Assert.Empty(test.Slack.Violations);
    }

    [Fact]
    public async Task ClaimOfAReplicaThatDied_IsTakenUpOnlyOnceItsLeaseHasPassed_AndTheRootItPostedIsRecorded()
    {
        await using var test = await SlackTestService.StartAsync(dispatcherStoppedAtOnce: true);
        var dispatcher = await test.StopDispatcherAsync();
        await test.WatchAsync("gh-dead-1");

        // What a replica killed while Slack posted the root leaves behind: the row claimed, in doubt, no outcome; the
        // message, with its metadata, in the channel.
        var id = await test.Service.Database.ScalarAsync<long>("SELECT min(id) FROM outbox WHERE deployment_id = 'gh-dead-1'");
        await test.Service.Database.ExecuteAsync(
            $"UPDATE outbox SET claimed_until = now() + interval '1 hour', in_doubt_since = now() - interval '5 seconds' WHERE id = {id}");
        var posted = test.Slack.Seed(new { channel = "C0DECIDE01", text = "checkout 2.4.0 in production", metadata = SlackOutboxDispatcher.Marker(id, "gh-dead-1") });

        // While the lease holds, the row and the deployment's later ones wait.
        Assert.Equal(0, await dispatcher.DispatchDueAsync(CancellationToken.None));
        Assert.Empty(test.Slack.Calls);

        await test.Service.Database.ExecuteAsync($"UPDATE outbox SET claimed_until = now() - interval '1 second' WHERE id = {id}");
        Assert.Equal(2, await dispatcher.DispatchDueAsync(CancellationToken.None));

        Assert.Equal([posted], test.Slack.RootMessages("C0DECIDE01"));
        Assert.Empty(test.Slack.Delivered(SlackMethods.PostMessage));
        Assert.Equal(posted, Assert.Single(test.Slack.Delivered(SlackMethods.Update)).Body.GetProperty("ts").GetString());
        Assert.Equal(posted, await test.Service.Database.ScalarAsync<string>("SELECT root_ts FROM slack_threads WHERE deployment_id = 'gh-dead-1'"));
        Assert.Equal(0, await test.PendingAsync());
        Assert.Empty(test.Slack.Violations);
    }

    /// <summary>
    /// Two replicas whose clocks differ by 3 minutes, more than the 2-minute lease: while one posts a root message (Slack
    /// has it, the answer is on its way), the other dispatches. Whichever runs ahead, the row's claim is live for the
    /// other, which takes up nothing: the root is recorded by the replica that posted it. Compared on each replica's own
    /// clock, the other took the row up, and the replica that posted it lost its lease.
    /// </summary>
    [Theory]
    [InlineData(0, 180)]
    [InlineData(-180, 0)]
    public async Task ReplicaClocksThreeMinutesApart_TheRowBeingPostedIsNotTakenUp(int postingOffsetSeconds, int otherOffsetSeconds)
    {
        await using var test = await SlackTestService.StartAsync(dispatcherStoppedAtOnce: true);
        await test.StopDispatcherAsync();
        await test.WatchAsync("gh-skew-1");
        // Due for the replica behind too.
        await test.Service.Database.ExecuteAsync("UPDATE outbox SET next_attempt_at = now() - interval '10 minutes'");
        SlackOutboxDispatcher Replica(int offsetSeconds) => ActivatorUtilities.CreateInstance<SlackOutboxDispatcher>(
            test.Service.Host.Services, new Infrastructure.ShiftedClock(TimeProvider.System.GetUtcNow().AddSeconds(offsetSeconds)));
        var posting = Replica(postingOffsetSeconds);
        var other = Replica(otherOffsetSeconds);
        var tookUp = -1;
        test.Slack.AfterNextPost(() => tookUp = other.DispatchDueAsync(CancellationToken.None).GetAwaiter().GetResult());

        Assert.Equal(2, await posting.DispatchDueAsync(CancellationToken.None));

        Assert.Equal(0, tookUp);
        var root = Assert.Single(test.Slack.RootMessages("C0DECIDE01"));
        Assert.Equal(root, await test.Service.Database.ScalarAsync<string>("SELECT root_ts FROM slack_threads WHERE deployment_id = 'gh-skew-1'"));
        Assert.DoesNotContain(test.Slack.Calls, call => call.Method == SlackMethods.History);
        Assert.Equal(0, await test.PendingAsync());
        Assert.Empty(test.Slack.Violations);
    }

    /// <summary>
    /// A replica whose clock runs 5 minutes ahead of Slack's (and of the database's) posts a root message whose answer is
    /// lost, then looks for it. Slack's ts is on Slack's clock: looked for from a minute before the attempt on the
    /// replica's clock, the look-up began 4 minutes after the message and missed it, and the root was posted twice.
    /// </summary>
    [Fact]
    public async Task ReplicaClockFiveMinutesAhead_TheRootWhoseAnswerWasLostIsFoundAndNotPostedAgain()
    {
        await using var test = await SlackTestService.StartAsync(dispatcherStoppedAtOnce: true);
        await test.StopDispatcherAsync();
        await test.WatchAsync("gh-ahead-1");
        var ahead = ActivatorUtilities.CreateInstance<SlackOutboxDispatcher>(
            test.Service.Host.Services, new Infrastructure.ShiftedClock(TimeProvider.System.GetUtcNow().AddMinutes(5)));
        test.Slack.LoseNextAnswer(500);

        Assert.Equal(0, await ahead.DispatchDueAsync(CancellationToken.None));
        var posted = Assert.Single(test.Slack.RootMessages("C0DECIDE01"));
        await test.Service.Database.ExecuteAsync("UPDATE outbox SET next_attempt_at = now() WHERE delivered_at IS NULL");
        Assert.Equal(2, await ahead.DispatchDueAsync(CancellationToken.None));

        Assert.Equal([posted], test.Slack.RootMessages("C0DECIDE01"));
        var lookup = Assert.Single(test.Slack.Calls, c => c.Method == SlackMethods.History);
        Assert.True(decimal.Parse(lookup.Body.GetProperty("oldest").GetString()!, System.Globalization.CultureInfo.InvariantCulture)
            < decimal.Parse(posted, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(posted, await test.Service.Database.ScalarAsync<string>("SELECT root_ts FROM slack_threads WHERE deployment_id = 'gh-ahead-1'"));
        Assert.Equal(0, await test.PendingAsync());
        Assert.Empty(test.Slack.Violations);
    }

    [Fact]
    public async Task ChannelCannotBeRead_TheRootInDoubtIsPostedAgainAndTheLogSaysSo()
    {
        await using var test = await SlackTestService.StartAsync();
        test.Slack.LoseNextAnswer(500);
        test.Slack.FailNext("missing_scope");
        await test.WatchAsync("gh-noscope-1");
        await test.AllDeliveredAsync();

        // Without channels:history the root cannot be looked for: posting it again is better than none.
        Assert.Equal(2, test.Slack.RootMessages("C0DECIDE01").Count);
        Assert.Contains(test.Service.Host.Logs.Lines, line =>
            line.Contains("cannot look in C0DECIDE01", StringComparison.Ordinal) && line.Contains("may appear twice", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ReplyPostedButItsAnswerLost_IsFoundInTheThreadAndNotPostedAgain()
    {
        await using var test = await SlackTestService.StartAsync();
        await DecisionReplyAnswerLostAsync(test, "gh-lost-reply-1");
        await test.AllDeliveredAsync();

        // Slack posted the decision's reply and answered 500. The next attempt looked in the deployment's thread, found it
        // by its metadata, and recorded it: one reply.
        var root = Assert.Single(test.Slack.RootMessages("C0DECIDE01"));
        var reply = Assert.Single(test.Slack.Replies(root));
        Assert.Equal("alice decided *stop* (via http): test", test.Slack.MessageText(reply));
        Assert.Equal(reply, await test.Service.Database.ScalarAsync<string>(
            "SELECT delivered_ts FROM outbox WHERE deployment_id = 'gh-lost-reply-1' AND kind = 'slack.reply'"));
        var lookup = Assert.Single(test.Slack.Calls, c => c.Method == SlackMethods.Replies);
        Assert.Equal("C0DECIDE01", lookup.Body.GetProperty("channel").GetString());
        Assert.Equal(root, lookup.Body.GetProperty("ts").GetString());
        Assert.Equal("true", lookup.Body.GetProperty("include_all_metadata").GetString());
        Assert.DoesNotContain(test.Slack.Calls, c => c.Method == SlackMethods.History);
        Assert.Contains(test.Service.Host.Logs.Lines, line => line.Contains($"is in C0DECIDE01, thread {root} (ts {reply}); not posted again", StringComparison.Ordinal));
        Assert.Equal(0, await test.Service.CountAsync("outbox", "in_doubt_since IS NOT NULL OR claimed_until IS NOT NULL"));
        Assert.Empty(test.Slack.Violations);
    }

    [Theory]
    [InlineData("missing_scope")]
    [InlineData("not_in_channel")]
    public async Task ThreadCannotBeRead_TheReplyInDoubtIsPostedAgainWithOneWarning(string error)
    {
        await using var test = await SlackTestService.StartAsync();
        await DecisionReplyAnswerLostAsync(test, "gh-noscope-reply-1", () => test.Slack.FailNext(error));
        await test.AllDeliveredAsync();

        // The thread cannot be read (no channels:history, or the bot not in the channel): posting the reply again is better
        // than none, and the log says once what to change.
        var root = Assert.Single(test.Slack.RootMessages("C0DECIDE01"));
        Assert.Equal(2, test.Slack.Replies(root).Count);
        var warning = Assert.Single(test.Service.Host.Logs.Lines, line => line.Contains("cannot look in", StringComparison.Ordinal));
        Assert.Contains($"cannot look in C0DECIDE01, thread {root}", warning, StringComparison.Ordinal);
        Assert.Contains($"(Slack: {error}; the bot must be in the channel, and the app needs channels:history", warning, StringComparison.Ordinal);
        Assert.Contains("may appear twice", warning, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ThreadLookupRateLimited_WaitsForRetryAfterStillInDoubt_ThenFindsTheReply()
    {
        await using var test = await SlackTestService.StartAsync();
        await DecisionReplyAnswerLostAsync(test, "gh-429-reply-1", () => test.Slack.AnswerNext(429, retryAfterSeconds: "30"));
        await SlackTestService.EventuallyAsync(
            async () => await test.Service.CountAsync("outbox", "last_error LIKE 'Slack rate-limited conversations.replies%'") == 1,
            "the thread look-up rate-limited");

        // Neither posted again nor given up: the reply waits for Slack's Retry-After, still in doubt.
        Assert.Equal(1, await test.Service.CountAsync("outbox",
            "kind = 'slack.reply' AND delivered_at IS NULL AND in_doubt_since IS NOT NULL AND next_attempt_at > now() + interval '20 seconds'"));
        var root = Assert.Single(test.Slack.RootMessages("C0DECIDE01"));
        Assert.Single(test.Slack.Replies(root));

        await test.Service.Database.ExecuteAsync("UPDATE outbox SET next_attempt_at = now() WHERE delivered_at IS NULL");
        await test.AllDeliveredAsync();
        Assert.Single(test.Slack.Replies(root));
        Assert.Equal(2, test.Slack.Calls.Count(c => c.Method == SlackMethods.Replies));
        Assert.Empty(test.Slack.Violations);
    }

    [Fact]
    public async Task ReplyInDoubtWithoutAThread_IsLookedForInTheChannelAndNotPostedAgain()
    {
        await using var test = await SlackTestService.StartAsync();
        var (dispatcher, id, _) = await ReplyInDoubtAsync(test, "gh-loose-reply-1");

        // An earlier attempt met the thread deleted (thread_not_found), forgot it, and posted the reply in the channel
        // itself; that answer was lost.
        await test.Service.Database.ExecuteAsync("DELETE FROM slack_threads WHERE deployment_id = 'gh-loose-reply-1'");
        var loose = test.Slack.Seed(new { channel = "C0DECIDE01", text = "alice decided *stop* (via http): test", metadata = SlackOutboxDispatcher.Marker(id, "gh-loose-reply-1") });
        Assert.Equal(1, await dispatcher.DispatchDueAsync(CancellationToken.None));

        Assert.Empty(test.Slack.Delivered(SlackMethods.PostMessage));
        Assert.Single(test.Slack.Calls, c => c.Method == SlackMethods.History);
        Assert.Equal(loose, await test.Service.Database.ScalarAsync<string>($"SELECT delivered_ts FROM outbox WHERE id = {id}"));
        Assert.Empty(test.Slack.Violations);
    }

    [Fact]
    public async Task ThreadDeletedWhileItsReplyWasInDoubt_TheReplyGoesToTheChannel()
    {
        await using var test = await SlackTestService.StartAsync();
        var (dispatcher, id, root) = await ReplyInDoubtAsync(test, "gh-gone-reply-1");
        test.Slack.Delete(root);
        Assert.Equal(1, await dispatcher.DispatchDueAsync(CancellationToken.None));

        // The thread look-up finds it gone (thread_not_found); so does the post, which then goes to the channel itself.
        var lookup = Assert.Single(test.Slack.Calls, c => c.Method == SlackMethods.Replies);
        Assert.Equal(root, lookup.Body.GetProperty("ts").GetString());
        var loose = Assert.Single(test.Slack.RootMessages("C0DECIDE01"));
        Assert.Equal("alice decided *stop* (via http): test", test.Slack.MessageText(loose));
        Assert.Equal(loose, await test.Service.Database.ScalarAsync<string>($"SELECT delivered_ts FROM outbox WHERE id = {id}"));
        Assert.Equal(0, await test.Service.CountAsync("slack_threads", "deployment_id = 'gh-gone-reply-1'"));
        Assert.Contains(test.Service.Host.Logs.Lines, line => line.Contains($"thread {root}, which is gone from Slack (thread_not_found); posting it", StringComparison.Ordinal));
        Assert.Empty(test.Slack.Violations);
    }

    /// <summary>
    /// A watched deployment, its messages delivered, then decided: Slack posts the decision's reply but its answer is lost
    /// (a 500), and answers the next call (the look-up) as <paramref name="next"/> scripts, if given.
    /// </summary>
    private static async Task DecisionReplyAnswerLostAsync(SlackTestService test, string deploymentId, Action? next = null)
    {
        await test.WatchAsync(deploymentId);
        await test.AllDeliveredAsync();
        test.Slack.LoseNextAnswer(500);
        next?.Invoke();
        (await test.OperatorDecideAsync(deploymentId, "stop")).EnsureSuccessStatusCode();
    }

    /// <summary>
    /// A watched deployment whose decision's reply is the one row left to deliver, in doubt (as after an attempt whose
    /// answer was lost), with the dispatcher stopped so that the test dispatches it; the reply's row id and the root's ts.
    /// </summary>
    private static async Task<(SlackOutboxDispatcher Dispatcher, long ReplyId, string RootTs)> ReplyInDoubtAsync(SlackTestService test, string deploymentId)
    {
        await test.WatchAsync(deploymentId);
        await test.AllDeliveredAsync();
        var dispatcher = test.Service.Host.Services.GetRequiredService<SlackOutboxDispatcher>();
        await dispatcher.StopAsync(CancellationToken.None);
        (await test.OperatorDecideAsync(deploymentId, "stop")).EnsureSuccessStatusCode();
        await test.Service.Database.ExecuteAsync(
            $"UPDATE outbox SET delivered_at = now() WHERE deployment_id = '{deploymentId}' AND kind = 'slack.root' AND delivered_at IS NULL");
        var id = await test.Service.Database.ScalarAsync<long>(
            $"SELECT id FROM outbox WHERE deployment_id = '{deploymentId}' AND kind = 'slack.reply' AND delivered_at IS NULL");
        await test.Service.Database.ExecuteAsync($"UPDATE outbox SET attempts = 1, in_doubt_since = now() - interval '5 seconds' WHERE id = {id}");
        var root = Assert.Single(test.Slack.RootMessages("C0DECIDE01"));
        test.Slack.Calls.Clear();
        return (dispatcher, id, root);
    }

    [Fact]
    public async Task EveryPost_CarriesItsOutboxIdAndDeploymentInItsMetadata()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-metadata-1");
        (await test.OperatorDecideAsync("gh-metadata-1", "stop")).EnsureSuccessStatusCode();
        await test.AllDeliveredAsync();

        var posts = test.Slack.Delivered(SlackMethods.PostMessage);
        Assert.Equal(2, posts.Count);
        var rootRow = await test.Service.Database.ScalarAsync<long>("SELECT min(id) FROM outbox WHERE deployment_id = 'gh-metadata-1'");
        foreach (var post in posts)
        {
            var metadata = post.Body.GetProperty("metadata");
            Assert.Equal(SlackOutboxDispatcher.MetadataEventType, metadata.GetProperty("event_type").GetString());
            Assert.Equal("gh-metadata-1", metadata.GetProperty("event_payload").GetProperty("deployment_id").GetString());
        }

        Assert.Equal(rootRow.ToString(System.Globalization.CultureInfo.InvariantCulture),
            posts[0].Body.GetProperty("metadata").GetProperty("event_payload").GetProperty("outbox_id").GetString());
    }

    [Fact]
    public async Task Decision_RepliesInTheThreadWithTheActor()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-reply-1");
        (await test.OperatorDecideAsync("gh-reply-1", "stop")).EnsureSuccessStatusCode();
        await test.AllDeliveredAsync();

        var posts = test.Slack.Delivered(SlackMethods.PostMessage);
        Assert.Equal(posts[0].Ts, posts[1].Body.GetProperty("thread_ts").GetString());
        Assert.Equal("alice decided *stop* (via http): test", posts[1].Body.GetProperty("text").GetString());
        Assert.Equal("checkout 2.4.0 in production: stopped", test.Slack.MessageText(posts[0].Ts!));
    }

    [Fact]
    public async Task Decision_TheRecommendationsButtonsGiveWayToWhoDecidedWhat_ItsTextAndEvidenceStay()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-settle-1");
        await test.RegressThroughWatchAsync("gh-settle-1", SlackTestService.P95Regressed);
        await test.AllDeliveredAsync();
        var recommendation = Assert.Single(test.Slack.Delivered(SlackMethods.PostMessage), post => HasButtons(post.Body));

        (await test.PressAsync(SlackTestService.Owner, "dismiss", "gh-settle-1")).EnsureSuccessStatusCode();
        await test.AllDeliveredAsync();

        // The reply is edited in place: the same text and evidence, no buttons, and what settled them where they were.
        var settled = Assert.Single(test.Slack.Delivered(SlackMethods.Update), update => update.Body.GetProperty("ts").GetString() == recommendation.Ts);
        Assert.Equal(recommendation.Body.GetProperty("text").GetString(), settled.Body.GetProperty("text").GetString());
        Assert.False(HasButtons(settled.Body));
        var blocks = settled.Body.GetProperty("blocks").EnumerateArray().ToList();
        Assert.Equal(recommendation.Body.GetProperty("blocks")[0].GetRawText(), blocks[0].GetRawText());
        Assert.Equal("context", blocks[^1].GetProperty("type").GetString());
        Assert.Equal($"Decided: <@{SlackTestService.Owner}> decided *dismiss*; these buttons no longer apply.",
            blocks[^1].GetProperty("elements")[0].GetProperty("text").GetString());
        Assert.Empty(test.Slack.Violations);
    }

    [Fact]
    public async Task PipelineRolledBackWithoutADecision_TheRecommendationsButtonsGiveWayToTheNewState()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-settle-2");
        await test.RegressThroughWatchAsync("gh-settle-2", SlackTestService.P95Regressed);
        await test.AllDeliveredAsync();
        var recommendation = Assert.Single(test.Slack.Delivered(SlackMethods.PostMessage), post => HasButtons(post.Body));

        (await test.Service.Webhooks.SendEventAsync("rolledback", "gh-settle-2")).EnsureSuccessStatusCode();
        await test.AllDeliveredAsync();

        var settled = Assert.Single(test.Slack.Delivered(SlackMethods.Update), update => update.Body.GetProperty("ts").GetString() == recommendation.Ts);
        Assert.False(HasButtons(settled.Body));
        Assert.Equal("The deployment is now *rolled-back*; these buttons no longer apply.",
            settled.Body.GetProperty("blocks").EnumerateArray().Last().GetProperty("elements")[0].GetProperty("text").GetString());
        Assert.Empty(test.Slack.Violations);
    }

    private static bool HasButtons(JsonElement body) =>
        body.TryGetProperty("blocks", out var blocks) && blocks.EnumerateArray().Any(block => block.GetProperty("type").GetString() == "actions");

    [Fact]
    public async Task WebhookTextWithSlackMarkup_IsEscapedInEveryMessageTextAndBlock()
    {
        // A version is the pipeline's free text; in mrkdwn "<!channel>" pings everyone and "<http://evil|click>" is a
        // link under any label. The text of a message (what notifications show) is mrkdwn as much as its blocks.
        await using var test = await SlackTestService.StartAsync();
        const string Markup = "<!channel> <@U0G9QF9C6> <http://evil.example|click>";
        foreach (var @event in new[] { "predeploy", "deployed" })
        {
            var body = JsonSerializer.Serialize(new
            {
                @event, deploymentId = "gh-markup-1", service = "checkout", environment = "production", version = Markup, initiator = "alice",
            });
            (await test.Service.Webhooks.SendAsync(body)).EnsureSuccessStatusCode();
        }

        await test.RegressThroughWatchAsync("gh-markup-1", SlackTestService.P95Regressed);
        await test.AllDeliveredAsync();

        var calls = test.Slack.Delivered(SlackMethods.PostMessage).Concat(test.Slack.Delivered(SlackMethods.Update)).ToList();
        var texts = calls.Select(call => call.Body.GetProperty("text").GetString()!)
            .Concat(calls.Where(call => call.Body.TryGetProperty("blocks", out _))
                .SelectMany(call => call.Body.GetProperty("blocks").EnumerateArray())
                .Where(block => block.TryGetProperty("text", out _))
                .Select(block => block.GetProperty("text").GetProperty("text").GetString()!))
            .ToList();
        Assert.Contains(texts, text => text.StartsWith("checkout &lt;!channel&gt; &lt;@U0G9QF9C6&gt; &lt;http://evil.example|click&gt; in production: ", StringComparison.Ordinal));
        Assert.Contains(texts, text => text.Contains("&lt;!channel&gt;", StringComparison.Ordinal) && text.Contains("regressed: roll back?", StringComparison.Ordinal));
        Assert.All(texts, text =>
        {
            Assert.DoesNotContain("<!channel>", text, StringComparison.Ordinal);
            Assert.DoesNotContain("<@U0G9QF9C6>", text, StringComparison.Ordinal);
            Assert.DoesNotContain("<http://evil", text, StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task LongEvidence_IsShortenedToBlockKitsLimits_AndEveryMessageIsPostedWithItsButtons()
    {
        // Thirty metrics whose explanations carry a 5,000-character PromQL (with '<' and '&', which escaping lengthens):
        // Slack refuses a section over 3,000 characters, and a refused recommendation would leave the channel silent.
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-long-1");
        var query = "sum(rate(istio_requests_total{response_code=~\"5..\"}[5m])) " + string.Concat(Enumerable.Repeat("< 1 and x & ", 420));
        var evidence = Enumerable.Range(1, 30)
            .Select(i => new MetricEvidence($"metric-{i}", 0.9, 0.6, 0.7, "regressed", $"metric-{i} is blind: Prometheus refused {query}"))
            .ToArray();
        await test.RegressThroughWatchAsync("gh-long-1", evidence);
        await test.AllDeliveredAsync();

        Assert.Equal(0, await test.Service.CountAsync("outbox", "abandoned_at IS NOT NULL"));
        Assert.Empty(test.Slack.Violations);
        static IReadOnlyList<string> SectionTexts(SlackCall call) =>
            [.. call.Body.GetProperty("blocks").EnumerateArray().Where(b => b.GetProperty("type").GetString() == "section")
                .Select(b => b.GetProperty("text").GetProperty("text").GetString()!)];
        var recommendation = Assert.Single(test.Slack.Delivered(SlackMethods.PostMessage),
            post => post.Body.TryGetProperty("blocks", out var blocks) && blocks.EnumerateArray().Any(b => b.GetProperty("type").GetString() == "actions"));
        var shown = string.Join("\n", SectionTexts(recommendation));
        Assert.All(evidence, e => Assert.Contains($"• *{e.Metric}*: 0.9 (baseline 0.6, threshold 0.7) → regressed: {e.Metric} is blind", shown, StringComparison.Ordinal));
        Assert.Contains("Without an answer within 15 min, RolloutGate will roll back.", shown, StringComparison.Ordinal);
        Assert.True(shown.Length <= BlockKitLimits.MessageText, $"{shown.Length} characters of sections");
        // Shortened between escapes, never inside one.
        Assert.DoesNotMatch("&(?!amp;|lt;|gt;)", shown);
        var verdictChanges = test.Slack.Delivered(SlackMethods.PostMessage)
            .Where(post => post.Body.GetProperty("text").GetString()!.Contains("a verdict changed", StringComparison.Ordinal)).ToList();
        Assert.Equal(30, verdictChanges.Count);
        Assert.All(verdictChanges, post => Assert.EndsWith("…", SectionTexts(post)[^1], StringComparison.Ordinal));

        // Slack's press on it carries the whole message, every section of it escaped once more (JSON, then the form).
        var message = JsonSerializer.SerializeToElement(new
        {
            type = "message", text = recommendation.Body.GetProperty("text").GetString(), ts = recommendation.Ts,
            blocks = recommendation.Body.GetProperty("blocks"),
        });
        var press = await test.PressAsync(SlackTestService.Owner, "rollback", "gh-long-1", message);
        Assert.True(press.StatusCode == System.Net.HttpStatusCode.OK, $"{(int)press.StatusCode}: {await press.Content.ReadAsStringAsync()}");
        Assert.Equal(1, await test.Service.CountAsync("decisions", $"deployment_id = 'gh-long-1' AND kind = 'rollback' AND actor = '{SlackTestService.Owner}'"));
    }

    [Fact]
    public async Task ManyMetrics_TheRecommendationListsTheFirstWithTheirFigures_AndCountsTheRestWithTheLink()
    {
        // A runbook watching every route: 150 metrics regressed at once (all blind when Prometheus is down). Shared among
        // all of them, the message's room left each metric some 80 characters, too few for its name and figures.
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-many-1");
        var evidence = Enumerable.Range(1, 150)
            .Select(i => new MetricEvidence($"http_server_request_duration_seconds_p99_route_{i:D3}", 0.9, 0.6, 0.7, "regressed",
                $"p99 of route {i} rose 50% over the baseline; the limit is 17%"))
            .ToArray();
        await test.RegressThroughWatchAsync("gh-many-1", evidence);
        await test.AllDeliveredAsync(seconds: 60);

        Assert.Equal(0, await test.Service.CountAsync("outbox", "abandoned_at IS NOT NULL"));
        Assert.Empty(test.Slack.Violations);
        var recommendation = Assert.Single(test.Slack.Delivered(SlackMethods.PostMessage),
            post => post.Body.TryGetProperty("blocks", out var blocks) && blocks.EnumerateArray().Any(b => b.GetProperty("type").GetString() == "actions"));
        var blocks = recommendation.Body.GetProperty("blocks").EnumerateArray().ToList();
        var shown = string.Join("\n", blocks.Where(b => b.GetProperty("type").GetString() == "section")
            .Select(b => b.GetProperty("text").GetProperty("text").GetString()));
        Assert.StartsWith("*checkout `2.4.0` regressed* · <https://rolloutgate.example/api/v1/deployments/gh-many-1|gh-many-1>\n", shown,
            StringComparison.Ordinal);
        var listed = 39; // SlackMessages.MaxListedMetrics, less the line that counts the rest
        Assert.All(evidence.Take(listed), e => Assert.Contains(
            $"• *{e.Metric}*: 0.9 (baseline 0.6, threshold 0.7) → regressed: {e.Explanation}\n", shown, StringComparison.Ordinal));
        Assert.DoesNotContain(evidence[listed].Metric, shown, StringComparison.Ordinal);
        Assert.Contains($"• and {150 - listed} more metrics: see <https://rolloutgate.example/api/v1/deployments/gh-many-1|gh-many-1>\n", shown,
            StringComparison.Ordinal);
        Assert.Equal(["rollback", "dismiss", "stop"], blocks.Single(b => b.GetProperty("type").GetString() == "actions")
            .GetProperty("elements").EnumerateArray().Select(e => e.GetProperty("action_id").GetString()));
    }

    [Fact]
    public async Task LongReasonFullOfMarkup_TheDecisionReplyIsCutWithTheLinkToTheWholeReason()
    {
        // 48,000 characters of reason (the API takes a body of 64 KiB), each '&' written "&amp;" in mrkdwn: 96,000, which
        // Slack would cut at 40,000 wherever it fell.
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-reason-1");
        var reason = "db migration half-applied: " + string.Concat(Enumerable.Repeat("a&b ", 12_000));
        var body = JsonSerializer.Serialize(new { actor = "alice", reason }, new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        (await test.Service.Operator().PostAsync("/api/v1/deployments/gh-reason-1/stop", new StringContent(body, Encoding.UTF8, "application/json")))
            .EnsureSuccessStatusCode();
        await test.AllDeliveredAsync();

        Assert.Empty(test.Slack.Violations);
        var decision = Assert.Single(test.Slack.Delivered(SlackMethods.PostMessage),
            post => post.Body.GetProperty("text").GetString()!.StartsWith("alice decided *stop* (via http): ", StringComparison.Ordinal));
        var text = decision.Body.GetProperty("text").GetString()!;
        Assert.InRange(text.Length, 3_990, 4_000); // BlockKitLimits.Text
        Assert.StartsWith("alice decided *stop* (via http): db migration half-applied: a&amp;b a&amp;b ", text, StringComparison.Ordinal);
        Assert.EndsWith("… (shortened: all of it at <https://rolloutgate.example/api/v1/deployments/gh-reason-1|gh-reason-1>)", text,
            StringComparison.Ordinal);
        Assert.DoesNotMatch("&(?!amp;|lt;|gt;)", text);
        Assert.Equal(1, await test.Service.CountAsync("decisions", $"deployment_id = 'gh-reason-1' AND length(reason) = {reason.Length}"));
    }

    [Fact]
    public async Task LongWebhookFieldsFullOfMarkup_TheRootMessageIsStillPosted()
    {
        // Each field within the webhook's 256 characters, but escaped ('&' is "&amp;") together past a section's 3,000.
        await using var test = await SlackTestService.StartAsync();
        foreach (var @event in new[] { "predeploy", "deployed" })
        {
            var body = JsonSerializer.Serialize(new
            {
                @event, deploymentId = "gh-long-root", service = "checkout", environment = "production",
                version = new string('&', 256), previousVersion = new string('&', 256), initiator = new string('<', 256),
            });
            (await test.Service.Webhooks.SendAsync(body)).EnsureSuccessStatusCode();
        }

        await test.AllDeliveredAsync();

        Assert.Equal(0, await test.Service.CountAsync("outbox", "abandoned_at IS NOT NULL"));
        Assert.Empty(test.Slack.Violations);
        var root = Assert.Single(test.Slack.Delivered(SlackMethods.PostMessage));
        var update = Assert.Single(test.Slack.Delivered(SlackMethods.Update));
        var sections = update.Body.GetProperty("blocks").EnumerateArray().Select(b => b.GetProperty("text").GetProperty("text").GetString()!).ToList();
        Assert.Equal(2, sections.Count);
        Assert.Contains($"Initiator: {string.Concat(Enumerable.Repeat("&lt;", 256))}", sections[1], StringComparison.Ordinal);
        Assert.Contains("<https://rolloutgate.example/api/v1/deployments/gh-long-root|gh-long-root>", sections[1], StringComparison.Ordinal);
        Assert.Equal(root.Ts, update.Body.GetProperty("ts").GetString());
    }

    [Fact]
    public async Task FailedRollbackAction_AsksToRetryOrStop_AndTheRetryButtonRunsItAgain()
    {
        await using var kubernetes = await FakeKubernetesApiServer.StartAsync();
        await using var test = await SlackTestService.StartAsync(moreSettings: new Dictionary<string, string?>
        {
            ["RolloutGate:Kubernetes:ApiServer"] = kubernetes.Url,
            ["RolloutGate:Kubernetes:TokenFile"] = kubernetes.TokenFile,
        });
        await test.WatchAsync("gh-retry-1");
        await test.RegressAsync("gh-retry-1");

        // No VirtualService yet: the action fails, and the thread asks what next.
        (await test.PressAsync(SlackTestService.Owner, "rollback", "gh-retry-1")).EnsureSuccessStatusCode();
        await SlackTestService.EventuallyAsync(
            async () => await test.Service.CountAsync("audit_events", "type = 'rollback.action' AND deployment_id = 'gh-retry-1'") == 1, "the action's outcome");
        await test.AllDeliveredAsync();
        var failed = Assert.Single(test.Slack.Delivered(SlackMethods.PostMessage),
            post => post.Body.GetProperty("text").GetString()!.StartsWith("Rollback action istio", StringComparison.Ordinal));
        Assert.Contains("*failed*", failed.Body.GetProperty("text").GetString(), StringComparison.Ordinal);
        var buttons = failed.Body.GetProperty("blocks")[1].GetProperty("elements").EnumerateArray().ToList();
        Assert.Equal(["rollback", "stop"], buttons.Select(b => b.GetProperty("action_id").GetString()));
        Assert.Equal(["Retry rollback", "Stop automation"], buttons.Select(b => b.GetProperty("text").GetProperty("text").GetString()));
        Assert.All(buttons, b => Assert.Equal("gh-retry-1", b.GetProperty("value").GetString()));

        kubernetes.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", RollbackDispatcherTests.HalfCanarySpec());
        (await test.PressAsync(SlackTestService.Approver, "rollback", "gh-retry-1")).EnsureSuccessStatusCode();
        await SlackTestService.EventuallyAsync(async () => await test.StateAsync("gh-retry-1") == "rolled-back", "the retried rollback");
        Assert.Equal(2, await test.Service.CountAsync("decisions", "deployment_id = 'gh-retry-1' AND kind = 'rollback'"));
        await test.AllDeliveredAsync();
        Assert.Contains(test.Slack.Delivered(SlackMethods.PostMessage),
            post => post.Body.GetProperty("text").GetString()!.StartsWith("Rollback action istio", StringComparison.Ordinal)
                && post.Body.GetProperty("text").GetString()!.Contains("*succeeded*", StringComparison.Ordinal) && !post.Body.TryGetProperty("blocks", out _));
        // The failed action's Retry and Stop buttons gave way to the retry's decision.
        var settled = Assert.Single(test.Slack.Delivered(SlackMethods.Update), update => update.Body.GetProperty("ts").GetString() == failed.Ts);
        Assert.False(HasButtons(settled.Body));
    }

    [Fact]
    public async Task RollbackActionHaltedByAStop_ReplyOffersNoButtonsTheStateWouldRefuse()
    {
        await using var kubernetes = await FakeKubernetesApiServer.StartAsync();
        kubernetes.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", RollbackDispatcherTests.HalfCanarySpec());
        // A 500 carries no Retry-After: the next attempt waits the backoff, of about 10 minutes here, and the stop comes in
        // meanwhile. With the default backoff (500 ms doubling, jittered) five 500s were all tried within a few seconds, so a
        // stop that took that long on a loaded machine (the press, then the action's state read once a second) found the
        // action failed, not halted.
        kubernetes.FailNext(500);
        await using var test = await SlackTestService.StartAsync(moreSettings: new Dictionary<string, string?>
        {
            ["RolloutGate:Kubernetes:ApiServer"] = kubernetes.Url,
            ["RolloutGate:Kubernetes:TokenFile"] = kubernetes.TokenFile,
        }, services: services => services.Configure<RollbackResilienceOptions>(options =>
        {
            options.BaseDelay = TimeSpan.FromMinutes(10);
            options.MaxDelay = TimeSpan.FromMinutes(10);
        }));
        await test.WatchAsync("gh-halt-1");
        await test.RegressAsync("gh-halt-1");

        // The action retries the API server's 500s; the owner stops the automation meanwhile.
        (await test.PressAsync(SlackTestService.Owner, "rollback", "gh-halt-1")).EnsureSuccessStatusCode();
        await SlackTestService.EventuallyAsync(() => Task.FromResult(!kubernetes.Requests.IsEmpty), "the action's first attempt");
        (await test.PressAsync(SlackTestService.Owner, "stop", "gh-halt-1")).EnsureSuccessStatusCode();
        await SlackTestService.EventuallyAsync(
            async () => await test.Service.CountAsync("audit_events", "type = 'rollback.action' AND deployment_id = 'gh-halt-1'") == 1, "the action's outcome");
        await test.AllDeliveredAsync();

        // Retry rollback and Stop automation would both be refused in state stopped: the reply says so instead.
        var halted = Assert.Single(test.Slack.Delivered(SlackMethods.PostMessage),
            post => post.Body.GetProperty("text").GetString()!.StartsWith("Rollback action istio", StringComparison.Ordinal));
        var text = halted.Body.GetProperty("text").GetString()!;
        Assert.Contains("*failed* (halted after", text, StringComparison.Ordinal);
        Assert.Contains("The deployment is stopped", text, StringComparison.Ordinal);
        Assert.False(halted.Body.TryGetProperty("blocks", out _));
    }

    [Fact]
    public async Task SlackOutage_MessagesQueueThenAllAreDeliveredOnceInOrder()
    {
        await using var test = await SlackTestService.StartAsync();
        test.Slack.Down = true;
        await test.WatchAsync("gh-outage-1");
        (await test.OperatorDecideAsync("gh-outage-1", "stop")).EnsureSuccessStatusCode();
        await SlackTestService.EventuallyAsync(
            async () => await test.Service.CountAsync("outbox", "last_error IS NOT NULL AND attempts > 0") > 0, "a failed attempt recorded");
        Assert.Equal(4, await test.PendingAsync());
        Assert.Contains("503", await test.Service.Database.ScalarAsync<string>("SELECT last_error FROM outbox WHERE last_error IS NOT NULL LIMIT 1"),
            StringComparison.Ordinal);

        test.Slack.Down = false;
        await test.AllDeliveredAsync(seconds: 60);

        var delivered = test.Slack.Calls.Where(c => c.AnsweredStatus == 200).ToList();
        // The root was tried during the outage: Slack's 503 does not tell whether it was posted, so it is looked for first.
        Assert.Equal(
            ["conversations.history", "chat.postMessage", "chat.update", "chat.postMessage", "chat.update"],
            delivered.Select(c => c.Method));
        Assert.Equal(delivered[1].Ts, delivered[3].Body.GetProperty("thread_ts").GetString());
        Assert.Equal("checkout 2.4.0 in production: stopped", test.Slack.MessageText(delivered[1].Ts!));
        Assert.Empty(test.Slack.Violations);
    }

    [Fact]
    public async Task RootDeletedInSlack_TheDeploymentsMessagesGoOnInANewRootInsteadOfWaitingADay()
    {
        await using var test = await SlackTestService.StartAsync();
        await test.WatchAsync("gh-gone-1");
        await test.AllDeliveredAsync();
        var deleted = Assert.Single(test.Slack.Delivered(SlackMethods.PostMessage)).Ts!;
        test.Slack.Delete(deleted);

        (await test.OperatorDecideAsync("gh-gone-1", "stop")).EnsureSuccessStatusCode();
        await test.AllDeliveredAsync();

        var channel = test.Slack.Delivered(SlackMethods.PostMessage)[0].Body.GetProperty("channel").GetString()!;
        var root = Assert.Single(test.Slack.RootMessages(channel), ts => test.Slack.MessageText(ts)!.EndsWith(": stopped", StringComparison.Ordinal));
        Assert.Equal(root, await test.Service.Database.ScalarAsync<string>("SELECT root_ts FROM slack_threads WHERE deployment_id = 'gh-gone-1'"));
        Assert.Contains(test.Slack.Calls, c => c.Method == SlackMethods.Update && c.Body.GetProperty("ts").GetString() == deleted);
        // The decision's reply came first: Slack answered thread_not_found, so it went to the channel itself, and the
        // next root message (the state, stopped) started a new thread.
        Assert.Contains(test.Service.Host.Logs.Lines, line => line.Contains($"its root message in {channel} (ts {deleted}) is gone from Slack (thread_not_found", StringComparison.Ordinal));

        // The new root deleted too, and the root message sent again: chat.update answers message_not_found, and it is posted anew.
        test.Slack.Delete(root);
        await test.Service.Database.ExecuteAsync("""
            INSERT INTO outbox (deployment_id, kind, payload, idempotency_key, created_at, next_attempt_at)
            SELECT deployment_id, kind, payload, idempotency_key || ':again', now(), now() FROM outbox
            WHERE deployment_id = 'gh-gone-1' AND kind = 'slack.root' ORDER BY id DESC LIMIT 1
            """);
        await test.AllDeliveredAsync();
        var again = Assert.Single(test.Slack.RootMessages(channel), ts => ts != root && test.Slack.MessageText(ts)!.EndsWith(": stopped", StringComparison.Ordinal));
        Assert.Equal(again, await test.Service.Database.ScalarAsync<string>("SELECT root_ts FROM slack_threads WHERE deployment_id = 'gh-gone-1'"));
        Assert.Contains(test.Service.Host.Logs.Lines, line => line.Contains($"(ts {root}) is gone from Slack (message_not_found", StringComparison.Ordinal));
        Assert.Equal(0, await test.Service.CountAsync("outbox", "abandoned_at IS NOT NULL OR attempts > 1"));
        Assert.Empty(test.Slack.Violations);
    }

    [Fact]
    public async Task RateLimited_WaitsForRetryAfterAndHoldsBackTheDeploymentsLaterMessages()
    {
        await using var test = await SlackTestService.StartAsync();
        test.Slack.AnswerNext(429, retryAfterSeconds: "30");
        await test.WatchAsync("gh-429-1");
        await SlackTestService.EventuallyAsync(async () => await test.Service.CountAsync("outbox", "attempts = 1") == 1, "the root message tried once");

        Assert.Equal(1, await test.Service.CountAsync("outbox",
            "attempts = 1 AND last_error LIKE 'Slack rate-limited chat.postMessage; retry after 30 s' AND next_attempt_at > now() + interval '20 seconds'"));
        await Task.Delay(500);
        Assert.Single(test.Slack.Calls);

        await test.Service.Database.ExecuteAsync("UPDATE outbox SET next_attempt_at = now() WHERE delivered_at IS NULL");
        await test.AllDeliveredAsync();
        Assert.Single(test.Slack.Delivered(SlackMethods.PostMessage));
        Assert.Single(test.Slack.Delivered(SlackMethods.Update));
    }

    [Fact]
    public async Task OkFalse_KeepsSlacksErrorAndTriesAgainLater()
    {
        await using var test = await SlackTestService.StartAsync();
        test.Slack.FailNext("channel_not_found");
        await test.WatchAsync("gh-okfalse-1");
        await test.AllDeliveredAsync();

        Assert.Equal(1, await test.Service.CountAsync("outbox", "attempts = 2 AND last_error IS NULL AND delivered_ts IS NOT NULL"));
        Assert.Single(test.Slack.Delivered(SlackMethods.PostMessage));
        Assert.Contains(test.Service.Host.Logs.Lines, line => line.Contains("error 'channel_not_found'", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("msg_too_long")]
    [InlineData("msg_blocks_too_long")] // blocks past Slack's undocumented total (BlockKitLimits.MessageText)
    [InlineData("invalid_arguments")]
    public async Task RefusedContent_IsGivenUpAuditedAndNoLongerHoldsBackTheThread(string error)
    {
        await using var test = await SlackTestService.StartAsync();
        test.Slack.FailNext(error);
        await test.WatchAsync("gh-refused-1");
        await SlackTestService.EventuallyAsync(
            async () => await test.Service.CountAsync("outbox", "abandoned_at IS NOT NULL") == 1, "the refused root message given up");

        // Given up at the first refusal, not retried: the next state change posts the thread's root afresh.
        Assert.Equal(1, await test.Service.CountAsync("outbox",
            $"abandoned_at IS NOT NULL AND attempts = 1 AND delivered_at IS NULL AND kind = 'slack.root' AND last_error LIKE '%{error}%'"));
        Assert.Equal(1, await test.Service.CountAsync("audit_events",
            $"type = 'slack.message-abandoned' AND deployment_id = 'gh-refused-1' AND actor = 'rolloutgate' AND data::jsonb->>'reason' = 'Slack refuses its content ({error})'"));
        (await test.OperatorDecideAsync("gh-refused-1", "stop")).EnsureSuccessStatusCode();
        await test.AllDeliveredAsync();

        var posts = test.Slack.Delivered(SlackMethods.PostMessage);
        Assert.Equal(2, posts.Count);
        Assert.Equal(posts[0].Ts, posts[1].Body.GetProperty("thread_ts").GetString());
        Assert.Equal("checkout 2.4.0 in production: stopped", test.Slack.MessageText(posts[0].Ts!));
        Assert.Contains(test.Service.Host.Logs.Lines, line => line.Contains("given up after 1 attempts", StringComparison.Ordinal));
        using var reader = test.Service.Reader();
        var verify = await reader.GetFromJsonAsync<JsonElement>(new Uri("/api/v1/audit/verify", UriKind.Relative));
        Assert.True(verify.GetProperty("ok").GetBoolean());
    }

    [Fact]
    public async Task FailingForLongerThanAbandonAfter_IsGivenUpAndTheDeploymentsLaterMessagesFollow()
    {
        await using var test = await SlackTestService.StartAsync();
        test.Slack.Down = true;
        await test.WatchAsync("gh-aged-1");
        await SlackTestService.EventuallyAsync(
            async () => await test.Service.CountAsync("outbox", "attempts > 0") == 1, "a failed attempt recorded");
        Assert.Equal(0, await test.Service.CountAsync("outbox", "abandoned_at IS NOT NULL"));

        // Both state changes so far (predeploy, deployed) have their root message queued, the second behind the first.
        await SlackTestService.EventuallyAsync(
            async () => await test.Service.CountAsync("outbox", "delivered_at IS NULL") == 2, "both root messages queued");

        // A day and a minute old, and Slack still down: each is given up at its next attempt (the first after its failed
        // attempts, with Slack's 503; the second at its first, which the client's circuit breaker may refuse by then), each
        // with its audit event.
        await test.Service.Database.ExecuteAsync(
            "UPDATE outbox SET created_at = now() - interval '1 day 1 minute', next_attempt_at = now() WHERE delivered_at IS NULL");
        await SlackTestService.EventuallyAsync(
            async () => await test.Service.CountAsync("outbox", "abandoned_at IS NULL AND delivered_at IS NULL") == 0, "the day-old messages given up");
        Assert.Equal(2, await test.Service.CountAsync("outbox", "abandoned_at IS NOT NULL AND delivered_at IS NULL"));
        Assert.Equal(2, await test.Service.CountAsync("audit_events",
            "type = 'slack.message-abandoned' AND data::jsonb->>'reason' LIKE 'it has failed for longer than 1.00:00:00%'"));
        Assert.Equal(1, await test.Service.CountAsync("outbox", "id = (SELECT min(id) FROM outbox) AND last_error LIKE '%answered 503%'"));

        // Slack back: the decision's reply gets a fresh root before it (the abandoned ones never made a thread), so nothing
        // is posted loose in the channel. The client's circuit breaker, opened during the outage, lets calls through again
        // after its break (SlackResilience.BreakerBreakDuration, 15 s), so this waits longer than the default.
        test.Slack.Down = false;
        (await test.OperatorDecideAsync("gh-aged-1", "stop")).EnsureSuccessStatusCode();
        await test.AllDeliveredAsync(seconds: 60);
        var posts = test.Slack.Delivered(SlackMethods.PostMessage);
        Assert.Equal(2, posts.Count);
        Assert.Equal("checkout 2.4.0 in production: stopped", test.Slack.MessageText(posts[0].Ts!));
        Assert.Equal(posts[0].Ts, posts[1].Body.GetProperty("thread_ts").GetString());
    }
}
