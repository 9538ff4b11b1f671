using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using RolloutGate.Decisions;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;

namespace RolloutGate.Tests.Deployments;

/// <summary>
/// Two actors moving one deployment at the same time take turns: the second sees what the first did, and takes effect
/// from there or is answered 409 with that state; the state the deployment ends in is the one its audit trail ends with. The race is forced
/// rather than hoped for: the test holds the deployment's row, both requests are sent, and the row is let go only once
/// PostgreSQL shows both waiting behind the test's lock (<see cref="DatabaseHold"/>), so each has read whatever it reads
/// without a lock before either moves.
/// </summary>
public sealed class DecisionRaceTests
{
    [Theory]
    [InlineData("rolledback", "stop")]
    [InlineData("rolledback", "dismiss")]
    [InlineData("cancelled", "stop")]
    [InlineData("deployed", "stop")]
    public async Task PipelineEventAndOperatorDecisionAtOnce_TakeTurns_TheSecondTakesEffectFromTheFirstsStateOr409_AsTheAuditTrailSays(string @event, string decision)
    {
        await using var service = await TestService.StartAsync();
        using var operatorClient = service.Operator();
        for (var round = 0; round < 3; round++)
        {
            var id = $"race-{@event}-{decision}-{round}";
            // 'deployed' and 'cancelled' need a change not yet deployed (allowed), 'rolledback' one being watched, and
            // 'dismiss' a regressed one.
            Assert.Equal(HttpStatusCode.OK, (await service.Webhooks.SendEventAsync("predeploy", id)).StatusCode);
            if (@event is "rolledback")
            {
                Assert.Equal(HttpStatusCode.Accepted, (await service.Webhooks.SendEventAsync("deployed", id)).StatusCode);
            }

            if (decision is "dismiss")
            {
                await service.RegressAsync(id, "p95-latency");
            }

            var after = await service.Database.ScalarAsync<long>("SELECT coalesce(max(id), 0) FROM audit_events");
            var from = await service.Database.ScalarAsync<string>($"SELECT state FROM deployments WHERE id = '{id}'");
            HttpResponseMessage pipeline, person;
            await using (var hold = await HoldAsync(service.Database, id))
            {
                var sent = service.Webhooks.SendEventAsync(@event, id);
                var decided = operatorClient.PostAsync(new Uri($"/api/v1/deployments/{id}/{decision}", UriKind.Relative),
                    new StringContent(JsonSerializer.Serialize(new { actor = "bob", reason = "race" }), Encoding.UTF8, "application/json"));
                await hold.WaitForWaitersAsync(2);
                await hold.ReleaseAsync();
                pipeline = await sent;
                person = await decided;
            }

            // Taken one after the other: each took effect, or was refused 409 with the state the other left. Both may take
            // effect (a stop after the deploy), and then the trail has both moves, the second from where the first went.
            var answers = new[] { pipeline, person };
            Assert.All(answers.Where(a => !a.IsSuccessStatusCode), a => Assert.Equal(HttpStatusCode.Conflict, a.StatusCode));
            var moves = await MovesAsync(service.Database, id, after);
            Assert.Equal(answers.Count(a => a.IsSuccessStatusCode), moves.Count);
            Assert.Equal(from, moves[0].From);
            for (var i = 1; i < moves.Count; i++)
            {
                Assert.Equal(moves[i - 1].To, moves[i].From);
            }

            var state = await service.Database.ScalarAsync<string>($"SELECT state FROM deployments WHERE id = '{id}'");
            Assert.Equal(moves[^1].To, state);
            foreach (var refused in answers.Where(a => !a.IsSuccessStatusCode))
            {
                Assert.Equal(moves[0].To, (await refused.JsonAsync()).GetProperty("state").GetString());
            }

            Assert.Equal(person.IsSuccessStatusCode ? 1 : 0, await service.CountAsync("decisions", $"deployment_id = '{id}' AND actor = 'bob'"));
        }

        using var reader = service.Reader();
        Assert.True((await reader.GetJsonAsync("/api/v1/audit/verify")).GetProperty("ok").GetBoolean());
    }

