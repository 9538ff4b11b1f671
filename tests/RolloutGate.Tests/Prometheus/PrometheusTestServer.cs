using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Infrastructure;
using RolloutGate.Prometheus;

namespace RolloutGate.Tests.Prometheus;

/// <summary>
/// The Prometheus that deploy/local/test.sh (start_prometheus) started, backfilled with known series by
/// write_prometheus_test_series in deploy/local/lib.sh: one sample a minute for the 3 hours up to <see cref="Anchor"/>.
/// The constants here mirror that function.
/// </summary>
public static class PrometheusTestServer
{
    public const double CheckoutErrorRatio = 0.004;
    public const double PaymentsErrorRatio = 0.05;
    public const double CheckoutRequestsPerSecond = 10.0;
    public const double CheckoutErrorsPerSecond = 0.1;

    /// <summary>rolloutgate_test_queue_depth is the sample index: 180 at the anchor, one less per minute before.</summary>
    public const int QueueDepthAtAnchor = 180;

    public static string Url { get; } = Require("ROLLOUTGATE_TEST_PROMETHEUS_URL");

    /// <summary>The time of the last known sample (a whole minute).</summary>
    public static DateTimeOffset Anchor { get; } =
        DateTimeOffset.FromUnixTimeSeconds(long.Parse(Require("ROLLOUTGATE_TEST_PROMETHEUS_ANCHOR"), CultureInfo.InvariantCulture));

    public static string AlertmanagerUrl => Require("ROLLOUTGATE_TEST_ALERTMANAGER_URL");

    /// <summary>The services the host registers, configured with these settings (CONTRACT section 2 keys, ':' for '__').</summary>
    public static ServiceProvider Services(Action<RolloutGateOptions>? configure = null, Action<IServiceCollection>? more = null)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddOptions<RolloutGateOptions>().Configure(options =>
        {
            options.Prometheus.Url = Url;
            configure?.Invoke(options);
        });
        services.AddPrometheus();
        more?.Invoke(services);
        return services.BuildServiceProvider();
    }

    /// <summary>A loopback URL where nothing listens: a port just handed out by the OS and released again.</summary>
    public static string UnusedLoopbackUrl()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return $"http://127.0.0.1:{port}";
    }

    private static string Require(string variable) =>
        Environment.GetEnvironmentVariable(variable)
        ?? throw new InvalidOperationException(
            $"{variable} is not set: run the tests through deploy/local/test.sh, which starts Prometheus and Alertmanager and sets it");
}
