using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Runbooks;

namespace RolloutGate.Tests.Infrastructure;

/// <summary>A running service with its own database and runbooks folder: what most endpoint tests need.</summary>
public sealed class TestService : IAsyncDisposable
{
    private TestService(TestDatabase database, TestRunbooks runbooks, RolloutGateHost host)
    {
        Database = database;
        Runbooks = runbooks;
        Host = host;
        Client = host.CreateClient();
        Webhooks = new WebhookClient(Client);
    }

    public TestDatabase Database { get; }

    public TestRunbooks Runbooks { get; }

    public RolloutGateHost Host { get; }

    /// <summary>No token: webhooks authenticate per request.</summary>
    public HttpClient Client { get; }

    public WebhookClient Webhooks { get; }

    public static async Task<TestService> StartAsync(params (string File, string Yaml)[] runbooks) =>
        await StartAsync(runbooks.Length == 0 ? [("checkout.yaml", TestRunbooks.Minimal())] : runbooks, settings: null);

    public static async Task<TestService> StartAsync((string File, string Yaml)[] runbooks, IDictionary<string, string?>? settings)
    {
        var database = await TestDatabase.CreateAsync();
        var folder = new TestRunbooks(runbooks);
        var all = new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>())
        {
            ["RolloutGate:RunbooksPath"] = folder.Folder,
        };
        var host = new RolloutGateHost(database, all);
        return new TestService(database, folder, host);
    }

    public HttpClient Reader() => Host.CreateClient().WithToken(RolloutGateHost.ReaderToken);

    public HttpClient Operator() => Host.CreateClient().WithToken(RolloutGateHost.OperatorToken);

    /// <summary>Re-reads the runbooks folder now instead of waiting for the next poll.</summary>
    public Task ReloadRunbooksAsync() => Host.Services.GetRequiredService<RunbookLoader>().ScanAsync(CancellationToken.None);

    public Task<long> CountAsync(string table, string where = "true") =>
        Database.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE {where}");

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Host.DisposeAsync();
        Runbooks.Dispose();
        await Database.DisposeAsync();
    }
}
