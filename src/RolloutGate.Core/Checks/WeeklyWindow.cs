using System.Globalization;
using System.Text.RegularExpressions;

namespace RolloutGate.Core.Checks;

/// <summary>
/// A weekly wall-clock window such as "Fri 16:00 - Mon 08:00": from the start day and time to the next end day and
/// time, wrapping over the end of the week when the end comes first. The end is exclusive.
/// </summary>
public sealed partial record WeeklyWindow(DayOfWeek StartDay, TimeOnly Start, DayOfWeek EndDay, TimeOnly End)
{
    private const int MinutesPerWeek = 7 * 24 * 60;

    /// <summary>Minutes from Monday 00:00 (ISO weeks) to the start.</summary>
    internal int StartMinuteOfWeek => MinuteOfWeek(StartDay, Start);

    /// <summary>The window's length in wall-clock minutes; less than a week.</summary>
    internal int LengthMinutes => (MinuteOfWeek(EndDay, End) - StartMinuteOfWeek + MinutesPerWeek) % MinutesPerWeek;

    /// <summary>Parses "Ddd HH:mm - Ddd HH:mm" (English day names, three letters or full; 24-hour times).</summary>
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
        if (window.LengthMinutes == 0)
        {
            window = null;
            error = $"'{text}': a window must end at another time than it starts";
            return false;
        }

        error = string.Empty;
        return true;
    }

    public override string ToString() =>
        $"{StartDay.ToString()[..3]} {Start:HH\\:mm} - {EndDay.ToString()[..3]} {End:HH\\:mm}";

    /// <summary>The wall-clock start of the occurrence beginning in the ISO week of <paramref name="monday"/>.</summary>
    internal DateTime StartInWeekOf(DateTime monday) => monday.AddMinutes(StartMinuteOfWeek);

    internal static DateTime MondayOf(DateTime local) => local.Date.AddDays(-(((int)local.DayOfWeek + 6) % 7));

    private static int MinuteOfWeek(DayOfWeek day, TimeOnly time) => ((((int)day) + 6) % 7 * 24 * 60) + (time.Hour * 60) + time.Minute;

    private static bool TryDay(string name, out DayOfWeek day)
    {
        foreach (var candidate in Enum.GetValues<DayOfWeek>())
        {
            var full = candidate.ToString();
            if (string.Equals(name, full, StringComparison.OrdinalIgnoreCase) || string.Equals(name, full[..3], StringComparison.OrdinalIgnoreCase))
            {
                day = candidate;
                return true;
            }
        }

        day = default;
        return false;
    }

    [GeneratedRegex(@"^\s*(?<startDay>[A-Za-z]+)\s+(?<start>\d{1,2}:\d{2})\s*-\s*(?<endDay>[A-Za-z]+)\s+(?<end>\d{1,2}:\d{2})\s*$")]
    private static partial Regex Pattern();
}
