using Microsoft.Extensions.Options;
using Quartz;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Watch;

/// <summary>
/// The watch's one Quartz job, fired every <see cref="WatchOptions.SweepInterval"/> from the clustered PostgreSQL job
/// store: never two sweeps at once, across replicas too (the clustered store honours DisallowConcurrentExecution), and
/// a replica that dies mid-sweep has the job recovered by another. A sweep that runs longer than the interval delays the
/// next fire; it never overlaps it.
/// </summary>
[DisallowConcurrentExecution]
public sealed partial class WatchSweepJob(WatchSweep sweep, DatabaseOutageLog outage, ILoggerFactory loggers, ILogger<WatchSweepJob> logger) : IJob
{
    public static readonly JobKey Key = new("sweep", "watch-sweep");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        try
        {
            await sweep.RunAsync(cancellationToken);
            outage.Answered("Watch sweep");
            QuartzOutageLogging.Answered(loggers);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Shutting down: what was not committed is evaluated by the next sweep, here or on another replica.
        }
        catch (Exception ex)
        {
            if (!outage.Handled("Watch sweep", ex))
            {
                LogFailed(logger, ex);
            }
        }
    }

    /// <summary>
    /// The durable job and its trigger, firing every interval from <paramref name="now"/> on: the time of the clock Quartz
    /// runs on (the injected <see cref="TimeProvider"/>), not the wall clock's, or a service on another clock would wait
    /// for the wall clock's now to come before its first sweep.
    /// </summary>
    public static (IJobDetail Job, ITrigger Trigger) Define(TimeSpan interval, DateTimeOffset now)
    {
        var job = JobBuilder.Create<WatchSweepJob>().WithIdentity(Key).StoreDurably().RequestRecovery().Build();
        var trigger = TriggerBuilder.Create()
            .WithIdentity(Key.Name, Key.Group)
            .ForJob(Key)
            .StartAt(now)
            .WithSimpleSchedule(s => s.WithInterval(interval).RepeatForever().WithMisfireInstruction(SimpleTriggerMisfireInstruction.NextWithRemainingCount))
            .Build();
        return (job, trigger);
    }

    [LoggerMessage(EventId = 3201, Level = LogLevel.Error, Message = "The watch sweep failed; it runs again at the next fire")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}

/// <summary>
/// Runs the Quartz scheduler for the life of the host and schedules the sweep job (replacing its trigger, so a changed
/// <see cref="WatchOptions.SweepInterval"/> takes effect). In place of Quartz's own hosted service for one reason: its
/// stop waits for the running sweep with no bound, and with the database gone Quartz retries its bookkeeping for as long
/// as the process lives, so a replica told to stop never did. Here the wait ends when the host's shutdown time is up
/// (the sweep in flight is evaluated again at its own t by another replica or the next start), and the host exits.
/// </summary>
public sealed partial class WatchSweepScheduler(
    ISchedulerFactory factory, IOptions<WatchOptions> options, TimeProvider time, ILogger<WatchSweepScheduler> logger)
    : IHostedService
{
    private readonly Lock gate = new();
    private IScheduler? scheduler;
    private Task? shutdown;

    /// <summary>Whether the scheduler's stop was cut short: its threads may still be retrying, and keep the process alive.</summary>
    public bool LeftRunning { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        scheduler = await factory.GetScheduler(cancellationToken);
        // Scheduled before the scheduler starts: on a new database the job store's lock row is made by the first
        // transaction that takes the lock, and a firing round (locked from the start, see AddWatch) begun beside the
        // scheduling found it being inserted, waited for it, and tried again a second later (Quartz's lock retry); a stop
        // of the host in that second fired the sweep on its way out.
        var (job, trigger) = WatchSweepJob.Define(options.Value.SweepInterval, time.GetUtcNow());
        await scheduler.ScheduleJob(job, new List<ITrigger> { trigger }, new ScheduleJobOptions { Replace = true }, cancellationToken);
        await scheduler.Start(cancellationToken);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (scheduler is null)
        {
            return;
        }

        // One shutdown, which every stop waits for. A host can be stopped twice at once: in the tests WebApplicationFactory
        // stops it, and Main's RunAsync, woken by that stop, stops it too. Quartz answers a second Shutdown at once, so
        // that stop returned while the first still waited for a job in flight, and the host was disposed behind it: the
        // job's services and the job store's database went away under it, its bookkeeping retried, and the first stop
        // waited out the whole shutdown time (25 s).
        Task stopping;
        lock (gate)
        {
            stopping = shutdown ??= scheduler.Shutdown(waitForJobsToComplete: true, cancellationToken).AsTask();
        }

        try
        {
            await stopping.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Said once, whichever stop is cut first (two stops cut at once both get here).
            bool first;
            lock (gate)
            {
                first = !LeftRunning;
                LeftRunning = true;
            }

            if (first)
            {
                LogShutdownCut(logger);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The watch scheduler did not stop within the host's shutdown time (is the database reachable?); the host stops without it, and the sweep in flight is evaluated again later")]
    private static partial void LogShutdownCut(ILogger logger);
}
