using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc.Testing;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;

namespace RolloutGate.Tests.Dashboard;

/// <summary>
/// The dashboard and the inbox in Debian's headless Chromium, driven over WebDriver by chromedriver (both installed by
/// deploy/local/test.sh), against the test service on a real loopback port. Screenshots go to
/// .local/test/results/screenshots, next to the test results.
/// </summary>
public sealed class DashboardBrowserTests
{
    [Fact]
    public async Task Detail_InHeadlessChromium_LoadsThroughTheTokenCookieAndDrawsOnePointPerEvaluation()
    {
        await using var service = await TestService.StartAsync();
        (await service.Webhooks.SendEventAsync("predeploy", "dash-browser")).EnsureSuccessStatusCode();
        (await service.Webhooks.SendEventAsync("deployed", "dash-browser")).EnsureSuccessStatusCode();
        await EvaluationSeed.InsertAsync(service, "dash-browser", "error-rate", [0.010, 0.011, 0.010, 0.040, 0.041, 0.040], regressedFrom: 3);
        await EvaluationSeed.InsertAsync(service, "dash-browser", "p95-latency", [0.25, 0.26, 0.24, 0.25]);
        using var client = PassThrough(service);
        await using var proxy = await new LoopbackProxy(client).StartAsync();
        await using var browser = await WebDriverSession.StartAsync();

        await browser.NavigateAsync($"{proxy.Url}/dashboard/deployments/dash-browser?token={RolloutGateHost.ReaderToken}");
        await browser.WaitForAsync("h2 small", "dash-browser");

        // The token went into a cookie and out of the address bar.
        Assert.Equal("/dashboard/deployments/dash-browser", (await browser.UrlAsync()).PathAndQuery);
        Assert.Contains(proxy.Requests, r => r.PathAndQuery == "/dashboard/deployments/dash-browser" && r.HadCookie);
        Assert.Equal(2, (await browser.FindAllAsync("svg.chart")).Count);
        await AssertChartShowsEachEvaluationAsync(browser, service, "dash-browser", "error-rate", regressed: 3);
        await AssertChartShowsEachEvaluationAsync(browser, service, "dash-browser", "p95-latency", regressed: 0);

        await SaveScreenshotAsync(browser, "dashboard-deployment.png");
    }

