using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.Options;
using Npgsql;

namespace RolloutGate.Infrastructure.Database;

public static class DatabaseExtensions
{
    public const string ConnectionStringName = "RolloutGate";

    /// <summary>PostgreSQL through one shared data source, the EF context over it, and migrations at start-up.</summary>
    public static IServiceCollection AddRolloutGateDatabase(this IServiceCollection services)
    {
        // Resolved lazily: configuration is complete only once the host is built (tests add theirs late).
        services.AddSingleton(provider => new NpgsqlDataSourceBuilder(WithLostPeerBounds(
            ReadConnectionString(provider.GetRequiredService<IConfiguration>()),
            provider.GetRequiredService<IOptions<RolloutGateOptions>>().Value.DatabaseSessionTimeouts)).Build());
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

    /// <summary>
    /// What every session of the service asks of PostgreSQL, so that a replica lost mid-transaction (its node powered off
    /// or cut off by the network, which closes nothing) does not hold its locks for the two hours the OS's TCP keepalive
    /// takes to notice: the audit append lock alone would stop every other replica's webhooks, decisions and evaluations.
    /// A backend waiting for its client inside a transaction is ended after 60 s (its transaction rolled back, its locks
    /// released); no transaction of the service waits that long for its client (a <c>predeploy</c>'s checks, which may,
    /// run before its transaction: <see cref="RolloutGate.Deployments.PreDeployGate"/>). A silent client is
    /// found within about 2 minutes otherwise too (idle between transactions, as a migration holding its session lock,
    /// or blocked sending it a result): a keepalive probe after 60 s idle, every 10 s, 6 unanswered end it, and data
    /// unacknowledged for 120 s ends it.
    /// </summary>
    public const string LostClientOptions =
        "-c idle_in_transaction_session_timeout=60s -c tcp_keepalives_idle=60 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=6 -c tcp_user_timeout=120000";

    /// <summary>
    /// <paramref name="connectionString"/> with <see cref="LostClientOptions"/> for the server (unless
    /// <paramref name="sessionTimeouts"/> is false: <see cref="RolloutGateOptions.DatabaseSessionTimeouts"/>) and TCP keepalive
    /// on the service's side (a probe after 60 s idle, every 10 s), so a lost database server is noticed while a query
    /// waits for it too. The operator's own settings win: their <c>Options</c> (or <c>PGOPTIONS</c>) come after ours, and
    /// PostgreSQL takes the last value of a setting given twice; a connection string that names any TCP keepalive key is
    /// left as it is.
    /// </summary>
    public static string WithLostPeerBounds(string connectionString, bool sessionTimeouts = true)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (sessionTimeouts)
        {
            // Npgsql reads PGOPTIONS only when Options is not set, which it is from here on.
            var theirs = builder.Options ?? Environment.GetEnvironmentVariable("PGOPTIONS");
            builder.Options = string.IsNullOrWhiteSpace(theirs) ? LostClientOptions : $"{LostClientOptions} {theirs}";
        }

        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString }.Keys
            .Cast<string>().Select(key => key.Replace(" ", "", StringComparison.Ordinal));
        if (!given.Any(key => key.StartsWith("TcpKeepAlive", StringComparison.OrdinalIgnoreCase)))
        {
            builder.TcpKeepAlive = true;
            builder.TcpKeepAliveTime = 60;
            builder.TcpKeepAliveInterval = 10;
        }

        return builder.ConnectionString;
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
            // Npgsql names the key it could not set. One it does not know is not repeated: it is more often the rest of a
            // password with a ';' in it ("Password=ab;cd=ef" names "cd") than a misspelt key.
            var why = ex.ParamName is { } key && !new NpgsqlConnectionStringBuilder().ContainsKey(key)
                ? "it holds a key Npgsql does not know (not repeated here: it may be the rest of a password with a ';' in it, " +
                  "which needs quotes: Password='...')"
                : ex.Message;
            throw new StartupException($"ConnectionStrings__RolloutGate is not a valid PostgreSQL connection string: {why}", ex);
        }

        return connectionString;
    }

    /// <summary>
    /// Waits for, then holds to the end of the current transaction, PostgreSQL's transaction-scoped advisory lock named
    /// <paramref name="name"/> (hashed to 64 bits): transactions that take the same name take turns from here to their
    /// commit or rollback, and each statement after the wait sees what the one before committed.
    /// </summary>
    public static async Task TakeTurnAsync(this DatabaseFacade database, string name, CancellationToken cancellationToken) =>
        await database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock(hashtextextended({name}, 0))", cancellationToken);
}
