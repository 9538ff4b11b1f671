using System.Globalization;
using System.Text;
using RolloutGate.Slack;
using static RolloutGate.Web.HtmlPages;

namespace RolloutGate.Dashboard;

/// <summary>One stored evaluation of one metric (a row of <c>evaluations</c>).</summary>
public sealed record ChartPoint(DateTimeOffset At, double? Value, double? Baseline, double? Threshold, string Verdict, string Explanation);

/// <summary>A moment drawn as a vertical line across a chart: the deploy, the detection, a decision.</summary>
public sealed record ChartMark(DateTimeOffset At, string Kind, string Label);

/// <summary>
/// A metric over the watch as inline SVG, drawn on the server so the page needs no script and no external asset: the
/// baseline..threshold band, the value as a line with a circle per evaluation (per some of them on a long watch,
/// <see cref="Circled"/>), the metric's absolute floor where it has one, and vertical marks.
/// </summary>
public static class MetricChart
{
    private const double Width = 720, Height = 220, Left = 64, Right = 12, Top = 12, Bottom = 28;

    public const string Style =
        "svg.chart{background:#fafafa;border:1px solid #ddd}" +
        ".band{fill:#e3f0e3}.baseline{stroke:#4a8f4a;fill:none;stroke-dasharray:4 3}.threshold{stroke:#c77d00;fill:none;stroke-dasharray:6 3}.floor{stroke:#c0392b;stroke-dasharray:2 3}" +
        ".value{stroke:#1f4e9c;fill:none;stroke-width:2}.point{fill:#1f4e9c}.point.bad{fill:#c0392b}" +
        ".mark{stroke-width:1.5}.mark.deploy{stroke:#555}.mark.detection{stroke:#c0392b}.mark.decision{stroke:#7b3fa0}" +
        ".axis{font-size:11px;fill:#444}.label{font-size:11px}.label.baseline{fill:#4a8f4a;stroke:none}.label.threshold{fill:#c77d00;stroke:none}.label.floor{fill:#c0392b;stroke:none}" +
        ".legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:1.5em;height:.6em;margin-right:.3em}";

    /// <summary>What the lines and colours mean; the marks' own tooltips say which decision or metric.</summary>
    public const string Legend =
        "<p class=\"legend\"><span><i style=\"background:#1f4e9c\"></i>value</span><span><i style=\"background:#e3f0e3\"></i>baseline..threshold</span>" +
        "<span><i style=\"border-top:2px dashed #4a8f4a;height:0\"></i>baseline</span><span><i style=\"border-top:2px dashed #c77d00;height:0\"></i>threshold</span>" +
        "<span><i style=\"border-top:2px dotted #c0392b;height:0\"></i>min (the floor, where the runbook sets one)</span>" +
        "<span><i style=\"background:#c0392b\"></i>regression / detection</span><span><i style=\"background:#555\"></i>deploy</span>" +
        "<span><i style=\"background:#7b3fa0\"></i>decision</span></p>";

    /// <param name="format">How values are written (axis, labels, tooltips): the metric's unit when the caller knows it.</param>
    /// <param name="floor">
    /// The metric's absolute <c>min</c>, drawn across the chart: the stored threshold is the relative limit, or the max, at
    /// most intervals, so the floor would otherwise show only where the value fell below it.
    /// </param>
    public static string Svg(string metric, IReadOnlyList<ChartPoint> points, IReadOnlyList<ChartMark> marks, Func<double, string>? format = null, double? floor = null)
    {
        format ??= value => SlackMessages.Number(value);
        var times = points.Select(p => p.At).Concat(marks.Select(m => m.At)).ToList();
        var from = times.Count == 0 ? DateTimeOffset.UnixEpoch : times.Min();
        var to = times.Count == 0 ? from : times.Max();
        var span = Math.Max((to - from).TotalSeconds, 1);
        var numbers = points.SelectMany(p => new[] { p.Value, p.Baseline, p.Threshold }).Append(floor).OfType<double>().Where(double.IsFinite).ToList();
        var low = numbers.Count == 0 ? 0 : numbers.Min();
        var high = numbers.Count == 0 ? 1 : numbers.Max();
        var pad = high > low ? (high - low) * 0.1 : Math.Max(Math.Abs(high) * 0.1, 1);
        low -= pad;
        high += pad;

        double X(DateTimeOffset at) => Left + ((at - from).TotalSeconds / span * (Width - Left - Right));
        double Y(double value) => Top + ((high - value) / (high - low) * (Height - Top - Bottom));

        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture,
            $"<svg class=\"chart\" role=\"img\" data-metric=\"{E(metric)}\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" xmlns=\"http://www.w3.org/2000/svg\">");
        svg.Append(CultureInfo.InvariantCulture, $"<title>{E(metric)}: value against baseline and threshold</title>");

