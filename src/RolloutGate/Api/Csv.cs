using System.Globalization;
using System.Text;
using Microsoft.Net.Http.Headers;

namespace RolloutGate.Api;

/// <summary>
/// RFC 4180 CSV for list endpoints whose caller sends <c>Accept: text/csv</c>. The cells hold text from webhooks, Slack
/// and operators, and these files are opened in spreadsheets: text that a spreadsheet would run as a formula gets a
/// leading <c>'</c> (see <see cref="Defused"/>).
/// </summary>
public static class Csv
{
    public const string ContentType = "text/csv; charset=utf-8";

    /// <summary>
    /// Whether the caller prefers CSV: <c>text/csv</c> is accepted with a quality above 0 (<c>q=0</c> means not
    /// acceptable) and no lower than any other type it names (<c>text/csv;q=0.5, application/json</c> is JSON).
    /// </summary>
    public static bool IsRequested(HttpRequest request)
    {
        var accepted = request.GetTypedHeaders().Accept;
        var csv = accepted.Where(accept => accept.MediaType.Equals("text/csv", StringComparison.OrdinalIgnoreCase)).ToList();
        if (csv.Count == 0)
        {
            return false;
        }

        var quality = csv.Max(accept => accept.Quality ?? 1);
        return quality > 0 && quality >= accepted.Max(accept => accept.Quality ?? 1);
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
        _ => Defused(value.ToString() ?? ""),
    };

    /// <summary>
    /// Text as a spreadsheet shows it rather than runs it: a cell starting with <c>=</c>, <c>+</c>, <c>-</c>, <c>@</c>, a tab
    /// or a carriage return is a formula to Excel, LibreOffice and Google Sheets (<c>=HYPERLINK(...)</c>, <c>=cmd|...</c>), so
    /// it gets a leading <c>'</c> (OWASP's advice for CSV injection). Numbers and times are never text here, so a negative
    /// number keeps its sign.
    /// </summary>
    internal static string Defused(string text) =>
        text.Length > 0 && text[0] is '=' or '+' or '-' or '@' or '\t' or '\r' ? "'" + text : text;

    private static string Escape(string value) =>
        value.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
}
