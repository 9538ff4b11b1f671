using System.Diagnostics;

namespace RolloutGate.Tests.Operations;

/// <summary>The service started as an operator starts it, as a process, with a database it cannot use.</summary>
public sealed class StartupTests
{
    [Fact]
    public async Task DatabaseUnreachable_ExitsWithOneLineSayingWhereAndNoSecret()
    {
        const string password = "not-to-be-printed-7f3a";
        var start = new ProcessStartInfo("dotnet", ["RolloutGate.dll", "--urls", "http://127.0.0.1:0"])
        {
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // Port 1 on the loopback: nothing listens there, the connection is refused at once.
        start.Environment["ConnectionStrings__RolloutGate"] = $"Host=127.0.0.1;Port=1;Database=rolloutgate;Username=rolloutgate;Password={password}";
        start.Environment["RolloutGate__Prometheus__Url"] = "http://127.0.0.1:9";

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, process.ExitCode);
        var error = await stderr;
        Assert.Contains("RolloutGate cannot start: cannot connect to PostgreSQL at 127.0.0.1:1 (database 'rolloutgate', user 'rolloutgate')", error, StringComparison.Ordinal);
        Assert.DoesNotContain(password, error + await stdout, StringComparison.Ordinal);
    }
}
