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
    public static string Format(MetricSpec spec, MetricKind kind, double value) => Format(spec, kind, value, 0);

    /// <summary>
    /// <see cref="Format(MetricSpec, MetricKind, double)"/> with <paramref name="extraDigits"/> more digits than usual
    /// (decimals, or significant digits for a plain number), which <see cref="DigitsApart"/> chooses.
    /// </summary>
    internal static string Format(MetricSpec spec, MetricKind kind, double value, int extraDigits)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return spec is { Preset: null, Query: not null } ? Significant(value, 4 + extraDigits)
            : Format(spec.Preset is null ? kind : MetricKinds.FromPreset(spec.Preset), value, extraDigits);
    }

    /// <summary>
    /// A value in the unit of a metric of kind <paramref name="kind"/>; cost per request is a plain number. A latency that
    /// rounds to 1000 ms is shown in seconds; an error rate that would round to "0.00%" with two significant digits (a
    /// baseline of 1 error in 200,000 requests is not none).
    /// </summary>
    public static string Format(MetricKind kind, double value) => Format(kind, value, 0);

    private static string Format(MetricKind kind, double value, int extraDigits)
    {
        var more = new string('0', extraDigits);
        return kind switch
        {
            MetricKind.Latency => Math.Round(value * 1000, extraDigits) < 1000
                ? (value * 1000).ToString(extraDigits == 0 ? "0" : "0." + more, CultureInfo.InvariantCulture) + " ms"
                : value.ToString("0.00" + more, CultureInfo.InvariantCulture) + " s",
            MetricKind.ErrorRate => value > 0 && value * 100 < 0.005
                ? Significant(value * 100, 2 + extraDigits) + "%"
                : (value * 100).ToString("0.00" + more, CultureInfo.InvariantCulture) + "%",
            MetricKind.RequestRate => value.ToString("0.##" + new string('#', extraDigits), CultureInfo.InvariantCulture) + " req/s",
            _ => Significant(value, 4 + extraDigits),
        };
    }

    /// <summary>The most digits <see cref="DigitsApart"/> adds.</summary>
    private const int MostExtraDigits = 3;

    /// <summary>
    /// How many more digits than usual it takes to show <paramref name="value"/> apart from <paramref name="limit"/> in the
    /// metric's unit: "250.4 ms is above the absolute max of 250.0 ms", not "250 ms is above the absolute max of 250 ms".
    /// </summary>
    internal static int DigitsApart(MetricSpec spec, MetricKind kind, double value, double? limit) =>
        DigitsApart((v, digits) => Format(spec, kind, v, digits), value, limit);

    /// <summary>
    /// How many more digits (up to three) <paramref name="show"/> needs to tell <paramref name="value"/> from
    /// <paramref name="limit"/>: 0 without a limit, for a value equal to it, or one that three more digits do not tell from it.
    /// </summary>
    internal static int DigitsApart(Func<double, int, string> show, double value, double? limit)
    {
        if (limit is not { } other || value == other)
        {
            return 0;
        }

        for (var digits = 0; digits <= MostExtraDigits; digits++)
        {
            if (show(value, digits) != show(other, digits))
            {
                return digits;
            }
        }

        return 0;
    }

    /// <summary>
    /// A number with <paramref name="digits"/> significant digits in fixed notation, trailing zeros dropped: a cost per
    /// request of 0.00000012, not 1.2E-07, which people misread or cannot read at all; 1234568, not 1.235E+06. The runbook's
    /// <c>pricing</c> names no currency (its numbers are the user's own), so none is shown. A number that fixed notation
    /// cannot show with those digits (below a trillionth, where .NET rounds to at most 15 decimals) keeps its exponent
    /// rather than read as 0; so do NaN and the infinities, as .NET writes them.
    /// </summary>
    public static string Significant(double value, int digits)
    {
        if (value == 0 || !double.IsFinite(value))
        {
            return value.ToString(CultureInfo.InvariantCulture);
        }

        var decimals = digits - 1 - (int)Math.Floor(Math.Log10(Math.Abs(value)));
        return decimals switch
        {
            > 15 => value.ToString($"G{digits}", CultureInfo.InvariantCulture),
            <= 0 => value.ToString("0", CultureInfo.InvariantCulture),
            _ => value.ToString("0." + new string('#', decimals), CultureInfo.InvariantCulture),
        };
    }

    /// <summary>"912 ms (baseline 640 ms, threshold 768 ms)": the figures of one evaluation; "n/a" for a missing one.</summary>
    public static string Figures(MetricSpec spec, MetricKind kind, double? value, double? baseline, double? threshold)
    {
        string Shown(double? v) => v is { } x && double.IsFinite(x) ? Format(spec, kind, x) : "n/a";
        return $"{Shown(value)} (baseline {Shown(baseline)}, threshold {Shown(threshold)})";
    }
}
