using System.Diagnostics;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Dashboard;

/// <summary>The detail page in headless Chromium (Debian's chromium, installed by deploy/local/test.sh).</summary>
public sealed class DashboardBrowserTests
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task Detail_InHeadlessChromium_LoadsThroughTheTokenCookieAndDrawsTheChart()
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: apt-get install -y chromium (deploy/local/test.sh does)");
        await using var service = await TestService.StartAsync();
        (await service.Webhooks.SendEventAsync("predeploy", "dash-browser")).EnsureSuccessStatusCode();
        (await service.Webhooks.SendEventAsync("deployed", "dash-browser")).EnsureSuccessStatusCode();
        await EvaluationSeed.InsertAsync(service, "dash-browser", "error-rate", [0.010, 0.011, 0.010, 0.040, 0.041, 0.040], regressedFrom: 3);

        using var client = service.Host.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false, HandleCookies = false });
        await using var proxy = await new LoopbackProxy(client).StartAsync();
        var url = $"{proxy.Url}/dashboard/deployments/dash-browser?token={RolloutGateHost.ReaderToken}";

        var dom = await RunChromiumAsync(["--dump-dom", url]);
        Assert.Contains("<svg class=\"chart\"", dom, StringComparison.Ordinal);
        Assert.Contains("dash-browser", dom, StringComparison.Ordinal);
        Assert.Contains(proxy.Requests, r => r.PathAndQuery == "/dashboard/deployments/dash-browser" && r.HadCookie);

        var folder = TestPaths.RepositoryFile(Path.Combine(".local", "test", "results", "screenshots"));
        Directory.CreateDirectory(folder);
        var screenshot = Path.Combine(folder, "dashboard-deployment.png");
        File.Delete(screenshot);
        await RunChromiumAsync([$"--screenshot={screenshot}", "--window-size=1280,900", url]);
        var png = await File.ReadAllBytesAsync(screenshot);
        Assert.True(png.Length > 10_000, $"the screenshot is only {png.Length} bytes");
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
    }

    private static async Task<string> RunChromiumAsync(string[] arguments)
    {
        var profile = Directory.CreateTempSubdirectory("rolloutgate-chromium-");
        try
        {
            var start = new ProcessStartInfo(Chromium) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in (string[])["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--no-first-run", $"--user-data-dir={profile.FullName}", .. arguments])
            {
                start.ArgumentList.Add(argument);
            }

            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var errors = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException("chromium did not finish in 90 s: " + await errors);
            }

            Assert.True(process.ExitCode == 0, $"chromium exited with {process.ExitCode}: {await errors}");
            return await output;
        }
        finally
        {
            profile.Delete(recursive: true);
        }
    }
}
