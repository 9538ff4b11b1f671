using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using RolloutGate.Infrastructure;
using RolloutGate.Operations;
using RolloutGate.Tests.Slack;
using RolloutGate.Webhooks;

namespace RolloutGate.Tests.Deployments;

/// <summary>
/// The signature check on a clock the test holds still. Over HTTP (<see cref="WebhookAuthenticationTests"/>) the clock runs
/// on between signing and checking, so those tests stay well inside and outside the window; its edges are tested here.
/// </summary>
public sealed class WebhookAuthenticatorTests : IDisposable
{
    private const string Secret = "the-webhook-secret-of-these-tests-0123456789";
    private const long Now = 1_795_000_000;
    private const string Token = "the-webhook-token-of-these-tests-0123456789";
    private static readonly string[] PreviousSecrets = ["the-secret-before-last-0123456789abcdef", "the-last-secret-before-0123456789abcdef"];
    private static readonly byte[] Body = Encoding.UTF8.GetBytes("""{"event":"predeploy","deploymentId":"edge-1","service":"checkout","environment":"production"}""");

    private readonly RolloutGateMetrics metrics = new();

    [Theory]
    [InlineData(300, null)]
    [InlineData(-300, null)]
    [InlineData(301, "X-RolloutGate-Timestamp is 301 s old; at most 300 s is accepted")]
    [InlineData(-301, "X-RolloutGate-Timestamp is 301 s in the future; at most 300 s is accepted")]
    public void Authenticate_TimestampAtMostFiveMinutesOffEitherWay(long age, string? refusal)
    {
        var timestamp = (Now - age).ToString(CultureInfo.InvariantCulture);

        var authentication = Authenticator().Authenticate(Signed(timestamp, WebhookAuthenticator.SignatureHeaderValue(Secret, timestamp, Body)), Body);

        Assert.Equal(refusal, authentication.Refusal);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("", null)]
    [InlineData("1795000000", null)]
    [InlineData("1794999700", null)]
    [InlineData("1795000300", null)]
    [InlineData("1794999400", "X-RolloutGate-Timestamp is 600 s old; at most 300 s is accepted")]
    [InlineData("1795000301", "X-RolloutGate-Timestamp is 301 s in the future; at most 300 s is accepted")]
    [InlineData("yesterday", "X-RolloutGate-Timestamp must be unix seconds")]
    [InlineData("-1794999400", "X-RolloutGate-Timestamp must be unix seconds")]
    public void Authenticate_BearerToken_NeedsNoTimestamp_ButOneItCarriesIsHeldToTheSameWindow(string? timestamp, string? refusal)
    {
        var request = new DefaultHttpContext().Request;
        request.Headers.Authorization = "Bearer " + Token;
        if (timestamp is not null)
        {
            request.Headers[WebhookAuthenticator.TimestampHeader] = timestamp;
        }

        Assert.Equal(refusal, Authenticator().Authenticate(request, Body).Refusal);
    }

    [Fact]
    public void Authenticate_WrongBearerTokenWithAFreshTimestamp_RefusedForTheToken()
    {
        var request = new DefaultHttpContext().Request;
        request.Headers.Authorization = "Bearer not-" + Token;
        request.Headers[WebhookAuthenticator.TimestampHeader] = Now.ToString(CultureInfo.InvariantCulture);

        Assert.Equal("the bearer token is not a webhook token", Authenticator().Authenticate(request, Body).Refusal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Authenticate_SignedWithAnyOfSeveralPreviousSecrets_AuthenticAndSaysSo(int which)
    {
        var timestamp = Now.ToString(CultureInfo.InvariantCulture);

        var authentication = Authenticator().Authenticate(Signed(timestamp, WebhookAuthenticator.SignatureHeaderValue(PreviousSecrets[which], timestamp, Body)), Body);

        Assert.Equal(new WebhookAuthentication(null, WithPreviousSecret: true), authentication);
    }

    [Theory]
    [InlineData("", "", "missing X-RolloutGate-Timestamp and X-RolloutGate-Signature headers (or Authorization: Bearer <webhook token>)")]
    [InlineData("", "sha256=00", "missing X-RolloutGate-Timestamp header, which the signature signs with the body (or Authorization: Bearer <webhook token>)")]
    [InlineData("1795000000", "", "missing X-RolloutGate-Signature header (or Authorization: Bearer <webhook token>)")]
    public void Authenticate_AHeaderMissing_NamesWhichOne(string timestamp, string signature, string refusal)
    {
        var authentication = Authenticator().Authenticate(Signed(timestamp, signature), Body);

        Assert.Equal(refusal, authentication.Refusal);
    }

    [Theory]
    [InlineData("another-secret", "the signature does not match")]
    [InlineData("the-body-alone", "the signature does not match")]
    [InlineData("base64", "X-RolloutGate-Signature must be 'sha256=' and 64 hexadecimal digits")]
    [InlineData("cut-short", "X-RolloutGate-Signature must be 'sha256=' and 64 hexadecimal digits")]
    public void Authenticate_AWrongSignature_TheRefusalSaysHowToSign(string mistake, string refusal)
    {
        // A sender's first webhook: the refusal alone must tell them what the signature is, without the README at hand.
        var timestamp = Now.ToString(CultureInfo.InvariantCulture);
        var right = WebhookAuthenticator.SignatureHeaderValue(Secret, timestamp, Body);
        var bodyAlone = System.Security.Cryptography.HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), Body);
        var signature = mistake switch
        {
            "another-secret" => WebhookAuthenticator.SignatureHeaderValue("not-" + Secret, timestamp, Body),
            "the-body-alone" => "sha256=" + Convert.ToHexStringLower(bodyAlone),
            "base64" => "sha256=" + Convert.ToBase64String(bodyAlone),
            "cut-short" => right[..^1],
            _ => throw new ArgumentOutOfRangeException(nameof(mistake)),
        };

        Assert.Equal(
            refusal + ": the HMAC-SHA256, keyed with the webhook secret, of \"{X-RolloutGate-Timestamp}.{the body's exact bytes}\"",
            Authenticator().Authenticate(Signed(timestamp, signature), Body).Refusal);
    }

    public void Dispose() => metrics.Dispose();

    private static HttpRequest Signed(string timestamp, string signature)
    {
        var request = new DefaultHttpContext().Request;
        request.Headers[WebhookAuthenticator.TimestampHeader] = timestamp;
        request.Headers[WebhookAuthenticator.SignatureHeader] = signature;
        return request;
    }

    private WebhookAuthenticator Authenticator()
    {
        var options = new RolloutGateOptions { Webhook = { Secret = Secret, PreviousSecrets = [.. PreviousSecrets], Tokens = [Token] } };
        return new WebhookAuthenticator(new StaticOptionsMonitor<RolloutGateOptions>(options), new FixedClock(DateTimeOffset.FromUnixTimeSeconds(Now)),
            metrics, NullLogger<WebhookAuthenticator>.Instance);
    }
}
