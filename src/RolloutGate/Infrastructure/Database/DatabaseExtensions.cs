using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Npgsql;

namespace RolloutGate.Infrastructure.Database;

public static class DatabaseExtensions
{
    public const string ConnectionStringName = "RolloutGate";

    /// <summary>PostgreSQL through one shared data source, the EF context over it, and migrations at start-up.</summary>
    public static IServiceCollection AddRolloutGateDatabase(this IServiceCollection services)
    {
        // Resolved lazily: configuration is complete only once the host is built (tests add theirs late).
        services.AddSingleton(provider => new NpgsqlDataSourceBuilder(
            ReadConnectionString(provider.GetRequiredService<IConfiguration>())).Build());
        services.AddDbContext<RolloutGateDbContext>((provider, options) => options
            .UseNpgsql(provider.GetRequiredService<NpgsqlDataSource>())
            // EF Core logs each failed connection, command, query and save as an error with its stack trace, then throws the
            // same exception to the caller, which logs it or answers it (a background loop says once every 30 s that the
            // database is unavailable, a request gets a 503). Logged by EF too, a database outage was dozens of stack
            // traces a second; at Debug they are there for whoever looks for them.
            .ConfigureWarnings(warnings => warnings.Log(
                (RelationalEventId.ConnectionError, LogLevel.Debug),
                (RelationalEventId.CommandError, LogLevel.Debug),
                (CoreEventId.QueryIterationFailed, LogLevel.Debug),
                (CoreEventId.SaveChangesFailed, LogLevel.Debug))));
        services.AddSingleton<MigrationRunner>();
        services.AddHostedService<MigrationHostedService>();
        return services;
    }

    /// <summary>The connection string, or a <see cref="StartupException"/> saying what to set.</summary>
    public static string ReadConnectionString(IConfiguration configuration)
    {
        var connectionString = configuration.GetConnectionString(ConnectionStringName);
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new StartupException(
                "no database configured: set ConnectionStrings__RolloutGate (for example " +
                "\"Host=127.0.0.1;Port=5432;Database=rolloutgate;Username=rolloutgate;Password=...\")");
        }

        try
        {
            _ = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException ex)
        {
            throw new StartupException($"ConnectionStrings__RolloutGate is not a valid PostgreSQL connection string: {ex.Message}", ex);
        }

        return connectionString;
    }
}
