using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Reports;

public sealed class SummaryReportTests
{
    [Fact]
    public async Task Summary_SeededHistory_MatchesFiguresComputedByHand()
    {
        await using var service = await TestService.StartAsync(
            ("checkout.yaml", TestRunbooks.Minimal("checkout")), ("cart.yaml", TestRunbooks.Minimal("cart")));
        var now = DateTimeOffset.UtcNow;

        // checkout d1: deployed 600 s ago, regressed now, rolled back on a person's decision, then by the pipeline.
        await DeployAsync(service, "d1", "checkout", now.AddSeconds(-600));
        await service.RegressAsync("d1");
        await service.DecideAsync("d1", "rollback", "bob");
        await service.Webhooks.SendEventAsync("rolledback", "d1");
        // checkout d2: deployed 300 s ago, regressed, kept.
        await DeployAsync(service, "d2", "checkout", now.AddSeconds(-300));
        await service.RegressAsync("d2");
        await service.DecideAsync("d2", "dismiss", "carol");
        // checkout d3: stopped while healthy. cart c1: still watching.
        await DeployAsync(service, "d3", "checkout", now.AddSeconds(-60));
        await service.DecideAsync("d3", "stop", "dave");
        await DeployAsync(service, "c1", "cart", now.AddSeconds(-60));
        // Not deployed: predeploy only, so it is not counted.
        await service.Webhooks.SendEventAsync("predeploy", "c2", service: "cart");

        using var reader = service.Reader();
        var report = await reader.GetJsonAsync("/api/v1/reports/summary");
        var services = report.GetProperty("services").EnumerateArray().ToDictionary(s => s.GetProperty("service").GetString()!);

        var checkout = services["checkout"];
        Assert.Equal(3, checkout.GetProperty("deployments").GetInt32());
        Assert.Equal(1, checkout.GetProperty("rollbacks").GetInt32());
        Assert.Equal(0.6667, checkout.GetProperty("changeFailureRate").GetDouble());
        Assert.InRange(checkout.GetProperty("medianTimeToDetectSeconds").GetDouble(), 450, 470); // median of ~600 and ~300
        Assert.InRange(checkout.GetProperty("medianTimeToRollbackSeconds").GetDouble(), 0, 20);
        Assert.Equal(0, checkout.GetProperty("autoRollbacks").GetInt32());
        Assert.Equal(3, checkout.GetProperty("humanDecisions").GetInt32());
        Assert.Equal(1, checkout.GetProperty("dismissedRecommendations").GetInt32());

        var cart = services["cart"];
        Assert.Equal(1, cart.GetProperty("deployments").GetInt32());
        Assert.Equal(0, cart.GetProperty("changeFailureRate").GetDouble());
        Assert.Equal(JsonValueKind.Null, cart.GetProperty("medianTimeToDetectSeconds").ValueKind);

        var onlyCart = await reader.GetJsonAsync("/api/v1/reports/summary?service=cart");
        Assert.Single(onlyCart.GetProperty("services").EnumerateArray());
        var future = now.AddDays(1).ToString("O", CultureInfo.InvariantCulture);
        var empty = await reader.GetJsonAsync($"/api/v1/reports/summary?from={Uri.EscapeDataString(future)}");
        Assert.Empty(empty.GetProperty("services").EnumerateArray());

        reader.DefaultRequestHeaders.Accept.ParseAdd("text/csv");
        var csv = (await reader.GetStringAsync(new Uri("/api/v1/reports/summary", UriKind.Relative))).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("service,deployments,rollbacks,changeFailureRate,medianTimeToDetectSeconds,medianTimeToRollbackSeconds,autoRollbacks,humanDecisions,dismissedRecommendations", csv[0]);
        Assert.StartsWith("cart,1,0,0,,,0,0,0", csv[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Summary_PipelineRollbackAndWindow_CountEachPartOnlyForDeploymentsInTheWindow()
    {
        await using var service = await TestService.StartAsync();
        var now = DateTimeOffset.UtcNow;

        // e1: deployed 1500 s ago, regressed now, kept by carol. Outside the window below.
        await DeployAsync(service, "e1", "checkout", now.AddSeconds(-1500));
        await service.RegressAsync("e1");
        await service.DecideAsync("e1", "dismiss", "carol");
        // e2: deployed 1200 s ago, rolled back by the pipeline while healthy: a failure timed from the deploy, not detected.
        await DeployAsync(service, "e2", "checkout", now.AddSeconds(-1200));
        Assert.Equal(System.Net.HttpStatusCode.OK, (await service.Webhooks.SendEventAsync("rolledback", "e2")).StatusCode);
        // e3: deployed 300 s ago, stopped by dave.
        await DeployAsync(service, "e3", "checkout", now.AddSeconds(-300));
        await service.DecideAsync("e3", "stop", "dave");

        using var reader = service.Reader();
        var all = await SummaryOfAsync(reader, "/api/v1/reports/summary");
        Assert.Equal(3, all.GetProperty("deployments").GetInt32());
        Assert.Equal(1, all.GetProperty("rollbacks").GetInt32());
        Assert.Equal(0.6667, all.GetProperty("changeFailureRate").GetDouble());
        Assert.InRange(all.GetProperty("medianTimeToDetectSeconds").GetDouble(), 1490, 1530);
        Assert.InRange(all.GetProperty("medianTimeToRollbackSeconds").GetDouble(), 1190, 1230);
        Assert.Equal(0, all.GetProperty("autoRollbacks").GetInt32());
        Assert.Equal(2, all.GetProperty("humanDecisions").GetInt32());
        Assert.Equal(1, all.GetProperty("dismissedRecommendations").GetInt32());

        var from = Uri.EscapeDataString(now.AddSeconds(-1350).ToString("O", CultureInfo.InvariantCulture));
        var window = await SummaryOfAsync(reader, $"/api/v1/reports/summary?from={from}");
        Assert.Equal(2, window.GetProperty("deployments").GetInt32());
        Assert.Equal(1, window.GetProperty("rollbacks").GetInt32());
        Assert.Equal(0.5, window.GetProperty("changeFailureRate").GetDouble());
        Assert.Equal(JsonValueKind.Null, window.GetProperty("medianTimeToDetectSeconds").ValueKind);
        Assert.InRange(window.GetProperty("medianTimeToRollbackSeconds").GetDouble(), 1190, 1230);
        Assert.Equal(1, window.GetProperty("humanDecisions").GetInt32());
        Assert.Equal(0, window.GetProperty("dismissedRecommendations").GetInt32());

        // The same window written with another offset is the same instant (Npgsql writes only UTC times: it was a 500).
        var elsewhere = now.AddSeconds(-1350).ToOffset(TimeSpan.FromHours(5.5)).ToString("O", CultureInfo.InvariantCulture);
        var to = Uri.EscapeDataString(now.AddDays(1).ToOffset(TimeSpan.FromHours(-3)).ToString("O", CultureInfo.InvariantCulture));
        var shifted = await SummaryOfAsync(reader, $"/api/v1/reports/summary?from={Uri.EscapeDataString(elsewhere)}&to={to}");
        Assert.Equal(2, shifted.GetProperty("deployments").GetInt32());
        Assert.Equal(1, shifted.GetProperty("rollbacks").GetInt32());
    }

    /// <summary>
    /// The summary counts a rollback decided by <c>rolloutgate</c> as automatic and any other decision as a person's, as the
    /// audit trail reads: a person deciding over HTTP or in the inbox under that name is refused, or their rollback would be
    /// counted (and read in the trail) as RolloutGate's own.
    /// </summary>
    [Theory]
    [InlineData("rolloutgate")]
    [InlineData("RolloutGate")]
    public async Task Decision_ByAPersonUnderRolloutGatesOwnName_Refused400_NotCountedAsAnAutomaticRollback(string actor)
    {
        await using var service = await TestService.StartAsync();
        await DeployAsync(service, "f1", "checkout", DateTimeOffset.UtcNow.AddSeconds(-60));
        await service.RegressAsync("f1");
        using var @operator = service.Operator();

        var rollback = await @operator.PostAsJsonAsync("/api/v1/deployments/f1/rollback", new { actor, reason = "looks bad" });

        Assert.Equal(System.Net.HttpStatusCode.BadRequest, rollback.StatusCode);
        Assert.Equal(
            $"actor '{actor}' is the name RolloutGate decides under (automatic rollbacks, approval time-outs); give the name of the person deciding",
            (await rollback.JsonAsync()).GetProperty("detail").GetString());
        Assert.Equal("regressed", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'f1'"));
        Assert.Equal(0, await service.CountAsync("decisions"));
        using var reader = service.Reader();
        var summary = await SummaryOfAsync(reader, "/api/v1/reports/summary");
        Assert.Equal(0, summary.GetProperty("autoRollbacks").GetInt32());
        Assert.Equal(0, summary.GetProperty("humanDecisions").GetInt32());
    }

    [Fact]
    public async Task Summary_WithoutReaderToken_Is401()
    {
        await using var service = await TestService.StartAsync();

        var response = await service.Client.GetAsync(new Uri("/api/v1/reports/summary", UriKind.Relative));

        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, response.StatusCode);
    }

    /// <summary>The one service (checkout) of a summary.</summary>
    private static async Task<JsonElement> SummaryOfAsync(HttpClient reader, string path)
    {
        var report = await reader.GetJsonAsync(path);
        return Assert.Single(report.GetProperty("services").EnumerateArray());
    }

    private static async Task DeployAsync(TestService service, string id, string serviceName, DateTimeOffset at)
    {
        var response = await service.Webhooks.SendAsync(WebhookClient.Body("deployed", id, serviceName, at: at.ToString("O", CultureInfo.InvariantCulture)));
        Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
    }
}
