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
    var builder = CreateBuilder(args);
    builder.AddRolloutGate();
    var app = builder.Build();
    // Checked here, before the host starts, so that a missing or broken one is the one line below, not a stack trace.
    _ = RolloutGate.Infrastructure.Database.DatabaseExtensions.ReadConnectionString(app.Configuration);
    app.MapRolloutGate();
    var watchScheduler = app.Services.GetRequiredService<WatchSweepScheduler>();
    // Read (and so validated) before the host starts, like the connection string: a setting out of range is one line too.
    var endProcessOnStop = app.Services.GetRequiredService<IOptions<RolloutGateOptions>>().Value.EndProcessOnStop;
    _ = app.Services.GetRequiredService<IOptions<WatchOptions>>().Value;
    await using (app)
    {
        try
        {
            await app.StartAsync();
        }
        catch (Exception ex) when (CannotListen(ex))
        {
            // The web server starts last: every other service has started, and the host does not stop them. Stopped here
            // before the error is reported: the watch scheduler's foreground threads kept the process alive, and the
            // background loops ran on into the host's disposal.
            await app.StopAsync(CancellationToken.None);
            throw;
        }

        await app.WaitForShutdownAsync();
    }

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
catch (IOException ex) when (CannotListen(ex))
{
    // Kestrel's "Failed to bind to address http://127.0.0.1:8080: address already in use.": the address, and what to do.
    await Console.Error.WriteLineAsync(
        $"RolloutGate cannot start: cannot listen on {BoundAddress(ex.Message)}: the address is already in use (another process listens there: "
        + "stop it, or give RolloutGate another address with --urls or ASPNETCORE_URLS)");
    return 1;
}
catch (System.Net.Sockets.SocketException ex)
{
    // Kestrel lets the others out as they are: a port below 1024 without the right to it, an address of another machine.
    await Console.Error.WriteLineAsync($"RolloutGate cannot start: cannot listen on the configured address (--urls or ASPNETCORE_URLS): {ex.Message}");
    return 1;
}
catch (InvalidOperationException ex) when (ex.Source == "Microsoft.Extensions.Configuration.Binder")
{
    // "Failed to convert configuration value '...' at 'RolloutGate:...' to type '...'.": which setting, and what it must be.
    await Console.Error.WriteLineAsync($"RolloutGate cannot start: {ex.Message}");
    return 1;
}

/// <summary>
/// The host's builder; a content root (--contentRoot, ASPNETCORE_CONTENTROOT) that is no folder is one line, not the
/// host's DirectoryNotFoundException out of Main. A relative one is read from the program's folder, not the shell's.
/// </summary>
static WebApplicationBuilder CreateBuilder(string[] args)
{
    try
    {
        return WebApplication.CreateBuilder(args);
    }
    catch (DirectoryNotFoundException ex)
    {
        throw new StartupException(
            $"the content root {ex.Message} is not a folder (--contentRoot or ASPNETCORE_CONTENTROOT; a relative one is read from the program's folder, {AppContext.BaseDirectory})", ex);
    }
}

/// <summary>
/// Whether the web server could not listen where it was told to: Kestrel's IOException for an address in use, or the
/// SocketException it lets out as it is (a port below 1024 without the right to it, an address of another machine).
/// </summary>
static bool CannotListen(Exception exception) =>
    exception is IOException { InnerException: Microsoft.AspNetCore.Connections.AddressInUseException } or System.Net.Sockets.SocketException;

/// <summary>The address in Kestrel's "Failed to bind to address {address}: address already in use."; the message itself if it is worded otherwise.</summary>
static string BoundAddress(string message) =>
    System.Text.RegularExpressions.Regex.Match(message, @"^Failed to bind to address (?<address>\S+?): ") is { Success: true } match
        ? match.Groups["address"].Value
        : message;

/// <summary>Lets WebApplicationFactory host the service in tests.</summary>
public partial class Program;
