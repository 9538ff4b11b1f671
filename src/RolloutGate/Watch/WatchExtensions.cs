using Microsoft.Extensions.Options;
using Npgsql;
using Quartz;

namespace RolloutGate.Watch;

public static class WatchExtensions
{
    /// <summary>
    /// The watch: Quartz with the clustered PostgreSQL job store (tables from migrations/0003_quartz.sql), the sweep job
    /// that evaluates every due watch, and Prometheus as the metric source. Register after the database: hosted services
    /// start in order, and the schema must be migrated before Quartz starts.
    /// </summary>
    public static IServiceCollection AddWatch(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<WatchOptions>().BindConfiguration(WatchOptions.SectionName)
            .Validate(o => o.SourceOutageGrace >= TimeSpan.Zero, $"{WatchOptions.SectionName}:SourceOutageGrace must not be negative")
            .Validate(o => o.EvaluationRetentionDays is >= 0 and <= WatchOptions.MaxEvaluationRetentionDays,
                $"{WatchOptions.SectionName}:EvaluationRetentionDays must be 0 (keep every evaluation) or a number of days up to {WatchOptions.MaxEvaluationRetentionDays}")
            // Out of range, each of these left the service running without watching (a batch of 0), or stopped it with
            // the scheduler's stack trace instead of the setting's name.
            .Validate(o => o.BatchSize >= 1, $"{WatchOptions.SectionName}:BatchSize must be at least 1")
            .Validate(o => o.StoreBatchSize >= 1, $"{WatchOptions.SectionName}:StoreBatchSize must be at least 1")
            .Validate(o => o.SweepInterval > TimeSpan.Zero, $"{WatchOptions.SectionName}:SweepInterval must be positive")
            .Validate(o => o.IdleWaitTime >= TimeSpan.FromSeconds(1), $"{WatchOptions.SectionName}:IdleWaitTime must be at least 00:00:01")
            .Validate(o => o.ClusterCheckinInterval > TimeSpan.Zero, $"{WatchOptions.SectionName}:ClusterCheckinInterval must be positive")
            .ValidateOnStart();
        var watch = configuration.GetSection(WatchOptions.SectionName).Get<WatchOptions>() ?? new WatchOptions();
        services.AddQuartzOutageLogging();
        services.AddQuartz(quartz =>
        {
            quartz.ConfigureScheduler(scheduler =>
            {
                scheduler.InstanceName = watch.SchedulerName;
                scheduler.GenerateInstanceId = true;
                scheduler.IdleWaitTime = watch.IdleWaitTime;
                // Whatever is running when the host stops is told to stop; the interval in flight is evaluated again later.
                scheduler.ShutdownJobInterruption = ShutdownJobInterruption.Always;
            });
            // One sweep job at a time (plus Quartz's own housekeeping).
            quartz.UseDefaultThreadPool(pool => pool.MaxConcurrency = 2);
            quartz.UsePersistentStore(store =>
            {
                store.UsePostgres(source => source.DataSourceFactory = provider => provider.GetRequiredService<NpgsqlDataSource>());
                store.UseSystemTextJsonSerializer();
                // The sweep job disallows concurrent execution, which only TRIGGER_ACCESS decides: a lock-free firing round
                // (Quartz's default) found that after it had begun, threw RoundNeedsLockException, rolled back and ran again
                // under the lock, nearly every fire. Off, every round takes the lock from the start, as the escalated round
                // did (the benchmarks' README, "soak").
                store.ConfigureStore(options => options.LockFreeFiringRounds = false);
                store.UseClustering(cluster => cluster.CheckinInterval = watch.ClusterCheckinInterval);
                // Quartz's row lock, without its retries inside a transaction PostgreSQL has already aborted.
                store.UseLockHandler<JobStoreLockHandler>();
            });
        });

        services.AddSingleton<WatchSweep>();
        services.AddScoped<IMetricSource, PrometheusMetricSource>();
        services.AddSingleton<WatchSweepScheduler>();
        services.AddHostedService(provider => provider.GetRequiredService<WatchSweepScheduler>());
        services.AddSingleton<EvaluationRetention>();
        services.AddHostedService(provider => provider.GetRequiredService<EvaluationRetention>());
        return services;
    }
}
