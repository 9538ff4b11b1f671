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

    [Fact]
    public void Hidden_TheQueryItsLongerValuesAndTheUserInfo_AsWrittenAndUnescaped()
    {
        Assert.Equal(
            ["key=a%2Fb-secret&ref=main", "a%2Fb-secret", "deployer:pa%40ss", "pa%40ss", "key=a/b-secret&ref=main", "a/b-secret", "deployer:pa@ss", "pa@ss"],
            Urls.Hidden("https://deployer:pa%40ss@cd.example/rollback?key=a%2Fb-secret&ref=main#top"));
        Assert.Empty(Urls.Hidden("https://cd.example/rollback"));
    }

    [Fact]
    public void Redacted_EveryOccurrence_TheLongestFirst()
    {
        Assert.Equal(
            "Cannot POST /rollback?[redacted] ([redacted], [redacted])",
            Urls.Redacted("Cannot POST /rollback?key=token-1 (token-1, token)", ["token", "key=token-1", null, "", "token-1"]));
    }

    [Theory]
    [InlineData("http://prom:9090", "api/v1/query", "http://prom:9090/api/v1/query")]
    [InlineData("http://prom:9090/", "api/v1/query", "http://prom:9090/api/v1/query")]
    [InlineData("http://host/prometheus", "api/v1/query", "http://host/prometheus/api/v1/query")]
    [InlineData("http://host/prometheus/", "api/v1/query", "http://host/prometheus/api/v1/query")]
    [InlineData("http://prom:9090/?token=abc", "api/v1/query", "http://prom:9090/api/v1/query?token=abc")]
    [InlineData("http://host/am?token=a%2Fb&tenant=x", "api/v2/alerts?active=true&filter=a%3D%22b%22", "http://host/am/api/v2/alerts?token=a%2Fb&tenant=x&active=true&filter=a%3D%22b%22")]
    [InlineData("https://user:p%40ss@host:8443/api#top", "chat.postMessage", "https://host:8443/api/chat.postMessage")]
    public void Under_KeepsTheBasesPathPrefixAndQuery_TheRelativeQueryAfterIt(string baseUrl, string relativePath, string expected)
    {
        Assert.Equal(expected, Urls.Under(new Uri(baseUrl), relativePath).AbsoluteUri);
    }

    [Fact]
    public void BasicCredentials_TheUserInfoUnescaped_NullWithout()
    {
        Assert.Equal(Convert.ToBase64String("deployer:p@ss:word"u8.ToArray()), Urls.BasicCredentials("https://deployer:p%40ss:word@cd.example/hook"));
        Assert.Equal(Convert.ToBase64String("deployer:"u8.ToArray()), Urls.BasicCredentials("https://deployer@cd.example/hook"));
        Assert.Null(Urls.BasicCredentials("https://cd.example/hook?user=a:b@c"));
        Assert.Null(Urls.BasicCredentials(null));
        Assert.True(Urls.HasUserInfo("https://deployer@cd.example/hook"));
        Assert.False(Urls.HasUserInfo("https://cd.example/hook"));
    }
}
