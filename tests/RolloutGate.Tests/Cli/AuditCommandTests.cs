using System.Net;
using RolloutGate.Cli;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Cli;

public sealed class AuditCommandTests
{
    [Fact]
    public async Task Events_ForOneDeployment_PrintsOneLineEach()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "cli-1");
        await service.Webhooks.SendEventAsync("predeploy", "other", service: "checkout", deliveryId: "other-1");

        var (exit, output, _) = await RunAsync(service, "events", "--deployment-id", "cli-1");

        Assert.Equal(0, exit);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches("^ID +AT +TYPE +DEPLOYMENT +ACTOR +DATA$", lines[0]);
        lines = lines[1..];
        Assert.Equal(await service.CountAsync("audit_events", "deployment_id = 'cli-1'"), lines.Length);
        Assert.All(lines, line => Assert.Contains("cli-1", line, StringComparison.Ordinal));
        Assert.All(lines, line => Assert.Matches(@"^[0-9]+ +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z  ", line));
        Assert.Contains(lines, line => line.Contains("webhook.predeploy", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Events_OfDeploymentsWithIdsOfDifferentLengths_LineUpInColumns()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "a");
        await service.Webhooks.SendEventAsync("deployed", "a");
        await service.Webhooks.SendEventAsync("predeploy", "a-much-longer-deployment-id", service: "payments");

        var (exit, output, _) = await RunAsync(service, "events");

        Assert.Equal(0, exit);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries)[1..];
        Assert.Equal(await service.CountAsync("audit_events", "true"), lines.Length);
        Assert.Contains(lines, line => line.Contains("  a  ", StringComparison.Ordinal));
        Assert.Contains(lines, line => line.Contains("  a-much-longer-deployment-id  ", StringComparison.Ordinal));
        // Each column starts where it starts on every other line: the type after the time, the data (JSON, the last) too.
        Assert.Single(lines.Select(line => line.IndexOf("  webhook.", StringComparison.Ordinal)).Where(at => at >= 0).Distinct());
        Assert.Single(lines.Select(line => line.IndexOf('{', StringComparison.Ordinal)).Distinct());
    }

    [Fact]
    public async Task Events_Csv_HeaderThenRows()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "cli-2");

        var (exit, output, _) = await RunAsync(service, "events", "--type", "webhook.", "--csv");

        Assert.Equal(0, exit);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("id,at,type,deploymentId", lines[0], StringComparison.Ordinal);
        Assert.Equal(2, lines.Length);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Events_StoppedAtTheLimitWithMoreMatching_SaysSoOnStderr(bool csv)
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "cli-limit");
        var count = await service.CountAsync("audit_events", "deployment_id = 'cli-limit'");
        string[] events = csv ? ["events", "--deployment-id", "cli-limit", "--csv"] : ["events", "--deployment-id", "cli-limit"];

        var (exitAll, outputAll, errorAll) = await RunAsync(service, [.. events, "--limit", count.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        var (exitCut, outputCut, errorCut) = await RunAsync(service, [.. events, "--limit", (count - 1).ToString(System.Globalization.CultureInfo.InvariantCulture)]);

        const int header = 1; // in CSV and in plain text alike
        Assert.Equal(0, exitAll);
        Assert.Equal(count + header, outputAll.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Equal("", errorAll);
        Assert.Equal(0, exitCut);
        Assert.Equal(count - 1 + header, outputCut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.StartsWith($"audit: stopped at --limit {count - 1} events, more match;", errorCut, StringComparison.Ordinal);
    }

    /// <summary>
    /// For a person at a terminal: a header over the columns, as the summary's, and times in UTC to the second. The id
    /// orders events within a second; --csv (and the API's JSON) keep the stored precision.
    /// </summary>
    [Fact]
    public async Task Events_PlainText_HeaderThenTimesInUtcToTheSecond()
    {
        const string Body = """
            {"events": [
              {"id": 7, "at": "2026-12-05T23:48:25.4775867+00:00", "type": "webhook.predeploy", "deploymentId": "gh-1", "actor": "alice", "data": {"verdict": "allow"}, "hash": "ab"},
              {"id": 8, "at": "2026-12-06T00:48:25.9+01:00", "type": "decision", "deploymentId": null, "actor": null, "data": {}, "hash": "cd"}
            ], "next": null}
            """;
        var (exit, output, error) = await AnsweredByAsync(new CannedAnswer(HttpStatusCode.OK, "application/json", Body), "events");

        Assert.True(exit == 0, error);
        Assert.Equal(
            """
            ID  AT                    TYPE               DEPLOYMENT  ACTOR  DATA
            7   2026-12-05T23:48:25Z  webhook.predeploy  gh-1        alice  {"verdict": "allow"}
            8   2026-12-05T23:48:25Z  decision           -           -      {}

            """.ReplaceLineEndings("\n"),
            output.ReplaceLineEndings("\n"));
    }

    /// <summary>
    /// A CSV cell may hold a line break (RFC 4180 quotes it; an initiator "ops\r\nteam"): --csv prints each row as the
    /// server wrote it, and the next page follows the id of the page's last row, wherever its line breaks are.
    /// </summary>
    [Fact]
    public async Task Events_Csv_ALineBreakInACellOfAPagesLastRow_PrintedAsSentAndTheNextPageFollowsItsId()
    {
        const string Header = "id,at,type,deploymentId,service,actor,data,hash\r\n";
        const string First = "1,2026-12-07T10:00:00.000000Z,webhook.refused,r-1,shop,alice,\"{\"\"answer\"\":422}\",h1\r\n"
            + "2,2026-12-07T10:00:01.000000Z,webhook.refused,r-2,shop,\"Zoë \"\"Z\"\", ops\r\n\r\nteam\",\"{\"\"answer\"\":422}\",h2\r\n";
        const string Second = "3,2026-12-07T10:00:02.000000Z,webhook.refused,r-3,shop,alice,\"{\"\"answer\"\":422}\",h3\r\n";
        var urls = new List<string>();
        var (exit, output, error) = await AnsweredByAsync(new Recording(urls, new CsvPages(Header, First, Second, after: "2")), "events", "--csv");

        Assert.True(exit == 0, error);
        Assert.Equal(Header + First + Second, output);
        Assert.Equal(2, urls.Count);
        Assert.EndsWith("&after=2", urls[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Events_PlainText_AnActorWithALineBreakOrAnEscapeSequence_StaysInItsRowAsEscapes()
    {
        // A webhook's initiator is any text the pipeline sent; the trail keeps it as it came.
        const string Body = """
            {"events": [
              {"id": 7, "at": "2026-12-05T23:48:25Z", "type": "webhook.predeploy", "deploymentId": "gh-1", "actor": "alice\n8   2026-12-05T23:50:00Z  decision           gh-1        bob    {\"kind\": \"dismiss\"}", "data": {}, "hash": "ab"},
              {"id": 9, "at": "2026-12-05T23:48:26Z", "type": "webhook.deployed", "deploymentId": "gh-1", "actor": "\u001b[2Jmallory", "data": {}, "hash": "cd"}
            ], "next": null}
            """;
        var (exit, output, error) = await AnsweredByAsync(new CannedAnswer(HttpStatusCode.OK, "application/json", Body), "events");

        Assert.True(exit == 0, error);
        var lines = output.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n');
        Assert.Equal(3, lines.Length);
        Assert.Contains("  alice\\n8   2026-12-05T23:50:00Z  decision", lines[1], StringComparison.Ordinal);
        Assert.StartsWith("9 ", lines[2], StringComparison.Ordinal);
        Assert.Contains("  \\u001B[2Jmallory", lines[2], StringComparison.Ordinal);
        Assert.DoesNotContain('\u001b', output);
    }

    [Fact]
    public async Task Verify_IntactThenTampered_Exits0Then1()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "cli-3");

        var (intact, intactOutput, _) = await RunAsync(service, "verify");
        await service.Database.ExecuteAsync("SET session_replication_role = replica; UPDATE audit_events SET actor = 'mallory' WHERE type = 'webhook.predeploy'", asAdmin: true);
        var (broken, brokenOutput, _) = await RunAsync(service, "verify");

        Assert.Equal(0, intact);
        Assert.Contains("holds", intactOutput, StringComparison.Ordinal);
        Assert.Equal(1, broken);
        Assert.Contains("BROKEN", brokenOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_PrintsTheHead_AnAnchorFromItHoldsAsTheTrailGrows_AndExits1OnceTheTrailIsCutShort()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "cli-6");

        var (_, output, _) = await RunAsync(service, "verify");
        var head = System.Text.RegularExpressions.Regex.Match(output, "^head: ([0-9]+):([0-9a-f]{64})$", System.Text.RegularExpressions.RegexOptions.Multiline);
        Assert.True(head.Success, output);
        await service.Webhooks.SendEventAsync("deployed", "cli-6");
        var (holds, holdsOutput, _) = await RunAsync(service, "verify", "--anchor", head.Value["head: ".Length..]);
        await service.Database.ExecuteAsync($"SET session_replication_role = replica; DELETE FROM audit_events WHERE id >= {head.Groups[1].Value}", asAdmin: true);
        var (gone, goneOutput, _) = await RunAsync(service, "verify", "--anchor", head.Value["head: ".Length..]);

        Assert.Equal(0, holds);
        Assert.Contains($"event {head.Groups[1].Value} still as anchored", holdsOutput, StringComparison.Ordinal);
        Assert.Equal(1, gone);
        Assert.StartsWith($"audit chain does NOT match the anchor: event {head.Groups[1].Value} is gone", goneOutput, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("12:abc")]
    [InlineData("0:0000000000000000000000000000000000000000000000000000000000000000")]
    public async Task Verify_AnAnchorNotIdColonHash_Exits2AskingNothing(string anchor)
    {
        var asked = new List<string>();

        var (exit, _, error) = await AnsweredByAsync(
            new Recording(asked, new CannedAnswer(HttpStatusCode.OK, "application/json", "{\"ok\": true, \"events\": 3}")), ["verify", "--anchor", anchor]);

        Assert.Equal(2, exit);
        Assert.Empty(asked);
        Assert.StartsWith($"--anchor '{anchor}' is not ID:HASH", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Summary_PrintsAServiceRowUnderItsHeader_ADashForAMedianWithNothingToMeasure()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("deployed", "cli-4");

        var (exit, output, _) = await RunAsync(service, "summary");
        var (csvExit, csv, _) = await RunAsync(service, "summary", "--csv");

        Assert.Equal((0, 0), (exit, csvExit));
        // No regression and no rollback: the medians have nothing to measure. The CSV leaves them empty, as before.
        Assert.Equal(
            """
            SERVICE   DEPLOYMENTS  ROLLBACKS  CHANGE-FAILURE-RATE  MEDIAN-DETECT-S  MEDIAN-ROLLBACK-S  AUTO  HUMAN  DISMISSED
            checkout  1            0          0                    -                -                  0     0      0

            """.ReplaceLineEndings("\n"),
            output.ReplaceLineEndings("\n"));
        Assert.EndsWith("\ncheckout,1,0,0,,,0,0,0\r\n", csv, StringComparison.Ordinal);
    }

    /// <summary>
    /// The server ignores a query parameter it does not know: summary --actor bob printed the whole summary as if it were
    /// bob's. An option of another command is a usage error, and nothing is asked.
    /// </summary>
    [Theory]
    [InlineData("summary", "--actor", "bob")]
    [InlineData("summary", "--type", "decision")]
    [InlineData("summary", "--deployment-id", "gh-1")]
    [InlineData("summary", "--limit", "5")]
    [InlineData("verify", "--service", "checkout")]
    [InlineData("verify", "--csv", null)]
    [InlineData("events", "--anchor", "1:0000000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("events", "--environment", "production")]
    public async Task OptionOfAnotherCommand_Exits2SayingSo_WithoutAsking(string command, string option, string? value)
    {
        var asked = new List<string>();
        string[] args = value is null ? [command, option] : [command, option, value];

        var (exit, output, error) = await AnsweredByAsync(
            new Recording(asked, new CannedAnswer(HttpStatusCode.OK, "application/json", "{\"ok\": true, \"events\": 3, \"services\": []}")), args);

        Assert.Equal(2, exit);
        Assert.Equal("", output);
        Assert.StartsWith($"{option} does not apply to audit {command}\n", error.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.Empty(asked);
    }

    [Fact]
    public async Task NoToken_OrWrongToken_Exits2WithTheReason()
    {
        await using var service = await TestService.StartAsync();

        var (noToken, _, noTokenError) = await RunAsync(service, ["verify"], token: null);
        var (wrongToken, _, wrongTokenError) = await RunAsync(service, ["verify"], token: "nope");
        var (badUsage, _, _) = await RunAsync(service, "forge");

        Assert.Equal(2, noToken);
        Assert.Contains(AuditCommand.TokenVariable, noTokenError, StringComparison.Ordinal);
        Assert.Equal(2, wrongToken);
        Assert.Contains("401", wrongTokenError, StringComparison.Ordinal);
        Assert.Equal(2, badUsage);
    }

    /// <summary>
    /// A bad option value is refused naming the option and what it takes. A URL that is not http(s) was "'x' is not an
    /// absolute URL", without the option, and ftp://... was taken and failed later as no answer; it is now said as the gate
    /// commands say it.
    /// </summary>
    [Theory]
    [InlineData("--limit", "0", "--limit '0' is not a positive whole number")]
    [InlineData("--limit", "-5", "--limit '-5' is not a positive whole number")]
    [InlineData("--limit", "ten", "--limit 'ten' is not a positive whole number")]
    [InlineData("--url", "rolloutgate.example", "--url 'rolloutgate.example' is not an http(s) URL")]
    [InlineData("--url", "ftp://rolloutgate.example/", "--url 'ftp://rolloutgate.example/' is not an http(s) URL")]
    public async Task Events_BadOptionValue_Exits2NamingTheOption(string option, string value, string said)
    {
        using var http = new HttpClient(new CannedAnswer(HttpStatusCode.OK, "application/json", "{\"events\": [], \"next\": null}"));
        using var stderr = new StringWriter();

        var exit = await AuditCommand.RunAsync(["events", option, value], TextWriter.Null, stderr,
            name => name == AuditCommand.TokenVariable ? RolloutGateHost.ReaderToken : null, http);

        Assert.Equal(2, exit);
        Assert.StartsWith(said, stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_SaysTheLimitsDefaultAndTheTimesForms()
    {
        using var stdout = new StringWriter();
        using var http = new HttpClient();

        Assert.Equal(0, await AuditCommand.RunAsync(["--help"], stdout, TextWriter.Null, _ => null, http));
        Assert.Contains($"--limit N: the most events to print, a positive whole number, default {AuditCommand.DefaultLimit}", stdout.ToString(), StringComparison.Ordinal);
        Assert.Contains("--from and --to: ISO 8601 (2026-11-21T10:00:00Z", stdout.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://localhost/rolloutgate")]
    [InlineData("http://localhost/rolloutgate/")]
    public async Task Url_WithAPathPrefix_KeepsIt(string url)
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("deployed", "cli-5");
        var paths = new List<string>();
        using var http = service.Host.CreateDefaultClient(new UnderPrefix("/rolloutgate", paths));

        var exits = new List<int>();
        foreach (var command in new[] { "events", "verify", "summary" })
        {
            exits.Add(await AuditCommand.RunAsync([command, "--url", url], TextWriter.Null, TextWriter.Null,
                name => name == AuditCommand.TokenVariable ? RolloutGateHost.ReaderToken : null, http));
        }

        Assert.Equal([0, 0, 0], exits);
        Assert.Equal(["/rolloutgate/api/v1/audit/events", "/rolloutgate/api/v1/audit/verify", "/rolloutgate/api/v1/reports/summary"], paths);
    }

    [Theory]
    [InlineData("events", "text/html", "<html><body>Sign in</body></html>")]
    [InlineData("verify", "text/html", "<html><body>Sign in</body></html>")]
    [InlineData("summary", "text/html", "<html><body>Sign in</body></html>")]
    [InlineData("events", "application/json", "{}")]
    [InlineData("verify", "application/json", "{}")]
    [InlineData("summary", "application/json", "{}")]
    [InlineData("verify", "application/json", "null")]
    [InlineData("verify", "application/json", "{\"ok\": \"yes\", \"events\": 3}")]
    [InlineData("events", "application/json", "{\"events\": [{\"id\": \"one\"}], \"next\": null}")]
    public async Task AnswerThatIsNotRolloutGateJson_Exits2WithOneLine(string command, string mediaType, string body)
    {
        using var http = new HttpClient(new CannedAnswer(HttpStatusCode.OK, mediaType, body));
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exit = await AuditCommand.RunAsync([command, "--url", "http://rolloutgate.example/"], stdout, stderr,
            name => name == AuditCommand.TokenVariable ? RolloutGateHost.ReaderToken : null, http);

        Assert.Equal(2, exit);
        Assert.StartsWith("http://rolloutgate.example/ did not answer RolloutGate JSON: ", stderr.ToString(), StringComparison.Ordinal);
        Assert.Equal("", stdout.ToString());
        Assert.Single(stderr.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task UrlWithCredentials_TheErrorNamesItWithoutThem()
    {
        using var http = new HttpClient(new CannedAnswer(HttpStatusCode.OK, "text/html", "<html><body>Sign in</body></html>"));
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exit = await AuditCommand.RunAsync(["verify", "--url", "http://rolloutgate.example/?token=url-token"], stdout, stderr,
            name => name == AuditCommand.TokenVariable ? RolloutGateHost.ReaderToken : null, http);

        Assert.Equal(2, exit);
        Assert.StartsWith("http://rolloutgate.example/?… did not answer RolloutGate JSON: ", stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("url-", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UrlWithUserInfo_IsRefused_WithoutAskingOrShowingIt()
    {
        // The reader token goes in the Authorization header, where the user info would go as basic credentials: one would
        // be dropped unsaid (.NET's HttpClient never sends user info), and a proxy in front answered a 401 with no hint.
        var asked = new List<string>();
        using var http = new HttpClient(new Recording(asked, new CannedAnswer(HttpStatusCode.OK, "application/json", "{\"ok\": true, \"events\": 3}")));
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exit = await AuditCommand.RunAsync(["verify", "--url", "http://auditor:url-password@rolloutgate.example/?token=url-token"], stdout, stderr,
            name => name == AuditCommand.TokenVariable ? RolloutGateHost.ReaderToken : null, http);

        Assert.Equal((2, "", 0), (exit, stdout.ToString(), asked.Count));
        Assert.Equal(
            "--url 'http://rolloutgate.example/?…' has user info (user:password@), which would go as basic authentication in the Authorization header "
            + $"that the bearer token of {AuditCommand.TokenVariable} takes: a request carries one; drop the user info from the URL" + Environment.NewLine,
            stderr.ToString());
    }

    [Fact]
    public async Task UrlWithAQuery_EveryRequestKeepsIt_BeforeItsOwnParameters()
    {
        var asked = new List<string>();
        using var http = new HttpClient(new Recording(asked, new CannedAnswer(HttpStatusCode.OK, "application/json", "{\"ok\": true, \"events\": 3}")));

        var exit = await AuditCommand.RunAsync(["verify", "--url", "http://rolloutgate.example/rolloutgate?proxy-key=k1"], TextWriter.Null, TextWriter.Null,
            name => name == AuditCommand.TokenVariable ? RolloutGateHost.ReaderToken : null, http);
        await AuditCommand.RunAsync(["summary", "--service", "checkout", "--url", "http://rolloutgate.example/rolloutgate/?proxy-key=k1"], TextWriter.Null, TextWriter.Null,
            name => name == AuditCommand.TokenVariable ? RolloutGateHost.ReaderToken : null, http);

        Assert.Equal(0, exit);
        Assert.Equal(
            ["http://rolloutgate.example/rolloutgate/api/v1/audit/verify?proxy-key=k1", "http://rolloutgate.example/rolloutgate/api/v1/reports/summary?proxy-key=k1&service=checkout"],
            asked);
    }

    [Fact]
    public async Task CsvAskedButHtmlAnswered_Exits2WithoutPrintingIt()
    {
        using var http = new HttpClient(new CannedAnswer(HttpStatusCode.OK, "text/html", "<html><body>Sign in</body></html>"));
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exit = await AuditCommand.RunAsync(["events", "--csv", "--url", "http://rolloutgate.example/"], stdout, stderr,
            name => name == AuditCommand.TokenVariable ? RolloutGateHost.ReaderToken : null, http);

        Assert.Equal(2, exit);
        Assert.Equal("", stdout.ToString());
        Assert.StartsWith("http://rolloutgate.example/ did not answer RolloutGate CSV: text/html: <html>", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CsvAskedButHtmlAnswered_WithAnEmojiWhereItsQuoteIsCut_TheQuoteEndsBeforeTheEmoji()
    {
        // The 200th character of the page is the first half of an emoji: it was quoted with half of it (U+FFFD in a terminal).
        var page = "<html>" + new string('x', 193) + "\U0001F600</html>";
        using var http = new HttpClient(new CannedAnswer(HttpStatusCode.OK, "text/html", page));
        using var stderr = new StringWriter();

        var exit = await AuditCommand.RunAsync(["events", "--csv", "--url", "http://rolloutgate.example/"], TextWriter.Null, stderr,
            name => name == AuditCommand.TokenVariable ? RolloutGateHost.ReaderToken : null, http);

        Assert.Equal(2, exit);
        Assert.Equal($"http://rolloutgate.example/ did not answer RolloutGate CSV: text/html: <html>{new string('x', 193)}...", stderr.ToString().TrimEnd());
    }

    private static Task<(int Exit, string Output, string Error)> RunAsync(TestService service, params string[] args) =>
        RunAsync(service, args, RolloutGateHost.ReaderToken);

    private static async Task<(int Exit, string Output, string Error)> RunAsync(TestService service, string[] args, string? token)
    {
        using var http = service.Host.CreateClient();
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await AuditCommand.RunAsync([.. args, "--url", http.BaseAddress!.ToString()], stdout, stderr,
            name => name == AuditCommand.TokenVariable ? token : null, http);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    /// <summary>The command run against <paramref name="server"/> (a canned answer) at http://rolloutgate.example/, with the reader token.</summary>
    private static async Task<(int Exit, string Output, string Error)> AnsweredByAsync(HttpMessageHandler server, params string[] args)
    {
        using var http = new HttpClient(server);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await AuditCommand.RunAsync([.. args, "--url", "http://rolloutgate.example/"], stdout, stderr,
            name => name == AuditCommand.TokenVariable ? RolloutGateHost.ReaderToken : null, http);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Each request's URL, in order, before <paramref name="server"/> answers it.</summary>
    private sealed class Recording(List<string> urls, HttpMessageHandler server) : DelegatingHandler(server)
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            urls.Add(request.RequestUri!.AbsoluteUri);
            return base.SendAsync(request, cancellationToken);
        }
    }

    /// <summary>Two pages of audit events as CSV: the first with a Link to the second, which <c>after</c> names; any other cursor is refused.</summary>
    private sealed class CsvPages(string header, string first, string second, string after) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var query = Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(request.RequestUri!.Query);
            if (!query.TryGetValue("after", out var cursor))
            {
                var page = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(header + first, System.Text.Encoding.UTF8, "text/csv") };
                page.Headers.Add("Link", $"</api/v1/audit/events?limit=500&after={after}>; rel=\"next\"");
                return Task.FromResult(page);
            }

            return Task.FromResult(cursor == after
                ? new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(header + second, System.Text.Encoding.UTF8, "text/csv") }
                : new HttpResponseMessage(HttpStatusCode.BadRequest) { Content = new StringContent($"after '{cursor}' is not an event id") });
        }
    }

    /// <summary>A reverse proxy that serves RolloutGate under a path prefix: it strips the prefix, and answers 404 without it.</summary>
    private sealed class UnderPrefix(string prefix, List<string> paths) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var path = request.RequestUri!.AbsolutePath;
            paths.Add(path);
            if (!path.StartsWith(prefix + "/", StringComparison.Ordinal))
            {
                return Task.FromResult(new HttpResponseMessage(HttpStatusCode.NotFound));
            }

            request.RequestUri = new UriBuilder(request.RequestUri) { Path = path[prefix.Length..] }.Uri;
            return base.SendAsync(request, cancellationToken);
        }
    }
}
