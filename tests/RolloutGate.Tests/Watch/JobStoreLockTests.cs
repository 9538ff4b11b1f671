using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Quartz;
using Quartz.Impl.AdoJobStore;
using Quartz.Impl.AdoJobStore.Common;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Watch;

/// <summary>
/// The job store's lock row (<c>qrtz_locks</c>), held by a session that no longer answers: a replica lost in the middle of
/// a round of Quartz's holds it until PostgreSQL ends its session (DatabaseExtensions.LostClientOptions), and another
/// replica's wait for it outlasts its command timeout meanwhile.
/// </summary>
public sealed class JobStoreLockTests
{
    private static readonly string Fired = $"Calling Execute on job {WatchSweepJob.Key}";

    /// <summary>The start of the Debug line for a failed lock statement, Quartz's own handler's and the service's alike.</summary>
    private const string NotObtained = "Lock 'TRIGGER_ACCESS' was not obtained by: ";

    private const int PatienceSeconds = 60;

    /// <summary>
    /// The job store's command timeout in the first test, instead of Npgsql's 30 s, so that the wait below outlasts it soon.
    /// The job store's alone (Quartz sets it on each of its statements, the lock handler's among them): in the connection
    /// string, as before, it bounded every command of the host, its start-up's and its other loops' included, which a
    /// loaded machine can make wait that long.
    /// </summary>
    private static readonly TimeSpan LockWaitTimeout = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Quartz's handler tried the lock statement twice more, a second apart, in the transaction the timeout had aborted:
    /// both failed with 25P02 although the lock was free by then, and the job store, told of that error instead of the
    /// timeout, gave up on the operation for its DbRetryInterval (15 s), the sweep waiting with it. The wait is one warning
    /// that says what held the scheduler up.
    /// </summary>
    [Fact]
    public async Task LockWaitOutlastsTheCommandTimeout_NoAttemptInTheAbortedTransaction_TheSweepFiresOnceTheLockIsFree_OneWarning()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var host = new RolloutGateHost(database, new Dictionary<string, string?>
        {
            ["RolloutGate:Watch:IdleWaitTime"] = "00:00:01",
            // Quartz's own lines and the lock handler's down to Debug (appsettings.json keeps Quartz's at Warning): the test
            // reads them.
            ["Logging:LogLevel:Quartz"] = "Debug",
            [$"Logging:LogLevel:{typeof(JobStoreLockHandler).FullName}"] = "Debug",
        }, services: services => services.Configure<AdoJobStoreOptions>(options => options.CommandTimeout = LockWaitTimeout));
        using var client = host.CreateClient();
        await EventuallyAsync(() => Task.FromResult(Count(host, Fired) > 0), "the first sweep fired");

        // A session takes the lock row, as a replica does for each round and for the completion of each sweep, and answers
        // no more; the next round or completion waits for it until its command timeout.
        await using var lost = new NpgsqlConnection(database.ConnectionString);
        await lost.OpenAsync();
        await using var transaction = await lost.BeginTransactionAsync();
        await using (var take = new NpgsqlCommand("SELECT * FROM qrtz_locks WHERE lock_name = 'TRIGGER_ACCESS' FOR UPDATE", lost, transaction))
        {
            Assert.NotNull(await take.ExecuteScalarAsync());
        }

        await EventuallyAsync(() => Task.FromResult(Count(host, NotObtained) > 0), "a lock wait that outlasted its command timeout");
        // PostgreSQL ends the lost session (as idle_in_transaction_session_timeout does), and its lock with it.
        Assert.True(await database.ScalarAsync<bool>($"SELECT pg_terminate_backend({lost.ProcessID})", asAdmin: true));
        var failed = Count(host, NotObtained);
        var fired = Count(host, Fired);

        await EventuallyAsync(() => Task.FromResult(Count(host, Fired) > fired), "the sweep fired again");
        Assert.Equal(failed, Count(host, NotObtained));
        Assert.DoesNotContain(host.Logs.Lines, line => line.Contains("25P02", StringComparison.Ordinal));
        // Said once, as what it is, without a stack trace (Quartz's own line, a warning with the exception, is at Debug).
        var said = Assert.Single(host.Logs.Lines, line => line.StartsWith("Warning ", StringComparison.Ordinal)
            && line.Contains(QuartzOutageLogging.Source, StringComparison.Ordinal));
        Assert.Contains("the job store's lock 'TRIGGER_ACCESS' was not obtained within the command timeout: another session holds it", said, StringComparison.Ordinal);
        Assert.DoesNotContain(host.Logs.Lines, line => (line.StartsWith("Warning ", StringComparison.Ordinal) || line.StartsWith("Error ", StringComparison.Ordinal))
            && line.Contains("   at ", StringComparison.Ordinal));
    }

    /// <summary>
    /// The one retry left in the handler, which needs none in an aborted transaction: on a new database two transactions
    /// may both find the lock row missing; the second's insert waits for the first's and inserts nothing, and its
    /// transaction, not aborted, then locks the row the first committed.
    /// </summary>
    [Fact]
    public async Task LockRowMissing_TwoTransactionsMakeIt_OneInsertsIt_TheOtherLocksItOnceCommitted()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var source = NpgsqlDataSource.Create(database.ConnectionString);
        await new MigrationRunner(source, TimeProvider.System, NullLogger<MigrationRunner>.Instance)
            .ApplyAsync(TestPaths.RepositoryFile("migrations"), CancellationToken.None);
        var handler = new JobStoreLockHandler(new DbProvider("Npgsql", database.ConnectionString), NullLogger<JobStoreLockHandler>.Instance);
        handler.Initialize(new LockHandlerContext { SchedulerName = "lock-test", InstanceId = "lock-test-1", TablePrefix = "QRTZ_" });

        await using var first = await source.OpenConnectionAsync();
        await using var firstTransaction = await first.BeginTransactionAsync();
        Assert.True(await handler.AcquireLock(Guid.NewGuid(), new ConnectionAndTransactionHolder(first, firstTransaction), SchedulerLock.TriggerAccess));
        await using var second = await source.OpenConnectionAsync();
        await using var secondTransaction = await second.BeginTransactionAsync();
        var secondLock = handler.AcquireLock(Guid.NewGuid(), new ConnectionAndTransactionHolder(second, secondTransaction), SchedulerLock.TriggerAccess).AsTask();
        await EventuallyAsync(async () => await database.ScalarAsync<string>(
            $"SELECT wait_event_type FROM pg_stat_activity WHERE pid = {second.ProcessID}", asAdmin: true) == "Lock", "the second insert waiting for the first");

        await firstTransaction.CommitAsync();

        Assert.True(await secondLock);
        Assert.Equal(1L, await database.ScalarAsync<long>("SELECT count(*) FROM qrtz_locks WHERE sched_name = 'lock-test'"));
        // The second transaction holds the row now: a third may not take it.
        var taken = await Assert.ThrowsAsync<PostgresException>(() => database.ScalarAsync<string>(
            "SELECT lock_name FROM qrtz_locks WHERE sched_name = 'lock-test' FOR UPDATE NOWAIT"));
        Assert.Equal(PostgresErrorCodes.LockNotAvailable, taken.SqlState);
    }

    private static int Count(RolloutGateHost host, string text) => host.Logs.Lines.Count(line => line.Contains(text, StringComparison.Ordinal));

    private static Task EventuallyAsync(Func<Task<bool>> condition, string what) => SlackTestService.EventuallyAsync(condition, what, PatienceSeconds);
}
