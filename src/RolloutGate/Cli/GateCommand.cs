using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using RolloutGate.Core.Runbooks;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure;
using RolloutGate.Webhooks;

namespace RolloutGate.Cli;

/// <summary>
/// <c>gate EVENT ...</c>: a CD pipeline's side of the webhook (CONTRACT section 4), so a pipeline step needs no
/// hand-written HMAC. The secret is read from the environment, never from an argument, because arguments show in
/// process lists and CI logs. Exit codes: 0 allow (or the event was accepted), 1 deny, 2 no usable answer
/// (usage, refused request, server error or unreachable after the retries, or an answer without the fields it must carry).
/// </summary>
public static class GateCommand
{
    public const string SecretVariable = "ROLLOUTGATE_WEBHOOK_SECRET";
    public const string TokenVariable = "ROLLOUTGATE_WEBHOOK_TOKEN";
    public const string UrlVariable = "ROLLOUTGATE_URL";
    public const string DefaultUrl = "http://127.0.0.1:8080";
    public const int DefaultRetries = 5;
    public const int MaxRetries = 100;
    public const int MaxDeliveryIdLength = 200;
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan MaxTimeout = TimeSpan.FromHours(1);

    public const int ExitAllowed = 0;
    public const int ExitDenied = 1;
    public const int ExitNoAnswer = 2;

