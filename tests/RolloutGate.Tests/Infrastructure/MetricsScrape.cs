using System.Globalization;

namespace RolloutGate.Tests.Infrastructure;

/// <summary>The service's /metrics page, read as Prometheus would, one sample at a time.</summary>
public static class MetricsScrape
{
    public static Task<string> MetricsAsync(this TestService service) =>
        service.Client.GetStringAsync(new Uri("/metrics", UriKind.Relative));

    /// <summary>The value of one series, written exactly as exposed (labels in name order), or null when it is not exposed.</summary>
    public static double? Sample(string exposition, string series) =>
        exposition.Split('\n')
            .Where(line => line.StartsWith(series + " ", StringComparison.Ordinal))
            .Select(line => (double?)double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture))
            .SingleOrDefault();
}
