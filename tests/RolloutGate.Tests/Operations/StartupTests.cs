using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Operations;

/// <summary>The service started as an operator starts it, as a process, with a database it cannot use.</summary>
public sealed class StartupTests
{
    [Fact]
    public async Task DatabaseUnreachable_ExitsWithOneLineSayingWhereAndNoSecret()
    {
        const string password = "not-to-be-printed-7f3a";
        // Port 1 on the loopback: nothing listens there, the connection is refused at once.
        var (stdout, stderr) = await FailedStartAsync(environment => environment["ConnectionStrings__RolloutGate"] =
            $"Host=127.0.0.1;Port=1;Database=rolloutgate;Username=rolloutgate;Password={password}");

        Assert.Contains("RolloutGate cannot start: cannot connect to PostgreSQL at 127.0.0.1:1 (database 'rolloutgate', user 'rolloutgate')", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.DoesNotContain(password, stderr + stdout, StringComparison.Ordinal);
        // The one line is all: the host's "Hosting failed to start" wrote the same exception on stdout, some 70 lines of
        // stack trace a newcomer had to read past.
        AssertNoErrorLogged(stdout);
    }

    [Fact]
    public async Task DatabaseUnreachable_HostLogAskedFor_TheStackTraceIsShown()
    {
        var (stdout, _) = await FailedStartAsync(environment =>
        {
            environment["ConnectionStrings__RolloutGate"] = "Host=127.0.0.1;Port=1;Database=rolloutgate;Username=rolloutgate";
            environment["Logging__LogLevel__Microsoft.Extensions.Hosting.Internal.Host"] = "Error";
        });

        Assert.Contains("fail: Microsoft.Extensions.Hosting.Internal.Host[11]", stdout, StringComparison.Ordinal);
        Assert.Contains("RolloutGate.StartupException: cannot connect to PostgreSQL", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, "RolloutGate cannot start: no database configured: set ConnectionStrings__RolloutGate")]
    [InlineData("Host=;;=x", "RolloutGate cannot start: ConnectionStrings__RolloutGate is not a valid PostgreSQL connection string")]
    public async Task NoOrBrokenConnectionString_ExitsWithOneLineAndNoStackTrace(string? connectionString, string line)
    {
        var (stdout, stderr) = await FailedStartAsync(environment =>
        {
            environment.Remove("ConnectionStrings__RolloutGate");
            if (connectionString is not null)
            {
                environment["ConnectionStrings__RolloutGate"] = connectionString;
            }
        });

        var output = (stdout + stderr).Trim();
        Assert.StartsWith(line, output, StringComparison.Ordinal);
        Assert.Single(output.Split('\n'));
    }

    [Theory]
    [InlineData("Host=db;Username=rolloutgate;Password=ab;cd-secret=ef",
        "ConnectionStrings__RolloutGate is not a valid PostgreSQL connection string: it holds a key Npgsql does not know")]
    [InlineData("Host=db;Port=cd-secret", "ConnectionStrings__RolloutGate is not a valid PostgreSQL connection string: Couldn't set port")]
    public void BrokenConnectionString_SaysWhyWithoutRepeatingAnyOfIt(string connectionString, string start)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["ConnectionStrings:RolloutGate"] = connectionString })
            .Build();

        var error = Assert.Throws<StartupException>(() => DatabaseExtensions.ReadConnectionString(configuration));

        Assert.StartsWith(start, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("cd-secret", error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("RolloutGate__Watch__EvaluationRetentionDays", "-1",
        "RolloutGate cannot start: RolloutGate:Watch:EvaluationRetentionDays must be 0 (keep every evaluation) or a number of days up to 36500")]
    [InlineData("RolloutGate__Watch__EvaluationRetentionDays", "1000000",
        "RolloutGate cannot start: RolloutGate:Watch:EvaluationRetentionDays must be 0 (keep every evaluation) or a number of days up to 36500")]
    [InlineData("RolloutGate__Watch__BatchSize", "0", "RolloutGate cannot start: RolloutGate:Watch:BatchSize must be at least 1")]
    [InlineData("RolloutGate__Watch__StoreBatchSize", "0", "RolloutGate cannot start: RolloutGate:Watch:StoreBatchSize must be at least 1")]
    [InlineData("RolloutGate__Watch__SweepInterval", "00:00:00", "RolloutGate cannot start: RolloutGate:Watch:SweepInterval must be positive")]
    [InlineData("RolloutGate__Watch__IdleWaitTime", "00:00:00", "RolloutGate cannot start: RolloutGate:Watch:IdleWaitTime must be at least 00:00:01")]
    [InlineData("RolloutGate__Prometheus__Url", "prometheus.monitoring:9090",
        "RolloutGate cannot start: RolloutGate:Prometheus:Url must be an absolute http or https URL")]
    [InlineData("RolloutGate__Alertmanager__Url", "alertmanager", "RolloutGate cannot start: RolloutGate:Alertmanager:Url must be an absolute http or https URL")]
    [InlineData("RolloutGate__Slack__ApiBaseUrl", "slack.com/api", "RolloutGate cannot start: RolloutGate:Slack:ApiBaseUrl must be an absolute http or https URL")]
    [InlineData("RolloutGate__Kubernetes__ApiServer", "kubernetes.default.svc",
        "RolloutGate cannot start: RolloutGate:Kubernetes:ApiServer must be an absolute http or https URL")]
    [InlineData("RolloutGate__Slack__ApiBaseUrl", "https://someone:url-secret@slack.example/api",
        "RolloutGate cannot start: RolloutGate:Slack:ApiBaseUrl must not carry a user name or password: Slack is called with the bot token (RolloutGate:Slack:BotToken)")]
    [InlineData("RolloutGate__Kubernetes__ApiServer", "https://someone:url-secret@10.96.0.1:6443",
        "RolloutGate cannot start: RolloutGate:Kubernetes:ApiServer must not carry a user name or password: the API server is called with the service-account token of RolloutGate:Kubernetes:TokenFile (Kubernetes dropped basic authentication in 1.19)")]
    [InlineData("RolloutGate__Webhook__TimestampTolerance", "-00:05:00", "RolloutGate cannot start: RolloutGate:Webhook:TimestampTolerance must be positive")]
    [InlineData("RolloutGate__Watch__EvaluationRetentionDays", "ninety",
        "RolloutGate cannot start: Failed to convert configuration value 'ninety' at 'RolloutGate:Watch:EvaluationRetentionDays' to type 'System.Int32'.")]
    [InlineData("RolloutGate__Watch__SourceOutageGrace", "-00:01:00",
        "RolloutGate cannot start: RolloutGate:Watch:SourceOutageGrace must not be negative")]
    [InlineData("RolloutGate__PublicUrl", "not a url", "RolloutGate cannot start: RolloutGate:PublicUrl must be an absolute http or https URL")]
    [InlineData("RolloutGate__PublicUrl", "ftp://rolloutgate.example.com", "RolloutGate cannot start: RolloutGate:PublicUrl must be an absolute http or https URL")]
    [InlineData("RolloutGate__RunbooksPath", " ", "RolloutGate cannot start: RolloutGate:RunbooksPath must name the folder of runbooks")]
    [InlineData("RolloutGate__Rollback__AutomaticPerHour", "-1",
        "RolloutGate cannot start: RolloutGate:Rollback:AutomaticPerHour must be 0 (no limit) or a number of rollbacks")]
    [InlineData("RolloutGate__Prometheus__MaxAnswerBytes", "0",
        "RolloutGate cannot start: RolloutGate:Prometheus:MaxAnswerBytes must be a positive number of bytes")]
    [InlineData("RolloutGate__Alertmanager__Password", "secret-without-a-user",
        "RolloutGate cannot start: RolloutGate:Alertmanager:Password is set without RolloutGate:Alertmanager:Username")]
    [InlineData("RolloutGate__Prometheus__Headers__X-Scope-OrgID", "team\u0001a",
        "RolloutGate cannot start: RolloutGate:Prometheus:Headers:X-Scope-OrgID: the value must not contain control characters")]
    public async Task ASettingOutOfRangeOrUnreadable_ExitsWithOneLineNamingIt(string key, string value, string line)
    {
        var (stdout, stderr) = await FailedStartAsync(environment =>
        {
            // Never reached: the setting stops it first.
            environment["ConnectionStrings__RolloutGate"] = "Host=127.0.0.1;Port=1;Database=rolloutgate;Username=rolloutgate";
            environment[key] = value;
        });

        var output = (stdout + stderr).Trim();
        Assert.StartsWith(line, output, StringComparison.Ordinal);
        Assert.Contains(key.Replace("__", ":", StringComparison.Ordinal).Split(':')[^1], output, StringComparison.Ordinal);
        Assert.Single(output.Split('\n'));
    }

    [Fact]
    public async Task AddressInUse_ExitsWithOneLineNamingTheAddress()
    {
        // Another process (a second copy, a service installed on the same port) already listens there: Kestrel's
        // IOException went out of Main as an unhandled exception, exit code 134, and the host's teardown logged a
        // cancelled background service and a disposed one besides.
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("checkout.yaml", TestRunbooks.Minimal()));
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var url = $"http://127.0.0.1:{((System.Net.IPEndPoint)taken.LocalEndpoint).Port}";

        var (stdout, stderr) = await FailedStartAsync(environment =>
        {
            environment["ConnectionStrings__RolloutGate"] = database.ConnectionString;
            environment["RolloutGate__RunbooksPath"] = runbooks.Folder;
        }, url);

        Assert.Equal(
            $"RolloutGate cannot start: cannot listen on {url}: the address is already in use (another process listens there: stop it, or give RolloutGate another address with --urls or ASPNETCORE_URLS)",
            stderr.Trim());
        Assert.DoesNotContain("Unhandled exception", stdout + stderr, StringComparison.Ordinal);
        // Nothing from services torn down while they ran, nor the host's own "Hosting failed to start" with its stack trace.
        AssertNoErrorLogged(stdout);
    }

    [Fact]
    public async Task AddressOfAnotherMachine_ExitsWithOneLineSayingWhy()
    {
        // 192.0.2.1 (TEST-NET-1, RFC 5737) is no address of this machine: the bind's SocketException went out of Main too.
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("checkout.yaml", TestRunbooks.Minimal()));

        var (stdout, stderr) = await FailedStartAsync(environment =>
        {
            environment["ConnectionStrings__RolloutGate"] = database.ConnectionString;
            environment["RolloutGate__RunbooksPath"] = runbooks.Folder;
        }, "http://192.0.2.1:8080");

        Assert.StartsWith("RolloutGate cannot start: cannot listen on the configured address (--urls or ASPNETCORE_URLS): ", stderr.Trim(), StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.DoesNotContain("Unhandled exception", stdout + stderr, StringComparison.Ordinal);
        AssertNoErrorLogged(stdout);
    }

    [Fact]
    public async Task ContentRootNotAFolder_ExitsWithOneLineNamingIt()
    {
        // run.sh starts the built program with --contentRoot; copied with a relative folder (read from the program's own
        // folder, not the shell's) or a mistyped one, the host's DirectoryNotFoundException went out of Main as an
        // unhandled exception with its stack trace, exit code 134.
        var missing = Path.Combine(Path.GetTempPath(), $"rolloutgate-no-such-folder-{Guid.NewGuid():N}");

        var (stdout, stderr) = await FailedStartAsync(environment => environment["ASPNETCORE_CONTENTROOT"] = missing);

        Assert.StartsWith($"RolloutGate cannot start: the content root {missing}", stderr.Trim(), StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.DoesNotContain("Unhandled exception", stdout + stderr, StringComparison.Ordinal);
        AssertNoErrorLogged(stdout);
    }

    [Fact]
    public async Task NoRunbooksPath_RunbooksFolderOfTheFolderItWasStartedFrom_IsLoaded()
    {
        // CONTRACT section 1 starts the service with dotnet run --project src/RolloutGate from the repository root, and
        // section 2's RunbooksPath defaults to "runbooks": the repository's runbooks/. dotnet run starts the program in
        // src/RolloutGate but passes the shell's PWD on, as the backtest command's relative paths already rely on.
        var lines = await StartedFromAsync(inThatFolder: false);

        Assert.StartsWith("Runbook checkout v1", lines[^1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task StartedFromAnotherFolder_LibrariesStillQuiet()
    {
        // appsettings.json is read from the current folder; started elsewhere (dotnet /opt/rolloutgate/RolloutGate.dll)
        // the service once logged every SQL command at Information, several a second.
        var lines = await StartedFromAsync(inThatFolder: true);

        Assert.StartsWith("Runbook checkout v1", lines[^1], StringComparison.Ordinal);
        Assert.Contains(lines, line => line.Contains("Applied migration 0001_foundation.sql", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, line => line.Contains("Executed DbCommand", StringComparison.Ordinal));
    }

    /// <summary>No line at Error or Critical, and no stack trace.</summary>
    private static void AssertNoErrorLogged(string stdout)
    {
        var lines = stdout.Split('\n').Select(line => line.Trim()).ToList();
        Assert.DoesNotContain(lines, line => line.StartsWith("fail:", StringComparison.Ordinal) || line.StartsWith("crit:", StringComparison.Ordinal)
            || line.StartsWith("at ", StringComparison.Ordinal));
    }

    /// <summary>Starts the service as a process with its environment changed by <paramref name="change"/>, and asserts it exits with 1.</summary>
    private static async Task<(string Stdout, string Stderr)> FailedStartAsync(Action<IDictionary<string, string?>> change, string urls = "http://127.0.0.1:0")
    {
        var start = new ProcessStartInfo("dotnet", ["RolloutGate.dll", "--urls", urls])
        {
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["RolloutGate__Prometheus__Url"] = "http://127.0.0.1:9";
        change(start.Environment);

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, process.ExitCode);
        return (await stdout, await stderr);
    }

    /// <summary>
    /// The service started from a shell in a new folder holding runbooks/checkout.yaml (PWD), without RunbooksPath: the
    /// process's working directory is that folder too, or, as dotnet run does it, the dll's own folder.
    /// </summary>
    private static async Task<List<string>> StartedFromAsync(bool inThatFolder)
    {
        await using var database = await TestDatabase.CreateAsync();
        var startedFrom = Directory.CreateTempSubdirectory("rolloutgate-pwd-");
        try
        {
            Directory.CreateDirectory(Path.Combine(startedFrom.FullName, "runbooks"));
            await File.WriteAllTextAsync(Path.Combine(startedFrom.FullName, "runbooks", "checkout.yaml"), TestRunbooks.Minimal());
            return await LinesUntilRunbooksLoadedAsync(inThatFolder ? startedFrom.FullName : AppContext.BaseDirectory, new()
            {
                ["PWD"] = startedFrom.FullName,
                ["ConnectionStrings__RolloutGate"] = database.ConnectionString,
                ["RolloutGate__Prometheus__Url"] = "http://127.0.0.1:9",
                ["RolloutGate__RunbooksPath"] = null,
            });
        }
        finally
        {
            startedFrom.Delete(recursive: true);
        }
    }

    /// <summary>
    /// Starts the service's dll from <paramref name="workingDirectory"/> with these variables (null: unset), and returns
    /// what it wrote to standard output up to the line saying whether the runbooks were loaded (the last line).
    /// </summary>
    private static async Task<List<string>> LinesUntilRunbooksLoadedAsync(string workingDirectory, Dictionary<string, string?> environment)
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "RolloutGate.dll"), "--urls", "http://127.0.0.1:0"])
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment)
        {
            if (value is null)
            {
                start.Environment.Remove(name);
            }
            else
            {
                start.Environment[name] = value;
            }
        }

        using var process = Process.Start(start)!;
        _ = process.StandardError.ReadToEndAsync();
        var lines = new List<string>();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                lines.Add(line.Trim());
                if (line.Contains("in force from", StringComparison.Ordinal) || line.Contains("does not exist", StringComparison.Ordinal))
                {
                    return lines;
                }
            }
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        Assert.Fail("the service ended without saying whether its runbooks were loaded:\n" + string.Join('\n', lines));
        return lines;
    }
}