    public const string Usage = """
        usage:
          rolloutgate gate predeploy|deployed|rolledback|cancelled --deployment-id ID --service S --environment E
              [--url URL] [--version V] [--previous-version V] [--initiator NAME] [--commit SHA] [--pipeline-url URL]
              [--at ISO8601] [--delivery-id ID] [--timeout 60s] [--retries 5] [--json]
          The secret comes from ROLLOUTGATE_WEBHOOK_SECRET (or a token from ROLLOUTGATE_WEBHOOK_TOKEN), the URL from
          --url or ROLLOUTGATE_URL (default http://127.0.0.1:8080).
          Exit codes: 0 allow / accepted, 1 deny, 2 no usable answer (refused, server error, unreachable, unreadable).
          rolloutgate gate wait --deployment-id ID --for 30m [--url URL] [--interval 30s] [--timeout 60s] [--retries 5] [--json]
          Waits while the watch runs: the reader token comes from ROLLOUTGATE_READER_TOKEN. Ends early on a regression or
          the end of the watch. Exit codes: 0 promote (still watching without a regression after --for, completed or
          kept), 1 do not promote (regressed, rolling-back, rolled-back, stopped, denied, cancelled), 2 no usable answer
          (refused, unknown deployment, unreachable, unreadable, a watch blind or not started at the end, a signal).
          Durations are written 500ms, 90s, 30m, 2h or a bare number of seconds, more than zero:
            --timeout      one request with its retries, in all: default 60s, at most 1h
            --retries      how often a request is retried (5xx, 408, 429, no answer): default 5, from 0 to 100
            --for          how long wait waits: required, at most 7 days (168h)
            --interval     how often wait reads the deployment: default 30s (give or take a fifth), at most 1h
            --at           the event's time, ISO 8601 with Z or an offset (2026-11-21T10:00:00Z): default the server's now
            --delivery-id  the idempotency key, at most 200 characters: default the event, '-' and 32 random hex digits
            --json         print the server's JSON answer instead of the summary
        """;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private static readonly string[] ValueOptions =
    [
        "--url", "--deployment-id", "--service", "--environment", "--version", "--previous-version", "--initiator",
        "--commit", "--pipeline-url", "--at", "--delivery-id", "--timeout", "--retries",
    ];

    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr) =>
        args is [GateWait.Event, .. var rest]
            ? GateWait.RunAsync(rest, stdout, stderr)
            : RunAsync(args, stdout, stderr, Environment.GetEnvironmentVariable, http: null, TimeProvider.System, GateDelivery.DefaultRetryBaseDelay);

    /// <summary>The command with its surroundings passed in, so tests choose the environment, HTTP client and clock.</summary>
    internal static async Task<int> RunAsync(
        string[] args, TextWriter stdout, TextWriter stderr, Func<string, string?> environment, HttpClient? http, TimeProvider time, TimeSpan retryBaseDelay)
    {
        if (args is [] or ["help" or "--help" or "-h", ..])
        {
            await (args is [] ? stderr : stdout).WriteLineAsync(Usage);
            return args is [] ? ExitNoAnswer : 0;
        }

        var (invocation, error) = Parse(args, environment);
        if (invocation is null)
        {
            await stderr.WriteLineAsync($"gate: {error}");
            await stderr.WriteLineAsync(Usage);
            return ExitNoAnswer;
        }

        var body = JsonSerializer.SerializeToUtf8Bytes(invocation.Request, Json);
        using var ownClient = http is null ? new HttpClient { Timeout = Timeout.InfiniteTimeSpan } : null;
        var delivery = new GateDelivery(http ?? ownClient!, time, stderr);
        var answer = await delivery.SendAsync(
            invocation.Url, body, invocation.DeliveryId, invocation.Credentials, invocation.Retries, invocation.Timeout, retryBaseDelay);
        return await ReportAsync(invocation, answer, stdout, stderr);
    }

    private sealed record Invocation(
        WebhookRequest Request, Uri Url, string DeliveryId, GateCredentials Credentials, int Retries, TimeSpan Timeout, bool PrintJson);

    private static (Invocation? Invocation, string? Error) Parse(string[] args, Func<string, string?> environment)
    {
        var @event = args[0];
        if (!WebhookEvents.All.Contains(@event, StringComparer.Ordinal))
        {
            return (null, $"the event '{@event}' is not one of {string.Join(", ", WebhookEvents.All)}");
        }

        var (values, printJson, optionError) = ReadOptions(args[1..], ValueOptions, "");
        if (optionError is not null)
        {
            return (null, optionError);
        }

        string? Value(string name) => values.TryGetValue(name, out var value) && value.Length > 0 ? value : null;

        var missing = new[] { "--deployment-id", "--service", "--environment" }.Where(name => Value(name) is null).ToList();
        if (missing.Count > 0)
        {
            return (null, $"missing {string.Join(", ", missing)}");
        }

        var secret = environment(SecretVariable);
        var token = environment(TokenVariable);
        if (string.IsNullOrEmpty(secret) && string.IsNullOrEmpty(token))
        {
            return (null, $"set {SecretVariable} (HMAC secret) or {TokenVariable} (webhook bearer token) in the environment");
        }

        if (ReadUrl(Value, environment, out var urlError) is not { } url)
        {
            return (null, urlError);
        }

        if (string.IsNullOrEmpty(secret) && UserInfoRefusal(url, TokenVariable) is { } userInfoError)
        {
            return (null, $"{userInfoError}, or sign with {SecretVariable} instead, beside which the user info is sent");
        }

        DateTimeOffset? at = null;
        if (Value("--at") is { } atText)
        {
            if (IsoTimes.Read(atText) is not { } parsed)
            {
                return (null, $"--at '{atText}' is not an ISO 8601 time with its offset, such as 2026-11-21T10:00:00Z");
            }

            at = parsed;
        }

        if (ReadPatience(Value, out var timeout, out var retries) is { } patienceError)
        {
            return (null, patienceError);
        }

        // One id for every attempt of this delivery: it is what makes a retry safe on the server.
        var deliveryId = Value("--delivery-id") ?? $"{@event}-{Guid.NewGuid():N}";
        if (deliveryId.Length > MaxDeliveryIdLength)
        {
            return (null, $"--delivery-id is longer than {MaxDeliveryIdLength} characters");
        }

        var request = new WebhookRequest(
            @event, Value("--deployment-id")!, Value("--service")!, Value("--environment")!, Value("--version"), Value("--previous-version"),
            Value("--initiator"), Value("--commit"), Value("--pipeline-url"), at);
        var credentials = new GateCredentials(NonEmpty(secret), NonEmpty(token));
        return (new Invocation(request, url, deliveryId, credentials, retries, timeout, printJson), null);
    }

    /// <summary>The server's URL from <c>--url</c>, else ROLLOUTGATE_URL, else the default, as every gate command reads it; null and why when it is not http(s).</summary>
    internal static Uri? ReadUrl(Func<string, string?> value, Func<string, string?> environment, out string? error)
    {
        var urlText = value("--url") ?? NonEmpty(environment(UrlVariable)) ?? DefaultUrl;
        var ok = Uri.TryCreate(urlText, UriKind.Absolute, out var url) && url.Scheme is "http" or "https";
        error = ok ? null : $"--url '{Urls.Shown(urlText)}' is not an http(s) URL";
        return ok ? url : null;
    }

    /// <summary>
    /// <paramref name="url"/> as a "no answer from" message names it (<c>Urls.Shown</c>), saying how to name
    /// another when it is the default: a service started on another port (run.sh's ROLLOUTGATE_PORT) is not asked there.
    /// </summary>
    internal static string Unanswered(Uri url) =>
        url.AbsoluteUri == new Uri(DefaultUrl).AbsoluteUri ? $"{Urls.Shown(url)} (the default; --url or {UrlVariable} names another)" : Urls.Shown(url);

    /// <summary>
    /// Why the user info of <paramref name="url"/> (<c>https://user:pass@host/</c>, a proxy's basic authentication) cannot be
    /// sent, or null when it has none: it goes in the Authorization header, which the bearer token of
    /// <paramref name="tokenVariable"/> takes, and one of them would be dropped unsaid (.NET's HttpClient never sends user
    /// info by itself; curl lets a bearer header replace it). Never shows the user info.
    /// </summary>
    internal static string? UserInfoRefusal(Uri url, string tokenVariable) =>
        url.UserInfo.Length == 0
            ? null
            : $"--url '{Urls.Shown(url)}' has user info (user:password@), which would go as basic authentication in the Authorization header "
              + $"that the bearer token of {tokenVariable} takes: a request carries one; drop the user info from the URL";

    /// <summary><c>--timeout</c> and <c>--retries</c> (or their defaults), as every gate command reads them; why not, or null.</summary>
    internal static string? ReadPatience(Func<string, string?> value, out TimeSpan timeout, out int retries)
    {
        timeout = DefaultTimeout;
        retries = DefaultRetries;
        if (value("--timeout") is { } timeoutText && !TryParseDuration(timeoutText, MaxTimeout, out timeout))
        {
            return $"--timeout '{timeoutText}' is not a duration such as 60s, 2m or 500ms (more than zero, at most {MaxTimeout.TotalHours:0}h)";
        }

        return value("--retries") is { } retriesText
            && (!int.TryParse(retriesText, NumberStyles.None, CultureInfo.InvariantCulture, out retries) || retries > MaxRetries)
            ? $"--retries '{retriesText}' is not a whole number from 0 to {MaxRetries}"
            : null;
    }

    /// <summary>
    /// <c>--name value</c> or <c>--name=value</c> for each of <paramref name="valueOptions"/>, and <c>--json</c>; an error
    /// for an unknown option (<paramref name="unknownSuffix"/> after its name), a missing value or an option given twice.
    /// </summary>
    internal static (Dictionary<string, string> Values, bool PrintJson, string? Error) ReadOptions(string[] args, string[] valueOptions, string unknownSuffix)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var printJson = false;
        for (var i = 0; i < args.Length; i++)
        {
            var (name, inline) = args[i].Split('=', 2) is [var n, var v] && n.StartsWith("--", StringComparison.Ordinal) ? (n, v) : (args[i], null);
            if (name == "--json" && inline is null)
            {
                printJson = true;
                continue;
            }

            if (!valueOptions.Contains(name, StringComparer.Ordinal))
            {
                return (values, printJson, $"unknown option '{name}'{unknownSuffix}");
            }

            if (inline is null && i + 1 >= args.Length)
            {
                return (values, printJson, $"{name} needs a value");
            }

            // The last of two would win unsaid: a webhook (or a wait) about another deployment or service than the one meant.
            if (!values.TryAdd(name, inline ?? args[++i]))
            {
                return (values, printJson, $"{name} is given more than once");
            }
        }

        return (values, printJson, null);
    }

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    /// <summary>"60s", "2m", "1h", "500ms", or a bare number of seconds; more than zero and at most <paramref name="max"/>.</summary>
    internal static bool TryParseDuration(string text, TimeSpan max, out TimeSpan duration)
    {
        var (number, unit) = text switch
        {
            _ when text.EndsWith("ms", StringComparison.Ordinal) => (text[..^2], 0.001),
            _ when text.EndsWith('s') => (text[..^1], 1.0),
            _ when text.EndsWith('m') => (text[..^1], 60.0),
            _ when text.EndsWith('h') => (text[..^1], 3600.0),
            _ => (text, 1.0),
        };
        var ok = double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) && value > 0
            && value * unit <= max.TotalSeconds;
        duration = ok ? TimeSpan.FromSeconds(value * unit) : TimeSpan.Zero;
        return ok;
    }

    private static async Task<int> ReportAsync(Invocation invocation, GateAnswer answer, TextWriter stdout, TextWriter stderr)
    {
        if (answer.Status is not { } status)
        {
            await stderr.WriteLineAsync($"gate: no answer from {Unanswered(invocation.Url)}: {answer.Failure}");
            return ExitNoAnswer;
        }

        var success = (int)status is >= 200 and < 300;
        if (invocation.PrintJson)
        {
            await stdout.WriteLineAsync(answer.Body);
        }

        if (!success)
        {
            await stderr.WriteLineAsync($"gate: {invocation.Request.Event} refused: {ProblemText(status, answer.Body)}");
            return ExitNoAnswer;
        }

        if (answer.ReplayedOtherBody)
        {
            // The server answers a delivery id it has seen with that delivery's first answer, whatever this body is.
            await stderr.WriteLineAsync(
                $"gate: delivery id '{invocation.DeliveryId}' was used before for another body: the answer is that delivery's, and this "
                + $"{invocation.Request.Event} was not applied; give each event its own --delivery-id");
            return ExitNoAnswer;
        }

        try
        {
            return invocation.Request.Event switch
            {
                WebhookEvents.PreDeploy => await PrintVerdictAsync(JsonSerializer.Deserialize<PreDeployResponse>(answer.Body, Json)!, invocation, stdout),
                WebhookEvents.Deployed => await PrintWatchAsync(JsonSerializer.Deserialize<DeployedAnswer>(answer.Body, Json)!, invocation, stdout),
                _ => await PrintStateAsync(JsonSerializer.Deserialize<StateResponse>(answer.Body, Json)!, invocation, stdout),
            };
        }
        catch (Exception ex) when (ex is JsonException or NullReferenceException)
        {
            var reason = ex is JsonException ? $" ({ex.Message})" : "";
            await stderr.WriteLineAsync($"gate: HTTP {(int)status} with an answer this gate cannot read{reason}: {Truncate(answer.Body)}");
            return ExitNoAnswer;
        }
    }

    /// <summary>
    /// An answer without a field CONTRACT section 4 promises is no usable answer (exit 2), not an acceptance: a proxy or
    /// another service answering 2xx with <c>{}</c> must not let a pipeline believe the change is being watched.
    /// </summary>
    private static void Require(params (string Name, bool Present)[] fields)
    {
        var missing = fields.Where(field => !field.Present).Select(field => field.Name).ToList();
        if (missing.Count > 0)
        {
            throw new JsonException($"no {string.Join(", ", missing)}");
        }
    }

    /// <summary>An answer about another deployment (a caching proxy, a misrouted request) decides nothing for this one.</summary>
    private static void RequireSameDeployment(string? answered, Invocation invocation)
    {
        if (!string.IsNullOrEmpty(answered) && answered != invocation.Request.DeploymentId)
        {
            throw new JsonException($"it answers for deployment '{answered}', not '{invocation.Request.DeploymentId}'");
        }
    }

    private static async Task<int> PrintVerdictAsync(PreDeployResponse response, Invocation invocation, TextWriter stdout)
    {
        Require(("deploymentId", !string.IsNullOrEmpty(response.DeploymentId)));
        RequireSameDeployment(response.DeploymentId, invocation);
        var allowed = response.Verdict switch
        {
            "allow" => true,
            "deny" => false,
            _ => throw new JsonException($"unknown verdict '{response.Verdict}'"),
        };
        if (invocation.PrintJson)
        {
            return allowed ? ExitAllowed : ExitDenied;
        }

        var request = invocation.Request;
        await stdout.WriteLineAsync($"predeploy {response.DeploymentId} ({request.Service} in {request.Environment}): {response.Verdict.ToUpperInvariant()}");
        if (response.Checks.Count == 0)
        {
            await stdout.WriteLineAsync("  no checks listed: the built-in rules passed and the runbook has no pre-deploy checks");
        }
        else
        {
            await TextTable.WriteAsync(stdout, "  ", [["CHECK", "STATUS", "DETAIL"], .. response.Checks.Select(check => new[] { check.Name, check.Status, check.Detail })]);
        }

        await stdout.WriteLineAsync($"runbook {response.Runbook.Name} v{response.Runbook.Version} sha256:{response.Runbook.Sha256}");
        return allowed ? ExitAllowed : ExitDenied;
    }

    /// <summary>
    /// <see cref="DeployedResponse"/> as the gate reads it: <c>preDeployGate</c> is the object this RolloutGate answers, or
    /// the one line an earlier one answered (and replays to a retry of a delivery it answered then), so that a gate and a
    /// server of different versions still take an accepted deploy for one.
    /// </summary>
    private sealed record DeployedAnswer(string DeploymentId, string State, DateTimeOffset WatchUntil, JsonElement? PreDeployGate, IReadOnlyList<string>? Superseded, string? SupersededBy)
    {
        public string? Warning => PreDeployGate switch
        {
            { ValueKind: JsonValueKind.String } line => line.GetString(),
            { ValueKind: JsonValueKind.Object } gate when gate.TryGetProperty("summary", out var summary) && summary.ValueKind == JsonValueKind.String
                => summary.GetString(),
            { ValueKind: JsonValueKind.Object } => "deployed without the pre-deploy gate's allow",
            _ => null,
        };
    }

    private static async Task<int> PrintWatchAsync(DeployedAnswer response, Invocation invocation, TextWriter stdout)
    {
        Require(("deploymentId", !string.IsNullOrEmpty(response.DeploymentId)), ("state", !string.IsNullOrEmpty(response.State)),
            ("watchUntil", response.WatchUntil != default));
        RequireSameDeployment(response.DeploymentId, invocation);
        if (!invocation.PrintJson)
        {
            var request = invocation.Request;
            await stdout.WriteLineAsync(response.SupersededBy is { } newer
                ? $"deployed {response.DeploymentId} ({request.Service} in {request.Environment}): {response.State} at once: {newer}, deployed after it, had already replaced it (watch.onNewerDeploy: stop)"
                : $"deployed {response.DeploymentId} ({request.Service} in {request.Environment}): {response.State} until {IsoTimes.Utc(response.WatchUntil)}");
            if (response.Warning is { } bypass)
            {
                await stdout.WriteLineAsync($"warning: {bypass}");
            }

            if (response.Superseded is { Count: > 0 } superseded)
            {
                await stdout.WriteLineAsync($"ended the watch of {string.Join(", ", superseded)}: this deploy replaced {(superseded.Count == 1 ? "it" : "them")}");
            }
        }

        return ExitAllowed;
    }

    private static async Task<int> PrintStateAsync(StateResponse response, Invocation invocation, TextWriter stdout)
    {
        Require(("deploymentId", !string.IsNullOrEmpty(response.DeploymentId)), ("state", !string.IsNullOrEmpty(response.State)));
        RequireSameDeployment(response.DeploymentId, invocation);
        if (!invocation.PrintJson)
        {
            var request = invocation.Request;
            await stdout.WriteLineAsync($"{request.Event} {response.DeploymentId} ({request.Service} in {request.Environment}): {response.State}");
        }

        return ExitAllowed;
    }

    /// <summary>
    /// "HTTP 401 Not authenticated: the signature does not match", from a problem+json answer when there is one; the start
    /// of anything else. At most <see cref="Truncate"/>'s length after the status, whatever the answer (a proxy's page, a
    /// detail of a megabyte): it goes to a terminal and a CI log.
    /// </summary>
    internal static string ProblemText(HttpStatusCode status, string body)
    {
        var head = $"HTTP {(int)status}";
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return $"{head}: {Truncate(body)}";
            }

            var title = root.TryGetProperty("title", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            var detail = root.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
            return head + Truncate($"{(title is null ? "" : " " + title)}{(detail is null ? "" : ": " + detail)}");
        }
        catch (JsonException)
        {
            return body.Length == 0 ? head : $"{head}: {Truncate(body)}";
        }
    }

    internal static string Truncate(string text) => TextCut.Shorten(text, 500, "...");
}
