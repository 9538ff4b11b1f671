using System.Globalization;
using System.Text.RegularExpressions;

namespace RolloutGate.Infrastructure;

/// <summary>
/// Times as people and files write them (backtest --deployed-at, gate --at, a backtest's CSV, the API's from and to):
/// ISO 8601, nothing looser; and times as RolloutGate prints them for people (<see cref="Utc"/>, <see cref="Relative"/>), on the
/// command line, on its pages and in its answers.
/// </summary>
public static partial class IsoTimes
{
    /// <summary>
    /// An ISO 8601 date and time with its offset (<c>Z</c>, <c>±hh:mm</c> or <c>±hh</c>), to the minute, second or fraction
    /// of a second, in the extended form (<c>2026-11-21T11:00:00+01:00</c>) or the basic one (<c>20261121T110000+0100</c>,
    /// as some exporters and <c>date +%Y%m%dT%H%M%SZ</c> write it), not the two mixed; null for anything else, such as
    /// <c>11/21/2026</c>, a space for the <c>T</c>, or no offset (whose zone would be a guess), unless
    /// <paramref name="withoutOffsetUtc"/>: then a time without an offset is UTC.
    /// </summary>
    public static DateTimeOffset? Read(string text, bool withoutOffsetUtc = false)
    {
        var match = ExtendedTime().Match(text);
        if (!match.Success)
        {
            match = BasicTime().Match(text);
        }

        if (!match.Success || !(withoutOffsetUtc || match.Groups["offset"].Success))
        {
            return null;
        }

        // The extended form of the same time, which the parser reads: "+01" and "+0100" become "+01:00".
        var groups = match.Groups;
        var offset = groups["offset"].Value is "" or "Z" ? groups["offset"].Value : $"{groups["sign"]}{groups["offsetHours"]}:{(groups["offsetMinutes"].Success ? groups["offsetMinutes"] : "00")}";
        var extended = $"{groups["year"]}-{groups["month"]}-{groups["day"]}T{groups["hour"]}:{groups["minute"]}{(groups["second"].Success ? ":" + groups["second"] : "")}{offset}";
        return DateTimeOffset.TryParse(extended, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) ? at : null;
    }

    /// <summary>A time as the command line prints it for people: UTC, to the second (<c>2026-12-06T10:31:00Z</c>).</summary>
    public static string Utc(DateTimeOffset at) => at.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>
    /// How long ago <paramref name="at"/> was, or how long until it comes, against <paramref name="now"/>, as people say it:
    /// "3 min ago", "in 14 min", "2 h 5 min ago", "just now" (the pages beside a time, the gate's deny beside the change that holds it).
    /// </summary>
    public static string Relative(DateTimeOffset at, DateTimeOffset now)
    {
        var span = now - at;
        var seconds = Math.Abs(span.TotalSeconds);
        if (seconds < 30)
        {
            return "just now";
        }

        var length = seconds switch
        {
            < 90 => "1 min",
            < 3600 => string.Create(CultureInfo.InvariantCulture, $"{Math.Round(seconds / 60):0} min"),
            < 172_800 => string.Create(CultureInfo.InvariantCulture, $"{Math.Floor(seconds / 3600):0} h {Math.Floor(seconds % 3600 / 60):0} min"),
            _ => string.Create(CultureInfo.InvariantCulture, $"{Math.Floor(seconds / 86400):0} days"),
        };
        return span > TimeSpan.Zero ? length + " ago" : "in " + length;
    }

    [GeneratedRegex(
        @"^(?<year>[0-9]{4})-(?<month>[0-9]{2})-(?<day>[0-9]{2})T(?<hour>[0-9]{2}):(?<minute>[0-9]{2})(:(?<second>[0-9]{2}(\.[0-9]{1,7})?))?(?<offset>Z|(?<sign>[+-])(?<offsetHours>[0-9]{2})(:(?<offsetMinutes>[0-9]{2}))?)?\z",
        RegexOptions.CultureInvariant)]
    private static partial Regex ExtendedTime();

    [GeneratedRegex(
        @"^(?<year>[0-9]{4})(?<month>[0-9]{2})(?<day>[0-9]{2})T(?<hour>[0-9]{2})(?<minute>[0-9]{2})(?<second>[0-9]{2}(\.[0-9]{1,7})?)?(?<offset>Z|(?<sign>[+-])(?<offsetHours>[0-9]{2})(?<offsetMinutes>[0-9]{2})?)?\z",
        RegexOptions.CultureInvariant)]
    private static partial Regex BasicTime();
}