        // The baseline and threshold come from before the deploy: drawn from the chart's start (the deploy, usually), so a
        // regression caught at the first evaluation shows its single point against a band rather than alone.
        var banded = FromStart(from, points.Where(p => Finite(p.Baseline) && Finite(p.Threshold)));
        if (banded.Count > 0)
        {
            var edge = banded.Select(p => (p.At, p.Baseline!.Value)).Concat(banded.AsEnumerable().Reverse().Select(p => (p.At, p.Threshold!.Value)));
            svg.Append(CultureInfo.InvariantCulture, $"<polygon class=\"band\" points=\"{Path(edge, X, Y)}\"/>");
        }

        var baseline = FromStart(from, points.Where(p => Finite(p.Baseline))).Select(p => (p.At, p.Baseline!.Value)).ToList();
        var threshold = FromStart(from, points.Where(p => Finite(p.Threshold))).Select(p => (p.At, p.Threshold!.Value)).ToList();
        Line(svg, "baseline", baseline, X, Y);
        Line(svg, "threshold", threshold, X, Y);
        // Each label outside the band, so the two do not cover each other where the band is narrow: the threshold lies below
        // the baseline where a drop is the regression (request-rate, a query with worse: lower).
        var thresholdBelow = baseline.Count > 0 && threshold.Count > 0 && threshold[0].Value < baseline[0].Value;
        Label(svg, "baseline", baseline, X, Y, format, below: !thresholdBelow);
        Label(svg, "threshold", threshold, X, Y, format, below: thresholdBelow);
        if (Finite(floor))
        {
            // Labelled at the right end, clear of the baseline and threshold labels at the start; below the line, outside what is allowed.
            var y = N(Y(floor!.Value));
            svg.Append(CultureInfo.InvariantCulture,
                $"<line class=\"floor\" x1=\"{N(Left)}\" x2=\"{N(Width - Right)}\" y1=\"{y}\" y2=\"{y}\"/><text class=\"label floor\" x=\"{N(Width - Right - 4)}\" y=\"{N(Y(floor.Value) + 12)}\" text-anchor=\"end\">min {E(format(floor.Value))}</text>");
        }

        // The marks first, so that a point at a mark (the detection, usually the newest point) is drawn over it.
        foreach (var mark in marks)
        {
            var x = N(X(mark.At));
            svg.Append(CultureInfo.InvariantCulture,
                $"<line class=\"mark {E(mark.Kind)}\" x1=\"{x}\" x2=\"{x}\" y1=\"{N(Top)}\" y2=\"{N(Height - Bottom)}\"><title>{E(mark.Label)} at {Utc(mark.At)}</title></line>");
        }

