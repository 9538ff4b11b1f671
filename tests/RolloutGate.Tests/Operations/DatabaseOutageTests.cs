using System.Net;
using System.Net.Http.Json;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;

namespace RolloutGate.Tests.Operations;

/// <summary>While PostgreSQL refuses the service, callers get 503 with Retry-After (never a 500), and the service recovers by itself.</summary>
public sealed class DatabaseOutageTests
{
    [Fact]
    public async Task DatabaseRefusingConnections_Answers503ThenRecoversWithoutRestart()
    {
        await using var test = await SlackTestService.StartAsync();
        var service = test.Service;
        await CutAsync(service.Database);
        try
        {
            var webhook = await service.Webhooks.SendEventAsync("predeploy", "db-out-1", deliveryId: "db-out-1-pre");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, webhook.StatusCode);
            Assert.Equal("application/problem+json", webhook.Content.Headers.ContentType?.MediaType);
            Assert.Equal("30", webhook.Headers.GetValues("Retry-After").Single());
            Assert.Contains("cannot reach its database", await webhook.Content.ReadAsStringAsync(), StringComparison.Ordinal);

            var stop = await service.Operator().PostAsJsonAsync("/api/v1/deployments/db-out-1/stop", new { actor = "alice", reason = "test" });
            Assert.Equal(HttpStatusCode.ServiceUnavailable, stop.StatusCode);

            // The 503's log line names the path, decoded: a line break in it stays in that line, written as an escape.
            using (var reader = service.Reader())
            {
                var forged = await reader.GetAsync(new Uri("/api/v1/deployments/x%0AGET%20%2Fhealthz%20answered%20200", UriKind.Relative));
                Assert.Equal(HttpStatusCode.ServiceUnavailable, forged.StatusCode);
            }

            var pathLine = Assert.Single(service.Host.Logs.Lines, line => line.Contains("GET /api/v1/deployments/x", StringComparison.Ordinal));
            Assert.Contains("GET /api/v1/deployments/x\\nGET %2Fhealthz answered 200 answered 503", pathLine[..pathLine.IndexOf(" Reason=", StringComparison.Ordinal)], StringComparison.Ordinal);

            // A query for CSV (CONTRACT section 7) gets its 503 as problem+json too, not with an empty body.
            using var csvReader = service.Reader();
            csvReader.DefaultRequestHeaders.Accept.ParseAdd("text/csv");
            var csv = await csvReader.GetAsync(new Uri("/api/v1/audit/events", UriKind.Relative));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, csv.StatusCode);
            Assert.Equal("application/problem+json", csv.Content.Headers.ContentType?.MediaType);
            Assert.Equal("30", csv.Headers.GetValues("Retry-After").Single());
            Assert.Contains("cannot reach its database", await csv.Content.ReadAsStringAsync(), StringComparison.Ordinal);

            // Slack shows a 503 to a slash command as a bare failure: the user is told in words instead.
            var command = await test.CommandAsync(SlackTestService.Owner, "status db-out-1");
            Assert.Equal(HttpStatusCode.OK, command.StatusCode);
            Assert.Contains("cannot reach its database right now", await command.Content.ReadAsStringAsync(), StringComparison.Ordinal);

