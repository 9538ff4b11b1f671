using System.Diagnostics;

namespace RolloutGate.Tests.Prometheus;

/// <summary>
/// A real Prometheus (the one on PATH, as deploy/local/lib.sh starts: Debian's /usr/bin/prometheus or one of your own) of
/// a test's own, on a free loopback port, with the given configuration and TSDB folder; killed on dispose, and a folder
/// of its own deleted.
/// </summary>
public sealed class PrometheusProcess : IDisposable
{
    private readonly Process process;
    private readonly string? ownFolder;

    private PrometheusProcess(Process process, string url, string? ownFolder) => (this.process, Url, this.ownFolder) = (process, url, ownFolder);

    public string Url { get; }

    /// <summary>
    /// Starts Prometheus with <paramref name="configuration"/> (YAML text) over the TSDB in <paramref name="data"/> (an
    /// empty one in a folder of its own when null) and waits until it is ready.
    /// </summary>
    public static Task<PrometheusProcess> StartAsync(string configuration, string? data = null) => StartAsync(configuration, data, null);

    private static async Task<PrometheusProcess> StartAsync(string configuration, string? data, string? ownFolder)
    {
        ownFolder ??= data is null ? Directory.CreateTempSubdirectory("rg-prometheus-").FullName : null;
        data ??= Path.Combine(ownFolder!, "data");
        var config = $"{Path.TrimEndingDirectorySeparator(data)}.yml";
        await File.WriteAllTextAsync(config, configuration);
        var url = PrometheusTestServer.UnusedLoopbackUrl();
        var start = new ProcessStartInfo("prometheus")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        foreach (var argument in new[]
        {
            $"--config.file={config}", $"--storage.tsdb.path={data}", $"--web.listen-address={new Uri(url).Authority}", "--log.level=warn",
        })
        {
            start.ArgumentList.Add(argument);
        }

        var prometheus = new PrometheusProcess(Process.Start(start) ?? throw new InvalidOperationException("prometheus did not start"), url, ownFolder);
        prometheus.process.BeginOutputReadLine();
        prometheus.process.BeginErrorReadLine();
        using var http = new HttpClient();
        for (var attempt = 0; attempt < 300; attempt++)
        {
            try
            {
                if ((await http.GetAsync(new Uri($"{url}/-/ready"))).IsSuccessStatusCode)
                {
                    return prometheus;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        prometheus.Dispose();
        throw new InvalidOperationException($"prometheus at {url} did not become ready");
    }

    /// <summary>
    /// Starts Prometheus over the series of <paramref name="openMetrics"/> (with timestamps), written into a TSDB of its
    /// own by <c>promtool tsdb create-blocks-from openmetrics</c>, as deploy/local/lib.sh backfills the demo.
    /// </summary>
    public static async Task<PrometheusProcess> BackfilledAsync(string openMetrics)
    {
        var folder = Directory.CreateTempSubdirectory("rg-prometheus-").FullName;
        try
        {
            var series = Path.Combine(folder, "series.om");
            await File.WriteAllTextAsync(series, openMetrics);
            await RunAsync("promtool", ["tsdb", "create-blocks-from", "openmetrics", series, Path.Combine(folder, "data")]);
            return await StartAsync("global:\n  scrape_interval: 1m\nscrape_configs: []\n", Path.Combine(folder, "data"), folder);
        }
        catch
        {
            Directory.Delete(folder, recursive: true);
            throw;
        }
    }

    private static async Task RunAsync(string file, string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var run = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
        var output = run.StandardOutput.ReadToEndAsync();
        var error = await run.StandardError.ReadToEndAsync();
        await run.WaitForExitAsync();
        if (run.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} failed ({run.ExitCode}): {error}{await output}");
        }
    }

    public void Dispose()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }

        process.Dispose();
        if (ownFolder is not null)
        {
            Directory.Delete(ownFolder, recursive: true);
        }
    }
}
