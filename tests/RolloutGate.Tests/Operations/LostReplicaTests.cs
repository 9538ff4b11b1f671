using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using RolloutGate.Audit;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Tests.Checks;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;

namespace RolloutGate.Tests.Operations;

/// <summary>
/// A replica whose node is lost (power, a network partition) closes nothing: PostgreSQL would keep its backend, and the
/// locks of its open transaction, until the OS's TCP keepalive noticed, two hours later. The service's sessions bound it
/// (<see cref="DatabaseExtensions.LostClientOptions"/>).
/// </summary>
public sealed class LostReplicaTests
{
    /// <summary>
    /// The idle_in_transaction_session_timeout of the lost replica's transaction in this test, instead of the service's
    /// 60 s: the same ending of its session, in seconds instead of a minute and a half of the suite. Set for that
    /// transaction only (SET LOCAL, as PreDeployGate raises it): set for the whole replica, in its connection string, it
    /// could end the replica's start-up on a loaded machine, where a first EF query's compilation inside a transaction
    /// takes seconds.
    /// </summary>
    private const string LostIdleTimeout = "3s";

    /// <summary>The lost replica's timeout, plus a generous margin for a loaded machine.</summary>
    private const int PatienceSeconds = 60;

    [Fact]
    public async Task ReplicaLostHoldingTheAuditLock_AnotherReplicaAcceptsWebhooksOnceItsTransactionTimesOut()
    {
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("checkout.yaml", TestRunbooks.Minimal()));
        var direct = new NpgsqlConnectionStringBuilder(database.ConnectionString);
        await using var proxy = CuttableTcpProxy.Start(direct.Host!, direct.Port);
        await using var survivor = new RolloutGateHost(database, new Dictionary<string, string?> { ["RolloutGate:RunbooksPath"] = runbooks.Folder });
        var webhooks = new WebhookClient(survivor.CreateClient());
        Assert.Equal(HttpStatusCode.OK, (await webhooks.SendEventAsync("predeploy", "before-loss")).StatusCode);
        await using var lost = new RolloutGateHost(database, new Dictionary<string, string?>
        {
            ["ConnectionStrings:RolloutGate"] = new NpgsqlConnectionStringBuilder(database.ConnectionString)
            {
                Host = IPAddress.Loopback.ToString(),
                Port = proxy.Port,
            }.ConnectionString,
            ["RolloutGate:RunbooksPath"] = runbooks.Folder,
        });
        // The lost replica appends an event: it holds the append lock until its transaction ends, and its node is lost
        // before it commits. (Its scope and transaction are let go after the proxy is cut: a rollback sent into the black
        // hole would wait for its command timeout.)
        await using var scope = lost.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
        await using var transaction = await db.Database.BeginTransactionAsync();
        try
        {
            await scope.ServiceProvider.GetRequiredService<AuditTrail>().AppendAsync(db,
                [new AuditEntry(AuditEventTypes.Decision, "lost-mid-append", "checkout", "alice", new { kind = "stop" })], CancellationToken.None);
            await db.Database.ExecuteSqlRawAsync($"SET LOCAL idle_in_transaction_session_timeout = '{LostIdleTimeout}'");
            proxy.BlackHole();
            Assert.Equal(1L, await database.ScalarAsync<long>(
                $"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = '{database.Name}')",
                asAdmin: true));

            // Every other replica's append waits for that lock; the survivor answers once PostgreSQL has ended the lost
            // replica's transaction (a try that waited past its command timeout meanwhile got a 503, and changed nothing).
            HttpResponseMessage? answer = null;
            await SlackTestService.EventuallyAsync(async () =>
            {
                answer = await webhooks.SendEventAsync("predeploy", "after-loss", deliveryId: "after-loss-predeploy");
                return answer.StatusCode != HttpStatusCode.ServiceUnavailable;
            }, "a webhook accepted beside the lost replica", PatienceSeconds);
            Assert.Equal(HttpStatusCode.OK, answer!.StatusCode);
        }
        finally
        {
            // The lost replica's pending calls fail now, so it stops at once.
            proxy.Cut();
        }

