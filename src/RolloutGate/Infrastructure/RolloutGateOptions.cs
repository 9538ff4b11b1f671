using System.ComponentModel.DataAnnotations;

namespace RolloutGate.Infrastructure;

/// <summary>The <c>RolloutGate</c> configuration section (CONTRACT section 2).</summary>
public sealed class RolloutGateOptions
{
    public const string SectionName = "RolloutGate";

    [Required]
    public string RunbooksPath { get; set; } = "runbooks";

    [Required, Url]
    public string PublicUrl { get; set; } = "http://127.0.0.1:8080";

    /// <summary>Where the SQL migrations are; defaults to the copy shipped next to the binary.</summary>
    public string? MigrationsPath { get; set; }

    /// <summary>
    /// Once the host has stopped, end the process even when threads a library left running would keep it alive: Quartz's,
    /// when the watch scheduler's stop was cut short with the database gone. Tests that host the service inside their
    /// own process (WebApplicationFactory runs Main) turn it off.
    /// </summary>
    public bool EndProcessOnStop { get; set; } = true;

    public PrometheusOptions Prometheus { get; set; } = new();

    public AlertmanagerOptions Alertmanager { get; set; } = new();

    public WebhookOptions Webhook { get; set; } = new();

    public ApiOptions Api { get; set; } = new();

    public SlackOptions Slack { get; set; } = new();

    public KubernetesOptions Kubernetes { get; set; } = new();
}

public sealed class PrometheusOptions
{
    public string Url { get; set; } = "http://127.0.0.1:9090";
}

public sealed class AlertmanagerOptions
{
    public string? Url { get; set; }
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

    /// <summary>How far a signed timestamp may be from now.</summary>
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
