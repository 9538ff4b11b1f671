using Quartz;

namespace RolloutGate.Watch;

/// <summary>
/// The Quartz job of one deployment's watch, fired every interval. Never two at once for one deployment, across replicas
/// too (the clustered store honours DisallowConcurrentExecution); the job deletes itself once the watch is over.
/// </summary>
[DisallowConcurrentExecution]
public sealed partial class WatchJob(IServiceScopeFactory scopes, ILogger<WatchJob> logger) : IJob
{
    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        var deploymentId = context.MergedJobDataMap.GetString(WatchScheduler.DeploymentIdKey);
        if (string.IsNullOrEmpty(deploymentId))
        {
            await context.Scheduler.DeleteJob(context.JobDetail.Key, CancellationToken.None);
            return;
        }

        bool finished;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            finished = await scope.ServiceProvider.GetRequiredService<WatchRunner>().RunAsync(deploymentId, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex)
        {
            // A failed fire is retried at the next one; what was committed stays, what was not is evaluated again.
            LogFailed(logger, deploymentId, ex);
            return;
        }

        if (finished)
        {
            await context.Scheduler.DeleteJob(context.JobDetail.Key, CancellationToken.None);
        }
    }

    [LoggerMessage(EventId = 3201, Level = LogLevel.Error, Message = "Watch of {DeploymentId} failed; retried at the next fire")]
    private static partial void LogFailed(ILogger logger, string deploymentId, Exception exception);
}
