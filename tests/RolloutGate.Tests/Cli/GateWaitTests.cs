using System.Net;
using Microsoft.Extensions.Time.Testing;
using RolloutGate.Cli;
using RolloutGate.Tests.Dashboard;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Cli;

/// <summary>
/// <c>gate wait</c> as a pipeline step runs it, against the real service on a real test database: the exit code and
/// the reason for each way a watch can go, and no verdict (exit 2) without a usable answer.
/// </summary>
public sealed class GateWaitTests : IDisposable
{
    private static readonly TimeSpan QuickRetries = TimeSpan.FromMilliseconds(20);

    private readonly StringWriter stdout = new();
    private readonly StringWriter stderr = new();

    /// <summary>stderr as the wait writes it while a test reads it: <see cref="TextWriter.Synchronized"/> locks on itself.</summary>
    private readonly TextWriter progress;

    public GateWaitTests() => progress = TextWriter.Synchronized(stderr);

    public void Dispose()
    {
        stdout.Dispose();
        stderr.Dispose();
    }

    private static Dictionary<string, string?> ReaderEnvironment(string token = RolloutGateHost.ReaderToken) =>
        new() { [GateWait.ReaderTokenVariable] = token };

    private Task<int> WaitAsync(
        HttpClient? http, IReadOnlyDictionary<string, string?> environment, TimeProvider? time = null, CancellationToken interrupted = default,
        params string[] args) =>
        GateWait.RunAsync(args, stdout, progress, name => environment.GetValueOrDefault(name), http,
            time ?? TimeProvider.System, QuickRetries, interrupted, () => "SIGTERM");

    private Task<int> WaitAsync(TestService service, string deploymentId, params string[] more) =>
        WaitAsync(service.Client, ReaderEnvironment(), args: ["--url", "http://localhost", "--deployment-id", deploymentId, .. more]);

    /// <summary>predeploy and deployed through the gate, as a pipeline does before it waits (only predeploy unless <paramref name="deployed"/>).</summary>
    internal static async Task DeployAsync(TestService service, string deploymentId, bool deployed = true)
    {
        using var output = new StringWriter();
        foreach (var @event in deployed ? ["predeploy", "deployed"] : new[] { "predeploy" })
        {
            var exit = await GateCommand.RunAsync(
                [@event, "--url", "http://localhost", "--deployment-id", deploymentId, "--service", "checkout", "--environment", "production",
                 "--initiator", "alice"],
                output, output, name => name == GateCommand.SecretVariable ? RolloutGateHost.WebhookSecret : null, service.Client, TimeProvider.System, QuickRetries);
            Assert.True(exit == 0, output.ToString());
        }
    }

    /// <summary>Two evaluations of p95-latency, the second regressed, with an explanation as the watch writes one.</summary>
    internal static Task SeedRegressionAsync(TestService service, string deploymentId) =>
        EvaluationSeed.InsertAsync(service, deploymentId, "p95-latency", [0.2, 0.5], regressedFrom: 1,
            explanation: "p95-latency 500 ms is 150% above the same time yesterday (200 ms), beyond the allowed 20%");

    /// <summary>
    /// Moves the deployment's deploy, watch and baseline <paramref name="by"/> into the past, as if it had been deployed
    /// then: evaluations seeded afterwards are that old, and the server's clock finds its next interval long due.
    /// </summary>
    internal static Task BackdateAsync(TestService service, string deploymentId, TimeSpan by) =>
        service.Database.ExecuteAsync($"""
            UPDATE deployments SET deployed_at = deployed_at - interval '{by.TotalSeconds} seconds',
              watch_started_at = watch_started_at - interval '{by.TotalSeconds} seconds', watch_until = watch_until - interval '{by.TotalSeconds} seconds',
              baseline_from = baseline_from - interval '{by.TotalSeconds} seconds', baseline_to = baseline_to - interval '{by.TotalSeconds} seconds'
            WHERE id = '{deploymentId}'
            """);