        Line(svg, "value", points.Where(p => Finite(p.Value)).Select(p => (p.At, p.Value!.Value)), X, Y);
        foreach (var point in Circled(points))
        {
            var bad = point.Verdict is "regressed" or "breach-of-max" or "breach-of-min" ? " bad" : "";
            svg.Append(CultureInfo.InvariantCulture,
                $"<circle class=\"point{bad}\" cx=\"{N(X(point.At))}\" cy=\"{N(Y(point.Value!.Value))}\" r=\"3\"><title>{Utc(point.At)} {E(format(point.Value.Value))} {E(point.Verdict)}: {E(point.Explanation)}</title></circle>");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<text class=\"axis\" x=\"4\" y=\"{N(Top + 10)}\">{E(format(high - pad))}</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<text class=\"axis\" x=\"4\" y=\"{N(Height - Bottom)}\">{E(format(low + pad))}</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<text class=\"axis\" x=\"{N(Left)}\" y=\"{N(Height - 8)}\">{Utc(from)}</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<text class=\"axis\" x=\"{N(Width - Right)}\" y=\"{N(Height - 8)}\" text-anchor=\"end\">{Utc(to)}</text>");
        svg.Append("</svg>");
        return svg.ToString();
    }

    /// <summary>
    /// The evaluations drawn as circles, each with its explanation as a tooltip: all of them up to
    /// <see cref="MostCircles"/>. A longer watch (a day at one minute is 1,440 evaluations a metric, each circle with its
    /// explanation a few hundred bytes, and more circles than the 720-pixel chart can tell apart) gets the first, the latest, every
    /// change of verdict (a regression's first evaluation among them) and every k-th in between, so that at most about
    /// <see cref="MostCircles"/> plus the changes are drawn. The value line still passes through every evaluation.
    /// </summary>
    public static IReadOnlyList<ChartPoint> Circled(IReadOnlyList<ChartPoint> points)
    {
        var drawn = points.Where(p => Finite(p.Value)).ToList();
        if (drawn.Count <= MostCircles)
        {
            return drawn;
        }

        var every = (drawn.Count + MostCircles - 1) / MostCircles;
        return drawn.Where((point, i) => i == 0 || i == drawn.Count - 1 || i % every == 0 || point.Verdict != drawn[i - 1].Verdict).ToList();
    }

    /// <summary>The most evaluations a chart draws as circles before it draws only some (<see cref="Circled"/>).</summary>
    public const int MostCircles = 240;

    private static void Line(StringBuilder svg, string kind, IEnumerable<(DateTimeOffset At, double Value)> series, Func<DateTimeOffset, double> x, Func<double, double> y)
    {
        var path = Path(series, x, y);
        if (path.Length > 0)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<polyline class=\"{kind}\" points=\"{path}\"/>");
        }
    }

    /// <summary>The points, the first repeated at <paramref name="from"/> when the chart starts before it.</summary>
    private static List<ChartPoint> FromStart(DateTimeOffset from, IEnumerable<ChartPoint> points)
    {
        var list = points.ToList();
        if (list.Count > 0 && list[0].At > from)
        {
            list.Insert(0, list[0] with { At = from });
        }

        return list;
    }

    /// <summary>Names a line and its value where it starts, just inside the plot: "threshold 0.003".</summary>
    private static void Label(
        StringBuilder svg, string kind, List<(DateTimeOffset At, double Value)> series, Func<DateTimeOffset, double> x, Func<double, double> y,
        Func<double, string> format, bool below)
    {
        if (series.Count > 0)
        {
            var (at, value) = series[0];
            svg.Append(CultureInfo.InvariantCulture,
                $"<text class=\"label {kind}\" x=\"{N(x(at) + 4)}\" y=\"{N(y(value) + (below ? 12 : -4))}\">{kind} {E(format(value))}</text>");
        }
    }

    private static string Path(IEnumerable<(DateTimeOffset At, double Value)> series, Func<DateTimeOffset, double> x, Func<double, double> y) =>
        string.Join(' ', series.Select(p => $"{N(x(p.At))},{N(y(p.Value))}"));

    /// <summary>Whether a value is drawn: a number, not missing, NaN or infinite.</summary>
    internal static bool Finite(double? value) => value is { } v && double.IsFinite(v);

    private static string N(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);
}
