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
    public async Task OpenApi_Document_IsServed()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using var host = new RolloutGateHost(database);
        using var client = host.CreateClient();

        var response = await client.GetAsync(new Uri("/openapi/v1.json", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"openapi\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