    /// <summary>The line of a wait that ended with the watch behind by 27 to 28 minutes (deployed, evaluated once, backdated 30 minutes).</summary>
    internal const string BehindByAboutHalfAnHour =
        @"but the watch is 2[78]m( \d{1,2}s)? behind: the interval due at \d{4}-\d\d-\d\dT\d\d:\d\d:00Z is not evaluated yet \(latest evaluation \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\), "
        + @"so nothing has judged the change since: see RolloutGateWatchBehind in deploy/README.md, ""Watching RolloutGate"" \(does a replica run, is its watch sweep stuck: the log's event ids 31xx, does Prometheus answer\)";

    /// <summary>Runs until the wait has written <paramref name="text"/> to stderr (its first answer), or fails the test.</summary>
    private async Task UntilSaidAsync(string text, Task<int> wait)
    {
        while (!Said().Contains(text, StringComparison.Ordinal))
        {
            Assert.False(wait.IsCompleted, $"the wait ended ({(wait.IsCompletedSuccessfully ? wait.Result : -1)}) before saying '{text}': {stdout}{stderr}");
            await Task.Delay(20);
        }
    }

    private string Said()
    {
        lock (progress)
        {
            return stderr.ToString();
        }
    }

    /// <summary>Moves the clock a poll interval at a time until the wait ends (it may not yet be waiting on the clock).</summary>
    private static async Task<int> AdvanceUntilEndedAsync(FakeTimeProvider clock, Task<int> wait)
    {
        for (var i = 0; i < 100 && !wait.IsCompleted; i++)
        {
            clock.Advance(GateWait.DefaultInterval * (1 + GateWait.Jitter));
            await Task.WhenAny(wait, Task.Delay(50));
        }

        return await wait.WaitAsync(TimeSpan.FromMinutes(1));
    }

    [Fact]
    public async Task StillWatchingAtTheEndOfFor_ExitsZeroSayingSo()
    {
        await using var service = await TestService.StartAsync();
        await DeployAsync(service, "w-ok");
        await EvaluationSeed.InsertAsync(service, "w-ok", "p95-latency", [0.2]);

        var exit = await WaitAsync(service, "w-ok", "--for", "300ms", "--interval", "100ms");

        Assert.True(exit == 0, stdout + "\n" + stderr);
        Assert.Matches(
            @"^wait w-ok \(checkout in production\): PROMOTE: still watching after 300ms with no regression, latest evaluation \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(the watch runs until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)\r?\n",
            stdout.ToString());
        Assert.StartsWith("gate: w-ok watching, evaluation ", stderr.ToString(), StringComparison.Ordinal);
    }

