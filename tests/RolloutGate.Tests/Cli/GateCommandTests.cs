using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using RolloutGate.Cli;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Cli;

/// <summary>
/// <c>gate</c> as a pipeline runs it, against the real service on a real test database: exit codes, the printed
/// verdict, and retries that stay within the deadline and reuse one delivery id.
/// </summary>
public sealed class GateCommandTests : IDisposable
{
    private static readonly TimeSpan QuickRetries = TimeSpan.FromMilliseconds(20);

    private readonly StringWriter stdout = new();
    private readonly StringWriter stderr = new();

    public void Dispose()
    {
        stdout.Dispose();
        stderr.Dispose();
    }

    /// <summary>A runbook whose only own check is a freeze window that a Wednesday is outside of.</summary>
    private static string RunbookWithFreezeCheck() =>
        TestRunbooks.Minimal().Replace("\n  watch:", string.Join("\n",
        [
            "",
            "  preDeploy:",
            "    checks:",
            "      - name: change-freeze",
            "        freeze:",
            "          timezone: UTC",
            "          windows: [\"Sat 00:00 - Sat 00:01\"]",
            "  watch:",
        ]), StringComparison.Ordinal);

    private static Dictionary<string, string?> SignedEnvironment(string secret = RolloutGateHost.WebhookSecret) =>
        new() { [GateCommand.SecretVariable] = secret };

    private Task<int> RunAsync(HttpClient? http, IReadOnlyDictionary<string, string?> environment, params string[] args) =>
        GateCommand.RunAsync(args, stdout, stderr, name => environment.GetValueOrDefault(name), http, TimeProvider.System, QuickRetries);

    private Task<int> GateAsync(TestService service, string @event, string deploymentId, params string[] more) =>
        RunAsync(service.Client, SignedEnvironment(),
            [@event, "--url", "http://localhost", "--deployment-id", deploymentId, "--service", "checkout", "--environment", "production",
             "--initiator", "alice", "--version", "2.4.0", .. more]);

    /// <summary>
    /// <paramref name="event"/> of <paramref name="deploymentId"/> against a server that answers every request with
    /// <paramref name="status"/> and <paramref name="body"/>: how the command reads answers the real service does not give
    /// (an earlier RolloutGate's, a proxy's, a broken one).
    /// </summary>
    private async Task<int> AnsweredAsync(HttpStatusCode status, string mediaType, string body, string @event, string deploymentId, params string[] more)
    {
        using var http = new HttpClient(new CannedAnswer(status, mediaType, body));
        return await RunAsync(http, SignedEnvironment(),
            [@event, "--url", "http://localhost", "--deployment-id", deploymentId, "--service", "checkout", "--environment", "production", .. more]);
    }

    /// <summary>
    /// The lines <c>gate deployed</c> of <paramref name="deploymentId"/> prints when the service takes it (202) answering
    /// <paramref name="answer"/>; it must exit 0.
    /// </summary>
    private async Task<string[]> DeployedPrintsAsync(string deploymentId, string answer)
    {
        var exit = await AnsweredAsync(HttpStatusCode.Accepted, "application/json", answer, "deployed", deploymentId);
        Assert.True(exit == 0, stdout + "\n" + stderr);
        return stdout.ToString().Split(Environment.NewLine);
    }

    [Fact]
    public async Task Predeploy_Allowed_ExitsZeroAndPrintsEachCheckAndTheRunbook()
    {
        await using var service = await TestService.StartAsync(("checkout.yaml", RunbookWithFreezeCheck()));

        var exit = await GateAsync(service, "predeploy", "gate-1", "--at", "2026-11-18T10:00:00Z");

        Assert.True(exit == 0, stdout + "\n" + stderr);
        var lines = stdout.ToString().Split(Environment.NewLine);
        Assert.Equal("predeploy gate-1 (checkout in production): ALLOW", lines[0]);
        Assert.Matches(@"^  CHECK +STATUS  DETAIL$", lines[1]);
        Assert.Matches(@"^  change-freeze +pass    \S", lines[2]);
        Assert.Equal(lines[1].IndexOf("STATUS", StringComparison.Ordinal), lines[2].IndexOf("pass", StringComparison.Ordinal));
        Assert.Matches("^runbook checkout v1 sha256:[0-9a-f]{64}$", lines[3]);
    }

