using Microsoft.Extensions.Options;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Infrastructure;

/// <summary>The <c>RolloutGate</c> configuration section (CONTRACT section 2).</summary>
public sealed class RolloutGateOptions
{
    public const string SectionName = "RolloutGate";

    public string RunbooksPath { get; set; } = "runbooks";

    public string PublicUrl { get; set; } = "http://127.0.0.1:8080";

    /// <summary>Where the SQL migrations are; defaults to the copy shipped next to the binary.</summary>
    public string? MigrationsPath { get; set; }

    /// <summary>
    /// Once the host has stopped, end the process even when threads a library left running would keep it alive: Quartz's,
    /// when the watch scheduler's stop was cut short with the database gone. Tests that host the service inside their
    /// own process (WebApplicationFactory runs Main) turn it off.
    /// </summary>
    public bool EndProcessOnStop { get; set; } = true;

    /// <summary>
    /// Whether the service's sessions ask PostgreSQL to bound how long a lost replica holds its locks
    /// (<see cref="Database.DatabaseExtensions.LostClientOptions"/>). Off for a pooler such as PgBouncer, which refuses startup
    /// options it does not track: the pooler and the server bound a lost client there.
    /// </summary>
    public bool DatabaseSessionTimeouts { get; set; } = true;

    public PrometheusOptions Prometheus { get; set; } = new();

    public AlertmanagerOptions Alertmanager { get; set; } = new();

    public WebhookOptions Webhook { get; set; } = new();

    public ApiOptions Api { get; set; } = new();

    public SlackOptions Slack { get; set; } = new();

    public KubernetesOptions Kubernetes { get; set; } = new();

    public RollbackOptions Rollback { get; set; } = new();
}

public sealed class RollbackOptions
{
    /// <summary>
    /// How many automatic rollbacks (decided by RolloutGate: <c>rollback.mode: auto</c> and <c>onTimeout: rollback</c>)
    /// all services together may have in any hour before a further <c>mode: auto</c> regression is held for a person
    /// instead: posted as a recommendation, audited as <c>rollback.held</c>, and left until someone decides. Many
    /// regressions at once more often mean a monitoring problem (a Prometheus that lost data, a shared dependency) than
    /// that many bad changes. 0, the default, sets no limit.
    /// </summary>
    public int AutomaticPerHour { get; set; }
}

public sealed class PrometheusOptions : MonitoringAuthOptions
{
    /// <summary>
    /// 32 MiB: a preset's query for every workload of the mesh (about 150 bytes a workload) stays well under it, and so do
    /// its latency buckets (20 series, about 3 KB, a workload) up to some 10,000 workloads, since the limit holds for the
    /// presets' batched queries too and a mesh's size is not the runbook author's mistake. A custom query without
    /// aggregation passes it only on a very large mesh; below it, several series are no data all the same. An answer is
    /// held whole while it is parsed, for each of the queries read at once.
    /// </summary>
    public const int DefaultMaxAnswerBytes = 32 * 1024 * 1024;

    public string Url { get; set; } = "http://127.0.0.1:9090";

    /// <summary>
    /// The most bytes of one answer that are read. A metric or a check needs one number, but a query without aggregation
    /// (<c>rate(istio_requests_total[5m])</c> on a big mesh) returns thousands of series, many megabytes at every interval
    /// of every watch: past this its answer is not read, and the query is refused as unusable, saying to aggregate it.
    /// </summary>
    public int MaxAnswerBytes { get; set; } = DefaultMaxAnswerBytes;

    internal override string? Address => Url;

    public override IEnumerable<string> Problems(string section, string separator = ":", string? urlName = null) =>
    [
        .. base.Problems(section, separator, urlName),
        .. MaxAnswerBytes > 0 ? [] : new[] { $"{section}{separator}MaxAnswerBytes must be a positive number of bytes" },
    ];
}

public sealed class AlertmanagerOptions : MonitoringAuthOptions
{
    public string? Url { get; set; }

    internal override string? Address => Url;
}

