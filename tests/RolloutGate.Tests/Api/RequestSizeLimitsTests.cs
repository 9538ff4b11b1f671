using System.Net;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Api;

/// <summary>
/// A request line or headers past the limits, against the service as its own process: Kestrel's limits hold there (an
/// in-process test host has none), and Kestrel answers its own with a bodiless 414 or 431.
/// </summary>
public sealed class RequestSizeLimitsTests
{
    [Fact]
    public async Task PastTheLimits_414And431AsProblems_PastKestrelsOwnTheBodilessAnswersAsDocumented()
    {
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("checkout.yaml", TestRunbooks.Minimal()));
        await using var service = await ServiceProcess.StartAsync(database, runbooks.Folder);
        using var client = service.Client(RolloutGateHost.ReaderToken);

        var longUrl = await client.GetAsync(new Uri($"/api/v1/audit/events?deploymentId={new string('x', 9_000)}", UriKind.Relative));
        var largeHeader = await SendAsync(client, request => request.Headers.Add("X-Large", new string('y', 40_000)));
        var manyHeaders = await SendAsync(client, request =>
        {
            for (var i = 0; i < 120; i++)
            {
                request.Headers.Add($"X-Header-{i}", "v");
            }
        });
        var withinLimits = await SendAsync(client, request => request.Headers.Add("X-Large", new string('y', 20_000)));

        await AssertProblemAsync(longUrl, HttpStatusCode.RequestUriTooLong, "the request line (method, URL and protocol) is 9049 bytes long; at most 8192 are accepted");
        await AssertProblemAsync(largeHeader, HttpStatusCode.RequestHeaderFieldsTooLarge, "at most 100 lines and 32768 bytes are accepted");
        await AssertProblemAsync(manyHeaders, HttpStatusCode.RequestHeaderFieldsTooLarge, "the request has 12");
        Assert.Equal(HttpStatusCode.OK, withinLimits.StatusCode);

        // Past Kestrel's own limits (twice these), Kestrel answers before the application sees the request.
        using var fresh = service.Client(RolloutGateHost.ReaderToken);
        var beyondUrl = await fresh.GetAsync(new Uri($"/api/v1/audit/events?deploymentId={new string('x', 17_000)}", UriKind.Relative));
        using var another = service.Client(RolloutGateHost.ReaderToken);
        var beyondHeader = await SendAsync(another, request => request.Headers.Add("X-Large", new string('y', 70_000)));
        Assert.Equal(HttpStatusCode.RequestUriTooLong, beyondUrl.StatusCode);
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, beyondHeader.StatusCode);
        Assert.Empty(await beyondUrl.Content.ReadAsByteArrayAsync());
        Assert.Empty(await beyondHeader.Content.ReadAsByteArrayAsync());
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpClient client, Action<HttpRequestMessage> configure)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/api/v1/deployments", UriKind.Relative));
        configure(request);
        return await client.SendAsync(request);
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string detail)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(detail, (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }
}