    [Fact]
    public async Task Inbox_InHeadlessChromium_AnOperatorKeepsARegressedDeploymentAndTheDashboardShowsIt()
    {
        // Recommend mode and no Slack bot token: the regression waits in the local inbox.
        await using var test = await SlackTestService.StartAsync(withBotToken: false);
        var service = test.Service;
        await test.WatchAsync("dash-decide");
        await EvaluationSeed.InsertAsync(service, "dash-decide", "p95-latency", [0.64, 0.66, 0.65, 0.91, 0.93], regressedFrom: 3);
        await test.RegressThroughWatchAsync("dash-decide", SlackTestService.P95Regressed);
        using var client = PassThrough(service);
        await using var proxy = await new LoopbackProxy(client).StartAsync();
        await using var browser = await WebDriverSession.StartAsync();

        await browser.NavigateAsync($"{proxy.Url}/dashboard/deployments/dash-decide?token={RolloutGateHost.ReaderToken}");
        Assert.Equal("regressed", await browser.TextAsync(await browser.WaitForAsync("td.state")));
        await AssertChartShowsEachEvaluationAsync(browser, service, "dash-decide", "p95-latency", regressed: 2);
        await browser.WaitForAsync("p.recommend", "it will roll back");

        // From the dashboard to the inbox, and the Keep button with an operator token.
        await browser.ClickAsync(await browser.WaitForAsync("p.waiting a"));
        var form = "form[action=\"/inbox/dash-decide/decide\"]";
        await browser.TypeAsync(await browser.WaitForAsync($"{form} input[name=operatorToken]"), RolloutGateHost.OperatorToken);
        await browser.TypeAsync(await browser.WaitForAsync($"{form} input[name=actor]"), "carol");
        await browser.TypeAsync(await browser.WaitForAsync($"{form} input[name=reason]"), "checked by hand");
        await browser.ClickAsync(await browser.WaitForAsync($"{form} button[value=dismiss]"));

        // The browser lands on the inbox, which says where the deployment stands now.
        await browser.WaitForAsync("p.decided", "dash-decide is now kept");
        Assert.Equal("/inbox?decided=dash-decide", (await browser.UrlAsync()).PathAndQuery);
        await browser.WaitForAsync("p", "0 deployment(s) wait for a decision.");
        Assert.Contains(proxy.Requests, r => r.Method == "POST" && r.PathAndQuery == "/inbox/dash-decide/decide" && r.HadCookie);

        Assert.Equal("kept", await test.StateAsync("dash-decide"));
        Assert.Equal(1, await service.CountAsync("decisions", "deployment_id = 'dash-decide' AND kind = 'dismiss' AND actor = 'carol' AND reason = 'checked by hand'"));
        Assert.Equal(1, await service.CountAsync("audit_events", "deployment_id = 'dash-decide' AND type = 'decision' AND actor = 'carol' AND data::jsonb->>'source' = 'inbox'"));
        using var reader = service.Reader();
        using var api = JsonDocument.Parse(await reader.GetStringAsync(new Uri("/api/v1/deployments/dash-decide", UriKind.Relative)));
        Assert.Equal("kept", api.RootElement.GetProperty("state").GetString());
        var verify = await reader.GetFromJsonAsync<JsonElement>(new Uri("/api/v1/audit/verify", UriKind.Relative));
        Assert.True(verify.GetProperty("ok").GetBoolean());

        // Back on the dashboard: the new state, the decision, and its mark on the chart.
        await browser.ClickAsync(await browser.WaitForAsync("p.decided a"));
        Assert.Equal("kept", await browser.TextAsync(await browser.WaitForAsync("td.state", "kept")));
        await browser.WaitForAsync("li.decision", "dismiss by carol: checked by hand");
        Assert.Equal(await service.CountAsync("decisions", "deployment_id = 'dash-decide'"),
            (await browser.FindAllAsync("svg.chart[data-metric=\"p95-latency\"] line.mark.decision")).Count);
        Assert.Empty(await browser.FindAllAsync("p.waiting"));
        await AssertChartShowsEachEvaluationAsync(browser, service, "dash-decide", "p95-latency", regressed: 2);

        await SaveScreenshotAsync(browser, "dashboard-decided.png");
    }

    /// <summary>
    /// The metric's chart, as the browser rendered it, has one visible circle per stored evaluation (the regressed
    /// ones in the regression colour) and a value line through as many vertices.
    /// </summary>
    private static async Task AssertChartShowsEachEvaluationAsync(WebDriverSession browser, TestService service, string deploymentId, string metric, int regressed)
    {
        var stored = await service.CountAsync("evaluations", $"deployment_id = '{deploymentId}' AND metric = '{metric}'");
        var chart = $"svg.chart[data-metric=\"{metric}\"]";
        Assert.Equal(stored, (await browser.FindAllAsync($"{chart} circle.point")).Count);
        Assert.Equal(regressed, (await browser.FindAllAsync($"{chart} circle.point.bad")).Count);

        var drawn = await browser.ExecuteAsync("""
            const chart = document.querySelector(arguments[0]);
            const visible = [...chart.querySelectorAll('circle.point')].filter(c => { const r = c.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
            const red = visible.filter(c => getComputedStyle(c).fill === 'rgb(192, 57, 43)');
            return { visible: visible.length, red: red.length, vertices: chart.querySelector('polyline.value').points.numberOfItems };
            """, chart);
        Assert.Equal(stored, drawn.GetProperty("visible").GetInt32());
        Assert.Equal(regressed, drawn.GetProperty("red").GetInt32());
        Assert.Equal(stored, drawn.GetProperty("vertices").GetInt32());
    }

    /// <summary>A client for the browser's proxy: redirects and cookies are the browser's to handle.</summary>
    private static HttpClient PassThrough(TestService service) =>
        service.Host.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false, HandleCookies = false });

    private static async Task SaveScreenshotAsync(WebDriverSession browser, string name)
    {
        var path = TestPaths.RepositoryFile(Path.Combine(".local", "test", "results", "screenshots", name));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.Delete(path);
        var png = await browser.ScreenshotAsync(path);
        Assert.True(png.Length > 10_000, $"the screenshot {name} is only {png.Length} bytes");
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        Assert.Equal(png, await File.ReadAllBytesAsync(path));
    }
}