    [Fact]
    public async Task Predeploy_AnotherChangeWatching_ExitsOneNamingTheBlockingDeployment()
    {
        await using var service = await TestService.StartAsync();
        Assert.Equal(0, await GateAsync(service, "predeploy", "first"));
        Assert.Equal(0, await GateAsync(service, "deployed", "first"));
        Assert.Matches(@"deployed first \(checkout in production\): watching until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stdout.ToString());
        stdout.GetStringBuilder().Clear();

        var exit = await GateAsync(service, "predeploy", "second");

        Assert.Equal(1, exit);
        Assert.StartsWith("predeploy second (checkout in production): DENY", stdout.ToString(), StringComparison.Ordinal);
        Assert.Matches(@"one-change-at-a-time +fail +deployment 'first' of checkout in production is still watching", stdout.ToString());
    }

    /// <summary>
    /// The command is run as a shell reads it, split by bash: a deployment id may hold spaces, quotes and $ (the webhook
    /// refuses only '/' and control characters), and the printed command must hand it back whole.
    /// </summary>
    [Theory]
    [InlineData("abandoned", "cancelled --deployment-id abandoned --service checkout --environment production")]
    [InlineData("run 8812 'b' $HOME", "cancelled --deployment-id 'run 8812 '\\''b'\\'' $HOME' --service checkout --environment production")]
    public async Task Predeploy_HeldByAChangeAllowedButNeverDeployed_PrintsTheGateCommandThatClearsIt_WhichDoes(string abandoned, string printed)
    {
        // The pipeline of the abandoned change died between its gate step and its deploy step, and never sent cancelled.
        await using var service = await TestService.StartAsync();
        Assert.Equal(0, await GateAsync(service, "predeploy", abandoned));
        stdout.GetStringBuilder().Clear();
        Assert.Equal(1, await GateAsync(service, "predeploy", "held"));
        var command = System.Text.RegularExpressions.Regex.Match(stdout.ToString(), @"\(rolloutgate gate (cancelled .+? --environment production)\)").Groups[1].Value;
        Assert.Equal(printed, command);
        stdout.GetStringBuilder().Clear();

        var cancelled = await RunAsync(service.Client, SignedEnvironment(), [.. await ShellWordsAsync(command), "--url", "http://localhost"]);

        Assert.True(cancelled == 0, stdout + "\n" + stderr);
        Assert.Equal($"cancelled {abandoned} (checkout in production): cancelled" + Environment.NewLine, stdout.ToString());
        Assert.Equal(0, await GateAsync(service, "predeploy", "next"));
    }

    /// <summary>The words bash splits <paramref name="command"/> into, quotes removed and nothing expanded but what bash would.</summary>
    private static async Task<string[]> ShellWordsAsync(string command)
    {
        var bash = new System.Diagnostics.ProcessStartInfo("bash", ["-c", $"printf '%s\\0' {command}"]) { RedirectStandardOutput = true };
        using var process = System.Diagnostics.Process.Start(bash)!;
        var words = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.Equal(0, process.ExitCode);
        return words.TrimEnd('\0').Split('\0');
    }

    [Fact]
    public async Task Deployed_AfterADeny_ExitsZeroWatchingAndWarnsTheGateWasOverridden()
    {
        // The deploy happened: "gate deployed" turned the pipeline red (409) and the change went unwatched.
        await using var service = await TestService.StartAsync(("checkout.yaml", RunbookWithFreezeCheck()));
        Assert.Equal(1, await GateAsync(service, "predeploy", "gate-o", "--at", "2026-11-21T00:00:30Z"));
        stdout.GetStringBuilder().Clear();

        var exit = await GateAsync(service, "deployed", "gate-o", "--at", "2026-11-21T00:00:40Z");

        Assert.True(exit == 0, stdout + "\n" + stderr);
        var lines = stdout.ToString().Split(Environment.NewLine);
        Assert.Matches(@"^deployed gate-o \(checkout in production\): watching until 2026-11-22T00:00:40Z$", lines[0]);
        Assert.Equal("warning: deployed although the pre-deploy gate denied it: change-freeze failed", lines[1]);
    }

    [Fact]
    public async Task Cancelled_AfterAllow_ExitsZeroPrintingTheState()
    {
        await using var service = await TestService.StartAsync();
        Assert.Equal(0, await GateAsync(service, "predeploy", "gate-c"));
        stdout.GetStringBuilder().Clear();

        var exit = await GateAsync(service, "cancelled", "gate-c");

        Assert.True(exit == 0, stderr.ToString());
        Assert.Equal("cancelled gate-c (checkout in production): cancelled" + Environment.NewLine, stdout.ToString());
    }

    [Fact]
    public async Task Deployed_WithTheDeliveryIdOfThePredeploy_ExitsTwo_TheWatchNotStarted()
    {
        await using var service = await TestService.StartAsync();
        Assert.Equal(0, await GateAsync(service, "predeploy", "gate-r", "--delivery-id", "run-7"));

        // The server answers the id it has seen with the predeploy's answer: a 200 that must not pass for a watch.
        var exit = await GateAsync(service, "deployed", "gate-r", "--delivery-id", "run-7");

        Assert.Equal(2, exit);
        Assert.Equal(
            "gate: delivery id 'run-7' was used before for another body: the answer is that delivery's, and this deployed was not "
            + "applied; give each event its own --delivery-id" + Environment.NewLine,
            stderr.ToString());
        Assert.Equal("allowed", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'gate-r'"));
    }

    [Fact]
    public async Task Predeploy_JsonFlag_PrintsTheServersAnswer()
    {
        await using var service = await TestService.StartAsync();

        var exit = await GateAsync(service, "predeploy", "gate-j", "--json");

        Assert.Equal(0, exit);
        using var document = System.Text.Json.JsonDocument.Parse(stdout.ToString());
        Assert.Equal("allow", document.RootElement.GetProperty("verdict").GetString());
        Assert.Equal("gate-j", document.RootElement.GetProperty("deploymentId").GetString());
    }

    [Fact]
    public async Task Predeploy_BearerTokenInsteadOfSecret_IsAccepted()
    {
        await using var service = await TestService.StartAsync();

        var exit = await RunAsync(service.Client, new Dictionary<string, string?> { [GateCommand.TokenVariable] = RolloutGateHost.WebhookToken },
            "predeploy", "--url", "http://localhost", "--deployment-id", "gate-t", "--service", "checkout", "--environment", "production", "--initiator", "ci");

        Assert.True(exit == 0, stderr.ToString());
    }

    [Fact]
    public async Task WrongSecret_ExitsTwoPrintingThe401DetailWithoutRetrying()
    {
        await using var service = await TestService.StartAsync();

        var exit = await RunAsync(service.Client, SignedEnvironment("not-the-secret"),
            "predeploy", "--url", "http://localhost", "--deployment-id", "gate-w", "--service", "checkout", "--environment", "production");

        Assert.Equal(2, exit);
        Assert.Equal(
            "gate: predeploy refused: HTTP 401 Not authenticated: the signature does not match: the HMAC-SHA256, keyed with the webhook secret, of "
            + "\"{X-RolloutGate-Timestamp}.{the body's exact bytes}\"" + Environment.NewLine,
            stderr.ToString());
        Assert.Equal(0, await service.CountAsync("deployments"));
    }

    [Fact]
    public async Task UnknownService_ExitsTwoPrintingThe422Detail()
    {
        await using var service = await TestService.StartAsync();

        var exit = await RunAsync(service.Client, SignedEnvironment(),
            "predeploy", "--url", "http://localhost", "--deployment-id", "gate-u", "--service", "nobody", "--environment", "production");

        Assert.Equal(2, exit);
        Assert.StartsWith("gate: predeploy refused: HTTP 422 Not governed: ", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("nobody", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServerDown_ExitsTwoAfterTheGivenRetries()
    {
        var exit = await RunAsync(null, SignedEnvironment(),
            "deployed", "--url", $"http://127.0.0.1:{ClosedPort()}", "--deployment-id", "gate-d", "--service", "checkout", "--environment", "production",
            "--retries", "2");

        Assert.Equal(2, exit);
        var errors = stderr.ToString();
        Assert.Equal(2, errors.Split("retrying in").Length - 1);
        Assert.Contains("ConnectionError", errors, StringComparison.Ordinal);
        Assert.Contains("(3 attempts)", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UrlWithCredentials_NeitherItsUserInfoNorItsQueryIsPrinted()
    {
        // What the gate prints stays in the pipeline's log; a URL may carry a proxy's user info or a token in its query.
        var notHttp = await RunAsync(null, SignedEnvironment(),
            "predeploy", "--url", "htp://deployer:url-password@rolloutgate.example/?token=url-token", "--deployment-id", "gate-u", "--service", "checkout",
            "--environment", "production");
        var port = ClosedPort();
        var down = await RunAsync(null, SignedEnvironment(),
            "predeploy", "--url", $"http://deployer:url-password@127.0.0.1:{port}/?token=url-token", "--deployment-id", "gate-u", "--service", "checkout",
            "--environment", "production", "--retries", "0");

        Assert.Equal((2, 2), (notHttp, down));
        var errors = stderr.ToString();
        Assert.StartsWith("gate: --url 'htp://rolloutgate.example/?…' is not an http(s) URL", errors, StringComparison.Ordinal);
        Assert.Contains($"gate: no answer from http://127.0.0.1:{port}/?…: ConnectionError", errors, StringComparison.Ordinal);
        Assert.DoesNotContain("url-password", errors, StringComparison.Ordinal);
        Assert.DoesNotContain("url-token", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UrlWithUserInfo_SignedGate_SendsItAsBasicCredentials_TokenGateIsRefused()
    {
        // A proxy with basic authentication in front of RolloutGate: .NET's HttpClient never sends user info by itself.
        await using var service = await TestService.StartAsync();
        using var proxy = new HttpClient(new BasicAuthProxy("deployer", "p@ss", service.Host.Server.CreateHandler()));
        const string url = "http://deployer:p%40ss@localhost/";

        var signed = await RunAsync(proxy, SignedEnvironment(),
            "predeploy", "--url", url, "--deployment-id", "gate-b", "--service", "checkout", "--environment", "production");
        // Past the proxy: RolloutGate's own verdict (its checks decide ALLOW or DENY), not the proxy's 401.
        Assert.Equal("", stderr.ToString());
        Assert.InRange(signed, 0, 1);
        Assert.StartsWith("predeploy gate-b (checkout in production): ", stdout.ToString(), StringComparison.Ordinal);

        var withToken = await RunAsync(proxy, new Dictionary<string, string?> { [GateCommand.TokenVariable] = RolloutGateHost.WebhookToken },
            "predeploy", "--url", url, "--deployment-id", "gate-t", "--service", "checkout", "--environment", "production");

        Assert.Equal(2, withToken);
        Assert.StartsWith(
            "gate: --url 'http://localhost/' has user info (user:password@), which would go as basic authentication in the Authorization header "
            + $"that the bearer token of {GateCommand.TokenVariable} takes: a request carries one; drop the user info from the URL, or sign with {GateCommand.SecretVariable} instead",
            stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("p%40ss", stderr.ToString(), StringComparison.Ordinal);
        Assert.Equal(1, await service.CountAsync("deployments"));
    }

    /// <summary>A reverse proxy that lets through only requests with its basic credentials, and answers 401 to the rest.</summary>
    private sealed class BasicAuthProxy(string user, string password, HttpMessageHandler server) : DelegatingHandler(server)
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            request.Headers.Authorization is { Scheme: "Basic", Parameter: var basic }
            && basic == Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{user}:{password}"))
                ? base.SendAsync(request, cancellationToken)
                : Task.FromResult(new HttpResponseMessage(HttpStatusCode.Unauthorized));
    }

    [Fact]
    public async Task NoAnswerFromTheDefaultUrl_GateWaitAndAudit_SayHowToNameAnother()
    {
        // run.sh started on ROLLOUTGATE_PORT, the shell without ROLLOUTGATE_URL: nothing answers at the default. No network
        // is asked (something may listen on 8080 here); the client fails every request as a closed port does.
        using var refusing = new HttpClient(new Unreachable());
        using var auditErrors = new StringWriter();

        var gate = await RunAsync(refusing, SignedEnvironment(),
            "predeploy", "--deployment-id", "gate-d", "--service", "checkout", "--environment", "production", "--retries", "0");
        var wait = await GateWait.RunAsync(["--deployment-id", "gate-d", "--for", "1m", "--retries", "0"], stdout, stderr,
            name => name == GateWait.ReaderTokenVariable ? RolloutGateHost.ReaderToken : null, refusing, TimeProvider.System, QuickRetries, default, () => "SIGTERM");
        var audit = await AuditCommand.RunAsync(["verify"], stdout, auditErrors,
            name => name == AuditCommand.TokenVariable ? RolloutGateHost.ReaderToken : null, refusing);
        var named = await RunAsync(refusing, SignedEnvironment(),
            "predeploy", "--url", "http://127.0.0.1:8081", "--deployment-id", "gate-d", "--service", "checkout", "--environment", "production", "--retries", "0");

        Assert.Equal([2, 2, 2, 2], [gate, wait, audit, named]);
        var lines = stderr.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        var hint = "no answer from http://127.0.0.1:8080/ (the default; --url or ROLLOUTGATE_URL names another): ";
        Assert.Equal(2, lines.Count(line => line.StartsWith("gate: " + hint, StringComparison.Ordinal)));
        Assert.StartsWith(hint, auditErrors.ToString(), StringComparison.Ordinal);
        Assert.Contains(lines, line => line.StartsWith("gate: no answer from http://127.0.0.1:8081/: ", StringComparison.Ordinal));
    }

    /// <summary>Every request fails as one to a port nobody listens on.</summary>
    private sealed class Unreachable : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            throw new HttpRequestException(HttpRequestError.ConnectionError, $"Connection refused ({request.RequestUri!.Authority})");
    }

    [Fact]
    public async Task ServerDown_ManyRetries_StopsAtTheTimeout()
    {
        var clock = Stopwatch.StartNew();

        var exit = await GateCommand.RunAsync(
            ["predeploy", "--url", $"http://127.0.0.1:{ClosedPort()}", "--deployment-id", "gate-t", "--service", "checkout", "--environment", "production",
             "--retries", "100", "--timeout", "1500ms"],
            stdout, stderr, _ => "secret", null, TimeProvider.System, TimeSpan.FromMilliseconds(200));

        Assert.Equal(2, exit);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10));
        Assert.Contains("no answer within 1.5s", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("last attempt: ConnectionError", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task FlakyServer_RetriesTheSameDeliveryAndGetsTheAnswer()
    {
        await using var service = await TestService.StartAsync();
        await using var flaky = await new LoopbackProxy(service.Client, failFirst: 2).StartAsync();

        var exit = await RunAsync(null, SignedEnvironment(),
            "predeploy", "--url", flaky.Url, "--deployment-id", "gate-f", "--service", "checkout", "--environment", "production",
            "--initiator", "alice");

        Assert.True(exit == 0, stdout + "\n" + stderr);
        Assert.Equal(3, flaky.Deliveries.Count);
        Assert.Single(flaky.Deliveries.Distinct());
        Assert.StartsWith("predeploy-", flaky.Deliveries[0], StringComparison.Ordinal);
        Assert.Equal(2, stderr.ToString().Split("HTTP 503").Length - 1);
        Assert.Equal(1, await service.CountAsync("webhook_deliveries"));
    }

    [Theory]
    [InlineData("deployed", "{}", "no deploymentId, state, watchUntil")]
    [InlineData("deployed", "{\"deploymentId\": null, \"state\": null, \"watchUntil\": \"2026-11-21T10:30:00Z\"}", "no deploymentId, state")]
    [InlineData("deployed", "{\"deploymentId\": \"gate-x\", \"state\": \"watching\"}", "no watchUntil")]
    [InlineData("deployed", "{\"deploymentId\": \"gate-x\", \"state\": \"watching\", \"watchUntil\": null}", "")]
    [InlineData("rolledback", "{}", "no deploymentId, state")]
    [InlineData("cancelled", "{\"deploymentId\": \"gate-x\", \"state\": null}", "no state")]
    [InlineData("cancelled", "null", "")]
    [InlineData("deployed", "<html>Sign in</html>", "")]
    [InlineData("deployed", "{\"deploymentId\": \"gate-y\", \"state\": \"watching\", \"watchUntil\": \"2026-11-21T10:30:00Z\"}", "it answers for deployment 'gate-y', not 'gate-x'")]
    [InlineData("cancelled", "{\"deploymentId\": \"gate-y\", \"state\": \"cancelled\"}", "it answers for deployment 'gate-y', not 'gate-x'")]
    [InlineData("predeploy", "{\"deploymentId\": \"gate-y\", \"verdict\": \"allow\", \"checks\": [], \"runbook\": {\"name\": \"checkout\", \"version\": 1, \"sha256\": \"ab\"}}", "it answers for deployment 'gate-y', not 'gate-x'")]
    [InlineData("predeploy", "{\"verdict\": \"allow\", \"checks\": [], \"runbook\": {\"name\": \"checkout\", \"version\": 1, \"sha256\": \"ab\"}}", "no deploymentId")]
    public async Task AnswerWithoutItsRequiredFields_ExitsTwo(string @event, string body, string reason)
    {
        foreach (var json in new[] { false, true })
        {
            stdout.GetStringBuilder().Clear();
            stderr.GetStringBuilder().Clear();
            var exit = await AnsweredAsync(HttpStatusCode.Accepted, "application/json", body, @event, "gate-x", json ? ["--json"] : []);

            Assert.Equal(2, exit);
            Assert.StartsWith("gate: HTTP 202 with an answer this gate cannot read", stderr.ToString(), StringComparison.Ordinal);
            Assert.Contains(reason, stderr.ToString(), StringComparison.Ordinal);
            Assert.Equal(json ? body + Environment.NewLine : "", stdout.ToString());
        }
    }

    [Theory]
    [InlineData("{\"status\": \"skipped\", \"failedChecks\": [], \"summary\": \"deployed without a predeploy: its pre-deploy checks were not run\"}")]
    [InlineData("\"deployed without a predeploy: its pre-deploy checks were not run\"")]
    public async Task Deployed_GateBypassedAsThisOrAnEarlierRolloutGateAnswersIt_ExitsZeroAndWarns(string preDeployGate)
    {
        // An earlier RolloutGate answered preDeployGate as one line, and replays that answer to a retry of a delivery it answered.
        var printed = await DeployedPrintsAsync("gate-b",
            $"{{\"deploymentId\": \"gate-b\", \"state\": \"watching\", \"watchUntil\": \"2026-11-22T10:00:00Z\", \"preDeployGate\": {preDeployGate}}}");

        Assert.Equal(
            ["deployed gate-b (checkout in production): watching until 2026-11-22T10:00:00Z", "warning: deployed without a predeploy: its pre-deploy checks were not run", ""],
            printed);
    }

    [Fact]
    public async Task Deployed_ThatSupersededEarlierWatches_SaysWhichItEnded()
    {
        var printed = await DeployedPrintsAsync("gate-c",
            "{\"deploymentId\": \"gate-c\", \"state\": \"watching\", \"watchUntil\": \"2026-11-22T10:00:00Z\", \"superseded\": [\"gate-a\", \"gate-b\"]}");

        Assert.Equal(
            ["deployed gate-c (checkout in production): watching until 2026-11-22T10:00:00Z", "ended the watch of gate-a, gate-b: this deploy replaced them", ""],
            printed);
    }

    [Fact]
    public async Task Deployed_Late_AfterTheChangeThatReplacedIt_SaysItsWatchEndedAtOnce()
    {
        var printed = await DeployedPrintsAsync("gate-a",
            "{\"deploymentId\": \"gate-a\", \"state\": \"stopped\", \"watchUntil\": \"2026-11-22T10:00:00Z\", \"supersededBy\": \"gate-b\"}");

        Assert.Equal(
            ["deployed gate-a (checkout in production): stopped at once: gate-b, deployed after it, had already replaced it (watch.onNewerDeploy: stop)", ""],
            printed);
    }

    public static TheoryData<string, string, string> HugeRefusals => new()
    {
        // A problem whose detail is a page: a proxy's, or a service that quotes what it was sent.
        { "application/problem+json", $"{{\"title\": \"Forbidden\", \"detail\": \"{new string('x', 100_000)}\"}}", "HTTP 403 Forbidden: " + new string('x', 500 - " Forbidden: ".Length) + "..." },
        { "text/html", "<html>" + new string('x', 100_000) + "</html>", "HTTP 403: <html>" + new string('x', 494) + "..." },
        { "application/json", $"[\"{new string('x', 100_000)}\"]", "HTTP 403: [\"" + new string('x', 498) + "..." },
        // An emoji where the quote is cut: it ends before it, not with half of it (U+FFFD in a terminal).
        { "application/problem+json", $"{{\"title\": \"Forbidden\", \"detail\": \"{new string('x', 487)}\U0001F600{new string('x', 100)}\"}}", "HTTP 403 Forbidden: " + new string('x', 487) + "..." },
        { "text/html", "<html>" + new string('x', 10 * 1024 * 1024) + "</html>", "" },
    };

    [Theory]
    [MemberData(nameof(HugeRefusals))]
    public async Task Refused_WithAHugeAnswer_QuotesItsStartOnly(string mediaType, string body, string quoted)
    {
        var exit = await AnsweredAsync(HttpStatusCode.Forbidden, mediaType, body, "predeploy", "gate-h");

        Assert.Equal(2, exit);
        Assert.Equal(
            quoted.Length > 0
                ? $"gate: predeploy refused: {quoted}"
                : "gate: no answer from http://localhost/: answer too large: HTTP 403 with more than 1 MiB, which no answer of RolloutGate's is (1 attempt)",
            stderr.ToString().TrimEnd());
        Assert.Equal("", stdout.ToString());
    }

    [Fact]
    public async Task ServiceUnavailableWithRetryAfter_WaitsAsItAsksThenSucceeds()
    {
        using var http = new HttpClient(new UnavailableOnce(TimeSpan.FromSeconds(1),
            """{"deploymentId": "gate-ra", "state": "watching", "watchUntil": "2026-11-22T10:00:00Z"}"""));

        var exit = await RunAsync(http, SignedEnvironment(),
            "deployed", "--url", "http://localhost", "--deployment-id", "gate-ra", "--service", "checkout", "--environment", "production");

        Assert.True(exit == 0, stdout + "\n" + stderr);
        Assert.Contains("gate: attempt 1 failed (HTTP 503 Service Unavailable); retrying in 1s", stderr.ToString(), StringComparison.Ordinal);
    }

    /// <summary>Answers 503 with Retry-After once, as the service does while its database is away, then 202 with the body.</summary>
    private sealed class UnavailableOnce(TimeSpan retryAfter, string body) : HttpMessageHandler
    {
        private int calls;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                var unavailable = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
                unavailable.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(retryAfter);
                return Task.FromResult(unavailable);
            }

            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.Accepted)
            {
                Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json"),
            });
        }
    }

    /// <summary><c>gate --help</c> states each option's default and bounds, the same the commands hold them to.</summary>
    [Fact]
    public async Task Help_StatesEachOptionsDefaultAndBounds()
    {
        Assert.Equal(0, await RunAsync(null, new Dictionary<string, string?>(), "--help"));

        var usage = stdout.ToString();
        Assert.Contains($"--timeout      one request with its retries, in all: default {GateCommand.DefaultTimeout.TotalSeconds:0}s, at most {GateCommand.MaxTimeout.TotalHours:0}h", usage, StringComparison.Ordinal);
        Assert.Contains($"--retries      how often a request is retried (5xx, 408, 429, no answer): default {GateCommand.DefaultRetries}, from 0 to {GateCommand.MaxRetries}", usage, StringComparison.Ordinal);
        Assert.Contains($"--for          how long wait waits: required, at most {GateWait.MaxFor.TotalDays:0} days ({GateWait.MaxFor.TotalHours:0}h)", usage, StringComparison.Ordinal);
        Assert.Contains($"--interval     how often wait reads the deployment: default {GateWait.DefaultInterval.TotalSeconds:0}s (give or take a fifth), at most {GateWait.MaxInterval.TotalHours:0}h", usage, StringComparison.Ordinal);
        Assert.Contains($"--delivery-id  the idempotency key, at most {GateCommand.MaxDeliveryIdLength} characters", usage, StringComparison.Ordinal);
        Assert.Contains("--at           the event's time, ISO 8601 with Z or an offset", usage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MissingArgumentsOrSecret_ExitTwoWithoutSending()
    {
        var noService = await RunAsync(null, SignedEnvironment(), "predeploy", "--deployment-id", "x", "--environment", "production");
        var noSecret = await RunAsync(null, new Dictionary<string, string?>(), "predeploy", "--deployment-id", "x", "--service", "s", "--environment", "e");
        var badEvent = await RunAsync(null, SignedEnvironment(), "deploy", "--deployment-id", "x", "--service", "s", "--environment", "e");
        var twice = await RunAsync(null, SignedEnvironment(), "predeploy", "--deployment-id", "x", "--service", "s", "--environment", "e", "--deployment-id=y");

        Assert.Equal([2, 2, 2, 2], [noService, noSecret, badEvent, twice]);
        Assert.Contains("gate: --deployment-id is given more than once", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("gate: missing --service", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains($"gate: set {GateCommand.SecretVariable}", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("gate: the event 'deploy' is not one of predeploy, deployed, rolledback, cancelled", stderr.ToString(), StringComparison.Ordinal);
    }

    internal static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