/// <summary>
/// How RolloutGate authenticates to Prometheus or Alertmanager when they sit behind authentication (an auth proxy in
/// front of Thanos, Cortex or Mimir, a hosted Prometheus): at most one of a bearer token, a file holding one, or a user
/// name and password (as settings, or as the user info of the URL: <c>https://user:pass@prometheus/</c>), and extra
/// headers such as a tenant's <c>X-Scope-OrgID</c>. None by default.
/// </summary>
public abstract class MonitoringAuthOptions
{
    /// <summary>The section's <c>Url</c>: the server's address, whose user info is credentials too.</summary>
    internal abstract string? Address { get; }

    /// <summary>Sent as <c>Authorization: Bearer</c>. A secret: never logged.</summary>
    public string? BearerToken { get; set; }

    /// <summary>A file holding the bearer token, read again for every request (a projected service-account token or a secret agent's file rotates).</summary>
    public string? BearerTokenFile { get; set; }

    /// <summary>With <see cref="Password"/>, sent as <c>Authorization: Basic</c>.</summary>
    public string? Username { get; set; }

    /// <summary>A secret: never logged.</summary>
    public string? Password { get; set; }

    /// <summary>Headers sent with every request, such as <c>X-Scope-OrgID</c> for a Cortex, Mimir or Thanos tenant.</summary>
    public Dictionary<string, string> Headers { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// A PEM file of the certificate authorities to trust for an https URL whose certificate a private CA signed, in
    /// place of the machine's roots; none: the machine's roots.
    /// </summary>
    public string? CaFile { get; set; }

    /// <summary>
    /// The <c>Authorization: Basic</c> value of <see cref="Username"/> and <see cref="Password"/>, else of the user info
    /// of the <c>Url</c> (as curl and Prometheus's own clients send it); null without either.
    /// </summary>
    public string? BasicCredentials() =>
        string.IsNullOrEmpty(Username) ? Urls.BasicCredentials(Address) : Urls.BasicCredentials(Username, Password);

    /// <summary>
    /// The secrets these settings put on every request, for <see cref="Urls.Redacted"/> to cut out of an
    /// answer that repeats the request it refused: the bearer token (the token file's as it reads now), the password and
    /// the basic credentials made of it, and the extra headers' values (an API key may be one).
    /// </summary>
    public IEnumerable<string?> Secrets()
    {
        string? fromFile = null;
        try
        {
            fromFile = string.IsNullOrEmpty(BearerTokenFile) ? null : File.ReadAllText(BearerTokenFile).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Then no request carried it either.
        }

        return [BearerToken, fromFile, Password, BasicCredentials(), .. Headers.Values];
    }

    /// <summary>
    /// Why an answer from <paramref name="server"/> (Prometheus or Alertmanager) is not one to read, naming the settings
    /// to change; null for any other answer. A 401 or 403: neither server answers that itself, so the authentication in
    /// front of it refused RolloutGate. A redirect: not followed (<see cref="Http.MonitoringAuthHandler.Primary"/>), since
    /// the credentials and headers would go along to wherever it points.
    /// </summary>
    public static string? Refusal(HttpResponseMessage response, string server)
    {
        var status = (int)response.StatusCode;
        if (status is 401 or 403)
        {
            return $"the authentication in front of it refused RolloutGate; check RolloutGate__{server}__BearerToken, __BearerTokenFile, __Username and __Password, or the user info of __Url (and __Headers__* for a tenant)";
        }

        if (status is >= 300 and < 400)
        {
            var location = response.Headers.Location is { } to && response.RequestMessage?.RequestUri is { } from ? Urls.Shown(new Uri(from, to)) : "elsewhere";
            return $"a redirect to {location}, which RolloutGate does not follow (its credentials and headers would go along); set RolloutGate__{server}__Url to the address that answers";
        }

        return null;
    }

    /// <summary>
    /// What is wrong with these settings, or nothing; keys are named as <paramref name="section"/>, then
    /// <paramref name="separator"/> and the key (":" as in appsettings.json, "__" as in environment variables), the URL as
    /// <paramref name="urlName"/> when it came from elsewhere (backtest's --prometheus).
    /// </summary>
    public virtual IEnumerable<string> Problems(string section, string separator = ":", string? urlName = null)
    {
        var kinds = new (string Key, string? Value)[] { ("BearerToken", BearerToken), ("BearerTokenFile", BearerTokenFile), ("Username", Username) }
            .Where(kind => !string.IsNullOrEmpty(kind.Value)).Select(kind => kind.Key).ToList();
        if (kinds.Count > 1)
        {
            yield return $"{section}: set at most one of BearerToken, BearerTokenFile and Username (with Password)";
        }
        else if (kinds.Count == 1 && Urls.HasUserInfo(Address))
        {
            // Which would be sent? Refused rather than one of them dropped unsaid.
            yield return $"{urlName ?? $"{section}{separator}Url"} carries a user name and password, and {section}{separator}{kinds[0]} is set too: give the credentials in one place only";
        }

        if (BearerToken?.Any(char.IsControl) == true)
        {
            // Sent as it is, it failed every query with "New-line or NUL characters are not allowed in header values".
            yield return $"{section}{separator}BearerToken contains a line break or another control character (the end of the file it was copied from?)";
        }

        if (!string.IsNullOrEmpty(Password) && string.IsNullOrEmpty(Username))
        {
            yield return $"{section}{separator}Password is set without {section}{separator}Username";
        }

        if (!string.IsNullOrEmpty(Username) && Username.Contains(':', StringComparison.Ordinal))
        {
            yield return $"{section}{separator}Username must not contain ':' (basic authentication separates it from the password with one)";
        }

        if (!string.IsNullOrEmpty(CaFile) && Http.PrivateAuthority.Problem(CaFile) is { } unusable)
        {
            yield return $"{section}{separator}CaFile: {unusable}";
        }

        foreach (var (name, value) in Headers)
        {
            if (name.Length == 0 || name.Any(c => c <= ' ' || c >= 127 || "()<>@,;:\\\"/[]?={}".Contains(c)))
            {
                yield return $"{section}{separator}Headers: '{name}' is not a valid header name";
            }
            else if (name.Equals("Authorization", StringComparison.OrdinalIgnoreCase))
            {
                yield return $"{section}{separator}Headers: set Authorization through BearerToken, BearerTokenFile or Username and Password";
            }
            else if (value.Any(char.IsControl))
            {
                yield return $"{section}{separator}Headers{separator}{name}: the value must not contain control characters such as a line break";
            }
        }
    }
}

public sealed class WebhookOptions
{
    /// <summary>HMAC secret for signed CD webhooks; none means signed webhooks are refused.</summary>
    public string? Secret { get; set; }

