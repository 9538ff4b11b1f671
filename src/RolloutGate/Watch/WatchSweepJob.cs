using Microsoft.Extensions.Options;
using Quartz;

namespace RolloutGate.Watch;

/// <summary>
/// The watch's one Quartz job, fired every <see cref="WatchOptions.SweepInterval"/> from the clustered PostgreSQL job
/// store: never two sweeps at once, across replicas too (the clustered store honours DisallowConcurrentExecution), and
/// a replica that dies mid-sweep has the job recovered by another. A sweep that runs longer than the interval delays the
/// next fire; it never overlaps it.
/// </summary>
[DisallowConcurrentExecution]
public sealed partial class WatchSweepJob(WatchSweep sweep, ILogger<WatchSweepJob> logger) : IJob
{
    public static readonly JobKey Key = new("sweep", "watch-sweep");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        try
        {
            await sweep.RunAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Shutting down: what was not committed is evaluated by the next sweep, here or on another replica.
        }
        catch (Exception ex)
        {
            LogFailed(logger, ex);
        }
    }

    /// <summary>The durable job and its trigger, firing every interval from now on.</summary>
    public static (IJobDetail Job, ITrigger Trigger) Define(TimeSpan interval)
    {
        var job = JobBuilder.Create<WatchSweepJob>().WithIdentity(Key).StoreDurably().RequestRecovery().Build();
        var trigger = TriggerBuilder.Create()
            .WithIdentity(Key.Name, Key.Group)
            .ForJob(Key)
            .StartNow()
            .WithSimpleSchedule(s => s.WithInterval(interval).RepeatForever().WithMisfireInstruction(SimpleTriggerMisfireInstruction.NextWithRemainingCount))
            .Build();
        return (job, trigger);
    }

    [LoggerMessage(EventId = 3201, Level = LogLevel.Error, Message = "The watch sweep failed; it runs again at the next fire")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}

/// <summary>Puts the sweep job into the job store at start-up (replacing it, so a changed interval takes effect).</summary>
public sealed class WatchSweepScheduler(ISchedulerFactory factory, IOptions<WatchOptions> options) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var scheduler = await factory.GetScheduler(cancellationToken);
        var (job, trigger) = WatchSweepJob.Define(options.Value.SweepInterval);
        await scheduler.ScheduleJob(job, new List<ITrigger> { trigger }, new ScheduleJobOptions { Replace = true }, cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