            // A button's HTTP answer is not shown to the user at all, and the outbox that carries the usual private answer
            // is in the database: the user is told at once, straight through Slack.
            var press = await test.PressAsync(SlackTestService.Owner, "rollback", "db-out-1");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, press.StatusCode);
            var told = Assert.Single(test.Slack.Calls, call => call.Method == "chat.postEphemeral");
            Assert.Equal(SlackTestService.Owner, told.Body.GetProperty("user").GetString());
            Assert.Equal("C0DECIDE01", told.Body.GetProperty("channel").GetString());
            Assert.Contains("cannot reach its database right now", told.Body.GetProperty("text").GetString(), StringComparison.Ordinal);

            // The background loops fail every round meanwhile: one warning line each, not a stack trace a round.
            await SlackTestService.EventuallyAsync(
                () => Task.FromResult(service.Host.Logs.Lines.Any(line => line.Contains("Slack outbox: the database is unavailable", StringComparison.Ordinal))),
                "the outbox's line about the outage");
            await Task.Delay(TimeSpan.FromSeconds(2));
            Assert.Single(service.Host.Logs.Lines, line => line.Contains("Slack outbox: the database is unavailable", StringComparison.Ordinal));
            // EF Core's own error for each failed command or connection (with its stack trace) is not repeated on top.
            Assert.DoesNotContain(service.Host.Logs.Lines, line =>
                !line.StartsWith("Debug ", StringComparison.Ordinal) && !line.StartsWith("Trace ", StringComparison.Ordinal)
                && line.Contains(" Microsoft.EntityFrameworkCore.", StringComparison.Ordinal));

            var metrics = await service.Client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
            Assert.Contains("rolloutgate_database_up 0", metrics, StringComparison.Ordinal);
            Assert.DoesNotContain("rolloutgate_deployments{", metrics, StringComparison.Ordinal);
        }
        finally
        {
            await service.Database.ExecuteAsync($"ALTER DATABASE {service.Database.Name} CONNECTION LIMIT -1", asAdmin: true);
        }

        // Back: the same delivery is applied once, and the service answers as before.
        var retried = await service.Webhooks.SendEventAsync("predeploy", "db-out-1", deliveryId: "db-out-1-pre");
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Equal(1, await service.CountAsync("webhook_deliveries", "delivery_id = 'db-out-1-pre'"));
        Assert.Contains("rolloutgate_database_up 1", await service.Client.GetStringAsync(new Uri("/metrics", UriKind.Relative)), StringComparison.Ordinal);
        Assert.Contains(service.Host.Logs.Lines, line => line.Contains("answered 503: the database is unavailable", StringComparison.Ordinal));
        // The log says the outage is over, once, as it said it began.
        await SlackTestService.EventuallyAsync(
            () => Task.FromResult(service.Host.Logs.Lines.Any(line => line.Contains("Slack outbox: the database answers again, after ", StringComparison.Ordinal))),
            "the outbox's line about the database answering again");
        Assert.Single(service.Host.Logs.Lines, line => line.Contains("Slack outbox: the database answers again", StringComparison.Ordinal));
    }

    /// <summary>No new connection for the service's role (too many connections, a transient refusal), and its open ones ended.</summary>
    private static async Task CutAsync(TestDatabase database)
    {
        await database.ExecuteAsync($"ALTER DATABASE {database.Name} CONNECTION LIMIT 0", asAdmin: true);
        await database.ExecuteAsync(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()", asAdmin: true);
    }

    [Fact]
    public async Task RunEvery_Stopped_EndsWithoutAnException()
    {
        // A background loop stopped on its own (its host still running) must end cleanly: a cancelled ExecuteAsync is a
        // fault to the host, which stops itself for it (seen as "BackgroundService failed" when a test stopped the rollback
        // dispatcher, and the host stopped under the test).
        var outage = new DatabaseOutageLog(Microsoft.Extensions.Logging.Abstractions.NullLogger<DatabaseOutageLog>.Instance, TimeProvider.System);
        using var stopping = new CancellationTokenSource();
        var rounds = 0;
        var inRound = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var loop = outage.RunEveryAsync("Test loop", TimeSpan.FromMinutes(1), TimeProvider.System, async token =>
        {
            rounds++;
            inRound.TrySetResult();
            await Task.Delay(Timeout.InfiniteTimeSpan, token);
        }, _ => { }, stopping.Token);

        await inRound.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await stopping.CancelAsync();
        await loop.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.True(loop.IsCompletedSuccessfully, loop.Status.ToString());
        Assert.Equal(1, rounds);

        // Stopped while waiting for the next round, too.
        using var later = new CancellationTokenSource();
        var waiting = outage.RunEveryAsync("Test loop", TimeSpan.FromMinutes(1), TimeProvider.System, _ => Task.CompletedTask, _ => { }, later.Token);
        await later.CancelAsync();
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(waiting.IsCompletedSuccessfully, waiting.Status.ToString());
    }
}
