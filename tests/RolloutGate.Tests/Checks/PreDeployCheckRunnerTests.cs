using System.Diagnostics;
using Microsoft.Extensions.Logging;
using RolloutGate.Checks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Checks;

public sealed class PreDeployCheckRunnerTests(CheckTestHost host) : IClassFixture<CheckTestHost>
{
    [Fact]
    public async Task RunAsync_MixedKinds_KeepsRunbookOrderAndRunsConcurrently()
    {
        // The server answers these five only once all five are waiting at once: run one after another, they fail.
        var together = Enumerable.Range(1, 5).Select(i => new CheckSpec($"together-{i}", Http: new HttpCheckSpec(host.ServerUrl + "/together/mixed/5", 200, null, null)));
        var spec = new PreDeploySpec(TimeSpan.FromSeconds(20),
        [
            .. together,
            new CheckSpec("error-budget", Prometheus: new PrometheusCheckSpec("rolloutgate_test_error_ratio{service=\"checkout\"}", null, 0.01)),
            new CheckSpec("change-freeze", Freeze: new FreezeCheckSpec("Europe/Berlin", ["Fri 16:00 - Mon 08:00"], [])),
            new CheckSpec("payments-healthy", Http: new HttpCheckSpec(host.ServerUrl + "/status/500", 200, null, null)),
        ]);
        var results = await CheckTestHost.RunAsync(spec);

        Assert.Equal(spec.Checks.Select(c => c.Name), results.Select(r => r.Name));
        Assert.All(results.Take(5), r => Assert.True(r.Status == CheckStatus.Pass, r.Detail));
        Assert.Equal(CheckStatus.Pass, results[5].Status);
        Assert.Equal(CheckStatus.Fail, results[7].Status);
    }

    [Fact]
    public async Task RunAsync_CheckOutlivingPreDeployTimeout_IsAnErrorAndOthersStillReport()
    {
        // Generous on purpose: the healthy check must answer within the deadline even on a loaded CI machine.
        var spec = new PreDeploySpec(TimeSpan.FromSeconds(3),
        [
            new CheckSpec("hangs", Http: new HttpCheckSpec(host.ServerUrl + "/hang", 200, null, TimeSpan.FromMinutes(5))),
            new CheckSpec("healthy", Http: new HttpCheckSpec(host.ServerUrl + "/healthz", 200, null, null)),
        ]);
        var stopwatch = Stopwatch.StartNew();

        var results = await CheckTestHost.RunAsync(spec);

        Assert.Equal(new CheckResult("hangs", CheckStatus.Error, "no answer within the pre-deploy timeout of 3s"), results[0]);
        Assert.Equal(CheckStatus.Pass, results[1].Status);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(30), $"took {stopwatch.Elapsed}: the 5-minute check was not cut off");
    }

    [Fact]
    public async Task RunAsync_CheckIgnoringItsToken_IsStillCutOff()
    {
        var runner = new PreDeployCheckRunner(
            [new StubbornCheck()], TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<PreDeployCheckRunner>.Instance);
        var spec = new PreDeploySpec(TimeSpan.FromMilliseconds(300), [new CheckSpec("stubborn", Http: new HttpCheckSpec("http://unused", 200, null, null))]);
        var stopwatch = Stopwatch.StartNew();

        var results = await runner.RunAsync(spec, new CheckContext("checkout", "production", DateTimeOffset.UnixEpoch), CancellationToken.None);

        Assert.Equal(new CheckResult("stubborn", CheckStatus.Error, "no answer within the pre-deploy timeout of 300ms"), Assert.Single(results));
        // Cut off at its 300 ms, not after the 30 s the check takes: a loaded machine may take seconds more than 300 ms.
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(15), $"took {stopwatch.Elapsed}");
    }

    [Fact]
    public async Task RunAsync_CheckThrows_IsAnErrorWithItsMessage()
    {
        var runner = new PreDeployCheckRunner(
            [new ThrowingCheck()], TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<PreDeployCheckRunner>.Instance);
        var spec = new PreDeploySpec(TimeSpan.FromSeconds(5), [new CheckSpec("broken", Http: new HttpCheckSpec("http://unused", 200, null, null))]);

        var results = await runner.RunAsync(spec, new CheckContext("checkout", "production", DateTimeOffset.UnixEpoch), CancellationToken.None);

        Assert.Equal(new CheckResult("broken", CheckStatus.Error, "boom"), Assert.Single(results));
    }

    [Fact]
    public async Task RunAsync_DetailQuotingALineBreak_IsLoggedAsOneLine()
    {
        // What the Alertmanager check quotes of an alert's labels; Alertmanager takes alerts from anyone who reaches it.
        const string forged = "Pre-deploy check no-critical-alerts: pass: no active alerts match severity=\"critical\"";
        using var logs = new LogCapture();
        using var loggers = new LoggerFactory([logs]);
        var runner = new PreDeployCheckRunner(
            [new QuotingCheck($"1 active alert match severity=\"critical\": Outage{{note=\"x\n{forged}\"}}")], TimeProvider.System,
            loggers.CreateLogger<PreDeployCheckRunner>());
        var spec = new PreDeploySpec(TimeSpan.FromSeconds(5), [new CheckSpec("no-critical-alerts", Http: new HttpCheckSpec("http://unused", 200, null, null))]);

        var result = Assert.Single(await runner.RunAsync(spec, new CheckContext("checkout", "production", DateTimeOffset.UnixEpoch), CancellationToken.None));

        Assert.Contains("\n", result.Detail, StringComparison.Ordinal);
        var line = Assert.Single(logs.Lines, l => l.Contains("Pre-deploy check no-critical-alerts: fail:", StringComparison.Ordinal));
        var message = line[..line.IndexOf(" Check=", StringComparison.Ordinal)];
        Assert.DoesNotContain("\n", message, StringComparison.Ordinal);
        Assert.Contains($"Outage{{note=\"x\\n{forged}\"}}", message, StringComparison.Ordinal);
    }

    /// <summary>Fails, quoting <paramref name="detail"/> as a check quotes what another system answered.</summary>
    private sealed class QuotingCheck(string detail) : IPreDeployCheck
    {
        public string Kind => "http";

        public Task<CheckResult> RunAsync(CheckSpec check, CheckContext context, CancellationToken cancellationToken) =>
            Task.FromResult(CheckResult.Fail(check.Name, detail));
    }

    /// <summary>Ignores cancellation entirely, as a badly written check might.</summary>
    private sealed class StubbornCheck : IPreDeployCheck
    {
        public string Kind => "http";

        public async Task<CheckResult> RunAsync(CheckSpec check, CheckContext context, CancellationToken cancellationToken)
        {
            await Task.Delay(TimeSpan.FromSeconds(30), CancellationToken.None);
            return CheckResult.Pass(check.Name, "too late");
        }
    }

    private sealed class ThrowingCheck : IPreDeployCheck
    {
        public string Kind => "http";

        public Task<CheckResult> RunAsync(CheckSpec check, CheckContext context, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("boom");
    }
}
