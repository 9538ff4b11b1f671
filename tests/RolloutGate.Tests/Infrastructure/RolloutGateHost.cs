using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace RolloutGate.Tests.Infrastructure;

/// <summary>
/// The real service, in process, against a test database. Settings are the same keys as the environment
/// variables of CONTRACT section 2 (':' for '__'); a test may replace the clock, and change or add services after the
/// service has registered its own.
/// </summary>
public sealed class RolloutGateHost(
    TestDatabase database, IDictionary<string, string?>? settings = null, TimeProvider? time = null, Action<IServiceCollection>? services = null)
    : WebApplicationFactory<Program>
{
    /// <summary>Every log line of this host, at every level.</summary>
    public LogCapture Logs { get; } = new();

    public const string WebhookSecret = "test-webhook-secret";
    public const string WebhookToken = "test-webhook-token";
    public const string ReaderToken = "test-reader-token";
    public const string OperatorToken = "test-operator-token";

    public TestDatabase Database => database;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        builder.ConfigureAppConfiguration(configuration =>
        {
            var values = new Dictionary<string, string?>
            {
                ["ConnectionStrings:RolloutGate"] = database.ConnectionString,
                ["RolloutGate:Webhook:Secret"] = WebhookSecret,
                ["RolloutGate:Webhook:Tokens:0"] = WebhookToken,
                ["RolloutGate:Api:ReaderTokens:0"] = ReaderToken,
                ["RolloutGate:Api:OperatorTokens:0"] = OperatorToken,
                ["RolloutGate:RunbooksPath"] = TestPaths.RepositoryFile("runbooks"),
                // Main runs inside the test process: a cut scheduler stop must not end it (see RolloutGateOptions).
                ["RolloutGate:EndProcessOnStop"] = "false",
            };
            foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
            {
                values[key] = value;
            }

            configuration.AddInMemoryCollection(values);
        });
        builder.ConfigureLogging(logging => logging.SetMinimumLevel(Microsoft.Extensions.Logging.LogLevel.Trace).AddProvider(Logs));
        if (time is not null)
        {
            builder.ConfigureServices(registered => registered.AddSingleton(time));
        }

        if (services is not null)
        {
            builder.ConfigureServices(services);
        }
    }
}

public static class TestPaths
{
    /// <summary>A path inside the repository, found by walking up from the test binaries to RolloutGate.sln.</summary>
    public static string RepositoryFile(string relative)
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "RolloutGate.sln")))
        {
            directory = directory.Parent;
        }

        return directory is null
            ? throw new InvalidOperationException("RolloutGate.sln not found above " + AppContext.BaseDirectory)
            : Path.Combine(directory.FullName, relative);
    }
}
