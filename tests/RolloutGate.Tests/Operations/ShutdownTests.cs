using System.Diagnostics;
using System.Net;
using System.Reflection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Quartz;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Operations;

/// <summary>
/// The service told to stop after its database went away (deploy/kubernetes/README.md): it stops within its shutdown
/// time, leaving the watch scheduler behind and saying so, instead of waiting for a database that does not come back.
/// And told to stop twice at once: both stops wait for the one shutdown of the watch scheduler.
/// </summary>
public sealed class ShutdownTests
{
    /// <summary>The host's shutdown time in this test: short, so the test is quick (the service's own is 25 s).</summary>
    private static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(3);

    /// <summary>
    /// How long the stop may take: the shutdown time and a wide margin for a loaded machine. Before the fix the stop did
    /// not end at all (Quartz's hosted service waited for a job store that could not reach the database, and the services
    /// stopped after it, one after another, waited behind it).
    /// </summary>
    private static readonly TimeSpan StopBound = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task DatabaseGone_StopsWithinItsShutdownTime_LeavingTheWatchSchedulerAndSayingWhy()
    {
        await using var database = await TestDatabase.CreateAsync();
        var direct = new NpgsqlConnectionStringBuilder(database.ConnectionString);
        await using var proxy = CuttableTcpProxy.Start(direct.Host!, direct.Port);
        using var runbooks = new TestRunbooks(("checkout.yaml", TestRunbooks.Minimal()));
        var host = new RolloutGateHost(database, new Dictionary<string, string?>
        {
            ["ConnectionStrings:RolloutGate"] = new NpgsqlConnectionStringBuilder(database.ConnectionString)
            {
                Host = IPAddress.Loopback.ToString(),
                Port = proxy.Port,
            }.ConnectionString,
            ["RolloutGate:RunbooksPath"] = runbooks.Folder,
            // Nothing listens there: the new watch's baseline cannot be read, and the watch waits 10 s before trying again.
            ["RolloutGate:Prometheus:Url"] = "http://127.0.0.1:9",
            ["RolloutGate:Watch:IdleWaitTime"] = "00:00:01",
        }, services: services =>
        {
            services.Configure<HostOptions>(options => options.ShutdownTimeout = ShutdownTimeout);
        });
        Task? stopped = null;
        try
        {
            using var client = host.CreateClient();
            var deployed = await new WebhookClient(client).SendEventAsync("deployed", "shutdown-1");
            Assert.Equal(HttpStatusCode.Accepted, deployed.StatusCode);
            Assert.Equal("watching", await database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'shutdown-1'"));
            Assert.True(proxy.Accepted > 0, "the service does not reach its database through the proxy");
            var scheduler = host.Services.GetRequiredService<WatchSweepScheduler>();
            await WhenAsync(() => Task.FromResult(host.Logs.Lines.Any(line =>
                line.Contains("Watch of shutdown-1: the baseline could not be read", StringComparison.Ordinal))), "the sweep tries the new watch");

            // The database goes between two sweeps, while the scheduler holds the next fire and is already waiting to take
            // the job store's lock for it (see HoldTheSweepsNextFireAsync): what it waits to do fails, and Quartz retries its
            // bookkeeping for as long as the database is away.
            await using (await HoldTheSweepsNextFireAsync(database))
            {
                proxy.Cut();
            }

            // Told to stop as SIGTERM tells it: the lifetime is stopped, and Main's RunAsync stops the host (once). The host
            // has stopped when every hosted service's stop has returned, and the lifetime says so.
            var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
            var whenStopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using var onStopped = lifetime.ApplicationStopped.Register(() => whenStopped.TrySetResult());
            var clock = Stopwatch.StartNew();
            lifetime.StopApplication();
            stopped = whenStopped.Task;
            var first = await Task.WhenAny(stopped, Task.Delay(StopBound));
            var took = clock.Elapsed;
            Assert.True(first == stopped,
                $"the host did not stop within {StopBound.TotalSeconds:0} s of being told to (shutdown time {ShutdownTimeout.TotalSeconds:0} s)");

            // It waited for the scheduler as long as it could, left it behind, and says why in the log.
            Assert.True(scheduler.LeftRunning, $"stopped in {took.TotalSeconds:0.00} s without leaving the watch scheduler behind");
            Assert.True(took >= ShutdownTimeout - TimeSpan.FromMilliseconds(100), $"stopped in {took.TotalSeconds:0.00} s, before its shutdown time was up");
            Assert.Contains(host.Logs.Lines, line => line.StartsWith("Warning RolloutGate.Watch.WatchSweepScheduler: ", StringComparison.Ordinal)
                && line.Contains("did not stop within the host's shutdown time (is the database reachable?)", StringComparison.Ordinal));
            await host.DisposeAsync();
        }
        finally
        {
            // A host that was told to stop is not stopped again here: if its stop hung, this would hang the test too.
            if (stopped is null)
            {
                await host.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Stopped twice at once, as WebApplicationFactory's stop and Main's RunAsync (woken by it) stop a test host: the second
    /// stop waits for the scheduler's shutdown like the first. It returned at once (Quartz answers a second Shutdown at
    /// once), so the host was disposed while a job still ran: its services and the job store's database went away under
    /// it, and the first stop waited out the whole shutdown time.
    /// </summary>
    [Fact]
    public async Task StoppedTwiceAtOnce_TheSecondStopWaitsForTheJobInFlightAsTheFirstDoes()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var host = new RolloutGateHost(database);
        var quartz = await host.Services.GetRequiredService<ISchedulerFactory>().GetScheduler();
        await quartz.ScheduleJob(JobBuilder.Create<HeldJob>().WithIdentity("held", "shutdown-tests").Build(), TriggerBuilder.Create().StartNow().Build());
        await HeldJob.Started.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var scheduler = host.Services.GetRequiredService<WatchSweepScheduler>();
        try
        {
            var first = scheduler.StopAsync(CancellationToken.None);
            var second = scheduler.StopAsync(CancellationToken.None);
            Assert.False(first.IsCompleted, "the first stop returned while a job was still running");
            Assert.False(second.IsCompleted, "the second stop returned while a job was still running");

            HeldJob.Released.TrySetResult();
            await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.False(scheduler.LeftRunning);
        }
        finally
        {
            HeldJob.Released.TrySetResult();
        }
    }

    /// <summary>Every background service of the service, by name: each must end cleanly when stopped.</summary>
    public static TheoryData<string> BackgroundServices => new(typeof(Program).Assembly.GetTypes()
        .Where(type => type.IsSubclassOf(typeof(BackgroundService)) && !type.IsAbstract).Select(type => type.FullName!).Order(StringComparer.Ordinal));

    /// <summary>
    /// A background service told to stop (its stopping token cancelled) ends its ExecuteAsync without an exception, stopped
    /// at once or while it runs. One that ends cancelled is a fault to the host unless the whole host is stopping: a
    /// service stopped on its own, or a host that failed to start (its address in use) and is disposed, logged "BackgroundService
    /// failed" with the OperationCanceledException and a critical "the IHost instance is stopping" besides the real cause.
    /// The runbook loader's did (PeriodicTimer.WaitForNextTickAsync threw out of it); ExecuteAsync is called directly, on an
    /// instance of the test's own, as .NET 10's BackgroundService.StartAsync runs it on the thread pool and a stop before it
    /// ran there would cancel the task whatever the service does.
    /// </summary>
    [Theory]
    [MemberData(nameof(BackgroundServices))]
    public async Task BackgroundService_Stopped_EndsItsExecuteAsyncWithoutAnException(string serviceType)
    {
        await using var service = await TestService.StartAsync();
        var type = typeof(Program).Assembly.GetType(serviceType, throwOnError: true)!;
        var execute = typeof(BackgroundService).GetMethod("ExecuteAsync", BindingFlags.Instance | BindingFlags.NonPublic)!;
        foreach (var after in new[] { TimeSpan.Zero, TimeSpan.FromMilliseconds(500) })
        {
            using var instance = (BackgroundService)ActivatorUtilities.CreateInstance(service.Host.Services, type);
            using var stopping = new CancellationTokenSource();
            var running = (Task)execute.Invoke(instance, [stopping.Token])!;
            await Task.Delay(after);
            await stopping.CancelAsync();
            await Task.WhenAny(running, Task.Delay(StopBound));

            Assert.True(running.IsCompletedSuccessfully, $"{type.Name} stopped after {after.TotalMilliseconds} ms: {running.Status} {running.Exception?.InnerException?.GetType().Name}");
        }
    }

    /// <summary>A job that runs until the test releases it, whatever the scheduler's shutdown asks (one test uses it).</summary>
    private sealed class HeldJob : IJob
    {
        public static readonly TaskCompletionSource Started = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public static readonly TaskCompletionSource Released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
        {
            Started.TrySetResult();
            await Released.Task;
        }
    }

    /// <summary>
    /// Holds the sweep's next fire until the test has cut the database, however long that takes on a loaded machine: a
    /// transaction of the test's own, on a connection that does not go through the proxy, takes the job store's
    /// TRIGGER_ACCESS lock and finds the sweep's next fire acquired and no sweep running, and keeps the lock until the
    /// scheduler waits for it. What the scheduler can do next with that trigger takes the lock: fire it (a job that
    /// disallows concurrent execution fires only under it), or let it go again, which it does at once after a schedule
    /// change that came in while it acquired the trigger (seen under load; most likely the previous sweep's completion,
    /// which signals one after its commit, so after the acquisition that already saw the commit). So
    /// when the database goes, one of the two is waiting, and fails: the fire (reported to the scheduler's listeners with
    /// the sweep's key) or the release (retried without a word). Either way the scheduler then retries the release of the
    /// trigger for as long as the database is away, which is what a stop has to leave behind.
    /// </summary>
    /// <remarks>
    /// The test checked the next fire by time alone (at least 500 ms ahead) and then waited for the failed fire to be
    /// reported with the sweep's key, 30 s in vain now and then (once in a full run, once in ten runs on a loaded machine):
    /// a cut that came after the fire found the sweep running or its next fire not yet acquired, and no fire failed. Held
    /// by the lock alone, without waiting for the scheduler to want it, the fire the check saw was sometimes let go again
    /// after a schedule change, and the release failed in its place.
    /// </remarks>
    private static async Task<IAsyncDisposable> HoldTheSweepsNextFireAsync(TestDatabase database)
    {
        var until = TimeProvider.System.GetUtcNow().AddSeconds(30);
        while (true)
        {
            var connection = new NpgsqlConnection(database.ConnectionString);
            await connection.OpenAsync();
            var hold = new HeldFire(connection, await connection.BeginTransactionAsync());
            await using (var locking = new NpgsqlCommand("SELECT count(*) FROM (SELECT 1 FROM qrtz_locks WHERE lock_name = 'TRIGGER_ACCESS' FOR UPDATE) AS held", connection))
            {
                Assert.Equal(1L, await locking.ExecuteScalarAsync());
            }

            await using (var holds = new NpgsqlCommand("""
                SELECT count(*) FILTER (WHERE state = 'EXECUTING') = 0 AND count(*) FILTER (WHERE state = 'ACQUIRED') > 0
                FROM qrtz_fired_triggers WHERE trigger_group = 'watch-sweep'
                """, connection))
            {
                if (await holds.ExecuteScalarAsync() is true)
                {
                    // pg_locks, not pg_stat_activity: that is read once per transaction, and would not show a connection
                    // opened since.
                    await using var waiting = new NpgsqlCommand("SELECT count(*) FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY (pg_blocking_pids(pid))", connection);
                    await WhenAsync(async () => (long)(await waiting.ExecuteScalarAsync())! > 0, "the scheduler waits for the lock the test holds");
                    return hold;
                }
            }

            await hold.DisposeAsync();
            Assert.True(TimeProvider.System.GetUtcNow() < until, "waited 30 s for this: the scheduler holds the sweep's next fire, with no sweep running");
            await Task.Delay(25);
        }
    }

    /// <summary>The test's hold on the sweep's next fire: disposed, the transaction rolls back and lets the lock go.</summary>
    private sealed class HeldFire(NpgsqlConnection connection, NpgsqlTransaction transaction) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await transaction.DisposeAsync();
            await connection.DisposeAsync();
        }
    }

    private static async Task WhenAsync(Func<Task<bool>> condition, string what)
    {
        var until = TimeProvider.System.GetUtcNow().AddSeconds(30);
        while (!await condition())
        {
            Assert.True(TimeProvider.System.GetUtcNow() < until, $"waited 30 s for this: {what}");
            await Task.Delay(25);
        }
    }
}
