using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using RolloutGate.Checks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Tests.Prometheus;

namespace RolloutGate.Tests.Checks;

/// <summary>Each check kind against real Prometheus, Alertmanager and a local web server, through the real runner.</summary>
public sealed class PreDeployCheckTests(CheckTestHost host) : IClassFixture<CheckTestHost>
{
    private const string CheckoutErrorRatio = "rolloutgate_test_error_ratio{service=\"checkout\"}";
    private const string PaymentsErrorRatio = "rolloutgate_test_error_ratio{service=\"payments\"}";

    private static CheckSpec Prometheus(string query, double? min = null, double? max = null) =>
        new("error-budget", Prometheus: new PrometheusCheckSpec(query, min, max));

    private static CheckSpec Alerts(params string[] matchers) =>
        new("no-critical-alerts", Alertmanager: new AlertmanagerCheckSpec(matchers));

    private static CheckSpec Freeze(params DatedWindow[] dates) =>
        new("change-freeze", Freeze: new FreezeCheckSpec("Europe/Berlin", ["Fri 16:00 - Mon 08:00"], dates));

    private CheckSpec Http(string path, int expect = 200, string? body = null, TimeSpan? timeout = null) =>
        new("payments-healthy", Http: new HttpCheckSpec(host.ServerUrl + path, expect, body, timeout));

    [Fact]
    public async Task Prometheus_ValueBelowMax_Passes()
    {
        var result = await CheckTestHost.RunOneAsync(Prometheus(CheckoutErrorRatio, max: 0.01));

        Assert.Equal(new CheckResult("error-budget", CheckStatus.Pass, "value 0.004 is within max 0.01"), result);
    }

    [Fact]
    public async Task Prometheus_ValueAboveMax_FailsShowingValueAndBound()
    {
        var result = await CheckTestHost.RunOneAsync(Prometheus(PaymentsErrorRatio, max: 0.01));

        Assert.Equal(new CheckResult("error-budget", CheckStatus.Fail, "value 0.05 is above max 0.01"), result);
    }

    [Theory]
    [InlineData("vector(0.002021605913197296)", "value 0.002022 is within max 0.01")]
    [InlineData("vector(0.0000213)", "value 0.0000213 is within max 0.01")]
    [InlineData("vector(0.0100004)", "value 0.0100004 is above max 0.01")]
    [InlineData("vector(0.00999996)", "value 0.00999996 is within max 0.01")]
    [InlineData("vector(0.01000000000001)", "value 0.01000000000001 is above max 0.01")]
    public async Task Prometheus_Value_IsShownWithFourSignificantDigits_OrAsManyAsTellItFromTheBound(string query, string detail)
    {
        var result = await CheckTestHost.RunOneAsync(Prometheus(query, max: 0.01));

        Assert.Equal(detail, result.Detail);
    }

    [Fact]
    public async Task Prometheus_RateBelowMin_Fails()
    {
        var result = await CheckTestHost.RunOneAsync(
            Prometheus("sum(rate(rolloutgate_test_requests_total{service=\"checkout\",code=\"200\"}[5m]))", min: 20, max: 100));

        Assert.Equal(CheckStatus.Fail, result.Status);
        Assert.Equal("value 10 is below min 20", result.Detail);
    }

    [Fact]
    public async Task Prometheus_ScalarWithinMinAndMax_Passes()
    {
        var result = await CheckTestHost.RunOneAsync(Prometheus("scalar(rolloutgate_test_queue_depth)", min: 100, max: 200));

        Assert.Equal("value 180 is within min 100 and max 200", result.Detail);
        Assert.Equal(CheckStatus.Pass, result.Status);
    }

    [Fact]
    public async Task Prometheus_NoData_Fails()
    {
        var result = await CheckTestHost.RunOneAsync(Prometheus("rolloutgate_test_error_ratio{service=\"nobody\"}", max: 0.01));

        Assert.Equal(new CheckResult("error-budget", CheckStatus.Fail, "query returned no data"), result);
    }