    [Fact]
    public async Task TwoSlackPressesAnOperatorsKeepAndTheTimeOutAtOnce_OneDecision_OneReply_TheRootShowsIt_TheOthersToldSo()
    {
        // A regressed deployment past its approvalTimeout: the owner presses Roll back, an approver Keep, an operator keeps
        // it over HTTP and the time-out applies onTimeout (keep), all waiting on the deployment at once. The runbook has no
        // rollback action, so a rollback that wins ends at once ('none configured') instead of in minutes of retries. Not
        // the operator's stop: a stop is allowed after a rollback (it halts the action), so whether it was a second
        // decision depended on which of them took the row first.
        var withoutAction = TestRunbooks.Minimal().Split("    action:")[0].Replace("onTimeout: rollback", "onTimeout: keep", StringComparison.Ordinal);
        await using var test = await SlackTestService.StartAsync(runbook: withoutAction);
        var policy = test.Service.Host.Services.GetRequiredService<DecisionPolicy>();
        for (var round = 0; round < 3; round++)
        {
            var id = $"race-slack-{round}";
            await test.WatchAsync(id);
            await test.RegressThroughWatchAsync(id, SlackTestService.P95Regressed);
            var after = await test.Service.Database.ScalarAsync<long>("SELECT coalesce(max(id), 0) FROM audit_events");
            HttpResponseMessage[] answers;
            int timedOut;
            await using (var hold = await HoldAsync(test.Service.Database, id))
            {
                var owner = test.PressAsync(SlackTestService.Owner, "rollback", id);
                var approver = test.PressAsync(SlackTestService.Approver, "dismiss", id);
                var stop = test.OperatorDecideAsync(id, "dismiss");
                var timeout = policy.ApplyTimeoutsAsync(DateTimeOffset.UtcNow.AddHours(1), CancellationToken.None);
                await hold.WaitForWaitersAsync(4);
                await hold.ReleaseAsync();
                answers = await Task.WhenAll(owner, approver, stop);
                timedOut = await timeout;
            }

            var decision = Assert.Single(await DecisionsAsync(test.Service.Database, id));
            var move = Assert.Single(await MovesAsync(test.Service.Database, id, after));
            Assert.Equal("regressed", move.From);
            var state = await test.StateAsync(id);
            Assert.Equal(move.To, state);
            Assert.Equal(decision.Kind == "rollback" ? "rolling-back" : "kept", state);
            Assert.Equal(decision.Actor == DecisionPolicy.AutomaticActor ? 1 : 0, timedOut);
            // Slack answers every press 200 (what the user reads goes out privately); the operator gets 409 with the state.
            Assert.Equal(HttpStatusCode.OK, answers[0].StatusCode);
            Assert.Equal(HttpStatusCode.OK, answers[1].StatusCode);
            if (decision.Actor == "alice")
            {
                Assert.Equal(HttpStatusCode.OK, answers[2].StatusCode);
            }
            else
            {
                Assert.Equal(HttpStatusCode.Conflict, answers[2].StatusCode);
                Assert.Equal(state, (await answers[2].JsonAsync()).GetProperty("state").GetString());
            }

            // Each press that lost is told privately that nothing changed, and on the record as such.
            var lost = new[] { SlackTestService.Owner, SlackTestService.Approver }.Count(user => user != decision.Actor);
            Assert.Equal(lost, await test.Service.CountAsync("audit_events",
                $"deployment_id = '{id}' AND type = 'slack.action' AND data::jsonb->>'outcome' = 'no effect' AND id > {after}"));
            Assert.Equal(lost, await test.Service.CountAsync("outbox", $"deployment_id = '{id}' AND kind = 'slack.ephemeral'"));

            // In the channel: one reply with the decision, and the root message edited to the state it made.
            await test.AllDeliveredAsync();
            var root = await test.Service.Database.ScalarAsync<string>($"SELECT root_ts FROM slack_threads WHERE deployment_id = '{id}'");
            Assert.Single(test.Slack.Replies(root!), reply => test.Slack.MessageText(reply)!.Contains(" decided *", StringComparison.Ordinal));
            Assert.EndsWith($": {state}", test.Slack.MessageText(root!), StringComparison.Ordinal);
        }

        using var reader = test.Service.Reader();
        Assert.True((await reader.GetJsonAsync("/api/v1/audit/verify")).GetProperty("ok").GetBoolean());
    }

