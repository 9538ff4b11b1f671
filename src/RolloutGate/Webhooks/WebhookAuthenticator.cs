using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using RolloutGate.Api;
using RolloutGate.Infrastructure;

namespace RolloutGate.Webhooks;

/// <summary>
/// CONTRACT section 4: <c>X-RolloutGate-Signature: sha256=hex(HMAC-SHA256(secret, "{timestamp}.{raw body}"))</c> with
/// <c>X-RolloutGate-Timestamp</c> within five minutes of now, or <c>Authorization: Bearer</c> with a webhook token.
/// The signature covers the timestamp, so a captured delivery cannot be replayed later with a fresh one.
/// </summary>
public sealed class WebhookAuthenticator(IOptionsMonitor<RolloutGateOptions> options, TimeProvider time)
{
    public const string TimestampHeader = "X-RolloutGate-Timestamp";
    public const string SignatureHeader = "X-RolloutGate-Signature";
    public const string SignaturePrefix = "sha256=";

    /// <summary>Null when the request is authentic; otherwise why not, safe to show the caller.</summary>
    public string? Refusal(HttpRequest request, ReadOnlySpan<byte> body)
    {
        var webhook = options.CurrentValue.Webhook;
        if (ApiTokens.BearerToken(request) is { } token)
        {
            return ApiTokens.Matches(token, webhook.Tokens) ? null : "the bearer token is not a webhook token";
        }

        var timestampText = request.Headers[TimestampHeader].ToString();
        var signature = request.Headers[SignatureHeader].ToString();
        if (timestampText.Length == 0 || signature.Length == 0)
        {
            return $"missing {TimestampHeader} and {SignatureHeader} headers (or Authorization: Bearer <webhook token>)";
        }

        if (string.IsNullOrEmpty(webhook.Secret))
        {
            return "signed webhooks are refused: no webhook secret is configured (RolloutGate__Webhook__Secret)";
        }

        if (!long.TryParse(timestampText, NumberStyles.None, CultureInfo.InvariantCulture, out var timestamp))
        {
            return $"{TimestampHeader} must be unix seconds";
        }

        var skew = time.GetUtcNow().ToUnixTimeSeconds() - timestamp;
        if (Math.Abs(skew) > webhook.TimestampTolerance.TotalSeconds)
        {
            return $"{TimestampHeader} is {Math.Abs(skew)} s {(skew > 0 ? "old" : "in the future")}; at most {webhook.TimestampTolerance.TotalSeconds:0} s is accepted";
        }

        if (!signature.StartsWith(SignaturePrefix, StringComparison.Ordinal))
        {
            return $"{SignatureHeader} must be '{SignaturePrefix}<hex>'";
        }

        byte[] presented;
        try
        {
            presented = Convert.FromHexString(signature.AsSpan(SignaturePrefix.Length));
        }
        catch (FormatException)
        {
            return $"{SignatureHeader} is not hexadecimal";
        }

        var expected = Sign(webhook.Secret, timestampText, body);
        return CryptographicOperations.FixedTimeEquals(presented, expected) ? null : "the signature does not match";
    }

    /// <summary>HMAC-SHA256 over "{timestamp}.{body}"; shared with the CLI and rollback webhooks that sign the same way.</summary>
    public static byte[] Sign(string secret, string timestamp, ReadOnlySpan<byte> body)
    {
        var prefix = Encoding.UTF8.GetBytes(timestamp + ".");
        var message = new byte[prefix.Length + body.Length];
        prefix.CopyTo(message, 0);
        body.CopyTo(message.AsSpan(prefix.Length));
        return HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), message);
    }

    public static string SignatureHeaderValue(string secret, string timestamp, ReadOnlySpan<byte> body) =>
        SignaturePrefix + Convert.ToHexStringLower(Sign(secret, timestamp, body));
}
