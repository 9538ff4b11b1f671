using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Tests.Runbooks;

/// <summary>URLs as messages show them: no user info and no query, which may carry credentials.</summary>
public sealed class UrlsTests
{
    [Theory]
    [InlineData("https://cd.example/rollback", "https://cd.example/rollback")]
    [InlineData("http://127.0.0.1:9090/", "http://127.0.0.1:9090/")]
    [InlineData("https://deployer:s3cret@cd.example/rollback", "https://cd.example/rollback")]
    [InlineData("https://cd.example/rollback?token=s3cret", "https://cd.example/rollback?…")]
    [InlineData("https://deployer:s3cret@cd.example:8443/hooks/rollback?token=s3cret#x", "https://cd.example:8443/hooks/rollback?…")]
    [InlineData("ftp://deployer:s3cret@cd.example/rollback", "ftp://cd.example/rollback")]
    [InlineData("deployer:s3cret@cd.example/rollback?token=s3cret", "cd.example/rollback?…")]
    [InlineData("/healthz", "/healthz")]
    [InlineData("cd.example/rollback", "cd.example/rollback")]
    public void Shown_NeverUserInfoOrQuery(string url, string shown)
    {
        Assert.Equal(shown, Urls.Shown(url));
    }
}