    [Fact]
    public async Task TimeOutReachesADeploymentAPersonDecidedMeanwhile_WhoseActionFailed_DoesNotRetryTheAction()
    {
        // The time-out reads the regressed deployments first, then decides each: this one is decided by a person meanwhile,
        // and its rollback action has failed by the time the time-out comes to it. No decision is left to the time-out; a
        // rollback decided then would retry the failed action in nobody's name (a failed action is never retried silently).
        await using var service = await TestService.StartAsync();
        const string id = "race-timeout";
        (await service.Webhooks.SendEventAsync("deployed", id)).EnsureSuccessStatusCode();
        await service.RegressAsync(id, "p95-latency");
        var policy = service.Host.Services.GetRequiredService<DecisionPolicy>();
        await using (var hold = await HoldAsync(service.Database, id))
        {
            var timeout = policy.ApplyTimeoutsAsync(DateTimeOffset.UtcNow.AddHours(1), CancellationToken.None);
            await hold.WaitForWaitersAsync(1);
            // What bob's rollback and its failed action leave, committed while the time-out waits for the deployment.
            await hold.CommitAsync($"""
                UPDATE deployments SET state = 'rolling-back' WHERE id = '{id}';
                INSERT INTO decisions (deployment_id, at, kind, actor, reason) VALUES ('{id}', now(), 'rollback', 'bob', 'by hand');
                INSERT INTO rollback_actions (deployment_id, claimed_at, claimed_by, finished_at, succeeded, action, detail, attempts)
                VALUES ('{id}', now(), 'another replica', now(), false, 'istio VirtualService shop/checkout', 'forbidden', 3)
                """);
            Assert.Equal(0, await timeout);
        }

        Assert.Equal(1, await service.CountAsync("rollback_actions", $"deployment_id = '{id}' AND finished_at IS NOT NULL AND NOT succeeded"));
        Assert.Equal(0, await service.CountAsync("decisions", $"deployment_id = '{id}' AND actor = '{DecisionPolicy.AutomaticActor}'"));
        Assert.Equal("rolling-back", await service.Database.ScalarAsync<string>($"SELECT state FROM deployments WHERE id = '{id}'"));
    }

    /// <summary>The decisions on record for <paramref name="deploymentId"/>, in order.</summary>
    private static Task<List<(string Kind, string Actor)>> DecisionsAsync(TestDatabase database, string deploymentId) =>
        PairsAsync(database, $"SELECT string_agg(kind || '>' || actor, ',' ORDER BY id) FROM decisions WHERE deployment_id = '{deploymentId}'");

    /// <summary>The state changes of <paramref name="deploymentId"/> on record after audit event <paramref name="after"/>, in order.</summary>
    private static Task<List<(string From, string To)>> MovesAsync(TestDatabase database, string deploymentId, long after) =>
        PairsAsync(database, $"""
            SELECT string_agg((data::jsonb->>'from') || '>' || (data::jsonb->>'to'), ',' ORDER BY id) FROM audit_events
            WHERE deployment_id = '{deploymentId}' AND type = 'deployment.state-changed' AND id > {after}
            """);

    /// <summary>Pairs a query gives as one text, 'a>b,c>d'.</summary>
    private static async Task<List<(string, string)>> PairsAsync(TestDatabase database, string sql) =>
        [.. ((await database.ScalarAsync<string>(sql)) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => (p.Split('>')[0], p.Split('>')[1]))];

    /// <summary>
    /// A deployment's row held FOR UPDATE by the test, until released (nothing changed) or committed with another actor's
    /// change: whoever locks or updates the row meanwhile waits.
    /// </summary>
    private static async Task<DatabaseHold> HoldAsync(TestDatabase database, string deploymentId)
    {
        var hold = await DatabaseHold.TakeAsync(database, "the held deployment",
            "SELECT count(*) FROM (SELECT FROM deployments WHERE id = @id FOR UPDATE) AS held", new NpgsqlParameter("id", deploymentId));
        Assert.Equal(1L, hold.Taken);
        return hold;
    }
}
