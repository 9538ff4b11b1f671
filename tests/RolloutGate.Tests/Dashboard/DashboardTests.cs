using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Mvc.Testing;
using RolloutGate.Dashboard;
using RolloutGate.Deployments;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;
using RolloutGate.Web;

namespace RolloutGate.Tests.Dashboard;

public sealed partial class DashboardTests
{
    [Fact]
    public async Task List_WithoutToken_AsksForOneAndWithTokenShowsDeploymentsFilteredByServiceAndState()
    {
        await using var service = await TestService.StartAsync(("checkout.yaml", TestRunbooks.Minimal()), ("payments.yaml", TestRunbooks.Minimal("payments")));
        (await service.Webhooks.SendEventAsync("predeploy", "dash-list-1")).EnsureSuccessStatusCode();
        (await service.Webhooks.SendEventAsync("predeploy", "dash-list-2", service: "payments")).EnsureSuccessStatusCode();
        (await service.Webhooks.SendEventAsync("cancelled", "dash-list-2", service: "payments")).EnsureSuccessStatusCode();

        using var browser = Browser(service);
        var refused = await browser.GetAsync(new Uri("/dashboard", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        var form = await refused.Content.ReadAsStringAsync();
        Assert.Contains("name=\"token\"", form, StringComparison.Ordinal);
        Assert.DoesNotContain("dash-list-1", form, StringComparison.Ordinal);

        var page = await browser.GetAsync(new Uri($"/dashboard?state=cancelled&token={RolloutGateHost.ReaderToken}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("/dashboard?state=cancelled", page.RequestMessage!.RequestUri!.PathAndQuery);
        var cancelled = await page.Content.ReadAsStringAsync();
        Assert.Contains("1 deployment(s)", cancelled, StringComparison.Ordinal);
        Assert.Contains("href=\"/dashboard/deployments/dash-list-2\"", cancelled, StringComparison.Ordinal);
        Assert.DoesNotContain("dash-list-1", cancelled, StringComparison.Ordinal);

        var all = await (await browser.GetAsync(new Uri("/dashboard", UriKind.Relative))).Content.ReadAsStringAsync();
        Assert.Contains("2 deployment(s)", all, StringComparison.Ordinal);
        Assert.Contains("<td>checkout v1</td>", all, StringComparison.Ordinal);
        Assert.Contains("<td>2.4.0</td>", all, StringComparison.Ordinal);

        var checkout = await (await browser.GetAsync(new Uri("/dashboard?service=checkout", UriKind.Relative))).Content.ReadAsStringAsync();
        Assert.Contains("dash-list-1", checkout, StringComparison.Ordinal);
        Assert.DoesNotContain("dash-list-2", checkout, StringComparison.Ordinal);

        var badState = await browser.GetAsync(new Uri("/dashboard?state=%3Cb%3E", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, badState.StatusCode);
        Assert.DoesNotContain("<b>", await badState.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // The inbox shares the cookie: one token opens both pages.
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync(new Uri("/inbox", UriKind.Relative))).StatusCode);
    }

    [Fact]
    public async Task List_PagesThroughMoreThanOnePageWithTheFiltersKeptAndNoRowLostOrRepeated()
    {
        await using var service = await TestService.StartAsync();
        (await service.Webhooks.SendEventAsync("predeploy", "page-seed")).EnsureSuccessStatusCode();
        // 560 copies of that row, three to a created_at (microseconds included), one in five cancelled rather than completed.
        await service.Database.ExecuteAsync("""
            INSERT INTO deployments
            SELECT (jsonb_populate_record(d, jsonb_build_object(
                'id', format('page-%s', lpad(g::text, 3, '0')),
                'state', CASE WHEN g % 5 = 0 THEN 'cancelled' ELSE 'completed' END,
                'created_at', timestamptz '2026-01-01 00:00:00.123456+00' + (g / 3) * interval '1 second'))).*
            FROM deployments d, generate_series(1, 560) g WHERE d.id = 'page-seed'
            """);
        var expected = await service.Database.ScalarAsync<string[]>(
            "SELECT array_agg(id ORDER BY created_at DESC, id) FROM deployments WHERE service = 'checkout' AND state = 'completed'");
        Assert.Equal(448, expected!.Length);

        using var browser = Browser(service);
        var seen = new List<string>();
        var pages = new List<int>();
        var next = $"/dashboard?service=checkout&state=completed&token={RolloutGateHost.ReaderToken}";
        while (next is not null)
        {
            var page = await browser.GetAsync(new Uri(next, UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            var html = await page.Content.ReadAsStringAsync();
            var ids = RowPattern().Matches(html).Select(m => Uri.UnescapeDataString(m.Groups[1].Value)).ToList();
            Assert.Contains($"{ids.Count} deployment(s) on this page", html, StringComparison.Ordinal);
            Assert.Equal(pages.Count > 0, html.Contains("class=\"newest\" href=\"/dashboard?service=checkout&amp;state=completed\"", StringComparison.Ordinal));
            seen.AddRange(ids);
            pages.Add(ids.Count);
            next = OlderPattern().Match(html) is { Success: true } older ? WebUtility.HtmlDecode(older.Groups[1].Value) : null;
            Assert.True(next is null || next.StartsWith("/dashboard?service=checkout&state=completed&before=", StringComparison.Ordinal), next);
        }

        Assert.Equal([200, 200, 48], pages);
        Assert.Equal(expected, seen);
        // The first page ends inside a group of rows created at the same moment: the id orders them across the boundary.
        Assert.True(await service.Database.ScalarAsync<bool>(
            $"SELECT (SELECT created_at FROM deployments WHERE id = '{seen[199]}') = (SELECT created_at FROM deployments WHERE id = '{seen[200]}')"));

        var unfiltered = await (await browser.GetAsync(new Uri("/dashboard", UriKind.Relative))).Content.ReadAsStringAsync();
        Assert.Contains("href=\"/dashboard?before=", unfiltered, StringComparison.Ordinal);
        var broken = await browser.GetAsync(new Uri("/dashboard?before=yesterday", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, broken.StatusCode);
    }

    [Fact]
    public async Task Detail_DrawsOneChartPerMetricWithOnePointPerEvaluationAndMarksTheDetectionAndADecision()
    {
        await using var service = await TestService.StartAsync();
        (await service.Webhooks.SendEventAsync("predeploy", "dash-detail")).EnsureSuccessStatusCode();
        (await service.Webhooks.SendEventAsync("deployed", "dash-detail")).EnsureSuccessStatusCode();
        await EvaluationSeed.InsertAsync(service, "dash-detail", "error-rate", [0.010, 0.011, 0.012, 0.030, 0.035], regressedFrom: 3);
        await EvaluationSeed.InsertAsync(service, "dash-detail", "saturation", [0.5, 0.6, 0.55]);
        await EvaluationSeed.InsertAsync(service, "dash-detail", "p95-latency", [0.2, 0.21, 0.22]);
        (await service.Operator().PostAsync(new Uri("/api/v1/deployments/dash-detail/stop", UriKind.Relative),
            JsonContent("{\"actor\":\"carol\",\"reason\":\"watching by hand\"}"))).EnsureSuccessStatusCode();

        using var browser = Browser(service);
        var page = await browser.GetAsync(new Uri($"/dashboard/deployments/dash-detail?token={RolloutGateHost.ReaderToken}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var html = await page.Content.ReadAsStringAsync();

        var charts = ChartPattern().Matches(html);
        var metrics = await service.Database.ScalarAsync<long>("SELECT count(DISTINCT metric) FROM evaluations WHERE deployment_id = 'dash-detail'");
        Assert.Equal(metrics, charts.Count);
        Assert.Equal(5, PointCount(html, "error-rate"));
        Assert.Equal(3, PointCount(html, "saturation"));
        Assert.Equal(2, BadPointCount(html, "error-rate"));
        foreach (var chart in charts.Select(m => m.Value))
        {
            Assert.Contains("class=\"band\"", chart, StringComparison.Ordinal);
            Assert.Contains("class=\"value\"", chart, StringComparison.Ordinal);
            Assert.Contains("class=\"mark deploy\"", chart, StringComparison.Ordinal);
            Assert.Contains("class=\"mark detection\"", chart, StringComparison.Ordinal);
            Assert.Contains("<title>stop by carol at", chart, StringComparison.Ordinal);
            // Points over the marks: the newest point often sits on the detection line.
            Assert.True(chart.LastIndexOf("<line class=\"mark", StringComparison.Ordinal) < chart.IndexOf("<circle", StringComparison.Ordinal));
        }

        // Values in the metric's unit where the runbook names the metric (p95-latency: ms); as plain numbers where it does not.
        var latency = charts.Select(m => m.Value).Single(c => c.Contains("data-metric=\"p95-latency\"", StringComparison.Ordinal));
        Assert.Matches(@"<text class=""axis"" x=""4"" y=""22"">\d+ ms</text>", latency);
        Assert.Matches(@">threshold \d+ ms</text>", latency);
        var saturation = charts.Select(m => m.Value).Single(c => c.Contains("data-metric=\"saturation\"", StringComparison.Ordinal));
        Assert.DoesNotContain(" ms</text>", saturation, StringComparison.Ordinal);

        Assert.Contains("<b>stop</b> by carol: watching by hand", html, StringComparison.Ordinal);
        Assert.Contains("<td>webhook.deployed</td>", html, StringComparison.Ordinal);
        Assert.Contains("<td>decision</td><td>carol</td>", html, StringComparison.Ordinal);
        Assert.Contains("href=\"/inbox\"", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);

        var unknown = await browser.GetAsync(new Uri("/dashboard/deployments/nope", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task Detail_EscapesAHostileDeploymentIdVersionAndExplanation()
    {
        await using var service = await TestService.StartAsync();
        const string id = "x\"><img src=x onerror=alert(1)>";
        const string script = "<script>alert(1)</script>";
        var body = WebhookClient.Body("predeploy", id).Replace("\"2.4.0\"", JsonSerializer.Serialize(script), StringComparison.Ordinal);
        (await service.Webhooks.SendAsync(body)).EnsureSuccessStatusCode();
        (await service.Webhooks.SendAsync(body.Replace("predeploy", "deployed", StringComparison.Ordinal))).EnsureSuccessStatusCode();
        await EvaluationSeed.InsertAsync(service, id, "<svg onload=alert(1)>", [1, 2], regressedFrom: 1, explanation: script);

        using var browser = Browser(service);
        var list = await (await browser.GetAsync(new Uri($"/dashboard?token={RolloutGateHost.ReaderToken}", UriKind.Relative))).Content.ReadAsStringAsync();
        Assert.Contains("1 deployment(s)", list, StringComparison.Ordinal);
        var page = await browser.GetAsync(new Uri($"/dashboard/deployments/{Uri.EscapeDataString(id)}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var detail = await page.Content.ReadAsStringAsync();
        foreach (var html in new[] { list, detail })
        {
            Assert.DoesNotContain(script, html, StringComparison.Ordinal);
            Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("<img", html, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("<svg onload", html, StringComparison.OrdinalIgnoreCase);
        }

        Assert.Contains("&lt;script&gt;alert(1)&lt;/script&gt;", detail, StringComparison.Ordinal);
        Assert.Equal(2, PointCount(detail, "&lt;svg onload=alert(1)&gt;"));
        Assert.Contains("default-src 'none'", page.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pages_SendTheirSecurityHeaders_AndEveryAnswerSaysNoSniff()
    {
        await using var service = await TestService.StartAsync();
        (await service.Webhooks.SendEventAsync("predeploy", "dash-headers-1")).EnsureSuccessStatusCode();
        using var browser = Browser(service);
        using var anonymous = Browser(service);
        using var reader = service.Reader();
        using var csv = service.Reader();
        csv.DefaultRequestHeaders.Accept.ParseAdd("text/csv");

        var pages = new[]
        {
            await anonymous.GetAsync(new Uri("/dashboard", UriKind.Relative)),
            await browser.GetAsync(new Uri($"/dashboard?token={RolloutGateHost.ReaderToken}", UriKind.Relative)),
            await browser.GetAsync(new Uri("/dashboard/deployments/dash-headers-1", UriKind.Relative)),
            await browser.GetAsync(new Uri("/inbox", UriKind.Relative)),
        };
        var others = new[]
        {
            await reader.GetAsync(new Uri("/api/v1/deployments/dash-headers-1", UriKind.Relative)),
            await csv.GetAsync(new Uri("/api/v1/audit/events", UriKind.Relative)),
            await reader.GetAsync(new Uri("/api/v1/runbooks/checkout/decisions.md", UriKind.Relative)),
            await reader.GetAsync(new Uri("/api/v1/audit/events?from=yesterday", UriKind.Relative)),
            await service.Client.GetAsync(new Uri("/api/v1/deployments", UriKind.Relative)),
        };

        Assert.Equal([HttpStatusCode.Unauthorized, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK], pages.Select(p => p.StatusCode));
        Assert.All(pages, page =>
        {
            var policy = page.Headers.GetValues("Content-Security-Policy").Single();
            Assert.All(["default-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"],
                directive => Assert.Contains(directive, policy, StringComparison.Ordinal));
            Assert.Equal("DENY", page.Headers.GetValues("X-Frame-Options").Single());
            Assert.Equal("no-referrer", page.Headers.GetValues("Referrer-Policy").Single());
            Assert.Equal("nosniff", page.Headers.GetValues("X-Content-Type-Options").Single());
        });
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.BadRequest, HttpStatusCode.Unauthorized], others.Select(p => p.StatusCode));
        Assert.All(others, answer => Assert.Equal("nosniff", answer.Headers.GetValues("X-Content-Type-Options").Single()));
    }

    [Fact]
    public async Task Times_SayUtcAndHowLongAgo_AndWatchingUntilIsShownOnlyWhileTheWatchRuns()
    {
        await using var service = await TestService.StartAsync();
        (await service.Webhooks.SendEventAsync("predeploy", "dash-times-1")).EnsureSuccessStatusCode();
        (await service.Webhooks.SendEventAsync("deployed", "dash-times-1")).EnsureSuccessStatusCode();
        (await service.Operator().PostAsync(new Uri("/api/v1/deployments/dash-times-1/stop", UriKind.Relative),
            JsonContent("{\"actor\":\"carol\",\"reason\":\"done\"}"))).EnsureSuccessStatusCode();
        (await service.Webhooks.SendEventAsync("predeploy", "dash-times-2")).EnsureSuccessStatusCode();
        (await service.Webhooks.SendEventAsync("deployed", "dash-times-2")).EnsureSuccessStatusCode();
        // Created two hours ago, watched for 24 h from then.
        await service.Database.ExecuteAsync("""
            UPDATE deployments SET created_at = now() - interval '2 hours 5 minutes', watch_until = now() + interval '21 hours 55 minutes' - interval '30 seconds'
            WHERE id = 'dash-times-2'
            """);

        using var browser = Browser(service);
        var list = await (await browser.GetAsync(new Uri($"/dashboard?token={RolloutGateHost.ReaderToken}", UriKind.Relative))).Content.ReadAsStringAsync();
        var watching = Row(list, "dash-times-2");
        Assert.Matches(@"<td><time datetime=""\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(2 h 5 min ago\)</time></td>", watching);
        Assert.Contains(" UTC (in 21 h 54 min)</time></td></tr>", watching, StringComparison.Ordinal);
        // A stopped deployment is watched no more: no "watching until" that reads as if it were.
        var stopped = Row(list, "dash-times-1");
        Assert.Contains(" UTC (just now)</time></td>", stopped, StringComparison.Ordinal);
        Assert.EndsWith("<td></td></tr>", stopped, StringComparison.Ordinal);
        Assert.DoesNotMatch(@"\d\dZ<", list);
        Assert.DoesNotContain("wait for a decision", list, StringComparison.Ordinal);

        var detail = await (await browser.GetAsync(new Uri("/dashboard/deployments/dash-times-1", UriKind.Relative))).Content.ReadAsStringAsync();
        Assert.Contains("<tr><th>deployed</th><td><time datetime=", detail, StringComparison.Ordinal);
        Assert.Matches(@" until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC as planned, but <b>no longer watched</b>: the deployment is stopped; baseline ", detail);
        var stillWatched = await (await browser.GetAsync(new Uri("/dashboard/deployments/dash-times-2", UriKind.Relative))).Content.ReadAsStringAsync();
        Assert.Contains(" UTC (in 21 h 54 min)</time>; baseline ", stillWatched, StringComparison.Ordinal);
        // Nothing evaluated yet: when the first evaluation is due (the test runbook's 1 min interval, at whole minutes).
        Assert.Matches(@"<p>No evaluation yet: the first is due <time [^>]+>[^<]+ UTC \((in \d+ min|just now)\)</time>, then one every 1 min\.</p>", stillWatched);
        Assert.Contains("<p>No evaluation was stored before the watch ended.</p>", detail, StringComparison.Ordinal);
        Assert.Contains(" UTC (just now)</time> <b>stop</b> by carol: done", detail, StringComparison.Ordinal);
        Assert.Matches(@"<tr class=""event""><td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</td><td>webhook.predeploy</td>", detail);
        Assert.DoesNotMatch(@"\d\dZ<", detail);
    }

    /// <summary>
    /// A change allowed and never deployed denies every next predeploy of its service and environment, and the inbox does
    /// not list it (it waits for no decision): its page said only "allowed". It now says what it holds back and what ends
    /// it, in the deny's own words, the slash command's id quoted to paste; a change that holds nothing says nothing of it.
    /// </summary>
    [Fact]
    public async Task Detail_AChangeAllowedAndNeverDeployed_SaysItHoldsBackTheNextOneAndWhatEndsIt_InTheDenysWords()
    {
        await using var service = await TestService.StartAsync();
        (await service.Webhooks.SendEventAsync("predeploy", "run 8812")).EnsureSuccessStatusCode();
        await service.Database.ExecuteAsync("UPDATE deployments SET updated_at = updated_at - interval '3 hours 12 minutes' WHERE id = 'run 8812'");
        var held = await (await service.Webhooks.SendEventAsync("predeploy", "held")).JsonAsync();
        var deny = held.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == PreDeployGate.OneChangeAtATime)
            .GetProperty("detail").GetString()!;

        using var browser = Browser(service);
        var allowed = await browser.GetStringAsync(new Uri($"/dashboard/deployments/run%208812?token={RolloutGateHost.ReaderToken}", UriKind.Relative));
        var denied = await browser.GetStringAsync(new Uri("/dashboard/deployments/held", UriKind.Relative));

        Assert.Contains("<p class=\"held\"><strong>Holds back the next change of checkout in production:</strong> its predeploy is denied "
            + $"(one change at a time) while {HtmlPages.E(deny)}.</p>", allowed, StringComparison.Ordinal);
        Assert.Contains(HtmlPages.E("3 h 12 min ago, no deployed event since): if it will not be deployed, send its cancelled event "
            + "(rolloutgate gate cancelled --deployment-id 'run 8812' --service checkout --environment production) or stop it "
            + "(POST /api/v1/deployments/run%208812/stop with an operator token, or /rolloutgate stop \"run 8812\" in Slack)"), allowed, StringComparison.Ordinal);
        Assert.DoesNotContain("class=\"held\"", denied, StringComparison.Ordinal);

        // Stopped as the page says, it holds nothing back, and its page says so no more.
        (await service.Operator().PostAsync(new Uri("/api/v1/deployments/run%208812/stop", UriKind.Relative),
            JsonContent("{\"actor\":\"oncall\",\"reason\":\"never deployed\"}"))).EnsureSuccessStatusCode();
        var stopped = await browser.GetStringAsync(new Uri("/dashboard/deployments/run%208812", UriKind.Relative));
        Assert.DoesNotContain("class=\"held\"", stopped, StringComparison.Ordinal);
        Assert.Contains("<b>stop</b> by oncall: never deployed", stopped, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Detail_AChangeWatchingUnderOnNewerDeployKeep_SaysItHoldsBackTheNextOne_UnderStopItDoesNot()
    {
        // Under the default onNewerDeploy: keep a watching change denies the next predeploy; under stop it does not.
        await using var service = await TestService.StartAsync(
            ("checkout.yaml", TestRunbooks.Minimal()),
            ("cart.yaml", TestRunbooks.Minimal("cart").Replace("    interval: 1m\n", "    interval: 1m\n    onNewerDeploy: stop\n", StringComparison.Ordinal)));
        (await service.Webhooks.SendEventAsync("deployed", "keep-1")).EnsureSuccessStatusCode();
        (await service.Webhooks.SendEventAsync("deployed", "stop-1", service: "cart")).EnsureSuccessStatusCode();
        var deny = (await (await service.Webhooks.SendEventAsync("predeploy", "keep-2")).JsonAsync()).GetProperty("checks").EnumerateArray()
            .Single(c => c.GetProperty("name").GetString() == PreDeployGate.OneChangeAtATime).GetProperty("detail").GetString()!;
        Assert.Equal("allow", (await (await service.Webhooks.SendEventAsync("predeploy", "stop-2", service: "cart")).JsonAsync()).GetProperty("verdict").GetString());

        using var browser = Browser(service);
        var keep = await browser.GetStringAsync(new Uri($"/dashboard/deployments/keep-1?token={RolloutGateHost.ReaderToken}", UriKind.Relative));
        var stop = await browser.GetStringAsync(new Uri("/dashboard/deployments/stop-1", UriKind.Relative));

        Assert.Contains("<p class=\"held\"><strong>Holds back the next change of checkout in production:</strong> its predeploy is denied "
            + $"(one change at a time) while {HtmlPages.E(deny)}.</p>", keep, StringComparison.Ordinal);
        Assert.Contains("is still watching", deny, StringComparison.Ordinal);
        Assert.DoesNotContain("class=\"held\"", stop, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Detail_ARegressionCaughtAtTheFirstEvaluationShowsItsPointAgainstTheBandFromTheDeployWithReadableValuesAndWhatHappensNext()
    {
        await using var test = await SlackTestService.StartAsync(withBotToken: false);
        var service = test.Service;
        await test.WatchAsync("dash-first");
        // A cost per request: values far below 0.001, which the axis used to print as "0".
        await EvaluationSeed.InsertAsync(service, "dash-first", "cost-per-request", [1.0e-7], regressedFrom: 0);
        await test.RegressThroughWatchAsync("dash-first", SlackTestService.P95Regressed);

        using var browser = Browser(service);
        var html = await (await browser.GetAsync(new Uri($"/dashboard/deployments/dash-first?token={RolloutGateHost.ReaderToken}", UriKind.Relative)))
            .Content.ReadAsStringAsync();

        var chart = Chart(html, "cost-per-request");
        // The band, baseline and threshold start at the deploy: two vertices each, not one invisible point.
        Assert.Equal(4, Regex.Match(chart, "<polygon class=\"band\" points=\"([^\"]+)\"").Groups[1].Value.Split(' ').Length);
        Assert.Equal(2, Regex.Match(chart, "<polyline class=\"threshold\" points=\"([^\"]+)\"").Groups[1].Value.Split(' ').Length);
        // In fixed notation: "1.2E-07" was read by few.
        Assert.Contains(">threshold 0.00000012</text>", chart, StringComparison.Ordinal);
        Assert.Contains(">baseline 0.0000001</text>", chart, StringComparison.Ordinal);
        Assert.DoesNotContain(">0</text>", chart, StringComparison.Ordinal);
        Assert.DoesNotContain("E-", chart, StringComparison.Ordinal);
        Assert.Contains("<text class=\"axis\" x=\"4\" y=\"22\">0.00000012</text>", chart, StringComparison.Ordinal);
        Assert.Contains("UTC</text>", chart, StringComparison.Ordinal);
        Assert.Contains("<b class=\"s-regressed\">regressed</b>", html, StringComparison.Ordinal);

        // The list says first that one waits, whatever page or filter it shows.
        var list = await (await browser.GetAsync(new Uri("/dashboard?state=completed", UriKind.Relative))).Content.ReadAsStringAsync();
        Assert.Contains("<p class=\"recommend waiting\"><strong>1 deployment(s) wait for a decision:</strong> <a href=\"/inbox\">decide in the inbox</a>.</p>",
            list, StringComparison.Ordinal);

        // Waiting for a decision, and what RolloutGate does if nobody decides.
        Assert.Contains("<p class=\"waiting\">", html, StringComparison.Ordinal);
        Assert.Contains("<strong>RolloutGate recommends a rollback.</strong> If nobody decides by <time", html, StringComparison.Ordinal);
        Assert.Contains("(in 15 min)</time>, it will <strong>roll back</strong>", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Detail_ADayOfEvaluations_CirclesSomeWithEveryVerdictChangeAndTheLatest_AndDrawsTheLineThroughAll()
    {
        // A day at one minute: 1,440 evaluations, a regression from the 1,000th on.
        await using var service = await TestService.StartAsync();
        (await service.Webhooks.SendEventAsync("predeploy", "dash-day")).EnsureSuccessStatusCode();
        (await service.Webhooks.SendEventAsync("deployed", "dash-day")).EnsureSuccessStatusCode();
        await service.Database.ExecuteAsync("""
            INSERT INTO evaluations (deployment_id, metric, at, value, baseline, threshold, statistic, verdict, explanation, query, state, evaluated_at)
            SELECT 'dash-day', 'p95-latency', d.deployed_at + i * interval '1 minute', 200 + i % 7, 200, 240, 0,
                   CASE WHEN i >= 1000 THEN 'regressed' ELSE 'healthy' END, 'minute ' || i, 'seeded', '{}'::jsonb, d.deployed_at + i * interval '1 minute'
            FROM deployments d, generate_series(1, 1440) AS i WHERE d.id = 'dash-day'
            """);

        var html = await Browser(service).GetStringAsync(new Uri($"/dashboard/deployments/dash-day?token={RolloutGateHost.ReaderToken}", UriKind.Relative));

        var chart = Chart(html, "p95-latency");
        var circles = PointCount(html, "p95-latency");
        Assert.InRange(circles, MetricChart.MostCircles, MetricChart.MostCircles + 3);
        Assert.Contains("healthy: minute 1</title>", chart, StringComparison.Ordinal);
        Assert.Contains("regressed: minute 1000</title>", chart, StringComparison.Ordinal);
        Assert.Contains("regressed: minute 1440</title>", chart, StringComparison.Ordinal);
        Assert.Equal(1440, Regex.Match(chart, "<polyline class=\"value\" points=\"([^\"]*)\"").Groups[1].Value.Split(' ').Length);
        Assert.Contains($"<p class=\"circled\">The chart circles {circles} of them", html, StringComparison.Ordinal);
        Assert.Contains("<p>1440 evaluation(s);", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Circled_UpToTheMost_EveryEvaluation()
    {
        var at = DateTimeOffset.Parse("2026-12-06T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        var points = Enumerable.Range(0, MetricChart.MostCircles)
            .Select(i => new ChartPoint(at.AddMinutes(i), i % 2 == 0 ? 1.0 : null, 1, 1.2, "healthy", "")).ToList();

        Assert.Equal(points.Where(p => p.Value is not null), MetricChart.Circled(points));
    }

    [Theory]
    [InlineData(200, 240)] // higher is worse: the threshold above the baseline
    [InlineData(200, 160)] // a drop is worse (request-rate, worse: lower): the threshold below it
    public void Svg_BaselineAndThresholdLabels_SitOutsideTheBandOnEitherSide(double baseline, double threshold)
    {
        var at = DateTimeOffset.Parse("2026-12-06T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        var points = Enumerable.Range(0, 10).Select(i => new ChartPoint(at.AddMinutes(i), 200 + i, baseline, threshold, "healthy", "")).ToList();

        var svg = MetricChart.Svg("orders", points, []);

        double LabelY(string kind) => double.Parse(Regex.Match(svg, $"<text class=\"label {kind}\" x=\"[^\"]*\" y=\"([^\"]*)\"").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        double LineY(string kind) => double.Parse(Regex.Match(svg, $"<polyline class=\"{kind}\" points=\"[^,]*,([^ \"]*)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var (baselineLine, thresholdLine) = (LineY("baseline"), LineY("threshold"));
        var (upper, lower) = thresholdLine < baselineLine ? ("threshold", "baseline") : ("baseline", "threshold");
        Assert.True(LabelY(upper) < Math.Min(baselineLine, thresholdLine), $"the {upper} label is above both lines");
        Assert.True(LabelY(lower) > Math.Max(baselineLine, thresholdLine), $"the {lower} label is below both lines");
    }

    [Fact]
    public void Svg_WithAFloor_DrawsItAcrossTheChartWithinTheScale()
    {
        // A min of 50 far below every stored value and threshold: drawn all the same, and the scale reaches down to it.
        var at = DateTimeOffset.Parse("2026-12-06T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        var points = Enumerable.Range(0, 10).Select(i => new ChartPoint(at.AddMinutes(i), 120 + i, 120, 2000, "healthy", "")).ToList();

        var without = MetricChart.Svg("orders", points, []);
        var svg = MetricChart.Svg("orders", points, [], floor: 50);

        Assert.DoesNotContain("class=\"floor\"", without, StringComparison.Ordinal);
        var line = Regex.Match(svg, "<line class=\"floor\" x1=\"([^\"]*)\" x2=\"([^\"]*)\" y1=\"([^\"]*)\" y2=\"([^\"]*)\"/>");
        Assert.True(line.Success, svg);
        double At(int group) => double.Parse(line.Groups[group].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(At(3), At(4));
        Assert.InRange(At(3), 12, 220 - 28);
        Assert.True(At(2) - At(1) > 600, "across the plot");
        Assert.Contains(">min 50</text>", svg, StringComparison.Ordinal);
    }

    private static string Row(string html, string id) =>
        Regex.Match(html, $"<tr><td><a href=\"/dashboard/deployments/{id}\">.*?</tr>", RegexOptions.Singleline).Value;

    [Fact]
    public async Task DeploymentsApiLink_OpenedInABrowser_LeadsToItsDashboardPage_AndTheApiAnswersAsBefore()
    {
        // The link in every Slack message is the deployment's API address; a person clicks it in a browser.
        await using var service = await TestService.StartAsync();
        (await service.Webhooks.SendEventAsync("predeploy", "dash link ü&1")).EnsureSuccessStatusCode();
        var link = new Uri("/api/v1/deployments/" + Uri.EscapeDataString("dash link ü&1"), UriKind.Relative);
        using var browser = service.Host.CreateClient(new WebApplicationFactoryClientOptions { HandleCookies = true, AllowAutoRedirect = false });
        const string navigation = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

        using var clicked = new HttpRequestMessage(HttpMethod.Get, link);
        clicked.Headers.Accept.ParseAdd(navigation);
        var answer = await browser.SendAsync(clicked);
        Assert.Equal(HttpStatusCode.Redirect, answer.StatusCode);
        Assert.Equal("/dashboard/deployments/dash%20link%20%C3%BC%261", answer.Headers.Location!.OriginalString);
        var page = await browser.GetAsync(new Uri(answer.Headers.Location.OriginalString + $"?token={RolloutGateHost.ReaderToken}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Redirect, page.StatusCode);
        var shown = await browser.GetAsync(new Uri(page.Headers.Location!.OriginalString, UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, shown.StatusCode);
        Assert.Contains("dash link ü&1", WebUtility.HtmlDecode(await shown.Content.ReadAsStringAsync()), StringComparison.Ordinal);

        // Clients of the API: no token is a 401 in JSON, whatever they accept; with one, the JSON, browser or not.
        foreach (var accept in new[] { "*/*", "application/json" })
        {
            using var asked = new HttpRequestMessage(HttpMethod.Get, link);
            asked.Headers.Accept.ParseAdd(accept);
            var refused = await browser.SendAsync(asked);
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType!.MediaType);
        }

        using var withToken = new HttpRequestMessage(HttpMethod.Get, link);
        withToken.Headers.Accept.ParseAdd(navigation);
        withToken.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", RolloutGateHost.ReaderToken);
        var read = await browser.SendAsync(withToken);
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        Assert.Equal("dash link ü&1", (await read.JsonAsync()).GetProperty("deploymentId").GetString());
    }

    private static HttpClient Browser(TestService service) =>
        service.Host.CreateClient(new WebApplicationFactoryClientOptions { HandleCookies = true });

    private static StringContent JsonContent(string json) => new(json, System.Text.Encoding.UTF8, "application/json");

    private static string Chart(string html, string encodedMetric) =>
        ChartPattern().Matches(html).Select(m => m.Value).Single(svg => svg.Contains($"data-metric=\"{encodedMetric}\"", StringComparison.Ordinal));

    private static int PointCount(string html, string encodedMetric) => Regex.Count(Chart(html, encodedMetric), "<circle class=\"point");

    private static int BadPointCount(string html, string encodedMetric) => Regex.Count(Chart(html, encodedMetric), "<circle class=\"point bad\"");

    [GeneratedRegex("<svg class=\"chart\".*?</svg>", RegexOptions.Singleline)]
    private static partial Regex ChartPattern();

    [GeneratedRegex("<tr><td><a href=\"/dashboard/deployments/([^\"]+)\">")]
    private static partial Regex RowPattern();

    [GeneratedRegex("<a class=\"older\" rel=\"next\" href=\"([^\"]+)\">")]
    private static partial Regex OlderPattern();
}
