using System.Text;
using Microsoft.Extensions.Options;
using RolloutGate.Infrastructure;
using RolloutGate.Slack;

namespace RolloutGate.Tests.Slack;

public sealed class SlackRequestVerifierTests
{
    // Slack's worked example from "Verifying requests from Slack" (api.slack.com/authentication/verifying-requests-from-slack).
    private const string ExampleSecret = "8f742231b10e8888abcd99yyyzzz85a5";
    private const string ExampleTimestamp = "1531420618";
    private const string ExampleSignature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    private const string ExampleBody =
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar"
        + "&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com"
        + "%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";

    private static readonly byte[] Body = Encoding.UTF8.GetBytes(ExampleBody);

    [Fact]
    public void Signature_SlackWorkedExample_MatchesPublishedValue() =>
        Assert.Equal(ExampleSignature, SlackRequestVerifier.Signature(ExampleSecret, ExampleTimestamp, Body));

    [Fact]
    public void Refusal_SlackWorkedExampleAtItsTime_Accepted() =>
        Assert.Null(Verifier(ExampleSecret, 1531420618 + 60).Refusal(ExampleTimestamp, ExampleSignature, Body));

    [Theory]
    [InlineData("v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b504")]
    [InlineData("v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")]
    [InlineData("a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")]
    [InlineData("v0=")]
    public void Refusal_WrongSignature_Refused(string signature) =>
        Assert.Equal("the Slack signature does not match", Verifier(ExampleSecret, 1531420618).Refusal(ExampleTimestamp, signature, Body));

    [Fact]
    public void Refusal_BodyChangedByOneByte_Refused()
    {
        var tampered = Encoding.UTF8.GetBytes(ExampleBody.Replace("roadrunner", "roadrunnex", StringComparison.Ordinal));
        Assert.NotNull(Verifier(ExampleSecret, 1531420618).Refusal(ExampleTimestamp, ExampleSignature, tampered));
    }

    [Theory]
    [InlineData(301)]
    [InlineData(-301)]
    [InlineData(86_400)]
    public void Refusal_TimestampMoreThanFiveMinutesOff_Refused(long skewSeconds)
    {
        var refusal = Verifier(ExampleSecret, 1531420618 + skewSeconds).Refusal(ExampleTimestamp, ExampleSignature, Body);
        Assert.Contains("s off", refusal, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(300)]
    [InlineData(-300)]
    public void Refusal_TimestampExactlyFiveMinutesOff_Accepted(long skewSeconds) =>
        Assert.Null(Verifier(ExampleSecret, 1531420618 + skewSeconds).Refusal(ExampleTimestamp, ExampleSignature, Body));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void Refusal_NoSigningSecret_RefusesEvenAValidRequest(string? secret)
    {
        var refusal = Verifier(secret, 1531420618).Refusal(ExampleTimestamp, ExampleSignature, Body);
        Assert.Contains("no signing secret", refusal, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", ExampleSignature)]
    [InlineData(ExampleTimestamp, "")]
    [InlineData("1531420618.5", ExampleSignature)]
    public void Refusal_MissingOrMalformedHeaders_Refused(string timestamp, string signature) =>
        Assert.NotNull(Verifier(ExampleSecret, 1531420618).Refusal(timestamp, signature, Body));

    private static SlackRequestVerifier Verifier(string? secret, long nowUnixSeconds)
    {
        var options = new RolloutGateOptions { Slack = { SigningSecret = secret } };
        return new SlackRequestVerifier(new StaticOptionsMonitor<RolloutGateOptions>(options), new FixedClock(DateTimeOffset.FromUnixTimeSeconds(nowUnixSeconds)));
    }
}

/// <summary>A clock that says what the test tells it to.</summary>
public sealed class FixedClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}

public sealed class StaticOptionsMonitor<T>(T value) : IOptionsMonitor<T>
{
    public T CurrentValue => value;

    public T Get(string? name) => value;

    public IDisposable? OnChange(Action<T, string?> listener) => null;
}
