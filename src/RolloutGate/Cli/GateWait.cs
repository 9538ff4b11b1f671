using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using RolloutGate.Core.Deployments;
using RolloutGate.Core.Runbooks;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure;

namespace RolloutGate.Cli;

/// <summary>
/// <c>gate wait</c>: a pipeline step that holds promotion to the next stage while the watch runs. It reads
/// <c>GET /api/v1/deployments/{id}</c> (CONTRACT section 5) with a reader token from the environment until the
/// deployment leaves <c>watching</c> or <c>--for</c> has passed, and exits in the gate's scheme: 0 promote (still
/// watching without a regression after <c>--for</c>, or <c>completed</c> / <c>kept</c>), 1 do not promote (regressed,
/// rolling back, rolled back, stopped, denied, cancelled), 2 no usable answer (usage, unreachable after the retries,
/// 401, 404, an answer it cannot read, a watch behind, blind at the end or never started, or a signal).
/// </summary>
public static class GateWait
{
    public const string Event = "wait";
    public const string ReaderTokenVariable = AuditCommand.TokenVariable;
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan MaxFor = TimeSpan.FromDays(7);

    /// <summary>The longest <c>--interval</c>: a wait that reads less often than hourly would see a regression that late.</summary>
    public static readonly TimeSpan MaxInterval = TimeSpan.FromHours(1);

    /// <summary>Each poll waits the interval, give or take this share of it, so many pipelines do not ask in step.</summary>
    public const double Jitter = 0.2;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private static readonly string[] ValueOptions = ["--url", "--deployment-id", "--for", "--interval", "--timeout", "--retries"];

    /// <summary>The verdicts of a metric that mean it regressed (the watch moves the deployment to regressed on them).</summary>
    private static readonly string[] RegressedVerdicts = ["regressed", "breach-of-max", "breach-of-min"];

    private const string BlindVerdict = "blind";

    /// <summary>
    /// How long past its time t the watch's next interval may wait before the watch counts as behind (the server's
    /// <c>watch.behindSeconds</c>): the RolloutGateWatchBehind alert's threshold. A Prometheus outage alone stays under it
    /// (an interval waits the 2-minute grace, then is recorded blind); beyond it no replica runs the watch, or its sweep is
    /// stuck or cannot keep up.
    /// </summary>
    public const long BehindToleranceSeconds = 180;

    /// <summary>What to look at when the watch is behind (the same words as deploy/ci/rolloutgate-gate.sh).</summary>
    private const string BehindAdvice =
        "see RolloutGateWatchBehind in deploy/README.md, \"Watching RolloutGate\" (does a replica run, is its watch sweep stuck: the log's event ids 31xx, does Prometheus answer)";

    private sealed record Invocation(string DeploymentId, Uri Url, string Token, TimeSpan For, string ForText, TimeSpan Interval, int Retries, TimeSpan Timeout, bool PrintJson);

    /// <summary>Why the wait ends: the exit code and the sentence that says why.</summary>
    private sealed record Outcome(int Exit, string Verdict, string Reason);

