using System.Globalization;
using System.Text;
using Microsoft.Net.Http.Headers;

namespace RolloutGate.Api;

/// <summary>RFC 4180 CSV for list endpoints whose caller sends <c>Accept: text/csv</c>.</summary>
public static class Csv
{
    public const string ContentType = "text/csv; charset=utf-8";

    /// <summary>
    /// Whether the caller prefers CSV: <c>text/csv</c> is accepted with a quality no lower than any other type it
    /// names (<c>text/csv;q=0.5, application/json</c> is JSON).
    /// </summary>
    public static bool IsRequested(HttpRequest request)
    {
        var accepted = request.GetTypedHeaders().Accept;
        var csv = accepted.Where(accept => accept.MediaType.Equals("text/csv", StringComparison.OrdinalIgnoreCase)).ToList();
        return csv.Count > 0 && csv.Max(accept => accept.Quality ?? 1) >= accepted.Max(accept => accept.Quality ?? 1);
    }

    public static IResult Result(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<object?>> rows)
    {
        var text = new StringBuilder();
        AppendRow(text, header);
        foreach (var row in rows)
        {
            AppendRow(text, row);
        }

        return TypedResults.Text(text.ToString(), ContentType);
    }

    private static void AppendRow<T>(StringBuilder text, IReadOnlyList<T> cells)
    {
        for (var i = 0; i < cells.Count; i++)
        {
            if (i > 0)
            {
                text.Append(',');
            }

            text.Append(Escape(Format(cells[i])));
        }

        text.Append("\r\n");
    }

    private static string Format(object? value) => value switch
    {
        null => "",
        DateTimeOffset at => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private static string Escape(string value) =>
        value.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
}
