using Microsoft.Extensions.Options;

namespace RolloutGate.Infrastructure.Database;

/// <summary>Migrates the schema before anything else starts, so the service never runs against an old schema.</summary>
public sealed class MigrationHostedService(MigrationRunner runner, IOptions<RolloutGateOptions> options) : IHostedService
{
    public static string DefaultMigrationsPath => Path.Combine(AppContext.BaseDirectory, "migrations");

    public Task StartAsync(CancellationToken cancellationToken) =>
        runner.ApplyAsync(options.Value.MigrationsPath ?? DefaultMigrationsPath, cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
