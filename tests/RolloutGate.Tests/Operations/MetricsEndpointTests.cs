using System.Diagnostics;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Operations;

public sealed class MetricsEndpointTests
{
    [Fact]
    public async Task Metrics_AfterTraffic_PassPromtoolCheck_AndCountWhatHappened()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "m-1");
        await service.Webhooks.SendEventAsync("deployed", "m-1");
        await service.Webhooks.SendAsync("{}", bearer: "wrong");

        var text = await service.Client.GetStringAsync(new Uri("/metrics", UriKind.Relative));

        Assert.Contains("rolloutgate_deployments{state=\"watching\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("rolloutgate_webhooks_total{event=\"predeploy\",status=\"200\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("rolloutgate_webhooks_refused_total{reason=\"unauthenticated\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("rolloutgate_http_request_duration_seconds_bucket{route=\"/api/v1/deployments/\",le=\"+Inf\"} 3", text, StringComparison.Ordinal);
        Assert.DoesNotContain(RolloutGateHost.WebhookSecret, text, StringComparison.Ordinal);

        var (exitCode, output) = await PromtoolCheckAsync(text);
        Assert.True(exitCode == 0, $"promtool check metrics failed:\n{output}\n---\n{text}");
    }

    private static async Task<(int ExitCode, string Output)> PromtoolCheckAsync(string exposition)
    {
        var start = new ProcessStartInfo("promtool", "check metrics")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("promtool did not start (deploy/local/test.sh installs it)");
        await process.StandardInput.WriteAsync(exposition);
        process.StandardInput.Close();
        var output = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, output);
    }
}
