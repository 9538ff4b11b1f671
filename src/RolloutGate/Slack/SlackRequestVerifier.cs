using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Http;

namespace RolloutGate.Slack;

/// <summary>
/// Slack's request signing: <c>X-Slack-Signature: v0=hex(HMAC-SHA256(signing secret, "v0:{timestamp}:{raw body}"))</c>
/// with <c>X-Slack-Request-Timestamp</c> within five minutes of now. Without a signing secret every request is refused.
/// </summary>
public sealed class SlackRequestVerifier(IOptionsMonitor<RolloutGateOptions> options, TimeProvider time)
{
    public const string TimestampHeader = "X-Slack-Request-Timestamp";
    public const string SignatureHeader = "X-Slack-Signature";
    public const string Version = "v0";

    public static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    /// <summary>Null when the request comes from Slack; otherwise why not (safe to show: it names no secret).</summary>
    public string? Refusal(HttpRequest request, ReadOnlySpan<byte> body) =>
        Refusal(request.Headers[TimestampHeader].ToString(), request.Headers[SignatureHeader].ToString(), body);

    public string? Refusal(string timestamp, string signature, ReadOnlySpan<byte> body)
    {
        var secret = options.CurrentValue.Slack.SigningSecret;
        if (string.IsNullOrEmpty(secret))
        {
            return "Slack requests are refused: no signing secret is configured (RolloutGate__Slack__SigningSecret)";
        }

        if (timestamp.Length == 0 || signature.Length == 0)
        {
            return $"missing {TimestampHeader} or {SignatureHeader}";
        }

        if (!long.TryParse(timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
        {
            return $"{TimestampHeader} must be unix seconds";
        }

        // A captured request replayed later fails here, since the timestamp is signed too.
        var skew = Math.Abs(time.GetUtcNow().ToUnixTimeSeconds() - seconds);
        if (skew > Tolerance.TotalSeconds)
        {
            return $"{TimestampHeader} is {skew} s off; at most {Tolerance.TotalSeconds:0} s is accepted";
        }

        var expected = Encoding.ASCII.GetBytes(Signature(secret, timestamp, body));
        var presented = Encoding.ASCII.GetBytes(signature);
        return CryptographicOperations.FixedTimeEquals(presented, expected) ? null : "the Slack signature does not match";
    }

    /// <summary>The X-Slack-Signature value Slack would send for this body.</summary>
    public static string Signature(string signingSecret, string timestamp, ReadOnlySpan<byte> body)
        => $"{Version}=" + Convert.ToHexStringLower(RequestSignatures.HmacSha256(signingSecret, $"{Version}:{timestamp}:", body));
}
