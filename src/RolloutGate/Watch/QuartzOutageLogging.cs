using Quartz.Impl.AdoJobStore;
using RolloutGate.Api;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Watch;

/// <summary>
/// What Quartz says while the database is unavailable. Its job store retries on its own (the cluster check-in, misfire
/// handling, acquiring and firing the sweep's trigger) and logs every attempt as a warning or an error with the whole
/// stack trace, about 15 a minute per replica, and resumes by itself once the database is back. So a Quartz line at
/// Warning or above whose exception is the database being unavailable is written at Debug instead, unchanged, and
/// <see cref="DatabaseOutageLog"/>'s throttled line for the watch scheduler (one every 30 s at most) says it in its place.
/// Any other Quartz line (a schema problem, a misconfiguration, a failure that is not the database's absence) is left as
/// it is.
/// </summary>
/// <remarks>
/// Quartz takes its loggers from the container's <see cref="ILoggerFactory"/>, and a log filter sees the category and the
/// level but not the exception, so the factory itself is decorated, for Quartz's categories only. The levels configured
/// under <c>Logging:LogLevel</c> still apply: Quartz at Debug shows every retry with its stack trace, Quartz at None hides
/// the throttled line too.
/// </remarks>
public static class QuartzOutageLogging
{
    public const string Source = "Watch scheduler (Quartz)";

    private const string Category = "Quartz";

    /// <summary>The key the application's own logger factory is registered under, inside the decorating one.</summary>
    private static readonly object Decorated = new();

    /// <summary>Decorates the logger factory registered so far (the host's, or a default one); once.</summary>
    public static IServiceCollection AddQuartzOutageLogging(this IServiceCollection services)
    {
        if (services.Any(d => d.ServiceType == typeof(ILoggerFactory) && d.IsKeyedService && d.ServiceKey == Decorated))
        {
            return services;
        }

        if (!services.Any(d => d.ServiceType == typeof(ILoggerFactory) && !d.IsKeyedService))
        {
            services.AddLogging();
        }

        var registered = services.Last(d => d.ServiceType == typeof(ILoggerFactory) && !d.IsKeyedService);
        services.Remove(registered);
        services.Add(registered switch
        {
            { ImplementationType: { } type } => ServiceDescriptor.KeyedSingleton(typeof(ILoggerFactory), Decorated, type),
            { ImplementationInstance: { } instance } => ServiceDescriptor.KeyedSingleton(typeof(ILoggerFactory), Decorated, instance),
            _ => ServiceDescriptor.KeyedSingleton(typeof(ILoggerFactory), Decorated, (provider, _) => registered.ImplementationFactory!(provider)),
        });
        services.AddSingleton<ILoggerFactory>(provider => new Factory(
            provider.GetRequiredKeyedService<ILoggerFactory>(Decorated), provider.GetRequiredService<TimeProvider>()));
        return services;
    }

    /// <summary>
    /// Quartz fired a job from its job store, so its rounds reach the database again: after an outage its throttled line
    /// told, one line says so. <paramref name="loggers"/> is the container's logger factory, which holds that line's log.
    /// </summary>
    public static void Answered(ILoggerFactory loggers) => (loggers as Factory)?.Outage.Answered(Source);

    private static bool IsQuartz(string category) =>
        category == Category || category.StartsWith(Category + ".", StringComparison.Ordinal);

    /// <remarks>
    /// Not disposable on its own account: the decorated factory is the container's, which disposes it. The outage log is
    /// one of its own (the container's needs a logger, so it cannot be handed in without a cycle); the throttle is per
    /// source either way.
    /// </remarks>
    private sealed class Factory(ILoggerFactory inner, TimeProvider time) : ILoggerFactory
    {
        public DatabaseOutageLog Outage { get; } = new(inner.CreateLogger<DatabaseOutageLog>(), time);

        public ILogger CreateLogger(string categoryName)
        {
            var logger = inner.CreateLogger(categoryName);
            return IsQuartz(categoryName) ? new QuartzLogger(logger, Outage) : logger;
        }

        public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

        public void Dispose()
        {
        }
    }

    private sealed class QuartzLogger(ILogger inner, DatabaseOutageLog outage) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            // A lock wait past the command timeout is told as what it is (JobStoreLockHandler), not as Npgsql's "Exception
            // while reading from stream".
            if (logLevel >= LogLevel.Warning && exception is not null && inner.IsEnabled(logLevel)
                && outage.Handled(Source, exception, InputExceptionHandler.InChain<LockException>(exception, _ => true)?.Message))
            {
                logLevel = LogLevel.Debug;
            }

            inner.Log(logLevel, eventId, state, exception, formatter);
        }
    }
}