    /// <summary>
    /// Secrets a signature is also checked against while CD pipelines move to a new <see cref="Secret"/>: a delivery
    /// signed with one is accepted, counted (<c>rolloutgate_webhooks_previous_secret</c>) and logged with its service, so
    /// that the operator sees which pipelines still use it before removing it.
    /// </summary>
    public List<string> PreviousSecrets { get; set; } = [];

    /// <summary>Bearer tokens accepted instead of a signature.</summary>
    public List<string> Tokens { get; set; } = [];

    /// <summary>How far a webhook's timestamp (signed, or sent with a bearer token) may be from now.</summary>
    public TimeSpan TimestampTolerance { get; set; } = TimeSpan.FromMinutes(5);
}

public sealed class ApiOptions
{
    public List<string> ReaderTokens { get; set; } = [];

    public List<string> OperatorTokens { get; set; } = [];
}

public sealed class SlackOptions
{
    public string ApiBaseUrl { get; set; } = "https://slack.com/api";

    public string? BotToken { get; set; }

    public string? SigningSecret { get; set; }

    /// <summary>How often the outbox dispatcher looks for messages that are due.</summary>
    public TimeSpan DispatchInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The first wait after a failed delivery; it doubles (with jitter) up to <see cref="RetryMaxDelay"/>.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(5);

    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How long after it was written a message that keeps failing is given up (set aside and audited), so that it stops
    /// holding back its deployment's later messages. A day: longer than any Slack outage worth waiting out, short enough
    /// that a thread is not stuck behind a message nobody will ever see.
    /// </summary>
    public TimeSpan AbandonAfter { get; set; } = TimeSpan.FromDays(1);
}

public sealed class KubernetesOptions
{
    public string? ApiServer { get; set; }

