using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using RolloutGate.Cli;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;

namespace RolloutGate.Tests.Reports;

/// <summary>
/// A history of two services in two environments made through the HTTP API, webhooks and Slack presses (allowed and
/// gate-skipped deploys, regressions kept, rolled back by a person, by RolloutGate and by the pipeline, a stop, a
/// cancel, a stranger's refused press), then every report checked against what was done, worked out here by hand
/// from the events of the audit trail: the summary in and out of windows, the audit events filtered, paged and as CSV,
/// the command line's rendering of both.
/// </summary>
public sealed class SeededHistoryReportsTests
{
    /// <summary>An initiator with a comma, quotes, a line break and a non-ASCII letter: what CSV must carry intact.</summary>
    private const string AwkwardInitiator = "Zoë \"Z\", ops\r\nteam";

    /// <summary>The summary's figures of a service, in the order of its CSV columns.</summary>
    private static readonly string[] SummaryFigures =
    [
        "deployments", "rollbacks", "changeFailureRate", "medianTimeToDetectSeconds", "medianTimeToRollbackSeconds", "autoRollbacks",
        "humanDecisions", "dismissedRecommendations",
    ];

    [Fact]
    public async Task SeededHistory_SummaryEventsCsvAndCommandLine_AgreeWithWhatWasDone()
    {
        await using var test = await SlackTestService.StartAsync();
        var service = test.Service;
        service.Runbooks.Write("cart.yaml", TestRunbooks.Minimal("cart").Replace("mode: recommend", "mode: auto", StringComparison.Ordinal));
        await service.ReloadRunbooksAsync();
        var now = DateTimeOffset.UtcNow;
        var t0 = new DateTimeOffset(now.Ticks - (now.Ticks % TimeSpan.TicksPerSecond), TimeSpan.Zero);

        // checkout, production: co-1 rolled back on an approver's Slack press (a stranger's press refused), then by the pipeline.
        await SendAsync(service, "predeploy", "co-1", "checkout", "production");
        await SendAsync(service, "deployed", "co-1", "checkout", "production", at: t0.AddSeconds(-1000));
        await test.RegressThroughWatchAsync("co-1", SlackTestService.P95Regressed);
        Assert.Equal(HttpStatusCode.OK, (await test.PressAsync(SlackTestService.Stranger, "dismiss", "co-1")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await test.PressAsync(SlackTestService.Approver, "rollback", "co-1")).StatusCode);
        await SendAsync(service, "rolledback", "co-1", "checkout", "production");
        // co-2: deployed without a predeploy by an awkwardly named initiator, regressed, kept by carol over HTTP.
        await SendAsync(service, "deployed", "co-2", "checkout", "production", at: t0.AddSeconds(-800), initiator: AwkwardInitiator);
        await test.RegressThroughWatchAsync("co-2", SlackTestService.P95Regressed);
        await service.DecideAsync("co-2", "dismiss", "carol", "a known slow dependency, \"fine\"");
        // checkout, staging: co-3 stopped while healthy; co-4 rolled back by the pipeline while healthy.
        await SendAsync(service, "predeploy", "co-3", "checkout", "staging");
        await SendAsync(service, "deployed", "co-3", "checkout", "staging", at: t0.AddSeconds(-600));
        await service.DecideAsync("co-3", "stop", "dave, SRE");
        await SendAsync(service, "deployed", "co-4", "checkout", "staging", at: t0.AddSeconds(-500));
        await SendAsync(service, "rolledback", "co-4", "checkout", "staging");
        // cart (rollback mode auto), production: ca-1 rolled back by RolloutGate, then by the pipeline; ca-2 cancelled
        // before its deploy (not counted); cart, staging: ca-3 still watched.
        await SendAsync(service, "deployed", "ca-1", "cart", "production", at: t0.AddSeconds(-400));
        await test.RegressThroughWatchAsync("ca-1", SlackTestService.P95Regressed);
        await SendAsync(service, "rolledback", "ca-1", "cart", "production");
        await SendAsync(service, "predeploy", "ca-2", "cart", "production");
        await SendAsync(service, "cancelled", "ca-2", "cart", "production");
        await SendAsync(service, "deployed", "ca-3", "cart", "staging", at: t0.AddSeconds(-200));
        Assert.Equal("rolled-back", await test.StateAsync("co-1"));
        Assert.Equal("kept", await test.StateAsync("co-2"));
        Assert.Equal("stopped", await test.StateAsync("co-3"));
        Assert.Equal("rolled-back", await test.StateAsync("co-4"));
        Assert.Equal("rolled-back", await test.StateAsync("ca-1"));
        Assert.Equal("cancelled", await test.StateAsync("ca-2"));

        using var reader = service.Reader();
        var events = await AllEventsAsync(reader, "");
        Assert.Equal(events.Select(e => e.Id).Order(), events.Select(e => e.Id));
        DateTimeOffset ChangedTo(string deploymentId, string state) =>
            Assert.Single(events, e => e.Type == "deployment.state-changed" && e.DeploymentId == deploymentId && e.Data["to"]!.GetValue<string>() == state).At;
        double Seconds(DateTimeOffset to, DateTimeOffset from) => (to - from).TotalSeconds;
        var deployedAt = new Dictionary<string, DateTimeOffset>
        {
            ["co-1"] = t0.AddSeconds(-1000), ["co-2"] = t0.AddSeconds(-800), ["co-3"] = t0.AddSeconds(-600),
            ["co-4"] = t0.AddSeconds(-500), ["ca-1"] = t0.AddSeconds(-400), ["ca-3"] = t0.AddSeconds(-200),
        };
        var detectCo1 = Seconds(ChangedTo("co-1", "regressed"), deployedAt["co-1"]);
        var detectCo2 = Seconds(ChangedTo("co-2", "regressed"), deployedAt["co-2"]);
        var rollbackCo1 = Seconds(ChangedTo("co-1", "rolled-back"), ChangedTo("co-1", "regressed"));
        var rollbackCo4 = Seconds(ChangedTo("co-4", "rolled-back"), deployedAt["co-4"]);
        var detectCa1 = Seconds(ChangedTo("ca-1", "regressed"), deployedAt["ca-1"]);
        var rollbackCa1 = Seconds(ChangedTo("ca-1", "rolled-back"), ChangedTo("ca-1", "regressed"));

        // The whole history: four checkout deploys (co-1, co-2 regressed; co-1, co-4 rolled back), two of cart's.
        var all = await SummaryAsync(reader, "");
        Assert.Equal(new[] { "cart", "checkout" }, all.Keys);
        AssertSummary(all["checkout"], deployments: 4, rollbacks: 2, changeFailureRate: 0.75,
            detect: (detectCo1 + detectCo2) / 2, rollback: (rollbackCo1 + rollbackCo4) / 2, auto: 0, human: 3, dismissed: 1);
        AssertSummary(all["cart"], deployments: 2, rollbacks: 1, changeFailureRate: 0.5, detect: detectCa1, rollback: rollbackCa1, auto: 1, human: 0, dismissed: 0);
        // The decisions the summary counts are the audit trail's decision events of deployed changes.
        Assert.Equal(3, events.Count(e => e.Type == "decision" && e.Service == "checkout" && e.Actor != "rolloutgate"));
        Assert.Equal(1, events.Count(e => e.Type == "refusal" && e.Actor == SlackTestService.Stranger));

        // [co-2's deploy, ca-1's deploy): from is inclusive, to exclusive. Written with the offsets either side of a clock
        // change (Berlin's summer and winter time), the same instants.
        var from = deployedAt["co-2"].ToOffset(TimeSpan.FromHours(2)).ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture);
        var to = deployedAt["ca-1"].ToOffset(TimeSpan.FromHours(1)).ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture);
        var window = await SummaryAsync(reader, $"?from={Uri.EscapeDataString(from)}&to={Uri.EscapeDataString(to)}");
        Assert.Equal(new[] { "checkout" }, window.Keys);
        AssertSummary(window["checkout"], deployments: 3, rollbacks: 1, changeFailureRate: 0.6667, detect: detectCo2, rollback: rollbackCo4, auto: 0, human: 2, dismissed: 1);
        var justCart = await SummaryAsync(reader, "?service=cart&to=" + Uri.EscapeDataString(to));
        Assert.Empty(justCart);
        var cartOnly = await SummaryAsync(reader, "?service=cart");
        Assert.Equal(new[] { "cart" }, cartOnly.Keys);
        Assert.Empty(await SummaryAsync(reader, "?from=" + Uri.EscapeDataString(t0.AddHours(1).ToString("O", CultureInfo.InvariantCulture))));

        // One environment: staging has co-3 (stopped), co-4 (rolled back by the pipeline) and ca-3 (watched); production alone,
        // for checkout, co-1 and co-2.
        var staging = await SummaryAsync(reader, "?environment=staging");
        Assert.Equal(new[] { "cart", "checkout" }, staging.Keys);
        AssertSummary(staging["checkout"], deployments: 2, rollbacks: 1, changeFailureRate: 0.5, detect: null, rollback: rollbackCo4, auto: 0, human: 1, dismissed: 0);
        AssertSummary(staging["cart"], deployments: 1, rollbacks: 0, changeFailureRate: 0, detect: null, rollback: null, auto: 0, human: 0, dismissed: 0);
        var production = await SummaryAsync(reader, "?service=checkout&environment=production");
        Assert.Equal(new[] { "checkout" }, production.Keys);
        AssertSummary(production["checkout"], deployments: 2, rollbacks: 1, changeFailureRate: 1,
            detect: (detectCo1 + detectCo2) / 2, rollback: rollbackCo1, auto: 0, human: 2, dismissed: 1);

        // The summary as CSV: the same figures, header first; an empty window is the header alone.
        var summaryCsv = await CsvAsync(reader, "/api/v1/reports/summary");
        Assert.Equal(SummaryFigures.Prepend("service"), summaryCsv.Body[0]);
        Assert.Equal(all.Count, summaryCsv.Body.Count - 1);
        foreach (var row in summaryCsv.Body.Skip(1))
        {
            var json = all[row[0]];
            Assert.Equal(summaryCsv.Body[0].Skip(1).Select(name => Cell(json.GetProperty(name))), row.Skip(1));
        }

        var emptyCsv = await CsvAsync(reader, "/api/v1/reports/summary?from=" + Uri.EscapeDataString(t0.AddHours(1).ToString("O", CultureInfo.InvariantCulture)));
        Assert.Single(emptyCsv.Body);

        // Per metric rule: co-1's flag agreed with (an approver's rollback), co-2's dismissed, ca-1's rolled back by RolloutGate.
        var quality = (await reader.GetJsonAsync("/api/v1/reports/alert-quality")).GetProperty("rules");
        Assert.Equal(
            new[] { "cart p95-latency 1 0 0 1 0 null", "checkout p95-latency 2 1 1 0 0 0.5" },
            quality.EnumerateArray().Select(r => string.Join(' ', new[] { "runbook", "metric", "flagged", "agreed", "dismissed", "automatic", "undecided", "dismissRate" }
                .Select(name => r.GetProperty(name) is { ValueKind: JsonValueKind.String } text ? text.GetString() : r.GetProperty(name).GetRawText()))));

        // The deployments list's filters, alone and combined, newest first.
        foreach (var (query, expected) in new (string, string[])[]
        {
            ("service=checkout&environment=staging", ["co-4", "co-3"]),
            ("service=checkout&environment=staging&state=rolled-back", ["co-4"]),
            ("state=rolled-back", ["ca-1", "co-4", "co-1"]),
            ("service=cart&state=cancelled", ["ca-2"]),
            ("environment=production&state=kept", ["co-2"]),
        })
        {
            var listed = await reader.GetJsonAsync("/api/v1/deployments?" + query);
            Assert.Equal(expected, listed.GetProperty("deployments").EnumerateArray().Select(d => d.GetProperty("deploymentId").GetString()));
        }

        // Filters, alone and combined, select what a reader of the whole trail would.
        foreach (var (query, expected) in new (string, Func<Event, bool>)[]
        {
            ("service=checkout", e => e.Service == "checkout"),
            ("deploymentId=co-2", e => e.DeploymentId == "co-2"),
            ("actor=carol", e => e.Actor == "carol"),
            ("actor=" + Uri.EscapeDataString(AwkwardInitiator), e => e.Actor == AwkwardInitiator),
            ("type=decision", e => e.Type == "decision"),
            ("type=webhook.", e => e.Type.StartsWith("webhook.", StringComparison.Ordinal)),
            ("service=cart&type=decision", e => e.Service == "cart" && e.Type == "decision"),
            ("service=checkout&actor=rolloutgate&type=evaluation.verdict-changed",
                e => e.Service == "checkout" && e.Actor == "rolloutgate" && e.Type == "evaluation.verdict-changed"),
            ("from=" + Uri.EscapeDataString(from) + "&to=" + Uri.EscapeDataString(to),
                e => e.At >= deployedAt["co-2"] && e.At < deployedAt["ca-1"]),
        })
        {
            var selected = await AllEventsAsync(reader, query);
            Assert.True(events.Where(expected).Select(e => e.Id).SequenceEqual(selected.Select(e => e.Id)), $"{query}: {string.Join(",", selected.Select(e => e.Id))}");
        }

        Assert.Contains(events, e => e.Actor == AwkwardInitiator);
        // An event's own time as from includes it and as to excludes it (and every event of its transaction, which share it).
        var middle = events[events.Count / 2];
        var at = Uri.EscapeDataString(middle.At.ToString("O", CultureInfo.InvariantCulture));
        Assert.Equal(events.Where(e => e.At >= middle.At).Select(e => e.Id), (await AllEventsAsync(reader, "from=" + at)).Select(e => e.Id));
        Assert.Equal(events.Where(e => e.At < middle.At).Select(e => e.Id), (await AllEventsAsync(reader, "to=" + at)).Select(e => e.Id));
        Assert.Contains(middle.Id, (await AllEventsAsync(reader, "from=" + at)).Select(e => e.Id));

        // Pages of 1 and of 7 give the whole trail once each; the last page has no next.
        Assert.Equal(events.Select(e => e.Id), (await AllEventsAsync(reader, "", pageSize: 1)).Select(e => e.Id));
        Assert.Equal(events.Select(e => e.Id), (await AllEventsAsync(reader, "", pageSize: 7)).Select(e => e.Id));
        Assert.Equal(HttpStatusCode.BadRequest, (await reader.GetAsync(new Uri("/api/v1/audit/events?limit=1001", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await reader.GetAsync(new Uri("/api/v1/audit/events?limit=0", UriKind.Relative))).StatusCode);

        // The events as CSV, page by page through the Link header: the same rows as the JSON, the awkward actor intact.
        var csvRows = new List<string[]>();
        string? next = "/api/v1/audit/events?limit=5";
        string[]? header = null;
        while (next is not null)
        {
            var page = await CsvAsync(reader, next);
            header ??= page.Body[0];
            Assert.Equal(header, page.Body[0]);
            csvRows.AddRange(page.Body.Skip(1));
            next = page.Next;
        }

        Assert.Equal(new[] { "id", "at", "type", "deploymentId", "service", "actor", "data", "hash" }, header);
        Assert.Equal(events.Count, csvRows.Count);
        foreach (var (e, row) in events.Zip(csvRows))
        {
            Assert.Equal(e.Id.ToString(CultureInfo.InvariantCulture), row[0]);
            Assert.Equal(e.At, DateTimeOffset.Parse(row[1], CultureInfo.InvariantCulture));
            Assert.Equal(new[] { e.Type, e.DeploymentId ?? "", e.Service ?? "", e.Actor ?? "", e.Hash }, new[] { row[2], row[3], row[4], row[5], row[7] });
            Assert.True(JsonNode.DeepEquals(e.Data, JsonNode.Parse(row[6])), $"event {e.Id}: {row[6]}");
        }

        // The command line: CSV as the server wrote it, one line per event in plain text, the summary's figures.
        var (exit, cliCsv, _) = await CliAsync(service, "events", "--csv");
        Assert.Equal(0, exit);
        Assert.Equal(await CsvTextAsync(reader, "/api/v1/audit/events?limit=1000"), cliCsv);
        (exit, var plain, _) = await CliAsync(service, "events");
        Assert.Equal(0, exit);
        Assert.Equal(events.Count + 1, plain.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        (exit, var summaryText, _) = await CliAsync(service, "summary", "--csv");
        Assert.Equal(0, exit);
        Assert.Equal(await CsvTextAsync(reader, "/api/v1/reports/summary"), summaryText);
        (exit, summaryText, _) = await CliAsync(service, "summary", "--environment", "staging", "--csv");
        Assert.Equal(0, exit);
        Assert.Equal(await CsvTextAsync(reader, "/api/v1/reports/summary?environment=staging"), summaryText);
        Assert.Equal(3, summaryText.Split("\r\n", StringSplitOptions.RemoveEmptyEntries).Length);
        (exit, summaryText, _) = await CliAsync(service, "summary", "--from", from, "--to", to);
        Assert.Equal(0, exit);
        var lines = summaryText.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        var checkout = window["checkout"];
        Assert.Equal(
            SummaryFigures.Select(name => checkout.GetProperty(name).GetRawText()).Prepend("checkout"),
            lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));

        // After all of it the chain holds, every event counted.
        var verify = await reader.GetJsonAsync("/api/v1/audit/verify");
        Assert.True(verify.GetProperty("ok").GetBoolean());
        Assert.Equal(await service.CountAsync("audit_events"), verify.GetProperty("events").GetInt64());
    }

    /// <summary>
    /// Pages read while other events are appended between them: each event once, in id order, none skipped, the last page
    /// ending where the trail then ends.
    /// </summary>
    [Fact]
    public async Task Events_PagedWhileEventsAreAppended_EachOnceInOrderNoneSkipped()
    {
        await using var service = await TestService.StartAsync();
        for (var i = 0; i < 5; i++)
        {
            await SendAsync(service, "predeploy", $"pg-{i}", "checkout", "production");
        }

        using var reader = service.Reader();
        var seen = new List<long>();
        string? after = null;
        var appended = 0;
        do
        {
            var page = await reader.GetJsonAsync($"/api/v1/audit/events?limit=2{(after is null ? "" : "&after=" + after)}");
            seen.AddRange(page.GetProperty("events").EnumerateArray().Select(e => e.GetProperty("id").GetInt64()));
            after = page.GetProperty("next").GetString();
            if (appended < 4)
            {
                // Two writers at once between pages: the audit trail draws their ids in the order it commits them.
                await Task.WhenAll(
                    SendAsync(service, "predeploy", $"late-{appended}-a", "checkout", "production"),
                    SendAsync(service, "predeploy", $"late-{appended}-b", "checkout", "staging"));
                appended++;
            }
        }
        while (after is not null);

        var all = (await AllEventsAsync(reader, "")).Select(e => e.Id).ToList();
        Assert.Equal(all, seen);
    }

    private static void AssertSummary(
        JsonElement row, int deployments, int rollbacks, double changeFailureRate, double? detect, double? rollback, int auto, int human, int dismissed)
    {
        Assert.Equal(deployments, row.GetProperty("deployments").GetInt32());
        Assert.Equal(rollbacks, row.GetProperty("rollbacks").GetInt32());
        Assert.Equal(changeFailureRate, row.GetProperty("changeFailureRate").GetDouble());
        // The state's time on the deployment is taken in the transaction that appends its event, a moment before the event's own.
        AssertSeconds(detect, row.GetProperty("medianTimeToDetectSeconds"));
        AssertSeconds(rollback, row.GetProperty("medianTimeToRollbackSeconds"));
        Assert.Equal(auto, row.GetProperty("autoRollbacks").GetInt32());
        Assert.Equal(human, row.GetProperty("humanDecisions").GetInt32());
        Assert.Equal(dismissed, row.GetProperty("dismissedRecommendations").GetInt32());
    }

    private static void AssertSeconds(double? expected, JsonElement actual)
    {
        if (expected is null)
        {
            Assert.Equal(JsonValueKind.Null, actual.ValueKind);
            return;
        }

        Assert.InRange(actual.GetDouble(), expected.Value - 1, expected.Value + 1);
    }

    private static string Cell(JsonElement value) => value.ValueKind == JsonValueKind.Null ? "" : value.GetRawText();

    private static async Task SendAsync(TestService service, string @event, string id, string serviceName, string environment, DateTimeOffset? at = null,
        string initiator = "alice")
    {
        var response = await service.Webhooks.SendAsync(WebhookClient.Body(@event, id, serviceName, environment, initiator, at?.ToString("O", CultureInfo.InvariantCulture)));
        Assert.True(response.IsSuccessStatusCode, $"{@event} {id}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    private static async Task<Dictionary<string, JsonElement>> SummaryAsync(HttpClient reader, string query)
    {
        var response = await reader.GetAsync(new Uri("/api/v1/reports/summary" + query, UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.JsonAsync()).GetProperty("services").EnumerateArray().ToDictionary(s => s.GetProperty("service").GetString()!);
    }

    private sealed record Event(long Id, DateTimeOffset At, string Type, string? DeploymentId, string? Service, string? Actor, JsonNode Data, string Hash);

    /// <summary>Every event the query selects, page after page through <c>next</c>.</summary>
    private static async Task<List<Event>> AllEventsAsync(HttpClient reader, string query, int pageSize = 1000)
    {
        var events = new List<Event>();
        string? after = null;
        do
        {
            var path = $"/api/v1/audit/events?limit={pageSize}{(query.Length > 0 ? "&" + query : "")}{(after is null ? "" : "&after=" + after)}";
            var response = await reader.GetAsync(new Uri(path, UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var page = await response.JsonAsync();
            var rows = page.GetProperty("events").EnumerateArray().ToList();
            Assert.InRange(rows.Count, 0, pageSize);
            events.AddRange(rows.Select(e => new Event(
                e.GetProperty("id").GetInt64(), e.GetProperty("at").GetDateTimeOffset(), e.GetProperty("type").GetString()!,
                e.GetProperty("deploymentId").GetString(), e.GetProperty("service").GetString(), e.GetProperty("actor").GetString(),
                JsonNode.Parse(e.GetProperty("data").GetRawText())!, e.GetProperty("hash").GetString()!)));
            after = page.GetProperty("next").GetString();
            Assert.True(after is null || rows.Count == pageSize, "a page before the last is full");
        }
        while (after is not null);

        Assert.Equal(events.Count, events.Select(e => e.Id).Distinct().Count());
        return events;
    }

    /// <summary>A CSV answer parsed by RFC 4180 (here, not by the code under test), and the next page its Link header names.</summary>
    private static async Task<(List<string[]> Body, string? Next)> CsvAsync(HttpClient reader, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(path, UriKind.Relative));
        request.Headers.Accept.ParseAdd("text/csv");
        using var response = await reader.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
        var next = response.Headers.TryGetValues("Link", out var links)
            ? System.Text.RegularExpressions.Regex.Match(links.Single(), "^<([^>]+)>; rel=\"next\"$").Groups[1].Value
            : null;
        return (ParseCsv(await response.Content.ReadAsStringAsync()), next);
    }

    private static List<string[]> ParseCsv(string text)
    {
        var rows = new List<string[]>();
        var row = new List<string>();
        var cell = new StringBuilder();
        var i = 0;
        while (i < text.Length)
        {
            if (text[i] == '"')
            {
                i++;
                while (!(text[i] == '"' && (i + 1 == text.Length || text[i + 1] != '"')))
                {
                    cell.Append(text[i]);
                    i += text[i] == '"' ? 2 : 1;
                }

                i++;
                continue;
            }

            if (text[i] == ',')
            {
                row.Add(cell.ToString());
                cell.Clear();
                i++;
            }
            else if (text[i] == '\r' && i + 1 < text.Length && text[i + 1] == '\n')
            {
                row.Add(cell.ToString());
                cell.Clear();
                rows.Add([.. row]);
                row.Clear();
                i += 2;
            }
            else
            {
                cell.Append(text[i++]);
            }
        }

        Assert.Empty(row);
        return rows;
    }

    private static async Task<(int Exit, string Output, string Error)> CliAsync(TestService service, params string[] args)
    {
        using var http = service.Host.CreateClient();
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await AuditCommand.RunAsync([.. args, "--url", http.BaseAddress!.ToString()], stdout, stderr,
            name => name == AuditCommand.TokenVariable ? RolloutGateHost.ReaderToken : null, http);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private static async Task<string> CsvTextAsync(HttpClient reader, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(path, UriKind.Relative));
        request.Headers.Accept.ParseAdd("text/csv");
        using var response = await reader.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }
}
