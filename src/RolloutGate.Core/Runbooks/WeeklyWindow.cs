using System.Globalization;
using System.Text.RegularExpressions;

using RolloutGate.Core.Checks;

namespace RolloutGate.Core.Runbooks;

/// <summary>
/// A weekly wall-clock window such as "Fri 16:00 - Mon 08:00": from the start day and time to the next end day and
/// time, wrapping over the end of the week when the end comes first. The end is exclusive.
/// </summary>
public sealed partial record WeeklyWindow(DayOfWeek FromDay, TimeOnly FromTime, DayOfWeek ToDay, TimeOnly ToTime)
{
    /// <summary>Parses "Ddd HH:mm - Ddd HH:mm" (Mon, Tue, Wed, Thu, Fri, Sat or Sun, as written; 24-hour times).</summary>
    /// <exception cref="FormatException">The text is not such a window; the message says why.</exception>
    public static WeeklyWindow Parse(string text) =>
        TryParse(text, out var window, out var error) ? window : throw new FormatException(error);

    public static bool TryParse(string text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out WeeklyWindow? window, out string error)
    {
        window = null;
        var match = Pattern().Match(text ?? string.Empty);
        if (!match.Success)
        {
            error = $"'{text}' is not a weekly window like \"Fri 16:00 - Mon 08:00\"";
            return false;
        }

        if (!TryDay(match.Groups["startDay"].Value, out var startDay) || !TryDay(match.Groups["endDay"].Value, out var endDay))
        {
            error = $"'{text}': days are Mon, Tue, Wed, Thu, Fri, Sat, Sun";
            return false;
        }

        if (!TimeOnly.TryParseExact(match.Groups["start"].Value, "H:mm", CultureInfo.InvariantCulture, DateTimeStyles.None, out var start)
            || !TimeOnly.TryParseExact(match.Groups["end"].Value, "H:mm", CultureInfo.InvariantCulture, DateTimeStyles.None, out var end))
        {
            error = $"'{text}': times are 24-hour HH:mm, 00:00 to 23:59";
            return false;
        }

        window = new WeeklyWindow(startDay, start, endDay, end);
        if (FreezeCalendar.LengthMinutes(window) == 0)
        {
            window = null;
            error = $"'{text}': a window must end at another time than it starts";
            return false;
        }

        error = string.Empty;
        return true;
    }

    public override string ToString() =>
        $"{FromDay.ToString()[..3]} {FromTime:HH\\:mm} - {ToDay.ToString()[..3]} {ToTime:HH\\:mm}";

    private static bool TryDay(string name, out DayOfWeek day)
    {
        foreach (var candidate in Enum.GetValues<DayOfWeek>())
        {
            var full = candidate.ToString();
            if (string.Equals(name, full[..3], StringComparison.Ordinal))
            {
                day = candidate;
                return true;
            }
        }

        day = default;
        return false;
    }

    // Strict on purpose: the runbook format (runbooks/README.md, schema.json) is a 3-letter day and a 24-hour HH:mm.
    [GeneratedRegex(@"^\s*(?<startDay>[A-Za-z]{3})\s+(?<start>\d{2}:\d{2})\s*-\s*(?<endDay>[A-Za-z]{3})\s+(?<end>\d{2}:\d{2})\s*$")]
    private static partial Regex Pattern();
}