    public string TokenFile { get; set; } = "/var/run/secrets/kubernetes.io/serviceaccount/token";

    public string CaFile { get; set; } = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
}

/// <summary>
/// Start-up refuses, naming each setting: no runbooks folder; a public URL (for links in messages) that is not an
/// absolute http(s) URL (an ftp URL was taken); a URL of another service (Prometheus, Alertmanager, Slack, the
/// Kubernetes API) that is not one, which was taken and failed every query, post or rollback with a stack trace; a
/// Slack or Kubernetes API URL with a user name and password, which neither client sends; a
/// webhook timestamp tolerance that is not positive, which refused every signed webhook; conflicting or malformed
/// authentication settings for Prometheus and Alertmanager; and a negative limit of automatic rollbacks. A URL is not
/// repeated: it may carry a password.
/// </summary>
public sealed class RolloutGateOptionsValidation : IValidateOptions<RolloutGateOptions>
{
    public ValidateOptionsResult Validate(string? name, RolloutGateOptions options)
    {
        const string section = RolloutGateOptions.SectionName;
        List<string> problems =
        [
            .. string.IsNullOrWhiteSpace(options.RunbooksPath) ? new[] { $"{section}:RunbooksPath must name the folder of runbooks" } : [],
            .. UrlProblem($"{section}:PublicUrl", options.PublicUrl),
            .. UrlProblem($"{section}:Prometheus:Url", options.Prometheus.Url),
            .. string.IsNullOrEmpty(options.Alertmanager.Url) ? [] : UrlProblem($"{section}:Alertmanager:Url", options.Alertmanager.Url),
            .. UrlProblem($"{section}:Slack:ApiBaseUrl", options.Slack.ApiBaseUrl),
            .. UserInfoProblem($"{section}:Slack:ApiBaseUrl", options.Slack.ApiBaseUrl, $"Slack is called with the bot token ({section}:Slack:BotToken)"),
            .. string.IsNullOrEmpty(options.Kubernetes.ApiServer) ? [] : UrlProblem($"{section}:Kubernetes:ApiServer", options.Kubernetes.ApiServer),
            .. UserInfoProblem(
                $"{section}:Kubernetes:ApiServer", options.Kubernetes.ApiServer,
                $"the API server is called with the service-account token of {section}:Kubernetes:TokenFile (Kubernetes dropped basic authentication in 1.19)"),
            .. options.Webhook.TimestampTolerance > TimeSpan.Zero ? [] : new[] { $"{section}:Webhook:TimestampTolerance must be positive" },
            .. options.Prometheus.Problems($"{section}:Prometheus"),
            .. options.Alertmanager.Problems($"{section}:Alertmanager"),
            .. options.Rollback.AutomaticPerHour >= 0 ? [] : new[] { $"{section}:Rollback:AutomaticPerHour must be 0 (no limit) or a number of rollbacks" },
        ];
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    private static IEnumerable<string> UrlProblem(string key, string url) =>
        Urls.IsAbsoluteHttp(url) ? [] : [$"{key} must be an absolute http or https URL"];

    /// <summary>
    /// A URL whose user info would be sent nowhere: that client authenticates otherwise (<paramref name="instead"/>), and
    /// .NET's HttpClient never sends user info by itself, so each request went out without it and was refused unexplained.
    /// </summary>
    private static IEnumerable<string> UserInfoProblem(string key, string? url, string instead) =>
        Urls.HasUserInfo(url) ? [$"{key} must not carry a user name or password: {instead}"] : [];
}
