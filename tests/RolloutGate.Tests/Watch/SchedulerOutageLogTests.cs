using System.Diagnostics;
using System.Globalization;
using System.Net;
using Npgsql;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Watch;

/// <summary>
/// What the watch scheduler (Quartz, clustered on PostgreSQL) logs while the database is unreachable: its own retries
/// become one throttled line instead of a warning or an error with a stack trace each, it resumes by itself, and a Quartz
/// error that is not the database being away is still logged as an error with its exception.
/// </summary>
public sealed class SchedulerOutageLogTests(WatchPrometheus prometheus) : IClassFixture<WatchPrometheus>
{
    private const string Service = "healthy";
    private const string DeploymentId = "dep-db-outage";
    private const string OutageLine = QuartzOutageLogging.Source + ": the database is unavailable";
    private const int PatienceSeconds = 120;

    private static DateTimeOffset T(int minutes, int seconds = 0) => WatchPrometheus.DeployedAt.AddMinutes(minutes).AddSeconds(seconds);

    [Fact]
    public async Task DatabaseUnreachable_QuartzRetriesAreOneThrottledLineWithoutStackTraces_ThenTheWatchCatchesUp()
    {
        await using var database = await TestDatabase.CreateAsync();
        var direct = new NpgsqlConnectionStringBuilder(database.ConnectionString);
        await using var proxy = CuttableTcpProxy.Start(direct.Host!, direct.Port);
        using var runbooks = new TestRunbooks(($"{Service}.yaml", WatchTests.Runbook(Service)));
        var clock = new ShiftedClock(T(10, 30));
        await using var host = new RolloutGateHost(database, new Dictionary<string, string?>
        {
            ["ConnectionStrings:RolloutGate"] = new NpgsqlConnectionStringBuilder(database.ConnectionString)
            {
                Host = IPAddress.Loopback.ToString(),
                Port = proxy.Port,
            }.ConnectionString,
            ["RolloutGate:RunbooksPath"] = runbooks.Folder,
            ["RolloutGate:Prometheus:Url"] = prometheus.Url,
            ["RolloutGate:Watch:IdleWaitTime"] = "00:00:01",
            // Quartz's own lines down to Debug, as an operator would set it to see every retry: the test counts them.
            ["Logging:LogLevel:Quartz"] = "Debug",
        }, clock);
        var deployed = await new WebhookClient(host.CreateClient(), clock).SendAsync(WebhookClient.Body(
            "deployed", DeploymentId, Service, at: WatchPrometheus.DeployedAt.ToString("O", CultureInfo.InvariantCulture)));
        Assert.Equal(HttpStatusCode.Accepted, deployed.StatusCode);
        // Evaluated by the sweep Quartz fires (nothing here runs it), through the proxy.
        await EventuallyAsync(async () => await CountAsync(database, $"at <= '{T(10):O}'") == 3 * 10, "the first 10 intervals evaluated");

        var before = host.Logs.Lines.Count;
        proxy.Cut();
        var outage = Stopwatch.StartNew();
        // Two more intervals fall due while the database is away.
        clock.Now = T(12, 30);
        await EventuallyAsync(() => Task.FromResult(QuartzDatabaseFailures(host.Logs.Lines.Skip(before)) is { Count: >= 8 } failures
            && failures.Select(Category).Distinct().Count() >= 2), "Quartz retrying its work in two places, 8 times in all");
        var during = host.Logs.Lines.Skip(before).ToList();
        var lasted = outage.Elapsed;

        // Every retry is still there at Debug, with its exception, and none is logged at Warning or above.
        var loud = QuartzDatabaseFailures(during).Where(line => !line.StartsWith("Debug ", StringComparison.Ordinal)).ToList();
        Assert.True(loud.Count == 0, $"{loud.Count} Quartz lines about the database at Warning or above, the first: {string.Concat(loud.FirstOrDefault()?.Take(400) ?? [])}");
        Assert.DoesNotContain(during, line => AtLeastWarning(line) && line.Contains("   at ", StringComparison.Ordinal));
        // Instead one line says what is retrying and why, at most every 30 s (the clock's jump above may count as one).
        var said = during.Where(line => line.Contains(OutageLine, StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(said);
        Assert.True(said.Count <= 2 + (int)(lasted / DatabaseOutageLog.Every), $"{said.Count} lines in {lasted.TotalSeconds:0} s");
        Assert.All(said, line => Assert.StartsWith("Warning ", line, StringComparison.Ordinal));

        // The database is back: Quartz fires the sweep again by itself, and the two intervals missed are evaluated at their t.
        proxy.Restore();
        await EventuallyAsync(async () => await CountAsync(database, $"at IN ('{T(11):O}', '{T(12):O}')") == 3 * 2, "intervals 11 and 12 evaluated");
        // The clock runs on from 12:30: on a loaded machine the outage can outlast its 30 s, and interval 13 falls due too.
        Assert.Equal(3L * 12, await CountAsync(database, $"at <= '{T(12):O}'"));
        // In one statement: the clock runs on, and interval 13 may be stored between two.
        Assert.Equal(0L, await database.ScalarAsync<long>("SELECT count(*) - count(DISTINCT (metric, at)) FROM evaluations"));
        Assert.Equal("watching", await database.ScalarAsync<string>($"SELECT state FROM deployments WHERE id = '{DeploymentId}'"));
        // And one line says the scheduler reaches the database again, once the sweep that stored them has returned.
        static bool AnswersAgain(string line) => line.Contains(QuartzOutageLogging.Source + ": the database answers again, after ", StringComparison.Ordinal);
        await EventuallyAsync(() => Task.FromResult(host.Logs.Lines.Skip(before).Any(AnswersAgain)), "the scheduler's line that the database answers again");
        Assert.Single(host.Logs.Lines.Skip(before), AnswersAgain);
    }

    [Fact]
    public async Task QuartzFailingForAnotherReason_StillLoggedAsAnErrorWithItsException()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var host = new RolloutGateHost(database, new Dictionary<string, string?>
        {
            ["RolloutGate:Watch:IdleWaitTime"] = "00:00:01",
        });
        using var client = host.CreateClient();
        await EventuallyAsync(async () => await database.ScalarAsync<long>("SELECT count(*) FROM qrtz_fired_triggers") > 0, "the sweep fired");

        // A schema problem: the database answers, and says that a table Quartz writes at every fire is gone.
        await database.ExecuteAsync("ALTER TABLE qrtz_fired_triggers RENAME TO qrtz_fired_triggers_elsewhere", asAdmin: true);
        try
        {
            await EventuallyAsync(() => Task.FromResult(host.Logs.Lines.Any(line => line.StartsWith("Error Quartz.", StringComparison.Ordinal)
                && line.Contains("42P01", StringComparison.Ordinal) && line.Contains("   at ", StringComparison.Ordinal))),
                "Quartz's error about the missing table, with its stack trace");
            Assert.DoesNotContain(host.Logs.Lines, line => line.Contains(OutageLine, StringComparison.Ordinal));
        }
        finally
        {
            // Put back, so that the host's stop can finish the bookkeeping of a sweep in flight instead of retrying it
            // against the missing table until the shutdown time (25 s) is up.
            await database.ExecuteAsync("ALTER TABLE qrtz_fired_triggers_elsewhere RENAME TO qrtz_fired_triggers", asAdmin: true);
        }
    }

    /// <summary>Quartz's lines, at any level, whose exception is the database being unreachable.</summary>
    private static List<string> QuartzDatabaseFailures(IEnumerable<string> lines) =>
        lines.Where(line => Category(line).StartsWith("Quartz.", StringComparison.Ordinal)
            && line.Contains("Npgsql.NpgsqlException", StringComparison.Ordinal)).ToList();

    /// <summary>The category of a captured line ("{level} {category}: {message} ...").</summary>
    private static string Category(string line) => line.Split(' ', 3)[1].TrimEnd(':');

    private static bool AtLeastWarning(string line) =>
        line.StartsWith("Warning ", StringComparison.Ordinal) || line.StartsWith("Error ", StringComparison.Ordinal)
        || line.StartsWith("Critical ", StringComparison.Ordinal);

    private static async Task<long> CountAsync(TestDatabase database, string where) =>
        await database.ScalarAsync<long>($"SELECT count(*) FROM evaluations WHERE deployment_id = '{DeploymentId}' AND {where}");

    private static Task EventuallyAsync(Func<Task<bool>> condition, string what) => SlackTestService.EventuallyAsync(condition, what, PatienceSeconds);
}
