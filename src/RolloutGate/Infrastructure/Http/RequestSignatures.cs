using System.Security.Cryptography;
using System.Text;

namespace RolloutGate.Infrastructure.Http;

/// <summary>
/// The HMAC-SHA256 that signs a request as "{prefix}{raw body}": the CD webhook's (CONTRACT section 4, prefix
/// "{timestamp}.") and Slack's (prefix "v0:{timestamp}:"). The body is hashed as it arrived, never copied.
/// </summary>
public static class RequestSignatures
{
    public static byte[] HmacSha256(string secret, string prefix, ReadOnlySpan<byte> body)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, Encoding.UTF8.GetBytes(secret));
        hmac.AppendData(Encoding.UTF8.GetBytes(prefix));
        hmac.AppendData(body);
        return hmac.GetHashAndReset();
    }
}
