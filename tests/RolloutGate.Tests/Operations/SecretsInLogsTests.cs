using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Operations;

public sealed class SecretsInLogsTests
{
    [Fact]
    public async Task Logs_AtTraceLevel_NeverContainSecretsOrTokens()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "log-1");
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "log-1"), bearer: RolloutGateHost.WebhookToken);
        await service.Webhooks.SendAsync(WebhookClient.Body("cancelled", "log-1"), bearer: "a-wrong-token-that-is-secret-too");
        using var reader = service.Reader();
        await reader.GetAsync(new Uri("/api/v1/deployments/log-1", UriKind.Relative));

        var logs = string.Join("\n", service.Host.Logs.Lines);

        Assert.NotEmpty(service.Host.Logs.Lines);
        Assert.Contains("log-1", logs, StringComparison.Ordinal);
        foreach (var secret in new[] { RolloutGateHost.WebhookSecret, RolloutGateHost.WebhookToken, RolloutGateHost.ReaderToken, "a-wrong-token-that-is-secret-too", "Password=rolloutgate" })
        {
            Assert.DoesNotContain(secret, logs, StringComparison.Ordinal);
        }
    }
}
