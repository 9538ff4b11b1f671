using RolloutGate.Api;

namespace RolloutGate.Tests.Api;

/// <summary>
/// What a token check accepts: exactly a configured token, whatever else is configured. (That a refusal takes as long
/// whatever the token's length is a matter of timing, which no test here measures; the digests are compared for it.)
/// </summary>
public sealed class ApiTokensTests
{
    private static readonly string[] Accepted = ["reader-token-0123456789", "", "second-token"];

    [Theory]
    [InlineData("reader-token-0123456789", true)]
    [InlineData("second-token", true)]
    [InlineData("reader-token-012345678", false)]
    [InlineData("reader-token-01234567890", false)]
    [InlineData("READER-TOKEN-0123456789", false)]
    [InlineData("second-token\0", false)]
    [InlineData("", false)]
    [InlineData(null, false)]
    public void Matches_ExactlyAConfiguredToken(string? presented, bool expected) =>
        Assert.Equal(expected, ApiTokens.Matches(presented, Accepted));

    [Fact]
    public void Matches_NothingWhenNoTokenIsConfigured() =>
        Assert.False(ApiTokens.Matches("anything", []));
}
