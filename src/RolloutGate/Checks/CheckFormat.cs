using System.Globalization;

namespace RolloutGate.Checks;

internal static class CheckFormat
{
    /// <summary>"30s", "1.5s", "250ms": durations as runbooks write them.</summary>
    public static string Duration(TimeSpan duration) => duration < TimeSpan.FromSeconds(1)
        ? duration.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture) + "ms"
        : duration.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s";

    /// <summary>A number as the runbook wrote it, or as Prometheus does (NaN, +Inf): a check's bounds, which are quoted as given.</summary>
    public static string Number(double value) => Prometheus.PrometheusFormat.FormatValue(value);

    /// <summary>The most significant digits <see cref="Value"/> shows before it falls back to every digit.</summary>
    private const int MostSignificantDigits = 7;

    /// <summary>
    /// What a query returned, beside the check's bounds: four significant digits in fixed notation, as explanations show
    /// values ("value 0.002022 is within max 0.01", not "value 0.002021605913197296 ..." nor "2.1E-05"), and more where four
    /// would read as equal to a bound or on its other side ("value 0.0100004 is above max 0.01", not "value 0.01 is above
    /// max 0.01"); every digit when seven are not enough. The bounds themselves are quoted as the runbook wrote them
    /// (<see cref="Number"/>), so a rounding never misquotes a runbook.
    /// </summary>
    public static string Value(double value, double? min, double? max)
    {
        if (!double.IsFinite(value))
        {
            return Number(value);
        }

        for (var digits = 4; digits <= MostSignificantDigits; digits++)
        {
            var shown = Core.Analysis.MetricValues.Significant(value, digits);
            var read = double.Parse(shown, NumberStyles.Float, CultureInfo.InvariantCulture);
            if (SameSide(read, value, min) && SameSide(read, value, max))
            {
                return shown;
            }
        }

        return Number(value);
    }

    private static bool SameSide(double read, double value, double? bound) =>
        bound is not { } b || read.CompareTo(b) == value.CompareTo(b);
}
