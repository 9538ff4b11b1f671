using System.Globalization;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Analysis;

/// <summary>Metric values as people read them: in the unit of the metric's preset, as explanations and messages show them.</summary>
public static class MetricValues
{
    /// <summary>
    /// A value in the unit of the metric's preset (ms or s, %, req/s), whatever test judges it: an error rate judged on its
    /// ratio alone (a backtest CSV without request counts) is still a percentage. A custom query's unit is unknown: it is
    /// judged like a latency, but the 5 of <c>vector(5)</c> is not 5 seconds, so its values are shown as the plain numbers
    /// it returned.
    /// </summary>
    public static string Format(MetricSpec spec, MetricKind kind, double value)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return spec is { Preset: null, Query: not null } ? value.ToString("G4", CultureInfo.InvariantCulture)
            : Format(spec.Preset is null ? kind : MetricKinds.FromPreset(spec.Preset), value);
    }

    /// <summary>
    /// A value in the unit of a metric of kind <paramref name="kind"/>; cost per request is a plain number. A latency that
    /// rounds to 1000 ms is shown in seconds; an error rate that would round to "0.00%" with two significant digits (a
    /// baseline of 1 error in 200,000 requests is not none).
    /// </summary>
    public static string Format(MetricKind kind, double value) => kind switch
    {
        MetricKind.Latency => Math.Round(value * 1000) < 1000
            ? string.Create(CultureInfo.InvariantCulture, $"{value * 1000:0} ms")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.00} s"),
        MetricKind.ErrorRate => value > 0 && value * 100 < 0.005
            ? Significant(value * 100, 2) + "%"
            : string.Create(CultureInfo.InvariantCulture, $"{value * 100:0.00}%"),
        MetricKind.RequestRate => string.Create(CultureInfo.InvariantCulture, $"{value:0.##} req/s"),
        _ => value.ToString("G4", CultureInfo.InvariantCulture),
    };

    /// <summary>A positive number with <paramref name="digits"/> significant digits in fixed notation: 0.00042, not 4.2E-04.</summary>
    private static string Significant(double value, int digits)
    {
        var decimals = Math.Clamp(digits - 1 - (int)Math.Floor(Math.Log10(value)), 0, 15);
        return value.ToString("0." + new string('#', decimals), CultureInfo.InvariantCulture);
    }

    /// <summary>"912 ms (baseline 640 ms, threshold 768 ms)": the figures of one evaluation; "n/a" for a missing one.</summary>
    public static string Figures(MetricSpec spec, MetricKind kind, double? value, double? baseline, double? threshold)
    {
        string Shown(double? v) => v is { } x && double.IsFinite(x) ? Format(spec, kind, x) : "n/a";
        return $"{Shown(value)} (baseline {Shown(baseline)}, threshold {Shown(threshold)})";
    }
}
