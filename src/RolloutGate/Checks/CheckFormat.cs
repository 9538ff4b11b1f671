using System.Globalization;

namespace RolloutGate.Checks;

internal static class CheckFormat
{
    /// <summary>"30s", "1.5s", "250ms": durations as runbooks write them.</summary>
    public static string Duration(TimeSpan duration) => duration < TimeSpan.FromSeconds(1)
        ? duration.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture) + "ms"
        : duration.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s";

    public static string Number(double value) => Prometheus.PrometheusFormat.FormatValue(value);
}
