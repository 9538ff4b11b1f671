using System.Diagnostics;
using RolloutGate.Tests.Infrastructure;

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

    [Theory]
    [InlineData(null, "RolloutGate cannot start: no database configured: set ConnectionStrings__RolloutGate")]
    [InlineData("Host=;;=x", "RolloutGate cannot start: ConnectionStrings__RolloutGate is not a valid PostgreSQL connection string")]
    public async Task NoOrBrokenConnectionString_ExitsWithOneLineAndNoStackTrace(string? connectionString, string line)
    {
        var start = new ProcessStartInfo("dotnet", ["RolloutGate.dll", "--urls", "http://127.0.0.1:0"])
        {
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment.Remove("ConnectionStrings__RolloutGate");
        if (connectionString is not null)
        {
            start.Environment["ConnectionStrings__RolloutGate"] = connectionString;
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, process.ExitCode);
        var output = await stdout + await stderr;
        Assert.StartsWith(line, output.Trim(), StringComparison.Ordinal);
        Assert.Single(output.Trim().Split('\n'));
    }

    [Fact]
    public async Task NoRunbooksPath_RunbooksFolderOfTheFolderItWasStartedFrom_IsLoaded()
    {
        // CONTRACT section 1 starts the service with dotnet run --project src/RolloutGate from the repository root, and
        // section 2's RunbooksPath defaults to "runbooks": the repository's runbooks/. dotnet run starts the program in
        // src/RolloutGate but passes the shell's PWD on, as the backtest command's relative paths already rely on.
        await using var database = await TestDatabase.CreateAsync();
        var startedFrom = Directory.CreateTempSubdirectory("rolloutgate-pwd-");
        try
        {
            Directory.CreateDirectory(Path.Combine(startedFrom.FullName, "runbooks"));
            await File.WriteAllTextAsync(Path.Combine(startedFrom.FullName, "runbooks", "checkout.yaml"), TestRunbooks.Minimal());
            var start = new ProcessStartInfo("dotnet", ["RolloutGate.dll", "--urls", "http://127.0.0.1:0"])
            {
                WorkingDirectory = AppContext.BaseDirectory,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            start.Environment["PWD"] = startedFrom.FullName;
            start.Environment["ConnectionStrings__RolloutGate"] = database.ConnectionString;
            start.Environment["RolloutGate__Prometheus__Url"] = "http://127.0.0.1:9";
            start.Environment.Remove("RolloutGate__RunbooksPath");

            using var process = Process.Start(start)!;
            _ = process.StandardError.ReadToEndAsync();
            string? verdict = null;
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                while (verdict is null && await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
                {
                    if (line.Contains("in force from", StringComparison.Ordinal) || line.Contains("does not exist", StringComparison.Ordinal))
                    {
                        verdict = line.Trim();
                    }
                }
            }
            finally
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }

            Assert.NotNull(verdict);
            Assert.StartsWith("Runbook checkout v1", verdict, StringComparison.Ordinal);
        }
        finally
        {
            startedFrom.Delete(recursive: true);
        }
    }
}
