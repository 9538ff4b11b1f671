using RolloutGate;
using Microsoft.Extensions.Options;
using RolloutGate.Cli;
using RolloutGate.Infrastructure;
using RolloutGate.Watch;

if (CommandLine.IsCommand(args))
{
    return await CommandLine.RunAsync(args, Console.Out, Console.Error);
}

try
{
    var builder = WebApplication.CreateBuilder(args);
    builder.AddRolloutGate();
    var app = builder.Build();
    // Checked here, before the host starts, so that a missing or broken one is the one line below, not a stack trace.
    _ = RolloutGate.Infrastructure.Database.DatabaseExtensions.ReadConnectionString(app.Configuration);
    app.MapRolloutGate();
    var watchScheduler = app.Services.GetRequiredService<WatchSweepScheduler>();
    // Read (and so validated) before the host starts, like the connection string: a setting out of range is one line too.
    var endProcessOnStop = app.Services.GetRequiredService<IOptions<RolloutGateOptions>>().Value.EndProcessOnStop;
    _ = app.Services.GetRequiredService<IOptions<WatchOptions>>().Value;
    await app.RunAsync();
    if (watchScheduler.LeftRunning && endProcessOnStop)
    {
        // The host has stopped and is disposed, but Quartz's worker threads are foreground threads: with its shutdown
        // cut short (the database gone) they would keep the process alive for as long as they retry.
        Environment.Exit(0);
    }

    return 0;
}
catch (StartupException ex)
{
    await Console.Error.WriteLineAsync($"RolloutGate cannot start: {ex.Message}");
    return 1;
}
catch (OptionsValidationException ex)
{
    await Console.Error.WriteLineAsync($"RolloutGate cannot start: {string.Join("; ", ex.Failures)}");
    return 1;
}
catch (InvalidOperationException ex) when (ex.Source == "Microsoft.Extensions.Configuration.Binder")
{
    // "Failed to convert configuration value '...' at 'RolloutGate:...' to type '...'.": which setting, and what it must be.
    await Console.Error.WriteLineAsync($"RolloutGate cannot start: {ex.Message}");
    return 1;
}

/// <summary>Lets WebApplicationFactory host the service in tests.</summary>
public partial class Program;
