using System.Net;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Operations;

public sealed class HealthEndpointsTests
{
    [Fact]
    public async Task Readyz_DatabaseUp_AnswersReady()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var host = new RolloutGateHost(database);
        using var client = host.CreateClient();

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(new Uri("/healthz", UriKind.Relative))).StatusCode);
        var ready = await client.GetAsync(new Uri("/readyz", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal(1L, await database.ScalarAsync<long>("SELECT count(*) FROM schema_migrations WHERE file = '0001_foundation.sql'"));
    }

    [Fact]
    public async Task Readyz_RunbooksFolderMissing_NotReadySayingWhich()
    {
        await using var database = await TestDatabase.CreateAsync();
        var missing = Path.Combine(Path.GetTempPath(), $"rolloutgate-no-runbooks-{Guid.NewGuid():N}");
        await using var host = new RolloutGateHost(database, new Dictionary<string, string?> { ["RolloutGate:RunbooksPath"] = missing });
        using var client = host.CreateClient();

        var ready = await client.GetAsync(new Uri("/readyz", UriKind.Relative));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        var problem = Assert.Single((await ready.JsonAsync()).GetProperty("problems").EnumerateArray()).GetString();
        Assert.Equal($"the runbooks folder {missing} does not exist (RolloutGate__RunbooksPath); no service is governed", problem);
    }

    [Fact]
    public async Task OpenApi_Document_IsServed()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var host = new RolloutGateHost(database);
        using var client = host.CreateClient();

        var response = await client.GetAsync(new Uri("/openapi/v1.json", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var document = await response.Content.ReadAsStringAsync();
        Assert.Contains("\"openapi\"", document, StringComparison.Ordinal);
        foreach (var path in new[] { "/api/v1/deployments", "/api/v1/deployments/{id}", "/api/v1/audit/events", "/api/v1/audit/verify", "/api/v1/reports/summary" })
        {
            Assert.Contains($"\"{path}\"", document, StringComparison.Ordinal);
        }

        Assert.Contains("WebhookRequest", document, StringComparison.Ordinal);
        Assert.Contains("PreDeployResponse", document, StringComparison.Ordinal);
    }
}
