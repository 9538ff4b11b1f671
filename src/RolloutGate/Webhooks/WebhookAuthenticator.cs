using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using RolloutGate.Api;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Http;
using RolloutGate.Operations;

namespace RolloutGate.Webhooks;

/// <summary>
/// CONTRACT section 4: <c>X-RolloutGate-Signature: sha256=hex(HMAC-SHA256(secret, "{timestamp}.{raw body}"))</c> with
/// <c>X-RolloutGate-Timestamp</c> within five minutes of now, or <c>Authorization: Bearer</c> with a webhook token.
/// The signature covers the timestamp, so a captured delivery cannot be replayed later with a fresh one. A bearer
/// delivery needs no timestamp, but one that carries it is held to the same window: a delivery captured with its
/// headers and replayed later is refused as a signed one is (the token itself proves nothing about when it was sent).
/// </summary>
public sealed partial class WebhookAuthenticator(
    IOptionsMonitor<RolloutGateOptions> options, TimeProvider time, RolloutGateMetrics metrics, ILogger<WebhookAuthenticator> logger)
{
    public const string TimestampHeader = "X-RolloutGate-Timestamp";
    public const string SignatureHeader = "X-RolloutGate-Signature";
    public const string SignaturePrefix = "sha256=";

    /// <summary>What a refused signature should have been, said with the refusal (CONTRACT section 4).</summary>
    private const string HowToSign = $"the HMAC-SHA256, keyed with the webhook secret, of \"{{{TimestampHeader}}}.{{the body's exact bytes}}\"";

    /// <summary>How far a sender's clock may be from this server's (RolloutGate:Webhook:TimestampTolerance).</summary>
    public TimeSpan TimestampTolerance => options.CurrentValue.Webhook.TimestampTolerance;

    /// <summary>Whether the request is authentic: if not, why not (safe to show the caller).</summary>
    public WebhookAuthentication Authenticate(HttpRequest request, ReadOnlySpan<byte> body)
    {
        var webhook = options.CurrentValue.Webhook;
        var timestampText = request.Headers[TimestampHeader].ToString();
        if (ApiTokens.BearerToken(request) is { } token)
        {
            if (!ApiTokens.Matches(token, webhook.Tokens))
            {
                return Refused("the bearer token is not a webhook token");
            }

            return timestampText.Length > 0 && TimestampRefusal(timestampText, webhook) is { } timestampRefusal
                ? Refused(timestampRefusal)
                : WebhookAuthentication.Authentic;
        }

        var signature = request.Headers[SignatureHeader].ToString();
        if (timestampText.Length == 0 || signature.Length == 0)
        {
            // Name what is missing: a sender that set one of the two is looking for the other.
            var missing = (timestampText.Length, signature.Length) switch
            {
                (0, 0) => $"{TimestampHeader} and {SignatureHeader} headers",
                (0, _) => $"{TimestampHeader} header, which the signature signs with the body",
                _ => $"{SignatureHeader} header",
            };
            return Refused($"missing {missing} (or Authorization: Bearer <webhook token>)");
        }

        if (string.IsNullOrEmpty(webhook.Secret))
        {
            return Refused("signed webhooks are refused: no webhook secret is configured (RolloutGate__Webhook__Secret)");
        }

        if (TimestampRefusal(timestampText, webhook) is { } refusal)
        {
            return Refused(refusal);
        }

        if (!signature.StartsWith(SignaturePrefix, StringComparison.Ordinal))
        {
            return Refused($"{SignatureHeader} must be '{SignaturePrefix}<hex>'");
        }

        byte[] presented;
        try
        {
            presented = Convert.FromHexString(signature.AsSpan(SignaturePrefix.Length));
        }
        catch (FormatException)
        {
            presented = [];
        }

        // What a sender gets wrong most (base64, a digest cut short, another key or other bytes): the answer says how to sign.
        if (presented.Length != HMACSHA256.HashSizeInBytes)
        {
            return Refused($"{SignatureHeader} must be '{SignaturePrefix}' and 64 hexadecimal digits: {HowToSign}");
        }

        if (CryptographicOperations.FixedTimeEquals(presented, Sign(webhook.Secret, timestampText, body)))
        {
            return WebhookAuthentication.Authentic;
        }

        // Each previous secret is tried in full, whichever matches, so the answer's time says nothing about which did.
        var previous = false;
        foreach (var secret in webhook.PreviousSecrets.Where(s => !string.IsNullOrEmpty(s)))
        {
            previous |= CryptographicOperations.FixedTimeEquals(presented, Sign(secret, timestampText, body));
        }

        return previous ? new WebhookAuthentication(null, WithPreviousSecret: true) : Refused($"the signature does not match: {HowToSign}");
    }

    private static WebhookAuthentication Refused(string why) => new(why, WithPreviousSecret: false);

    /// <summary>Why <paramref name="timestampText"/> is refused (not unix seconds, or too far from now), or null.</summary>
    private string? TimestampRefusal(string timestampText, WebhookOptions webhook)
    {
        if (!long.TryParse(timestampText, NumberStyles.None, CultureInfo.InvariantCulture, out var timestamp))
        {
            return $"{TimestampHeader} must be unix seconds";
        }

        var skew = time.GetUtcNow().ToUnixTimeSeconds() - timestamp;
        return Math.Abs(skew) > webhook.TimestampTolerance.TotalSeconds
            ? $"{TimestampHeader} is {Math.Abs(skew)} s {(skew > 0 ? "old" : "in the future")}; at most {webhook.TimestampTolerance.TotalSeconds:0} s is accepted"
            : null;
    }

    /// <summary>
    /// An authentic delivery signed with a previous secret: counted, and logged with its service (null when the body
    /// could not be read), so that the pipelines still to move to the current secret can be found.
    /// </summary>
    public void SignedWithPreviousSecret(string deliveryId, string? service)
    {
        metrics.WebhookSignedWithPreviousSecret();
        // The body's service is any text the sender wrote, checked against no runbook yet: a line break would start a line.
        LogPreviousSecret(logger, deliveryId, LogText.OneLine(service) ?? "(unreadable body)");
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Webhook delivery {DeliveryId} for service {Service} is signed with a previous webhook secret (RolloutGate__Webhook__PreviousSecrets); move its pipeline to the current secret before removing that one")]
    private static partial void LogPreviousSecret(ILogger logger, string deliveryId, string service);

    /// <summary>HMAC-SHA256 over "{timestamp}.{body}"; shared with the CLI and rollback webhooks that sign the same way.</summary>
    public static byte[] Sign(string secret, string timestamp, ReadOnlySpan<byte> body) =>
        RequestSignatures.HmacSha256(secret, timestamp + ".", body);

    public static string SignatureHeaderValue(string secret, string timestamp, ReadOnlySpan<byte> body) =>
        SignaturePrefix + Convert.ToHexStringLower(Sign(secret, timestamp, body));
}

/// <param name="Refusal">Null when the request is authentic; otherwise why not, safe to show the caller.</param>
/// <param name="WithPreviousSecret">Authentic, but signed with one of <c>RolloutGate:Webhook:PreviousSecrets</c>.</param>
public readonly record struct WebhookAuthentication(string? Refusal, bool WithPreviousSecret)
{
    public static readonly WebhookAuthentication Authentic = new(null, false);
}
