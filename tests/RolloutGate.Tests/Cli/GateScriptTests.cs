using System.Diagnostics;
using System.Text.RegularExpressions;
using RolloutGate.Cli;
using RolloutGate.Infrastructure;
using RolloutGate.Tests.Dashboard;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Cli;

/// <summary>
/// deploy/ci/rolloutgate-gate.sh, the bash + curl + openssl gate for runners without .NET, run by bash against the
/// real service on a loopback port: its signature is accepted, and its exit codes match the CLI's.
/// </summary>
public sealed class GateScriptTests
{
    private static readonly string Script = TestPaths.RepositoryFile("deploy/ci/rolloutgate-gate.sh");

    private sealed record ScriptRun(int Exit, string Stdout, string Stderr);

    private static Task<ScriptRun> RunAsync(IReadOnlyDictionary<string, string> environment, params string[] args) =>
        RunAsync(Script, environment, args);

    private static async Task<ScriptRun> RunAsync(string script, IReadOnlyDictionary<string, string> environment, string[] args)
    {
        using var process = Start(environment, args, script);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return new ScriptRun(process.ExitCode, await stdout, await stderr);
    }

    private static Process Start(IReadOnlyDictionary<string, string> environment, string[] args, string script = "")
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(script.Length > 0 ? script : Script);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment.Remove(GateCommand.SecretVariable);
        start.Environment.Remove(GateCommand.TokenVariable);
        start.Environment.Remove(GateCommand.UrlVariable);
        start.Environment.Remove(GateWait.ReaderTokenVariable);
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        return Process.Start(start)!;
    }

    private static Dictionary<string, string> Signed(string secret = RolloutGateHost.WebhookSecret) => new() { [GateCommand.SecretVariable] = secret };

    private static string[] Args(string url, string @event, string deploymentId) =>
        [@event, "--url", url, "--deployment-id", deploymentId, "--service", "checkout", "--environment", "production",
         "--initiator", "ci \"bot\"", "--version", "2.4.0", "--pipeline-url", "https://ci.example/runs/1?a=b&c=d", "--timeout", "20s"];

    [Fact]
    public async Task Script_AllowThenDeployedThenASecondChange_ExitsZeroZeroOne()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();

        var allow = await RunAsync(Signed(), Args(proxy.Url, "predeploy", "s-1"));
        var deployed = await RunAsync(Signed(), Args(proxy.Url, "deployed", "s-1"));
        var deny = await RunAsync(Signed(), Args(proxy.Url, "predeploy", "s-2"));

        Assert.True(allow.Exit == 0, allow.Stderr + allow.Stdout);
        Assert.Contains("\"verdict\":\"allow\"", allow.Stdout, StringComparison.Ordinal);
        Assert.True(deployed.Exit == 0, deployed.Stderr + deployed.Stdout);
        Assert.Contains("\"state\":\"watching\"", deployed.Stdout, StringComparison.Ordinal);
        Assert.Equal(1, deny.Exit);
        using var answer = System.Text.Json.JsonDocument.Parse(deny.Stdout);
        var detail = answer.RootElement.GetProperty("checks")[0].GetProperty("detail").GetString()!;
        // The change it waits for, deployed seconds ago and watched for 24 h, and what ends it sooner.
        var deployedAt = new DateTimeOffset(await service.Database.ScalarAsync<DateTime>("SELECT deployed_at FROM deployments WHERE id = 's-1'"));
        var expected = Regex.Escape(
            $"deployment 's-1' of checkout in production is still watching (deployed at {IsoTimes.Utc(deployedAt)}, AGO, "
            + $"watched until {IsoTimes.Utc(deployedAt.AddHours(24))}, UNTIL): wait for its watch to end or stop it "
            + "(POST /api/v1/deployments/s-1/stop with an operator token, or /rolloutgate stop s-1 in Slack); "
            + "a runbook with watch.onNewerDeploy: stop lets the next change through while an earlier one only watches");
        Assert.Matches("^" + expected.Replace("AGO", "(just now|1 min ago)").Replace("UNTIL", "in 23 h 5[89] min") + "$", detail);
        Assert.Matches(@"^gate: predeploy s-2: deny\ngate:   CHECK +STATUS  DETAIL\n(gate: .*\n)*gate:   one-change-at-a-time +fail    " + Regex.Escape(detail) + "\n", deny.Stderr);
        Assert.Equal("ci \"bot\"", await service.Database.ScalarAsync<string>("SELECT initiator FROM deployments WHERE id = 's-1'"));
    }

    [Fact]
    public async Task Script_DeployedWithTheDeliveryIdOfThePredeploy_ExitsTwo_TheWatchNotStarted()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();
        var allow = await RunAsync(Signed(), [.. Args(proxy.Url, "predeploy", "s-r"), "--delivery-id", "run-7"]);
        Assert.True(allow.Exit == 0, allow.Stderr + allow.Stdout);

        var deployed = await RunAsync(Signed(), [.. Args(proxy.Url, "deployed", "s-r"), "--delivery-id", "run-7"]);

        Assert.Equal(2, deployed.Exit);
        Assert.Equal(
            "gate: delivery id 'run-7' was used before for another body: the answer is that delivery's, and this deployed was not "
            + "applied; give each event its own --delivery-id\n",
            deployed.Stderr);
        Assert.Equal("allowed", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 's-r'"));
    }

    [Fact]
    public async Task Script_NoArguments_PrintsTheWholeUsageAndExitsTwo()
    {
        var run = await RunAsync(new Dictionary<string, string>());

        Assert.Equal(2, run.Exit);
        Assert.StartsWith("usage: rolloutgate-gate.sh predeploy|deployed|rolledback|cancelled", run.Stderr, StringComparison.Ordinal);
        Assert.EndsWith("argument; the URL from --url or ROLLOUTGATE_URL. The server's JSON answer goes to stdout, a summary to stderr.\n",
            run.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("help")]
    [InlineData("wait", "--help")]
    [InlineData("predeploy", "--url", "http://127.0.0.1:9", "--deployment-id", "s-h", "-h")]
    public async Task Script_Help_PrintsTheWholeUsageOnStdout_ExitsZero_AndSendsNothing(params string[] args)
    {
        var run = await RunAsync(Signed(), args);

        Assert.Equal(0, run.Exit);
        Assert.StartsWith("usage: rolloutgate-gate.sh predeploy|deployed|rolledback|cancelled", run.Stdout, StringComparison.Ordinal);
        Assert.EndsWith("a summary to stderr.\n", run.Stdout, StringComparison.Ordinal);
        Assert.Equal("", run.Stderr);
    }

    [Fact]
    public async Task Script_UrlWithUserInfo_RefusedBesideABearerToken_NeverShown()
    {
        // As the CLI: curl sends user info as basic authentication, but the bearer header would replace it unsaid.
        const string url = "http://deployer:url-password@127.0.0.1:9/?key=url-token";
        var withToken = await RunAsync(new Dictionary<string, string> { [GateCommand.TokenVariable] = RolloutGateHost.WebhookToken }, Args(url, "predeploy", "s-ui"));
        var wait = await RunAsync(new Dictionary<string, string> { [GateWait.ReaderTokenVariable] = RolloutGateHost.ReaderToken }, "wait", "--url", url, "--deployment-id", "s-ui", "--for", "1m");
        var signed = await RunAsync(Signed(), [.. Args(url, "predeploy", "s-ui"), "--retries", "0"]);

        Assert.Equal((2, 2, 2), (withToken.Exit, wait.Exit, signed.Exit));
        Assert.StartsWith(
            "gate: --url 'http://127.0.0.1:9/?…' has user info (user:password@), which would go as basic authentication in the Authorization header "
            + $"that the bearer token of {GateCommand.TokenVariable} takes: a request carries one; drop the user info from the URL, or sign with {GateCommand.SecretVariable}",
            withToken.Stderr, StringComparison.Ordinal);
        Assert.Contains($"the bearer token of {GateWait.ReaderTokenVariable} takes", wait.Stderr, StringComparison.Ordinal);
        Assert.StartsWith("gate: no usable answer from http://127.0.0.1:9/?… (1 attempt);", signed.Stderr, StringComparison.Ordinal);
        Assert.All(new[] { withToken.Stderr, wait.Stderr, signed.Stderr }, text => Assert.DoesNotContain("url-", text, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Script_NoAnswerFromTheDefaultUrl_PredeployAndWait_SayHowToNameAnother()
    {
        // run.sh started on ROLLOUTGATE_PORT, the pipeline without --url or ROLLOUTGATE_URL: nothing answers at the default.
        // Something may listen on 8080 here: a copy of the script whose default is a port nothing listens on is run.
        const string closed = "http://127.0.0.1:56249";
        var text = await File.ReadAllTextAsync(Script);
        const string line = "\ndefault_url=http://127.0.0.1:8080\n";
        Assert.Contains(line, text, StringComparison.Ordinal);
        using var folder = new TemporaryFolder("rolloutgate-gate-");
        var script = Path.Combine(folder.Folder, "rolloutgate-gate.sh");
        await File.WriteAllTextAsync(script, text.Replace(line, $"\ndefault_url={closed}\n", StringComparison.Ordinal));
        var hint = $"gate: no usable answer from {closed} (the default; --url or {GateCommand.UrlVariable} names another) (1 attempt); last attempt: curl: ";

        var predeploy = await RunAsync(script, Signed(), ["predeploy", "--deployment-id", "s-d", "--service", "checkout", "--environment", "production", "--retries", "0"]);
        var wait = await RunAsync(script, Reader(), ["wait", "--deployment-id", "s-d", "--for", "1m", "--retries", "0"]);
        var named = await RunAsync(script, Signed(), ["predeploy", "--url", closed + "/", "--deployment-id", "s-d", "--service", "checkout", "--environment", "production", "--retries", "0"]);
        var elsewhere = await RunAsync(script, new Dictionary<string, string>(Signed()) { [GateCommand.UrlVariable] = "http://127.0.0.1:9" },
            ["predeploy", "--deployment-id", "s-d", "--service", "checkout", "--environment", "production", "--retries", "0"]);

        Assert.Equal((2, 2, 2, 2), (predeploy.Exit, wait.Exit, named.Exit, elsewhere.Exit));
        Assert.StartsWith(hint, predeploy.Stderr, StringComparison.Ordinal);
        Assert.StartsWith(hint, wait.Stderr, StringComparison.Ordinal);
        // As the CLI: the default named on purpose is still the default; another URL is shown as it is.
        Assert.StartsWith($"gate: no usable answer from {closed}/ (the default; --url", named.Stderr, StringComparison.Ordinal);
        Assert.StartsWith("gate: no usable answer from http://127.0.0.1:9 (1 attempt); last attempt: curl: ", elsewhere.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Script_OptionGivenTwice_ExitsTwoNamingItWithoutSending()
    {
        var run = await RunAsync(Signed(), [.. Args("http://127.0.0.1:9", "predeploy", "s-t"), "--deployment-id", "s-u"]);

        Assert.Equal(2, run.Exit);
        Assert.Equal("gate: --deployment-id is given more than once\n", run.Stderr);
        Assert.Equal("", run.Stdout);
    }

    private static readonly int MaxTimeoutSeconds = (int)GateCommand.MaxTimeout.TotalSeconds;

    /// <summary>Each option past the CLI's bound (GateCommand's constants), for the events that take it, and what the script says.</summary>
    public static TheoryData<string, string, string, string> PastTheCommandsBounds => new()
    {
        { "predeploy", "--timeout", $"{MaxTimeoutSeconds + 1}", $"--timeout '{MaxTimeoutSeconds + 1}' is not a whole number of seconds such as 60 or 60s (more than zero, at most {MaxTimeoutSeconds}, 1h)" },
        { "wait", "--timeout", "86400s", $"--timeout '86400s' is not a whole number of seconds such as 60 or 60s (more than zero, at most {MaxTimeoutSeconds}, 1h)" },
        { "deployed", "--timeout", "0", $"--timeout '0' is not a whole number of seconds such as 60 or 60s (more than zero, at most {MaxTimeoutSeconds}, 1h)" },
        { "predeploy", "--retries", $"{GateCommand.MaxRetries + 1}", $"--retries '{GateCommand.MaxRetries + 1}' is not a whole number from 0 to {GateCommand.MaxRetries}" },
        { "wait", "--retries", "100000000000000000000", $"--retries '100000000000000000000' is not a whole number from 0 to {GateCommand.MaxRetries}" },
        { "cancelled", "--delivery-id", new string('d', GateCommand.MaxDeliveryIdLength + 1), $"--delivery-id is longer than {GateCommand.MaxDeliveryIdLength} characters" },
    };

    /// <summary>
    /// The script holds --timeout, --retries and --delivery-id to the bounds of the CLI's gate, refusing a value past them
    /// as a usage error (exit 2) that names the option and the bound, before anything is sent. It took --timeout 3601 or a
    /// day, --retries 101 and a delivery id of any length.
    /// </summary>
    [Theory]
    [MemberData(nameof(PastTheCommandsBounds))]
    public async Task Script_OptionPastTheCommandsBound_ExitsTwoNamingItAndItsBoundWithoutSending(string @event, string option, string value, string said)
    {
        using var server = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        server.Start();
        var url = $"http://127.0.0.1:{((System.Net.IPEndPoint)server.LocalEndpoint).Port}";
        string[] args = @event == "wait"
            ? ["wait", "--url", url, "--deployment-id", "s-b", "--for", "1m", option, value]
            : [@event, "--url", url, "--deployment-id", "s-b", "--service", "checkout", "--environment", "production", option, value];

        var run = await RunAsync(@event == "wait" ? Reader() : Signed(), args);

        Assert.Equal(2, run.Exit);
        Assert.Equal($"gate: {said}\n", run.Stderr);
        Assert.Equal("", run.Stdout);
        Assert.False(server.Pending(), "the script connected although its option was refused");
    }

    /// <summary>
    /// The bounds themselves are taken, and a --timeout with a leading zero is read as decimal: --timeout 09 ended in exit
    /// 1, the deny's, with "status: unbound variable" (bash arithmetic took it for octal, which has no 9).
    /// </summary>
    [Theory]
    [InlineData("--timeout", "3600s", "--retries", "0")]
    [InlineData("--timeout", "1", "--retries", "100")]
    [InlineData("--timeout", "09", "--retries", "000")]
    [InlineData("--delivery-id", "200 characters", "--retries", "0")]
    public async Task Script_OptionAtTheCommandsBound_IsTaken(string option, string value, string otherOption, string otherValue)
    {
        value = value == "200 characters" ? new string('d', GateCommand.MaxDeliveryIdLength) : value;

        var run = await RunAsync(Signed(), ["predeploy", "--url", "http://127.0.0.1:9", "--deployment-id", "s-b", "--service", "checkout",
            "--environment", "production", option, value, otherOption, otherValue]);

        Assert.Equal(2, run.Exit);
        Assert.Matches(@"^(gate: attempt .*\n)*gate: no (usable )?answer from http://127\.0\.0\.1:9 ", run.Stderr);
    }

    [Fact]
    public async Task Script_TheClisJsonOption_IsTakenByPredeployAndWait_StdoutTheJsonAsAlways()
    {
        // deploy/README says the script takes the CLI's options; --json, the one without a value, was "--json needs a
        // value" (exit 2, nothing sent) at the end of the line and an unknown option before another.
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();

        var predeploy = await RunAsync(Signed(), [.. Args(proxy.Url, "predeploy", "s-j"), "--json"]);
        Assert.True(predeploy.Exit == 0, predeploy.Stderr + predeploy.Stdout);
        using (var answer = System.Text.Json.JsonDocument.Parse(predeploy.Stdout))
        {
            Assert.Equal("allow", answer.RootElement.GetProperty("verdict").GetString());
        }

        Assert.StartsWith("gate: predeploy s-j: allow\n", predeploy.Stderr, StringComparison.Ordinal);
        var deployed = await RunAsync(Signed(), ["deployed", "--json", .. Args(proxy.Url, "deployed", "s-j")[1..]]);
        Assert.True(deployed.Exit == 0, deployed.Stderr + deployed.Stdout);
        Assert.Contains("\"state\":\"watching\"", deployed.Stdout, StringComparison.Ordinal);

        await EvaluationSeed.InsertAsync(service, "s-j", "p95-latency", [0.2]);
        var wait = await RunAsync(Reader(), "wait", "--url", proxy.Url, "--json", "--deployment-id", "s-j", "--for", "1s", "--interval", "1s");
        var twice = await RunAsync(Signed(), [.. Args("http://127.0.0.1:9", "predeploy", "s-k"), "--json", "--json"]);

        Assert.True(wait.Exit == 0, wait.Stderr + wait.Stdout);
        Assert.Contains("\"state\":\"watching\"", wait.Stdout, StringComparison.Ordinal);
        Assert.Equal(2, twice.Exit);
        Assert.Equal("gate: --json is given more than once\n", twice.Stderr);
    }

    [Fact]
    public async Task Script_WrongSecret_ExitsTwoWithThe401Detail()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();

        var run = await RunAsync(Signed("wrong"), Args(proxy.Url, "predeploy", "s-w"));

        Assert.Equal(2, run.Exit);
        Assert.Contains("HTTP 401", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("the signature does not match", run.Stderr, StringComparison.Ordinal);
        // The answer on stdout is one whole line, like an accepted one.
        Assert.StartsWith("{", run.Stdout, StringComparison.Ordinal);
        Assert.EndsWith("}\n", run.Stdout, StringComparison.Ordinal);
        Assert.Single(proxy.Deliveries);
    }

    [Fact]
    public async Task Script_FlakyServer_RetriesWithTheSameDeliveryId()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client, failFirst: 1).StartAsync();

        var run = await RunAsync(Signed(), [.. Args(proxy.Url, "predeploy", "s-f"), "--delivery-id", "gh-42-1-predeploy"]);

        Assert.True(run.Exit == 0, run.Stderr + run.Stdout);
        Assert.Equal(["gh-42-1-predeploy", "gh-42-1-predeploy"], proxy.Deliveries);
        Assert.Contains("attempt 1 failed (HTTP 503)", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Script_503WithRetryAfter_WaitsAsTheServerSays()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client, failFirst: 1, retryAfterSeconds: 2).StartAsync();

        var run = await RunAsync(Signed(), Args(proxy.Url, "predeploy", "s-r"));

        Assert.True(run.Exit == 0, run.Stderr + run.Stdout);
        Assert.Contains("attempt 1 failed (HTTP 503); retrying in 2000ms", run.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, proxy.Deliveries.Count);
    }

    [Fact]
    public async Task Script_RefusedWithAHugeProblemDetail_QuotesItsStartOnly()
    {
        var body = $"{{\"title\": \"Forbidden\", \"detail\": \"{new string('x', 50_000)}\"}}";
        using var canned = new HttpClient(new CannedAnswer(System.Net.HttpStatusCode.Forbidden, "application/problem+json", body)) { BaseAddress = new Uri("http://localhost") };
        await using var proxy = await new LoopbackProxy(canned).StartAsync();

        var run = await RunAsync(Signed(), Args(proxy.Url, "predeploy", "s-h"));

        Assert.Equal(2, run.Exit);
        Assert.Equal($"gate: predeploy refused: HTTP 403 Forbidden: {new string('x', 500 - " Forbidden: ".Length)}...\n", run.Stderr);
    }

    /// <summary>
    /// A predeploy's checks, as the CLI prints them: a pipeline's log says which check denied. On stderr, with the verdict;
    /// stdout stays the server's JSON. A detail holds what JSON escapes, and braces and brackets, as a query's does.
    /// </summary>
    [Fact]
    public async Task Script_Predeploy_PrintsTheChecksAsATableOnStderr()
    {
        const string Body = """
            {"deploymentId":"s-c","verdict":"deny","checks":[
              {"name":"error-budget","status":"fail","detail":"sum(rate(x{code=~\"5..\"}[10m])) = 0.031 > 0.01"},
              {"name":"no-critical-alerts","status":"pass","detail":"no alert matches [service=\"checkout\"]"},
              {"name":"freeze","status":"error","detail":"unknown time zone 'Mars/Olympus' \u2014 a\\tb"}],
             "runbook":{"name":"checkout","version":3,"sha256":"ab"}}
            """;
        using var canned = new HttpClient(new CannedAnswer(System.Net.HttpStatusCode.OK, "application/json", Body)) { BaseAddress = new Uri("http://localhost") };
        await using var proxy = await new LoopbackProxy(canned).StartAsync();

        var run = await RunAsync(Signed(), Args(proxy.Url, "predeploy", "s-c"));

        Assert.True(run.Exit == 1, run.Stderr + run.Stdout);
        Assert.Equal(Body + "\n", run.Stdout);
        Assert.Equal(
            "gate: predeploy s-c: deny\n"
            + "gate:   CHECK               STATUS  DETAIL\n"
            + "gate:   error-budget        fail    sum(rate(x{code=~\"5..\"}[10m])) = 0.031 > 0.01\n"
            + "gate:   no-critical-alerts  pass    no alert matches [service=\"checkout\"]\n"
            + "gate:   freeze              error   unknown time zone 'Mars/Olympus' \u2014 a\\tb\n",
            run.Stderr);
    }

    /// <summary>
    /// A check's detail quotes others (an alert's labels from Alertmanager): a line break or an escape sequence in it is
    /// written as an escape, as the CLI writes it, so it neither prints what reads as a line of the script's own nor drives
    /// the terminal or the CI log.
    /// </summary>
    [Fact]
    public async Task Script_Predeploy_ADetailWithALineBreakOrAnEscapeSequence_StaysOnItsLineAsEscapes()
    {
        const string Body = """
            {"deploymentId":"s-e","verdict":"deny","checks":[
              {"name":"no-critical-alerts","status":"fail","detail":"alert {team=\"a\ngate: predeploy s-e: allow\"} \u001b[2Jfiring\r"}],
             "runbook":{"name":"checkout","version":3,"sha256":"ab"}}
            """;
        using var canned = new HttpClient(new CannedAnswer(System.Net.HttpStatusCode.OK, "application/json", Body)) { BaseAddress = new Uri("http://localhost") };
        await using var proxy = await new LoopbackProxy(canned).StartAsync();

        var run = await RunAsync(Signed(), Args(proxy.Url, "predeploy", "s-e"));

        Assert.True(run.Exit == 1, run.Stderr + run.Stdout);
        Assert.Equal(
            "gate: predeploy s-e: deny\n"
            + "gate:   CHECK               STATUS  DETAIL\n"
            + "gate:   no-critical-alerts  fail    alert {team=\"a\\ngate: predeploy s-e: allow\"} \\u001B[2Jfiring\\r\n",
            run.Stderr);
    }

    [Fact]
    public async Task Script_PredeployWithoutChecks_SaysSoAsTheCli()
    {
        using var canned = new HttpClient(new CannedAnswer(System.Net.HttpStatusCode.OK, "application/json",
            """{"deploymentId":"s-n","verdict":"allow","checks":[ ],"runbook":{"name":"checkout","version":3,"sha256":"ab"}}""")) { BaseAddress = new Uri("http://localhost") };
        await using var proxy = await new LoopbackProxy(canned).StartAsync();

        var run = await RunAsync(Signed(), Args(proxy.Url, "predeploy", "s-n"));

        Assert.True(run.Exit == 0, run.Stderr + run.Stdout);
        Assert.Equal(
            "gate: predeploy s-n: allow\ngate:   no checks listed: the built-in rules passed and the runbook has no pre-deploy checks\n",
            run.Stderr);
    }

    [Fact]
    public async Task Script_BearerToken_CancelsAnAllowedChange()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();
        var token = new Dictionary<string, string> { [GateCommand.TokenVariable] = RolloutGateHost.WebhookToken };

        var allow = await RunAsync(token, Args(proxy.Url, "predeploy", "s-t"));
        var cancelled = await RunAsync(token, Args(proxy.Url, "cancelled", "s-t"));

        Assert.True(allow.Exit == 0 && cancelled.Exit == 0, allow.Stderr + cancelled.Stderr);
        Assert.Equal("cancelled", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 's-t'"));
    }

    private static Dictionary<string, string> Reader(string token = RolloutGateHost.ReaderToken) => new() { [GateWait.ReaderTokenVariable] = token };

    [Fact]
    public async Task ScriptWait_StillWatchingAtTheEndOfFor_ExitsZeroSayingSo()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();
        await GateWaitTests.DeployAsync(service, "sw-ok");
        await EvaluationSeed.InsertAsync(service, "sw-ok", "p95-latency", [0.2]);

        var run = await RunAsync(Reader(), "wait", "--url", proxy.Url, "--deployment-id", "sw-ok", "--for", "1s", "--interval", "1s");

        Assert.True(run.Exit == 0, run.Stderr + run.Stdout);
        Assert.Contains("\"state\":\"watching\"", run.Stdout, StringComparison.Ordinal);
        Assert.StartsWith("gate: sw-ok watching, evaluation ", run.Stderr, StringComparison.Ordinal);
        Assert.Matches(
            @"\ngate: wait sw-ok: PROMOTE: still watching after 1s with no regression, latest evaluation \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(the watch runs until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)\n",
            run.Stderr);
    }

    [Fact]
    public async Task ScriptWait_NoEvaluationYetAtTheEndOfFor_ExitsTwo()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();
        await GateWaitTests.DeployAsync(service, "sw-none");

        var run = await RunAsync(Reader(), "wait", "--url", proxy.Url, "--deployment-id", "sw-none", "--for", "1s", "--interval", "1s");

        Assert.True(run.Exit == 2, run.Stderr + run.Stdout);
        Assert.Matches(
            @"\ngate: wait sw-none: NO VERDICT: still watching after 1s, but no interval has been judged yet \(the watch runs until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\): wait longer than the runbook's warmup and interval\n$",
            run.Stderr);
    }

    [Fact]
    public async Task ScriptWait_WatchBehindAtTheEndOfFor_ExitsTwo_AsTheCliSaysIt()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();
        await GateWaitTests.DeployAsync(service, "sw-behind");
        await GateWaitTests.BackdateAsync(service, "sw-behind", TimeSpan.FromMinutes(30));
        await EvaluationSeed.InsertAsync(service, "sw-behind", "p95-latency", [0.2]);

        var run = await RunAsync(Reader(), "wait", "--url", proxy.Url, "--deployment-id", "sw-behind", "--for", "1s", "--interval", "1s");

        Assert.True(run.Exit == 2, run.Stderr + run.Stdout);
        Assert.Matches(
            @"\ngate: wait sw-behind: NO VERDICT: still watching after 1s, " + GateWaitTests.BehindByAboutHalfAnHour + "\ngate:   p95-latency  healthy  seeded\n$",
            run.Stderr);
    }

    [Fact]
    public async Task ScriptWait_BlindAtTheEndOfFor_ExitsTwo_NoDataIsNeverHealthy()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();
        await GateWaitTests.DeployAsync(service, "sw-blind");
        await EvaluationSeed.InsertAsync(service, "sw-blind", "p95-latency", [0.2], explanation: "p95-latency had no data: the query returned no series");
        await service.Database.ExecuteAsync("UPDATE evaluations SET verdict = 'blind', value = NULL WHERE deployment_id = 'sw-blind'");

        var run = await RunAsync(Reader(), "wait", "--url", proxy.Url, "--deployment-id", "sw-blind", "--for", "1s", "--interval", "1s");

        Assert.True(run.Exit == 2, run.Stderr + run.Stdout);
        Assert.EndsWith(
            "\ngate: wait sw-blind: NO VERDICT: still watching after 1s, but blind on p95-latency in its latest evaluation: no data is never healthy\n"
            + "gate:   p95-latency  blind  p95-latency had no data: the query returned no series\n",
            run.Stderr, StringComparison.Ordinal);
    }

    /// <summary>As the CLI: an answer is read to 1 MiB at most (curl stops writing there); beyond it, no answer.</summary>
    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 2)]
    public async Task ScriptWait_AnswerOverOneMebibyte_ExitsTwo_AnswerTooLarge(int overTheLimit, int expected)
    {
        var body = GateWaitTests.CompletedAnswerOf(GateDelivery.MaxAnswerBytes + overTheLimit, "sw-big");
        using var canned = new HttpClient(new CannedAnswer(System.Net.HttpStatusCode.OK, "application/json", body)) { BaseAddress = new Uri("http://localhost") };
        await using var proxy = await new LoopbackProxy(canned).StartAsync();

        var run = await RunAsync(Reader(), "wait", "--url", proxy.Url, "--deployment-id", "sw-big", "--for", "1h");

        Assert.True(run.Exit == expected, run.Stderr);
        if (expected == 2)
        {
            Assert.Equal(
                $"gate: no answer from {proxy.Url}: answer too large: HTTP 200 with more than 1 MiB, which no answer of RolloutGate's is (1 attempt)\n", run.Stderr);
            Assert.Equal("", run.Stdout);
        }
        else
        {
            Assert.EndsWith("gate: wait sw-big: PROMOTE: completed: the watch ran its full duration without a regression\n", run.Stderr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ScriptWait_AllowedButNeverDeployedAtTheEndOfFor_ExitsTwo()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();
        await GateWaitTests.DeployAsync(service, "sw-allowed", deployed: false);

        var run = await RunAsync(Reader(), "wait", "--url", proxy.Url, "--deployment-id", "sw-allowed", "--for", "1s", "--interval", "1s");

        Assert.True(run.Exit == 2, run.Stderr + run.Stdout);
        Assert.EndsWith("gate: wait sw-allowed: NO VERDICT: still allowed after 1s: its watch has not started (send deployed first)\n", run.Stderr,
            StringComparison.Ordinal);
    }

    [Fact]
    public async Task ScriptWait_Regressed_ExitsOneAtOnce_PrintingTheMetricsAndTheirExplanations()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();
        await GateWaitTests.DeployAsync(service, "sw-reg");
        await GateWaitTests.SeedRegressionAsync(service, "sw-reg");
        await service.RegressAsync("sw-reg", "p95-latency");

        // An hour to wait: only the regression ends it (within the 60 s the helper gives a run).
        var run = await RunAsync(Reader(), "wait", "--url", proxy.Url, "--deployment-id", "sw-reg", "--for", "1h");

        Assert.True(run.Exit == 1, run.Stderr + run.Stdout);
        Assert.Contains("\"state\":\"regressed\"", run.Stdout, StringComparison.Ordinal);
        Assert.Contains(
            "gate: wait sw-reg: DO NOT PROMOTE: regressed: RolloutGate recommends a rollback and waits for a decision (rollback, dismiss or stop)\n"
            + "gate:   p95-latency  regressed  p95-latency 500 ms is 150% above the same time yesterday (200 ms), beyond the allowed 20%\n",
            run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ScriptWait_Stopped_ExitsOneNamingTheDecision()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();
        await GateWaitTests.DeployAsync(service, "sw-stop");
        await service.DecideAsync("sw-stop", "stop", "bob \"the builder\"", "manual checks");

        var run = await RunAsync(Reader(), "wait", "--url", proxy.Url, "--deployment-id", "sw-stop", "--for", "1h");

        Assert.True(run.Exit == 1 && run.Stderr.Contains("(stop by", StringComparison.Ordinal), run.Stderr + run.Stdout);
        Assert.Matches(
            @"\ngate: wait sw-stop: DO NOT PROMOTE: stopped: RolloutGate no longer watches it \(stop by bob ""the builder"" at \S+Z: manual checks\)\n$", run.Stderr);
    }

    [Fact]
    public async Task ScriptWait_UnknownDeploymentOrNoOrAWrongToken_ExitsTwoWithTheProblemDetail()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();

        var unknown = await RunAsync(Reader(), "wait", "--url", proxy.Url, "--deployment-id", "nobody", "--for", "1h");
        var noToken = await RunAsync(new Dictionary<string, string>(), "wait", "--url", proxy.Url, "--deployment-id", "nobody", "--for", "1h");
        var wrong = await RunAsync(Reader("not-the-token"), "wait", "--url", proxy.Url, "--deployment-id", "nobody", "--for", "1h");

        Assert.Equal([2, 2, 2], [unknown.Exit, noToken.Exit, wrong.Exit]);
        Assert.EndsWith("gate: wait refused: HTTP 404 Not found: deployment 'nobody' is unknown\n", unknown.Stderr, StringComparison.Ordinal);
        Assert.StartsWith($"gate: set {GateWait.ReaderTokenVariable} to a reader token", noToken.Stderr, StringComparison.Ordinal);
        Assert.EndsWith(
            "gate: wait refused: HTTP 401 Not authenticated: a reader token is required (Authorization: Bearer <token> from RolloutGate__Api__ReaderTokens)\n",
            wrong.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, proxy.Requests.Count);
    }

    [Fact]
    public async Task ScriptWait_Unreachable_ExitsTwoAfterTheGivenRetries()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client) { Failing = true }.StartAsync();

        var run = await RunAsync(Reader(), "wait", "--url", proxy.Url, "--deployment-id", "sw-down", "--for", "1h", "--retries", "1");

        Assert.Equal(2, run.Exit);
        Assert.Contains("gate: attempt 1 failed (HTTP 503); retrying in", run.Stderr, StringComparison.Ordinal);
        Assert.EndsWith("(2 attempts); last attempt: HTTP 503\n", run.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, proxy.Requests.Count);
    }

    [Fact]
    public async Task ScriptWait_Sigterm_ExitsTwoSayingSo()
    {
        await using var service = await TestService.StartAsync();
        await using var proxy = await new LoopbackProxy(service.Client).StartAsync();
        await GateWaitTests.DeployAsync(service, "sw-sig");
        using var process = Start(Reader(), ["wait", "--url", proxy.Url, "--deployment-id", "sw-sig", "--for", "1h"]);
        var stdout = process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        // Its first answer read, it sleeps the interval (30 s) before the next.
        var first = await process.StandardError.ReadLineAsync(timeout.Token);
        Assert.Equal("gate: sw-sig watching, no evaluation yet", first);
        var rest = await TerminateAsync(process, timeout.Token);

        Assert.Equal(2, process.ExitCode);
        Assert.Equal("gate: wait interrupted by SIGTERM while deployment 'sw-sig' was watching: no verdict, do not promote on it\n", rest);
        Assert.Equal("", await stdout);
    }

    [Fact]
    public async Task ScriptWait_SigtermWhileARequestIsUnanswered_ExitsTwoAtOnceSayingSo()
    {
        // A server that takes the request and never answers: the read's --timeout (300 s) is far off when the signal comes.
        using var server = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        server.Start();
        var url = $"http://127.0.0.1:{((System.Net.IPEndPoint)server.LocalEndpoint).Port}";
        using var process = Start(Reader(), ["wait", "--url", url, "--deployment-id", "sw-hang", "--for", "1h", "--timeout", "300"]);
        var stdout = process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var connection = await server.AcceptTcpClientAsync(timeout.Token);
        var request = new byte[1024];
        Assert.True(await connection.GetStream().ReadAsync(request, timeout.Token) > 0);

        // Handled while curl waits, not after it: before, bash ran the trap only once the request ended.
        var stderr = await TerminateAsync(process, timeout.Token);

        Assert.Equal(2, process.ExitCode);
        Assert.Equal("gate: wait interrupted by SIGTERM before its first answer: no verdict, do not promote on it\n", stderr);
        Assert.Equal("", await stdout);
    }

    /// <summary>
    /// Sends the script SIGTERM and waits for it to end; returns what it wrote to stderr from then on. bash's own kill, not
    /// /bin/kill: that is procps's, which slim Debian images (a CI runner's, test.sh's fresh machine) do not have.
    /// </summary>
    private static async Task<string> TerminateAsync(Process process, CancellationToken cancellationToken)
    {
        using (var kill = Process.Start("bash", ["-c", "kill -TERM \"$0\"", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync(cancellationToken);
        }

        var stderr = await process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        return stderr;
    }

    [Theory]
    [InlineData("breach-of-max")]
    [InlineData("breach-of-min")]
    public async Task ScriptWait_WatchingWithABreachLatest_ExitsOneAtOnce(string verdict)
    {
        var body = "{\"deploymentId\": \"sw-breach\", \"service\": \"checkout\", \"environment\": \"production\", \"state\": \"watching\", "
            + "\"latestEvaluation\": {\"at\": \"2026-12-06T10:31:00+00:00\", \"metrics\": "
            + $"[{{\"name\": \"traffic\", \"value\": 0, \"baseline\": null, \"threshold\": 10, \"verdict\": \"{verdict}\", \"explanation\": \"below\"}}]}}, \"decisions\": []}}";
        using var canned = new HttpClient(new CannedAnswer(System.Net.HttpStatusCode.OK, "application/json", body)) { BaseAddress = new Uri("http://localhost") };
        await using var proxy = await new LoopbackProxy(canned).StartAsync();

        var run = await RunAsync(Reader(), "wait", "--url", proxy.Url, "--deployment-id", "sw-breach", "--for", "1s", "--interval", "1s");

        Assert.True(run.Exit == 1, run.Stderr + run.Stdout);
        Assert.Contains($"gate: wait sw-breach: DO NOT PROMOTE: watching, and its latest evaluation has traffic {verdict}\n", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ScriptWait_AnAnswerReformattedWithWhitespace_IsReadAsTheServiceWritesIt()
    {
        // (Its metrics table also shows the columns lined up, as the CLI's: names and verdicts of different lengths.)
        // A proxy that pretty-prints JSON: the same answer with spaces and line breaks between the tokens.
        const string Body = """
            {
              "deploymentId" : "sw-pretty",
              "service": "checkout", "environment": "production",
              "state": "rolled-back",
              "latestEvaluation": {
                "at": "2026-12-06T10:31:00+00:00",
                "metrics": [
                  { "name": "error-rate", "value": 0.002, "baseline": 0.002, "threshold": 0.003, "verdict": "healthy", "explanation": "error-rate 0.20% \u2264 0.30%" },
                  { "name": "p95-latency", "value": 0.5, "baseline": null, "threshold": null, "verdict": "regressed" }
                ]
              },
              "decisions": [
                { "at": "2026-12-06T10:32:00+00:00", "kind": "rollback", "actor": "alice", "reason": null }
              ]
            }
            """;
        using var canned = new HttpClient(new CannedAnswer(System.Net.HttpStatusCode.OK, "application/json", Body)) { BaseAddress = new Uri("http://localhost") };
        await using var proxy = await new LoopbackProxy(canned).StartAsync();

        var run = await RunAsync(Reader(), "wait", "--url", proxy.Url, "--deployment-id", "sw-pretty", "--for", "1h");

        Assert.True(run.Exit == 1, run.Stderr + run.Stdout);
        Assert.EndsWith(
            "gate: wait sw-pretty: DO NOT PROMOTE: rolled-back (rollback by alice at 2026-12-06T10:32:00Z)\n"
            + "gate:   error-rate   healthy    error-rate 0.20% \u2264 0.30%\n"
            + "gate:   p95-latency  regressed  \n",
            run.Stderr, StringComparison.Ordinal);
        Assert.StartsWith("gate: sw-pretty rolled-back, evaluation 2026-12-06T10:31:00Z: error-rate healthy, p95-latency regressed\n", run.Stderr, StringComparison.Ordinal);
    }
}
