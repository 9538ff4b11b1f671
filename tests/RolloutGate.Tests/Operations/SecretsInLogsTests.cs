using RolloutGate.Infrastructure;
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

    [Fact]
    public async Task Start_WithShortSecretsAndTokens_WarnsOncePerSettingWithoutItsValue()
    {
        // The test host's secret and tokens are all shorter than 32 characters, and a second webhook token is long.
        var longToken = new string('k', CredentialStrength.MinimumLength);
        await using var service = await TestService.StartAsync(
            [("checkout.yaml", TestRunbooks.Minimal())], new Dictionary<string, string?> { ["RolloutGate:Webhook:Tokens:1"] = longToken });

        var warnings = service.Host.Logs.Lines.Where(line => line.Contains("shorter than 32 characters", StringComparison.Ordinal)).ToList();

        foreach (var setting in new[] { "RolloutGate:Webhook:Secret", "RolloutGate:Webhook:Tokens:0", "RolloutGate:Api:ReaderTokens:0", "RolloutGate:Api:OperatorTokens:0" })
        {
            Assert.Single(warnings, line => line.StartsWith("Warning", StringComparison.Ordinal) && line.Contains($"{setting} is shorter", StringComparison.Ordinal));
        }

        Assert.Equal(4, warnings.Count);
        var logs = string.Join("\n", service.Host.Logs.Lines);
        foreach (var secret in new[] { RolloutGateHost.WebhookSecret, RolloutGateHost.WebhookToken, RolloutGateHost.ReaderToken, RolloutGateHost.OperatorToken, longToken })
        {
            Assert.DoesNotContain(secret, logs, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ShortCredentials_NamesOnlyTheSetOnesUnder32Characters()
    {
        var options = new RolloutGateOptions();
        options.Webhook.Secret = new string('s', 32);
        options.Webhook.PreviousSecrets = ["old", ""];
        options.Api.OperatorTokens = [new string('o', 64), new string('o', 31)];

        Assert.Equal(["RolloutGate:Webhook:PreviousSecrets:0", "RolloutGate:Api:OperatorTokens:1"], CredentialStrength.ShortCredentials(options));
        Assert.Empty(CredentialStrength.ShortCredentials(new RolloutGateOptions()));
    }
}