    /// <summary>A warm-up longer than --for, or a watch behind: nothing has judged the change, so nothing vouches for it.</summary>
    [Fact]
    public async Task NoEvaluationYetAtTheEndOfFor_ExitsTwo_NothingVouchesForTheChange()
    {
        await using var service = await TestService.StartAsync();
        await DeployAsync(service, "w-none");

        var exit = await WaitAsync(service, "w-none", "--for", "300ms", "--interval", "100ms");

        Assert.True(exit == 2, stdout + "\n" + stderr);
        Assert.Matches(
            @"^wait w-none \(checkout in production\): NO VERDICT: still watching after 300ms, but no interval has been judged yet \(the watch runs until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\): wait longer than the runbook's warmup and interval\r?\n$",
            stdout.ToString());
        Assert.StartsWith("gate: w-none watching, no evaluation yet", stderr.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// Every replica down, the sweep stuck: the latest evaluation, healthy, is half an hour old. It vouched for the change
    /// then, not for the half hour since; before, the wait promoted on it.
    /// </summary>
    [Fact]
    public async Task WatchBehindAtTheEndOfFor_ExitsTwo_SayingByHowMuchAndWhatToLookAt()
    {
        await using var service = await TestService.StartAsync();
        await DeployAsync(service, "w-behind");
        await BackdateAsync(service, "w-behind", TimeSpan.FromMinutes(30));
        await EvaluationSeed.InsertAsync(service, "w-behind", "p95-latency", [0.2]);

        var exit = await WaitAsync(service, "w-behind", "--for", "300ms", "--interval", "100ms");

        Assert.True(exit == 2, stdout + "\n" + stderr);
        var lines = stdout.ToString().Split(Environment.NewLine);
        Assert.Matches(@"^wait w-behind \(checkout in production\): NO VERDICT: still watching after 300ms, " + BehindByAboutHalfAnHour + "$", lines[0]);
        Assert.EndsWith("  p95-latency  healthy  seeded", lines[2], StringComparison.Ordinal);
    }

    [Fact]
    public async Task RegressedMeanwhile_ExitsOneAtTheNextPoll_PrintingTheMetricsAndTheirExplanations()
    {
        await using var service = await TestService.StartAsync();
        await DeployAsync(service, "w-reg");
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);

        // An hour to wait on a clock that only moves when told: only the regression can end it.
        var wait = WaitAsync(service.Client, ReaderEnvironment(), clock, args: ["--url", "http://localhost", "--deployment-id", "w-reg", "--for", "1h"]);
        await UntilSaidAsync("gate: w-reg watching, no evaluation yet", wait);
        await SeedRegressionAsync(service, "w-reg");
        await service.RegressAsync("w-reg", "p95-latency");

        var exit = await AdvanceUntilEndedAsync(clock, wait);

        Assert.True(exit == 1, stdout + "\n" + stderr);
        var lines = stdout.ToString().Split(Environment.NewLine);
        Assert.Equal(
            "wait w-reg (checkout in production): DO NOT PROMOTE: regressed: RolloutGate recommends a rollback and waits for a decision (rollback, dismiss or stop)",
            lines[0]);
        Assert.Matches(@"^  METRIC       VERDICT    EXPLANATION \(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$", lines[1]);
        Assert.Equal("  p95-latency  regressed  p95-latency 500 ms is 150% above the same time yesterday (200 ms), beyond the allowed 20%", lines[2]);
        Assert.Contains("gate: w-reg regressed, evaluation ", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kept_ExitsZero_Stopped_ExitsOne_EachNamingTheDecision()
    {
        await using var service = await TestService.StartAsync();
        await DeployAsync(service, "w-kept");
        await service.RegressAsync("w-kept", "p95-latency");
        await service.DecideAsync("w-kept", "dismiss", "alice", "a known slow dependency");
        await DeployAsync(service, "w-stop");
        await service.DecideAsync("w-stop", "stop", "bob", "manual checks");

        var kept = await WaitAsync(service, "w-kept", "--for", "1h");
        var stopped = await WaitAsync(service, "w-stop", "--for", "1h");

        Assert.Equal([0, 1], [kept, stopped]);
        var lines = stdout.ToString().Split(Environment.NewLine);
        Assert.Matches(
            @"^wait w-kept \(checkout in production\): PROMOTE: kept: a regression was dismissed \(dismiss by alice at \S+Z: a known slow dependency\)$", lines[0]);
        Assert.Matches(
            @"^wait w-stop \(checkout in production\): DO NOT PROMOTE: stopped: RolloutGate no longer watches it \(stop by bob at \S+Z: manual checks\)$", lines[1]);
    }

    [Fact]
    public async Task JsonFlag_PrintsTheDeploymentsJson_WithTheSameExit()
    {
        await using var service = await TestService.StartAsync();
        await DeployAsync(service, "w-json");
        await service.DecideAsync("w-json", "stop", "bob", "manual checks");

        var exit = await WaitAsync(service, "w-json", "--for", "1h", "--json");

        Assert.Equal(1, exit);
        using var document = System.Text.Json.JsonDocument.Parse(stdout.ToString());
        Assert.Equal("w-json", document.RootElement.GetProperty("deploymentId").GetString());
        Assert.Equal("stopped", document.RootElement.GetProperty("state").GetString());
    }

    [Fact]
    public async Task BlindAtTheEndOfFor_ExitsTwo_NoDataIsNeverHealthy()
    {
        await using var service = await TestService.StartAsync();
        await DeployAsync(service, "w-blind");
        await EvaluationSeed.InsertAsync(service, "w-blind", "p95-latency", [0.2], explanation: "p95-latency had no data: the query returned no series");
        await service.Database.ExecuteAsync("UPDATE evaluations SET verdict = 'blind', value = NULL WHERE deployment_id = 'w-blind'");

        var exit = await WaitAsync(service, "w-blind", "--for", "200ms", "--interval", "100ms");

        Assert.True(exit == 2, stdout + "\n" + stderr);
        var lines = stdout.ToString().Split(Environment.NewLine);
        Assert.Equal(
            "wait w-blind (checkout in production): NO VERDICT: still watching after 200ms, but blind on p95-latency in its latest evaluation: no data is never healthy",
            lines[0]);
        Assert.EndsWith("  p95-latency  blind    p95-latency had no data: the query returned no series", lines[2], StringComparison.Ordinal);
    }

    [Fact]
    public async Task AllowedButNeverDeployedAtTheEndOfFor_ExitsTwo_TheWatchNeverStarted()
    {
        await using var service = await TestService.StartAsync();
        await DeployAsync(service, "w-allowed", deployed: false);

        var exit = await WaitAsync(service, "w-allowed", "--for", "200ms", "--interval", "100ms");

        Assert.True(exit == 2, stdout + "\n" + stderr);
        Assert.Equal(
            "wait w-allowed (checkout in production): NO VERDICT: still allowed after 200ms: its watch has not started (send deployed first)"
            + Environment.NewLine,
            stdout.ToString());
    }

    [Fact]
    public async Task UnknownDeployment_ExitsTwoPrintingThe404Detail()
    {
        await using var service = await TestService.StartAsync();

        var exit = await WaitAsync(service, "nobody", "--for", "1h");

        Assert.Equal(2, exit);
        Assert.Equal("gate: wait refused: HTTP 404 Not found: deployment 'nobody' is unknown" + Environment.NewLine, stderr.ToString());
        Assert.Equal("", stdout.ToString());
    }

    [Fact]
    public async Task NoOrAWrongReaderToken_ExitsTwo_WithTheUsageOrThe401Detail()
    {
        await using var service = await TestService.StartAsync();
        await DeployAsync(service, "w-tok");
        string[] args = ["--url", "http://localhost", "--deployment-id", "w-tok", "--for", "1h"];

        var none = await WaitAsync(service.Client, new Dictionary<string, string?>(), args: args);
        var noneSaid = stderr.ToString();
        stderr.GetStringBuilder().Clear();
        var wrong = await WaitAsync(service.Client, ReaderEnvironment("not-the-token"), args: args);

        Assert.Equal([2, 2], [none, wrong]);
        Assert.StartsWith($"gate: set {GateWait.ReaderTokenVariable} to a reader token", noneSaid, StringComparison.Ordinal);
        Assert.Equal(
            "gate: wait refused: HTTP 401 Not authenticated: a reader token is required (Authorization: Bearer <token> from RolloutGate__Api__ReaderTokens)"
            + Environment.NewLine,
            stderr.ToString());
    }

    [Fact]
    public async Task Unreachable_ExitsTwoAfterTheGivenRetries()
    {
        var exit = await WaitAsync(null, ReaderEnvironment(),
            args: ["--url", $"http://127.0.0.1:{GateCommandTests.ClosedPort()}", "--deployment-id", "w-down", "--for", "1h", "--retries", "2"]);

        Assert.Equal(2, exit);
        var errors = stderr.ToString();
        Assert.Equal(2, errors.Split("retrying in").Length - 1);
        Assert.Contains("gate: no answer from http://127.0.0.1:", errors, StringComparison.Ordinal);
        Assert.Contains("ConnectionError", errors, StringComparison.Ordinal);
        Assert.Contains("(3 attempts)", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Signal_ExitsTwoSayingSo()
    {
        await using var service = await TestService.StartAsync();
        await DeployAsync(service, "w-sig");
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var signal = new CancellationTokenSource();
        var wait = WaitAsync(service.Client, ReaderEnvironment(), clock, signal.Token,
            args: ["--url", "http://localhost", "--deployment-id", "w-sig", "--for", "1h"]);
        await UntilSaidAsync("gate: w-sig watching", wait);

        await signal.CancelAsync();
        var exit = await wait.WaitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(2, exit);
        Assert.EndsWith(
            "gate: wait interrupted by SIGTERM while deployment 'w-sig' was watching: no verdict, do not promote on it" + Environment.NewLine,
            stderr.ToString(), StringComparison.Ordinal);
        Assert.Equal("", stdout.ToString());
    }

    [Theory]
    [InlineData("regressed")]
    [InlineData("breach-of-max")]
    [InlineData("breach-of-min")]
    public async Task WatchingWithARegressionVerdictLatest_ExitsOneAtOnce(string verdict)
    {
        // The guard for the moment between the evaluation and the state it moves the deployment to.
        var body = "{\"deploymentId\": \"w-x\", \"state\": \"watching\", \"latestEvaluation\": {\"at\": \"2026-12-06T10:00:00Z\", \"metrics\": "
            + $"[{{\"name\": \"traffic\", \"value\": 0, \"baseline\": null, \"threshold\": 10, \"verdict\": \"{verdict}\", \"explanation\": \"below\"}}]}}}}";
        using var http = new HttpClient(new CannedAnswer(HttpStatusCode.OK, "application/json", body));

        var exit = await WaitAsync(http, ReaderEnvironment(), args: ["--url", "http://localhost", "--deployment-id", "w-x", "--for", "1s", "--interval", "1s"]);

        Assert.True(exit == 1, stderr.ToString() + stdout);
        Assert.Contains($"DO NOT PROMOTE: watching, and its latest evaluation has traffic {verdict}", stdout.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{}", "no deploymentId, state")]
    [InlineData("<html>Sign in</html>", "")]
    [InlineData("{\"deploymentId\": \"w-x\", \"state\": \"paused\"}", "unknown state 'paused'")]
    [InlineData("{\"deploymentId\": \"w-y\", \"state\": \"completed\"}", "it answers for deployment 'w-y', not 'w-x'")]
    [InlineData("{\"deploymentId\": \"w-x\", \"state\": \"watching\", \"latestEvaluation\": {\"at\": \"2026-12-06T10:00:00Z\", \"metrics\": [{\"name\": \"p95\"}]}}",
        "no latestEvaluation.metrics with name and verdict")]
    public async Task AnswerItCannotRead_ExitsTwo(string body, string reason)
    {
        using var http = new HttpClient(new CannedAnswer(HttpStatusCode.OK, "application/json", body));

        var exit = await WaitAsync(http, ReaderEnvironment(), args: ["--url", "http://localhost", "--deployment-id", "w-x", "--for", "1h"]);

        Assert.Equal(2, exit);
        Assert.StartsWith("gate: HTTP 200 with an answer this gate cannot read", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains(reason, stderr.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// A deployment <c>completed</c>, its answer <paramref name="bytes"/> long (ASCII), padded first: the fields a verdict
    /// needs come at the end of it.
    /// </summary>
    internal static string CompletedAnswerOf(int bytes, string deploymentId)
    {
        const string Start = "{\"padding\": \"";
        var end = $"\", \"deploymentId\": \"{deploymentId}\", \"state\": \"completed\", \"latestEvaluation\": null, \"decisions\": []}}";
        return Start + new string('x', bytes - Start.Length - end.Length) + end;
    }

    /// <summary>
    /// An answer is read to 1 MiB at most, whether its length is told beforehand or it streams (chunked, through a
    /// proxy): beyond it, no answer, rather than a runaway answer held whole in the runner's memory.
    /// </summary>
    [Theory]
    [InlineData(false, 0, 0)]
    [InlineData(true, 0, 0)]
    [InlineData(false, 1, 2)]
    [InlineData(true, 1, 2)]
    public async Task AnswerOverOneMebibyte_ExitsTwo_AnswerTooLarge(bool streamed, int overTheLimit, int expected)
    {
        using var canned = new HttpClient(new CannedAnswer(HttpStatusCode.OK, "application/json", CompletedAnswerOf(GateDelivery.MaxAnswerBytes + overTheLimit, "w-big")))
        {
            BaseAddress = new Uri("http://localhost"),
        };
        await using var proxy = await new LoopbackProxy(canned).StartAsync();

        var exit = await WaitAsync(streamed ? null : canned, ReaderEnvironment(),
            args: ["--url", streamed ? proxy.Url : "http://localhost", "--deployment-id", "w-big", "--for", "1h"]);

        Assert.True(exit == expected, stdout + "\n" + stderr);
        if (expected == 2)
        {
            Assert.Matches(
                @"^gate: no answer from http://\S+: answer too large: HTTP 200 with more than 1 MiB, which no answer of RolloutGate's is \(1 attempt\)\r?\n$",
                stderr.ToString());
            Assert.Equal("", stdout.ToString());
        }
        else
        {
            Assert.StartsWith("wait w-big (", stdout.ToString(), StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// An option past its bounds is refused naming the option, the form it takes and the bound, as <c>--help</c> states
    /// them: <c>--timeout 2h</c> was "not a duration such as 60s, 2m or 500ms", which 2h is.
    /// </summary>
    [Theory]
    [InlineData("--interval", "2h", "--interval '2h' is not a duration such as 30s, 1m or 500ms (more than zero, at most 1h)")]
    [InlineData("--interval", "0s", "--interval '0s' is not a duration such as 30s, 1m or 500ms (more than zero, at most 1h)")]
    [InlineData("--timeout", "2h", "--timeout '2h' is not a duration such as 60s, 2m or 500ms (more than zero, at most 1h)")]
    [InlineData("--retries", "101", "--retries '101' is not a whole number from 0 to 100")]
    [InlineData("--for", "7d", "--for '7d' is not a duration such as 30m, 2h or 90s (more than zero, at most 7 days, 168h)")]
    public async Task OptionPastItsBounds_IsRefusedNamingTheOptionItsFormAndItsBound(string option, string value, string said)
    {
        var exit = await WaitAsync(null, ReaderEnvironment(), args: ["--deployment-id", "x", .. option == "--for" ? Array.Empty<string>() : ["--for", "1m"], option, value]);

        Assert.Equal(2, exit);
        Assert.StartsWith($"gate: {said}\n", stderr.ToString().ReplaceLineEndings("\n"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UsageErrors_ExitTwoWithoutAsking()
    {
        var noFor = await WaitAsync(null, ReaderEnvironment(), args: ["--deployment-id", "x"]);
        var badFor = await WaitAsync(null, ReaderEnvironment(), args: ["--deployment-id", "x", "--for", "soon"]);
        var twice = await WaitAsync(null, ReaderEnvironment(), args: ["--deployment-id", "x", "--for", "1m", "--deployment-id=y"]);
        var unknown = await WaitAsync(null, ReaderEnvironment(), args: ["--deployment-id", "x", "--for", "1m", "--service", "checkout"]);
        var userInfo = await WaitAsync(null, ReaderEnvironment(), args: ["--deployment-id", "x", "--for", "1m", "--url", "http://reader:url-password@127.0.0.1:9/"]);

        Assert.Equal([2, 2, 2, 2, 2], [noFor, badFor, twice, unknown, userInfo]);
        Assert.Contains(
            $"gate: --url 'http://127.0.0.1:9/' has user info (user:password@), which would go as basic authentication in the Authorization header that the bearer token of {GateWait.ReaderTokenVariable} takes",
            stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("url-password", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("gate: missing --for", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("gate: --for 'soon' is not a duration such as 30m, 2h or 90s", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("gate: --deployment-id is given more than once", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("gate: unknown option '--service' for wait", stderr.ToString(), StringComparison.Ordinal);
    }
}