    [Fact]
    public async Task Prometheus_NaN_FailsWithReason()
    {
        var result = await CheckTestHost.RunOneAsync(Prometheus("vector(0) / 0", max: 0.01));

        Assert.Equal(CheckStatus.Fail, result.Status);
        Assert.StartsWith("query returned NaN", result.Detail, StringComparison.Ordinal);
        Assert.Contains("max 0.01", result.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("vector(1) / 0", 0.995, null, "query returned +Inf (a division by zero), which cannot be held against min 0.995")]
    [InlineData("vector(-1) / 0", null, 0.01, "query returned -Inf (a division by zero), which cannot be held against max 0.01")]
    public async Task Prometheus_Infinity_FailsWithReason(string query, double? min, double? max, string detail)
    {
        var result = await CheckTestHost.RunOneAsync(Prometheus(query, min, max));

        Assert.Equal(new CheckResult("error-budget", CheckStatus.Fail, detail), result);
    }

    [Fact]
    public async Task Prometheus_SeveralSeries_IsAnError()
    {
        var result = await CheckTestHost.RunOneAsync(Prometheus("rolloutgate_test_error_ratio", max: 0.01));

        Assert.Equal(CheckStatus.Error, result.Status);
        Assert.Contains("returned 2 series", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Prometheus_SyntaxError_IsAnErrorNamingTheQuery()
    {
        const string query = "sum(rate(rolloutgate_test_requests_total[5m]";

        var result = await CheckTestHost.RunOneAsync(Prometheus(query, max: 1));

        Assert.Equal(CheckStatus.Error, result.Status);
        Assert.Contains(query, result.Detail, StringComparison.Ordinal);
        Assert.Contains("bad_data", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Prometheus_Down_IsAnErrorNotAPass()
    {
        var url = PrometheusTestServer.UnusedLoopbackUrl();

        var result = await CheckTestHost.RunOneAsync(Prometheus(CheckoutErrorRatio, max: 0.01), configure: o => o.Prometheus.Url = url);

        Assert.Equal(CheckStatus.Error, result.Status);
        Assert.Contains("unreachable", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Alertmanager_MatchingActiveAlert_FailsNamingIt()
    {
        var service = "checkout-" + Guid.NewGuid().ToString("N")[..8];
        await CheckTestHost.PostAlertAsync(new Dictionary<string, string>
        {
            ["alertname"] = "HighErrorRate", ["service"] = service, ["severity"] = "critical",
        });
        await CheckTestHost.PostAlertAsync(new Dictionary<string, string>
        {
            ["alertname"] = "DiskFilling", ["service"] = service, ["severity"] = "warning",
        });

        var result = await CheckTestHost.RunOneAsync(Alerts($"service=\"{service}\"", "severity=\"critical\""));

        Assert.Equal(CheckStatus.Fail, result.Status);
        Assert.Equal(
            $"1 active alert match service=\"{service}\", severity=\"critical\": HighErrorRate{{service=\"{service}\",severity=\"critical\"}}",
            result.Detail);
    }

    [Fact]
    public async Task Alertmanager_NoMatchingAlert_Passes()
    {
        var service = "quiet-" + Guid.NewGuid().ToString("N")[..8];
        await CheckTestHost.PostAlertAsync(new Dictionary<string, string>
        {
            ["alertname"] = "DiskFilling", ["service"] = service, ["severity"] = "warning",
        });

        var result = await CheckTestHost.RunOneAsync(Alerts($"service=\"{service}\"", "severity=\"critical\""));

        Assert.Equal(CheckStatus.Pass, result.Status);
        Assert.StartsWith("no active alerts match", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Alertmanager_NotConfigured_IsAnError()
    {
        var result = await CheckTestHost.RunOneAsync(Alerts("severity=\"critical\""), configure: o => o.Alertmanager.Url = null);

        Assert.Equal(CheckStatus.Error, result.Status);
        Assert.StartsWith("no Alertmanager configured", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Alertmanager_Down_IsAnError()
    {
        var url = PrometheusTestServer.UnusedLoopbackUrl();

        var result = await CheckTestHost.RunOneAsync(Alerts("severity=\"critical\""), configure: o => o.Alertmanager.Url = url);

        Assert.Equal(CheckStatus.Error, result.Status);
        Assert.Contains("unreachable", result.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("huge-page")]
    [InlineData("endless-page")]
    public async Task Alertmanager_AHugeOrEndlessErrorPage_IsAnErrorQuotingItsStartOnly(string page)
    {
        var watch = Stopwatch.StartNew();

        var result = await CheckTestHost.RunOneAsync(Alerts("severity=\"critical\""), configure: o => o.Alertmanager.Url = $"{host.ServerUrl}/{page}/");

        // The detail is the predeploy answer's and the audit trail's: the page's first 300 characters, marked as cut.
        Assert.Equal(CheckStatus.Error, result.Status);
        Assert.Equal("Alertmanager answered 404: <html><body>" + new string('x', 288) + "…", result.Detail);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"took {watch.Elapsed}");
    }

    [Fact]
    public async Task Freeze_InsideWeekendWindow_FailsUntilMondayMorning()
    {
        var result = await CheckTestHost.RunOneAsync(Freeze(), at: DateTimeOffset.Parse("2026-11-21T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

        Assert.Equal(
            new CheckResult("change-freeze", CheckStatus.Fail, "change freeze 'Fri 16:00 - Mon 08:00' (Europe/Berlin) until 2026-11-23T08:00+01:00"),
            result);
    }

    [Fact]
    public async Task Freeze_DatedWindowWithReason_FailsNamingTheReason()
    {
        var result = await CheckTestHost.RunOneAsync(
            Freeze(new DatedWindow(new DateTime(2026, 12, 21, 0, 0, 0), new DateTime(2027, 1, 4, 8, 0, 0), "year end")),
            at: DateTimeOffset.Parse("2026-12-22T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

        Assert.Equal(
            "change freeze '2026-12-21 00:00 - 2027-01-04 08:00' (Europe/Berlin: year end) until 2027-01-04T08:00+01:00",
            result.Detail);
    }

    [Fact]
    public async Task Freeze_Weekday_Passes()
    {
        var result = await CheckTestHost.RunOneAsync(Freeze(), at: DateTimeOffset.Parse("2026-11-18T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

        Assert.Equal(new CheckResult("change-freeze", CheckStatus.Pass, "no change freeze at 2026-11-18T11:00+01:00 (Europe/Berlin)"), result);
    }

    [Fact]
    public async Task Http_ExpectedStatusAndBody_Passes()
    {
        var result = await CheckTestHost.RunOneAsync(Http("/healthz", body: "ok"));

        Assert.Equal(CheckStatus.Pass, result.Status);
        Assert.Equal($"GET {host.ServerUrl}/healthz answered 200 containing 'ok'", result.Detail);
    }

    [Fact]
    public async Task Http_CredentialsInTheUrl_NotInTheDetail()
    {
        var url = host.ServerUrl.Replace("http://", "http://probe:s3cret@", StringComparison.Ordinal) + "/healthz?token=s3cret";

        var result = await CheckTestHost.RunOneAsync(new CheckSpec("payments-healthy", Http: new HttpCheckSpec(url, 200, null, null)));

        Assert.Equal(CheckStatus.Pass, result.Status);
        Assert.Equal($"GET {host.ServerUrl}/healthz?… answered 200", result.Detail);
    }

    [Fact]
    public async Task Http_UserInfoInTheUrl_IsSentAsBasicCredentials_NotAfterARedirect()
    {
        var url = host.ServerUrl.Replace("http://", $"http://{CheckTestHost.ProtectedUser}:{Uri.EscapeDataString(CheckTestHost.ProtectedPassword)}@", StringComparison.Ordinal);

        var result = await CheckTestHost.RunOneAsync(new CheckSpec("payments-healthy", Http: new HttpCheckSpec(url + "/protected", 200, "ok", null)));
        // To the URL only: a redirect is followed without them (HttpClient drops the Authorization header), wherever it points.
        var redirected = await CheckTestHost.RunOneAsync(new CheckSpec("payments-healthy", Http: new HttpCheckSpec(url + "/to-protected", 200, null, null)));

        Assert.Equal(CheckStatus.Pass, result.Status);
        Assert.Equal($"GET {host.ServerUrl}/protected answered 200 containing 'ok'", result.Detail);
        Assert.Equal($"GET {host.ServerUrl}/to-protected answered 401, expected 200", redirected.Detail);
    }

    [Fact]
    public async Task Http_OtherStatus_FailsShowingBoth()
    {
        var result = await CheckTestHost.RunOneAsync(Http("/status/503"));

        Assert.Equal(new CheckResult("payments-healthy", CheckStatus.Fail, $"GET {host.ServerUrl}/status/503 answered 503, expected 200"), result);
    }

    [Fact]
    public async Task Http_BodyWithoutSubstring_Fails()
    {
        var result = await CheckTestHost.RunOneAsync(Http("/healthz", body: "SERVING"));

        Assert.Equal(CheckStatus.Fail, result.Status);
        Assert.EndsWith("but the body does not contain 'SERVING'", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Http_Hanging_IsCutOffByItsTimeout()
    {
        var stopwatch = Stopwatch.StartNew();

        var result = await CheckTestHost.RunOneAsync(Http("/hang", timeout: TimeSpan.FromMilliseconds(500)));

        Assert.Equal(new CheckResult("payments-healthy", CheckStatus.Error, $"GET {host.ServerUrl}/hang gave no answer within 500ms"), result);
        // Cut off at its own 500 ms, well before the pre-deploy timeout (20 s) would cut it: a loaded machine may take
        // seconds more than 500 ms.
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(15), $"took {stopwatch.Elapsed}");
    }

    /// <summary>
    /// An http check without a timeout of its own has what remains of <c>preDeploy.timeout</c> (runbooks/README.md,
    /// schema.json). Before, it was cut off after 10 seconds whatever that timeout was: a health endpoint that took 15 s
    /// under a 60 s preDeploy.timeout was an error, "gave no answer within 10s", and the change was denied.
    /// </summary>
    [Fact]
    public async Task Http_WithoutATimeoutOfItsOwn_HasWhatRemainsOfThePreDeployTimeout()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var services = PrometheusTestServer.Services(more: services =>
        {
            services.AddSingleton<TimeProvider>(clock);
            services.AddPreDeployChecks();
        });
        var runner = services.GetRequiredService<PreDeployCheckRunner>();
        var key = Guid.NewGuid().ToString("N");

        var running = runner.RunAsync(
            new PreDeploySpec(TimeSpan.FromSeconds(60), [Http("/held/" + key)]), new CheckContext("checkout", "production", clock.GetUtcNow()), CancellationToken.None);
        await host.ArrivedAsync(key).WaitAsync(TimeSpan.FromSeconds(30));
        clock.Advance(TimeSpan.FromSeconds(15));
        host.Release(key);
        var result = Assert.Single(await running.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal(new CheckResult("payments-healthy", CheckStatus.Pass, $"GET {host.ServerUrl}/held/{key} answered 200"), result);
    }

    /// <summary>Past what remains of <c>preDeploy.timeout</c>, such a check is an error that names that timeout.</summary>
    [Fact]
    public async Task Http_WithoutATimeoutOfItsOwn_IsCutOffByThePreDeployTimeout()
    {
        var result = Assert.Single(await CheckTestHost.RunAsync(new PreDeploySpec(TimeSpan.FromMilliseconds(500), [Http("/hang")])));

        Assert.Equal(new CheckResult("payments-healthy", CheckStatus.Error, "no answer within the pre-deploy timeout of 500ms"), result);
    }

    [Fact]
    public async Task Http_Unreachable_IsAnError()
    {
        var result = await CheckTestHost.RunOneAsync(
            new CheckSpec("down", Http: new HttpCheckSpec(PrometheusTestServer.UnusedLoopbackUrl() + "/healthz", 200, null, null)));

        Assert.Equal(CheckStatus.Error, result.Status);
        Assert.Contains("failed", result.Detail, StringComparison.Ordinal);
    }
}
