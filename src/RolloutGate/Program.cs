using RolloutGate;
using RolloutGate.Cli;

if (CommandLine.IsCommand(args))
{
    return await CommandLine.RunAsync(args, Console.Out, Console.Error);
}

try
{
    var builder = WebApplication.CreateBuilder(args);
    builder.AddRolloutGate();
    var app = builder.Build();
    app.MapRolloutGate();
    await app.RunAsync();
    // The host has stopped and is disposed. Quartz's worker threads are foreground threads: when its shutdown was cut
    // short (WatchSweepScheduler, the database gone) they would keep the process alive for as long as they retry.
    Environment.Exit(0);
    return 0;
}
catch (StartupException ex)
{
    await Console.Error.WriteLineAsync($"RolloutGate cannot start: {ex.Message}");
    return 1;
}

/// <summary>Lets WebApplicationFactory host the service in tests.</summary>
public partial class Program;