        // The lost replica's event was rolled back with its transaction; the chain is whole.
        Assert.Equal(0L, await database.ScalarAsync<long>("SELECT count(*) FROM audit_events WHERE deployment_id = 'lost-mid-append'"));
        Assert.Equal(1L, await database.ScalarAsync<long>(
            "SELECT count(*) FROM audit_events WHERE deployment_id = 'after-loss' AND type = 'webhook.predeploy'"));
        using var reader = survivor.CreateClient().WithToken(RolloutGateHost.ReaderToken);
        var verify = await reader.GetJsonAsync("/api/v1/audit/verify");
        Assert.True(verify.GetProperty("ok").GetBoolean());
    }

    [Fact]
    public async Task SessionSettings_OursByDefault_TheConnectionStringsOwnWin()
    {
        await using var database = await TestDatabase.CreateAsync();
        var names = new[] { "idle_in_transaction_session_timeout", "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout" };

        var ours = DatabaseExtensions.WithLostPeerBounds(database.ConnectionString);
        Assert.Equal(["60000", "60", "10", "6", "120000"], await SettingsAsync(ours, names));
        var client = new NpgsqlConnectionStringBuilder(ours);
        Assert.True(client.TcpKeepAlive);
        Assert.Equal((60, 10), (client.TcpKeepAliveTime, client.TcpKeepAliveInterval));

        var theirs = DatabaseExtensions.WithLostPeerBounds(new NpgsqlConnectionStringBuilder(database.ConnectionString)
        {
            Options = "-c idle_in_transaction_session_timeout=0 -c tcp_keepalives_idle=300",
            TcpKeepAlive = false,
        }.ConnectionString);
        Assert.Equal(["0", "300", "10", "6", "120000"], await SettingsAsync(theirs, names));
        client = new NpgsqlConnectionStringBuilder(theirs);
        Assert.False(client.TcpKeepAlive);
        Assert.Equal((0, 0), (client.TcpKeepAliveTime, client.TcpKeepAliveInterval));

        // RolloutGate__DatabaseSessionTimeouts=false (behind a pooler) sends no startup options; TCP keepalive stays ours.
        var none = DatabaseExtensions.WithLostPeerBounds(database.ConnectionString, sessionTimeouts: false);
        Assert.Equal(await SettingsAsync(database.ConnectionString, names), await SettingsAsync(none, names));
        Assert.Equal("0", (await SettingsAsync(none, names))[0]);
        Assert.Null(new NpgsqlConnectionStringBuilder(none).Options);
        Assert.True(new NpgsqlConnectionStringBuilder(none).TcpKeepAlive);
    }

    [Fact]
    public async Task DatabaseSessionTimeoutsOff_TheServicesSessionsCarryNoneOfOurs()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var host = new RolloutGateHost(database, new Dictionary<string, string?> { ["RolloutGate:DatabaseSessionTimeouts"] = "false" });

        var source = host.Services.GetRequiredService<NpgsqlDataSource>();
        await using var connection = await source.OpenConnectionAsync();
        await using var command = new NpgsqlCommand("SELECT setting FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'", connection);
        Assert.Equal("0", await command.ExecuteScalarAsync());
        Assert.True(new NpgsqlConnectionStringBuilder(source.ConnectionString).TcpKeepAlive);
    }

    [Fact]
    public async Task PreDeployChecksOutlastingTheIdleTimeout_AreAnswered_TheyRunOutsideAnyTransaction()
    {
        var target = new CheckTestHost();
        await target.InitializeAsync();
        try
        {
            // The checks wait 5 s for an endpoint that never answers, before the webhook's transaction begins; an operator has
            // set 2 s for a session idle in a transaction (inside it, they were ended there, and the predeploy answered 503).
            var runbook = TestRunbooks.Minimal().Replace("  decisionChannel: C0DECIDE01\n", $"""
                  decisionChannel: C0DECIDE01
                  preDeploy:
                    timeout: 5s
                    checks:
                      - name: slow
                        http:
                          url: {target.ServerUrl}/hang

                """, StringComparison.Ordinal);
            await using var database = await TestDatabase.CreateAsync();
            using var runbooks = new TestRunbooks(("checkout.yaml", runbook));
            // The operator's 2 s is the database's (the service's own 60 s are off, so it is not overridden), set once the
            // host has started and has answered one predeploy without it: a first start-up or request on a loaded machine
            // spent more than 1 s between two statements of one transaction (compiling an EF query), and was ended there.
            await using var host = new RolloutGateHost(database, new Dictionary<string, string?>
            {
                ["RolloutGate:DatabaseSessionTimeouts"] = "false",
                ["RolloutGate:RunbooksPath"] = runbooks.Folder,
            });
            var webhooks = new WebhookClient(host.CreateClient());
            Assert.Equal(HttpStatusCode.OK, (await webhooks.SendEventAsync("predeploy", "warm-up")).StatusCode);
            await database.ExecuteAsync($"ALTER DATABASE {database.Name} SET idle_in_transaction_session_timeout = '2s'", asAdmin: true);
            host.Services.GetRequiredService<NpgsqlDataSource>().Clear();

            var answer = await webhooks.SendEventAsync("predeploy", "slow-checks");

            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            var json = await answer.JsonAsync();
            Assert.Equal("deny", json.GetProperty("verdict").GetString());
            Assert.Equal("error", json.GetProperty("checks")[0].GetProperty("status").GetString());
        }
        finally
        {
            await target.DisposeAsync();
        }
    }

    [Fact]
    public async Task ReplicaFrozenMidTransactionPastTheIdleTimeout_Answers503AndARetryIsApplied()
    {
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("checkout.yaml", TestRunbooks.Minimal()));
        var stall = new StallOnce(database, "frozen");
        // The service's own session settings: only the frozen transaction has a short timeout (StallOnce).
        await using var host = new RolloutGateHost(database, new Dictionary<string, string?> { ["RolloutGate:RunbooksPath"] = runbooks.Folder },
            services: services => services.AddSingleton<IAuditSubscriber>(stall));
        var webhooks = new WebhookClient(host.CreateClient());

        // The replica stops between appending its events and committing them, as one frozen or cut off would, until
        // PostgreSQL has ended its session and rolled the transaction back.
        var frozen = await webhooks.SendEventAsync("deployed", "frozen", deliveryId: "frozen-deployed");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, frozen.StatusCode);
        Assert.Equal("30", frozen.Headers.GetValues("Retry-After").Single());
        Assert.Equal(0L, await database.ScalarAsync<long>("SELECT count(*) FROM deployments WHERE id = 'frozen'"));
        var retried = await webhooks.SendEventAsync("deployed", "frozen", deliveryId: "frozen-deployed");
        Assert.Equal(HttpStatusCode.Accepted, retried.StatusCode);
        Assert.Equal(1L, await database.ScalarAsync<long>("SELECT count(*) FROM audit_events WHERE deployment_id = 'frozen' AND type = 'webhook.deployed'"));
    }

    private static async Task<string[]> SettingsAsync(string connectionString, string[] names)
    {
        await using var source = NpgsqlDataSource.Create(connectionString);
        await using var connection = await source.OpenConnectionAsync();
        await using var command = new NpgsqlCommand("SELECT setting FROM pg_settings WHERE name = ANY(@names) ORDER BY array_position(@names, name)", connection);
        command.Parameters.AddWithValue("names", names);
        var values = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            values.Add(reader.GetString(0));
        }

        return [.. values];
    }

    /// <summary>
    /// Freezes the first transaction that appends an event of <paramref name="deploymentId"/>: it allows that transaction
    /// 1 s idle (SET LOCAL: the host's start-up, its background loops and the retry keep the service's 60 s), then waits until PostgreSQL has ended its session. A timeout of 1 s for the whole host ended its
    /// start-up or the retry too on a loaded machine, where a first EF query's compilation inside a transaction took longer.
    /// </summary>
    private sealed class StallOnce(TestDatabase database, string deploymentId) : IAuditSubscriber
    {
        private int stalled;

        public async Task OnAppendedAsync(RolloutGateDbContext db, IReadOnlyList<AuditEventRow> appended, CancellationToken cancellationToken)
        {
            if (appended.Any(row => row.DeploymentId == deploymentId) && Interlocked.Exchange(ref stalled, 1) == 0)
            {
                var session = ((NpgsqlConnection)db.Database.GetDbConnection()).ProcessID;
                await db.Database.ExecuteSqlRawAsync("SET LOCAL idle_in_transaction_session_timeout = '1s'", cancellationToken);
                await SlackTestService.EventuallyAsync(
                    async () => await database.ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE pid = {session}", asAdmin: true) == 0,
                    "PostgreSQL ended the frozen session", PatienceSeconds);
            }
        }
    }
}
