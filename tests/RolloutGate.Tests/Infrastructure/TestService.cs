using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Audit;
using RolloutGate.Core.Deployments;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure.Database;
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

    public static async Task<TestService> StartAsync(
        (string File, string Yaml)[] runbooks, IDictionary<string, string?>? settings, Action<IServiceCollection>? services = null)
    {
        var database = await TestDatabase.CreateAsync();
        var folder = new TestRunbooks(runbooks);
        var all = new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>())
        {
            ["RolloutGate:RunbooksPath"] = folder.Folder,
        };
        var host = new RolloutGateHost(database, all, services: services);
        return new TestService(database, folder, host);
    }

    public HttpClient Reader() => Host.CreateClient().WithToken(RolloutGateHost.ReaderToken);

    public HttpClient Operator() => Host.CreateClient().WithToken(RolloutGateHost.OperatorToken);

    /// <summary>Re-reads the runbooks folder now instead of waiting for the next poll.</summary>
    public Task ReloadRunbooksAsync() => Host.Services.GetRequiredService<RunbookLoader>().ScanAsync(CancellationToken.None);

    /// <summary>
    /// As after an upgrade to a RolloutGate that refuses what an older one accepted: checkout's version 1, which the changes
    /// so far recorded, no longer parses (<see cref="RolloutGate.Runbooks.StoredRunbookUnreadableException"/>), and the
    /// file moves on to version 2, which governs the changes from now on.
    /// </summary>
    public async Task RetireCheckoutV1Async()
    {
        await Database.ExecuteAsync(
            "UPDATE runbook_versions SET content = content || chr(10) || 'retired: true' || chr(10) WHERE name = 'checkout' AND version = 1");
        Runbooks.Write("checkout.yaml", TestRunbooks.Minimal(version: 2));
        await ReloadRunbooksAsync();
    }

    /// <summary>
    /// What the watch writes when metrics regress: a verdict change per metric and the move to regressed, in one
    /// transaction through the service's own audit trail (so the chain stays valid).
    /// </summary>
    public Task RegressAsync(string deploymentId, params string[] metrics) => RegressAsync(deploymentId, metrics, shown: null);

    /// <summary>As <see cref="RegressAsync(string, string[])"/>, the evidence also in the metric's unit (<paramref name="shown"/>), as the watch records it.</summary>
    public async Task RegressAsync(string deploymentId, string[] metrics, string? shown)
    {
        await using var scope = Host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
        await using var transaction = await db.Database.BeginTransactionAsync();
        var deployment = await db.Deployments.SingleAsync(d => d.Id == deploymentId);
        var entries = metrics.Select(metric => new AuditEntry(AuditEventTypes.Evaluation, deploymentId, deployment.Service, "rolloutgate", new
        {
            metric, from = "healthy", verdict = "regressed", value = 0.9, baseline = 0.6, threshold = 0.72, explanation = "p95 rose 50%", shown,
        })).ToList();
        entries.Add(WebhookProcessor.ChangeState(deployment, DeploymentTrigger.Regressed, "rolloutgate", DateTimeOffset.UtcNow));
        await db.SaveChangesAsync();
        await scope.ServiceProvider.GetRequiredService<AuditTrail>().AppendAsync(db, entries, CancellationToken.None);
        await transaction.CommitAsync();
    }

    /// <summary>An operator's stop, rollback or dismiss over HTTP; fails the test unless it is accepted.</summary>
    public async Task DecideAsync(string deploymentId, string kind, string actor, string reason = "test")
    {
        using var client = Operator();
        var body = new StringContent(System.Text.Json.JsonSerializer.Serialize(new { actor, reason }), System.Text.Encoding.UTF8, "application/json");
        var response = await client.PostAsync(new Uri($"/api/v1/deployments/{deploymentId}/{kind}", UriKind.Relative), body);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
    }

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
