using System.Globalization;
using System.Text;

namespace RolloutGate.Prometheus;

/// <summary>How the Prometheus HTTP API writes numbers, times and series.</summary>
internal static class PrometheusFormat
{
    /// <summary>Sample values come as strings so that "NaN", "+Inf" and "-Inf" survive JSON.</summary>
    public static double ParseValue(string text) =>
        TryParseValue(text, out var value) ? value : throw new FormatException($"the value '{text}' is not a number");

    /// <summary><see cref="ParseValue"/>, or false for text that is not a number (a label's value, such as a bucket's <c>le</c>).</summary>
    public static bool TryParseValue(string text, out double value)
    {
        (var known, value) = text switch
        {
            "NaN" => (true, double.NaN),
            "+Inf" or "Inf" => (true, double.PositiveInfinity),
            "-Inf" => (true, double.NegativeInfinity),
            _ => (false, 0),
        };
        return known || double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>Prometheus's form: "NaN", "+Inf", "-Inf", else the shortest round-trip decimal.</summary>
    public static string FormatValue(double value) => value switch
    {
        double.NaN => "NaN",
        double.PositiveInfinity => "+Inf",
        double.NegativeInfinity => "-Inf",
        _ => value.ToString("R", CultureInfo.InvariantCulture),
    };

    /// <summary>Unix seconds with millisecond precision, the API's time parameter.</summary>
    public static string FormatTime(DateTimeOffset time) =>
        (time.ToUnixTimeMilliseconds() / 1000m).ToString(CultureInfo.InvariantCulture);

    public static DateTimeOffset ParseTime(double unixSeconds) =>
        DateTimeOffset.FromUnixTimeMilliseconds((long)Math.Round(unixSeconds * 1000));

    public static string FormatStep(TimeSpan step) =>
        ((decimal)step.TotalMilliseconds / 1000m).ToString(CultureInfo.InvariantCulture);

    public static string Series(IReadOnlyDictionary<string, string> labels)
    {
        labels.TryGetValue("__name__", out var name);
        var text = new StringBuilder(name ?? string.Empty);
        var rest = labels.Where(pair => pair.Key != "__name__").OrderBy(pair => pair.Key, StringComparer.Ordinal).ToList();
        if (rest.Count > 0 || name is null)
        {
            text.Append('{')
                .AppendJoin(',', rest.Select(pair => $"{pair.Key}=\"{pair.Value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)}\""))
                .Append('}');
        }

        return text.ToString();
    }
}