    /// <summary>The command as a process runs it: SIGINT or SIGTERM ends the wait with exit 2 and a line saying so.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        using var interrupted = new CancellationTokenSource();
        string? signal = null;
        void Interrupt(PosixSignalContext context)
        {
            // Handled here: the process ends when the wait has said why, not in the middle of a line.
            context.Cancel = true;
            signal ??= context.Signal == PosixSignal.SIGINT ? "SIGINT" : "SIGTERM";
            interrupted.Cancel();
        }

        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Interrupt);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Interrupt);
        return await RunAsync(
            args, stdout, stderr, Environment.GetEnvironmentVariable, http: null, TimeProvider.System, GateDelivery.DefaultRetryBaseDelay,
            interrupted.Token, () => signal ?? "a signal");
    }

    /// <summary>The command with its surroundings passed in: environment, HTTP client, clock, and the signal as a token.</summary>
    internal static async Task<int> RunAsync(
        string[] args, TextWriter stdout, TextWriter stderr, Func<string, string?> environment, HttpClient? http, TimeProvider time,
        TimeSpan retryBaseDelay, CancellationToken interrupted, Func<string> signalName)
    {
        var (invocation, error) = Parse(args, environment);
        if (invocation is null)
        {
            await stderr.WriteLineAsync($"gate: {error}");
            await stderr.WriteLineAsync(GateCommand.Usage);
            return GateCommand.ExitNoAnswer;
        }

        using var ownClient = http is null ? new HttpClient { Timeout = Timeout.InfiniteTimeSpan } : null;
        var delivery = new GateDelivery(http ?? ownClient!, time, stderr);
        var endpoint = Urls.Under(invocation.Url, $"{GateDelivery.WebhookPath}/{Uri.EscapeDataString(invocation.DeploymentId)}");
        var until = time.GetUtcNow() + invocation.For;
        string? lastProgress = null;
        DeploymentView? last = null;
        try
        {
            while (true)
            {
                var answer = await delivery.GetAsync(endpoint, invocation.Token, invocation.Retries, invocation.Timeout, retryBaseDelay, interrupted);
                if (answer.Status is not { } status)
                {
                    await stderr.WriteLineAsync($"gate: no answer from {GateCommand.Unanswered(invocation.Url)}: {answer.Failure}");
                    return GateCommand.ExitNoAnswer;
                }

                if (status != HttpStatusCode.OK)
                {
                    await stderr.WriteLineAsync($"gate: wait refused: {GateCommand.ProblemText(status, answer.Body)}");
                    return GateCommand.ExitNoAnswer;
                }

                if (Read(answer.Body, invocation.DeploymentId, out var readError) is not { } deployment)
                {
                    await stderr.WriteLineAsync($"gate: HTTP {(int)status} with an answer this gate cannot read ({readError}): {GateCommand.Truncate(answer.Body)}");
                    return GateCommand.ExitNoAnswer;
                }

                last = deployment;
                var progress = Progress(deployment);
                if (progress != lastProgress)
                {
                    await stderr.WriteLineAsync($"gate: {progress}");
                    lastProgress = progress;
                }

                var remaining = until - time.GetUtcNow();
                if (Decide(deployment, ended: remaining <= TimeSpan.Zero, invocation.ForText) is { } outcome)
                {
                    await PrintAsync(deployment, answer.Body, outcome, invocation, stdout);
                    return outcome.Exit;
                }

                var jittered = invocation.Interval * (1 - Jitter + (2 * Jitter * Random.Shared.NextDouble()));
                await Task.Delay(jittered < remaining ? jittered : remaining, time, interrupted);
            }
        }
        catch (OperationCanceledException) when (interrupted.IsCancellationRequested)
        {
            var state = last is null ? "before its first answer" : $"while deployment '{last.DeploymentId}' was {last.State}";
            await stderr.WriteLineAsync($"gate: wait interrupted by {signalName()} {state}: no verdict, do not promote on it");
            return GateCommand.ExitNoAnswer;
        }
    }

    private static (Invocation? Invocation, string? Error) Parse(string[] args, Func<string, string?> environment)
    {
        var (values, printJson, optionError) = GateCommand.ReadOptions(args, ValueOptions, " for wait");
        if (optionError is not null)
        {
            return (null, optionError);
        }

        string? Value(string name) => values.TryGetValue(name, out var value) && value.Length > 0 ? value : null;

        var missing = new[] { "--deployment-id", "--for" }.Where(name => Value(name) is null).ToList();
        if (missing.Count > 0)
        {
            return (null, $"missing {string.Join(", ", missing)}");
        }

        if (environment(ReaderTokenVariable) is not { Length: > 0 } token)
        {
            return (null, $"set {ReaderTokenVariable} to a reader token (RolloutGate__Api__ReaderTokens__N on the server) in the environment");
        }

        if (GateCommand.ReadUrl(Value, environment, out var urlError) is not { } url)
        {
            return (null, urlError);
        }

        if (GateCommand.UserInfoRefusal(url, ReaderTokenVariable) is { } userInfoError)
        {
            return (null, userInfoError);
        }

        var forText = Value("--for")!;
        if (!GateCommand.TryParseDuration(forText, MaxFor, out var @for))
        {
            return (null, $"--for '{forText}' is not a duration such as 30m, 2h or 90s (more than zero, at most {MaxFor.TotalDays:0} days, {MaxFor.TotalHours:0}h)");
        }

        var interval = DefaultInterval;
        if (Value("--interval") is { } intervalText && !GateCommand.TryParseDuration(intervalText, MaxInterval, out interval))
        {
            return (null, $"--interval '{intervalText}' is not a duration such as 30s, 1m or 500ms (more than zero, at most {MaxInterval.TotalHours:0}h)");
        }

        if (GateCommand.ReadPatience(Value, out var timeout, out var retries) is { } patienceError)
        {
            return (null, patienceError);
        }

        return (new Invocation(Value("--deployment-id")!, url, token, @for, forText, interval, retries, timeout, printJson), null);
    }

    /// <summary>The deployment in the answer, or null and why: not JSON, without the fields a verdict needs, or about another deployment.</summary>
    private static DeploymentView? Read(string body, string deploymentId, out string? error)
    {
        DeploymentView? deployment;
        try
        {
            deployment = JsonSerializer.Deserialize<DeploymentView>(body, Json);
        }
        catch (JsonException ex)
        {
            error = ex.Message;
            return null;
        }

        var missing = new List<string>();
        if (string.IsNullOrEmpty(deployment?.DeploymentId))
        {
            missing.Add("deploymentId");
        }

        if (string.IsNullOrEmpty(deployment?.State))
        {
            missing.Add("state");
        }

        var evaluation = deployment?.LatestEvaluation;
        if (evaluation is not null && (evaluation.Metrics is null || evaluation.Metrics.Any(m => m is null || string.IsNullOrEmpty(m.Name) || string.IsNullOrEmpty(m.Verdict))))
        {
            missing.Add("latestEvaluation.metrics with name and verdict");
        }

        error = missing.Count > 0 ? $"no {string.Join(", ", missing)}"
            : deployment!.DeploymentId != deploymentId ? $"it answers for deployment '{deployment.DeploymentId}', not '{deploymentId}'"
            : !DeploymentState.IsKnown(deployment.State) ? $"unknown state '{deployment.State}'"
            : null;
        return error is null ? deployment : null;
    }

    /// <summary>
    /// The verdict for a pipeline, or null to keep waiting. A regression ends the wait at once, whether a person is
    /// still to decide (<c>regressed</c>: RolloutGate recommends a rollback) or a rollback is under way; so does any
    /// other end of the watch. At the end of <c>--for</c> a deployment still watching passes unless the watch is behind
    /// (its next interval waited past its t for longer than <see cref="BehindToleranceSeconds"/> on the server's clock: nothing
    /// judges the change any more), its latest evaluation is blind on a metric, or it has none yet: no data is never healthy.
    /// <paramref name="waited"/> is <c>--for</c> as given.
    /// </summary>
    private static Outcome? Decide(DeploymentView deployment, bool ended, string waited)
    {
        var metrics = deployment.LatestEvaluation?.Metrics ?? [];
        switch (deployment.State)
        {
            case DeploymentState.Completed:
                return new Outcome(GateCommand.ExitAllowed, "PROMOTE", "completed: the watch ran its full duration without a regression");
            case DeploymentState.Kept:
                return new Outcome(GateCommand.ExitAllowed, "PROMOTE", $"kept: a regression was dismissed{Decision(deployment)}");
            case DeploymentState.Regressed:
                return new Outcome(GateCommand.ExitDenied, "DO NOT PROMOTE",
                    "regressed: RolloutGate recommends a rollback and waits for a decision (rollback, dismiss or stop)");
            case DeploymentState.RollingBack:
                return new Outcome(GateCommand.ExitDenied, "DO NOT PROMOTE", $"rolling-back: a rollback is under way{Decision(deployment)}");
            case DeploymentState.RolledBack:
                return new Outcome(GateCommand.ExitDenied, "DO NOT PROMOTE", $"rolled-back{Decision(deployment)}");
            case DeploymentState.Stopped:
                return new Outcome(GateCommand.ExitDenied, "DO NOT PROMOTE", $"stopped: RolloutGate no longer watches it{Decision(deployment)}");
            case DeploymentState.Denied:
                return new Outcome(GateCommand.ExitDenied, "DO NOT PROMOTE", "denied: the predeploy gate denied it and it was not reported deployed, so it was never watched");
            case DeploymentState.Cancelled:
                return new Outcome(GateCommand.ExitDenied, "DO NOT PROMOTE", "cancelled: it was never deployed, so there is nothing to promote");
        }

        // A watching deployment whose latest evaluation regressed is not one to promote, whatever the state says yet.
        if (metrics.FirstOrDefault(m => RegressedVerdicts.Contains(m.Verdict, StringComparer.Ordinal)) is { } regressed)
        {
            return new Outcome(GateCommand.ExitDenied, "DO NOT PROMOTE", $"{deployment.State}, and its latest evaluation has {regressed.Name} {regressed.Verdict}");
        }

        if (!ended)
        {
            return null;
        }

        if (deployment.State != DeploymentState.Watching)
        {
            // checking or allowed: the deployed event (a CD tool's notification, perhaps) has not arrived within --for.
            return new Outcome(GateCommand.ExitNoAnswer, "NO VERDICT", $"still {deployment.State} after {waited}: its watch has not started (send deployed first)");
        }

        if (deployment.Watch is { BehindSeconds: > BehindToleranceSeconds and var behind, NextEvaluationDue: { } due })
        {
            // Nothing evaluated the change since the latest evaluation (if any): its verdict is old news, not a watch.
            var latestText = deployment.LatestEvaluation is { } judged ? $"latest evaluation {IsoTimes.Utc(judged.At)}" : "no evaluation yet";
            return new Outcome(GateCommand.ExitNoAnswer, "NO VERDICT",
                $"still watching after {waited}, but the watch is {Span(behind)} behind: the interval due at {IsoTimes.Utc(due)} is not evaluated yet ({latestText}), "
                + "so nothing has judged the change since: " + BehindAdvice);
        }

        var blind = metrics.Where(m => m.Verdict == BlindVerdict).Select(m => m.Name).ToList();
        if (blind.Count > 0)
        {
            return new Outcome(GateCommand.ExitNoAnswer, "NO VERDICT",
                $"still watching after {waited}, but blind on {string.Join(", ", blind)} in its latest evaluation: no data is never healthy");
        }

        var watchEnd = deployment.Watch is { } watch ? $" (the watch runs until {IsoTimes.Utc(watch.Until)})" : "";
        if (deployment.LatestEvaluation is not { } latest)
        {
            // A warm-up longer than --for, or a watch behind: nothing has judged the change yet, so nothing vouches for it.
            return new Outcome(GateCommand.ExitNoAnswer, "NO VERDICT",
                $"still watching after {waited}, but no interval has been judged yet{watchEnd}: wait longer than the runbook's warmup and interval");
        }

        return new Outcome(GateCommand.ExitAllowed, "PROMOTE", $"still watching after {waited} with no regression, latest evaluation {IsoTimes.Utc(latest.At)}{watchEnd}");
    }

    /// <summary>" (rollback by alice at ...: reason)": the latest decision, which made the state what it is; empty without one.</summary>
    private static string Decision(DeploymentView deployment) =>
        (deployment.Decisions ?? []).LastOrDefault() is { } decision
            ? $" ({decision.Kind} by {decision.Actor} at {IsoTimes.Utc(decision.At)}{(string.IsNullOrEmpty(decision.Reason) ? "" : ": " + decision.Reason)})"
            : "";

    /// <summary>One line per change of state or evaluation, to stderr, so a CI log shows the wait as it goes.</summary>
    private static string Progress(DeploymentView deployment)
    {
        var evaluation = deployment.LatestEvaluation is { } latest
            ? $", evaluation {IsoTimes.Utc(latest.At)}: {string.Join(", ", latest.Metrics.Select(m => $"{m.Name} {m.Verdict}"))}"
            : ", no evaluation yet";
        return $"{deployment.DeploymentId} {deployment.State}{evaluation}";
    }

    private static async Task PrintAsync(DeploymentView deployment, string body, Outcome outcome, Invocation invocation, TextWriter stdout)
    {
        if (invocation.PrintJson)
        {
            await stdout.WriteLineAsync(body);
            return;
        }

        await stdout.WriteLineAsync(
            $"wait {deployment.DeploymentId} ({deployment.Service} in {deployment.Environment}): {outcome.Verdict}: {outcome.Reason}");
        if (deployment.LatestEvaluation is { Metrics.Count: > 0 } latest)
        {
            await TextTable.WriteAsync(stdout, "  ",
                [["METRIC", "VERDICT", $"EXPLANATION ({IsoTimes.Utc(latest.At)})"], .. latest.Metrics.Select(metric => new[] { metric.Name, metric.Verdict, metric.Explanation ?? "" })]);
        }
    }

    /// <summary>"7m 12s", "2h 5s", "45s": whole hours, minutes and seconds, those that are not zero.</summary>
    private static string Span(long seconds)
    {
        var parts = new[] { (seconds / 3600, "h"), (seconds % 3600 / 60, "m"), (seconds % 60, "s") }.Where(p => p.Item1 > 0).Select(p => $"{p.Item1}{p.Item2}").ToList();
        return parts.Count == 0 ? "0s" : string.Join(' ', parts);
    }
}
