using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RolloutGate.Core.Deployments;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;

namespace RolloutGate.Watch;

/// <summary>
/// Makes sure every deployment in state watching has its job (a job whose deployment left watching deletes itself).
/// Runs at start-up (firing every watch at once, which catches up what was missed while no replica ran) and then every
/// <see cref="WatchOptions.ReconcileInterval"/>, so a crash between the webhook's commit and the scheduling loses nothing.
/// </summary>
public sealed partial class WatchReconciler(
    IServiceScopeFactory scopes,
    WatchScheduler scheduler,
    RunbookCatalog runbooks,
    IOptions<WatchOptions> options,
    TimeProvider time,
    ILogger<WatchReconciler> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var startUp = true;
        using var timer = new PeriodicTimer(options.Value.ReconcileInterval, time);
        do
        {
            try
            {
                await ReconcileAsync(fireNow: startUp, stoppingToken);
                startUp = false;
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                LogFailed(logger, ex);
            }
        }
        while (await WaitAsync(timer, stoppingToken));
    }

    public async Task ReconcileAsync(bool fireNow, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
        var watching = await db.Deployments.AsNoTracking().Include(d => d.RunbookVersion)
            .Where(d => d.State == DeploymentState.Watching).ToListAsync(cancellationToken);
        foreach (var deployment in watching)
        {
            await scheduler.EnsureAsync(deployment.Id, runbooks.VersionOf(deployment).Watch.Interval, fireNow, cancellationToken);
        }

    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LoggerMessage(EventId = 3301, Level = LogLevel.Warning, Message = "Reconciling the watch jobs failed; trying again at the next round")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
