using Quartz;

namespace RolloutGate.Watch;

/// <summary>Creates and removes the durable watch job of a deployment in the clustered Quartz store.</summary>
public sealed class WatchScheduler(ISchedulerFactory factory)
{
    public const string Group = "watch";
    public const string DeploymentIdKey = "deploymentId";

    public static JobKey JobKeyOf(string deploymentId) => new(deploymentId, Group);

    /// <summary>
    /// Makes sure the deployment's job exists, first firing at once (which evaluates whatever is already due). With
    /// <paramref name="fireNow"/> an existing job is also fired now, for the catch-up after a restart.
    /// </summary>
    public async Task EnsureAsync(string deploymentId, TimeSpan interval, bool fireNow, CancellationToken cancellationToken)
    {
        var scheduler = await factory.GetScheduler(cancellationToken);
        var key = JobKeyOf(deploymentId);
        if (await scheduler.Exists(key, cancellationToken))
        {
            if (fireNow)
            {
                await scheduler.TriggerJob(key, cancellationToken);
            }

            return;
        }

        var (job, trigger) = Define(deploymentId, interval, startAt: null);
        try
        {
            await scheduler.ScheduleJob(job, trigger, default, cancellationToken);
        }
        catch (ObjectAlreadyExistsException)
        {
            // Another replica (or the reconciler) scheduled it meanwhile: one job it is.
        }
    }

    /// <summary>
    /// The durable job of a deployment's watch and its trigger, first firing at <paramref name="startAt"/> (now when null),
    /// then every interval. Also used to schedule many watches at once (the scale benchmark).
    /// </summary>
    public static (IJobDetail Job, ITrigger Trigger) Define(string deploymentId, TimeSpan interval, DateTimeOffset? startAt)
    {
        var key = JobKeyOf(deploymentId);
        var job = JobBuilder.Create<WatchJob>()
            .WithIdentity(key)
            .UsingJobData(DeploymentIdKey, deploymentId)
            .RequestRecovery()
            .Build();
        var trigger = TriggerBuilder.Create()
            .WithIdentity(deploymentId, Group)
            .ForJob(key);
        trigger = startAt is { } at ? trigger.StartAt(at) : trigger.StartNow();
        // A missed fire needs no replay: the next fire evaluates every interval that is due, each at its own time.
        return (job, trigger
            .WithSimpleSchedule(s => s.WithInterval(interval).RepeatForever().WithMisfireInstruction(SimpleTriggerMisfireInstruction.NextWithRemainingCount))
            .Build());
    }

    public async Task RemoveAsync(string deploymentId, CancellationToken cancellationToken)
    {
        var scheduler = await factory.GetScheduler(cancellationToken);
        await scheduler.DeleteJob(JobKeyOf(deploymentId), cancellationToken);
    }

}
