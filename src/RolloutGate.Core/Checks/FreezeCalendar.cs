using System.Globalization;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Checks;

/// <summary>The freeze window a time falls in, and the first moment after it when changes are allowed again.</summary>
/// <param name="Window">The window in normal form, e.g. "Fri 16:00 - Mon 08:00", or "2026-12-21 00:00 - 2027-01-04 08:00".</param>
/// <param name="Until">When the freeze ends, with the zone's offset at that moment.</param>
/// <param name="Reason">A dated window's reason, if it gave one.</param>
public sealed record FreezeMatch(string Window, DateTimeOffset Until, string? Reason);

/// <summary>
/// Change-freeze windows in local wall-clock time of a named IANA zone: "Fri 16:00 - Mon 08:00" in Europe/Berlin
/// means 16:00 on the clocks in Berlin, CET or CEST, whatever the UTC offset is that day. Pure: the time asked
/// about is a parameter.
/// </summary>
/// <remarks>
/// A boundary that names a wall-clock time which does not exist or exists twice on that day is resolved so that
/// doubt never shortens a freeze:
/// <list type="bullet">
/// <item>skipped (spring forward, e.g. 02:30 on 2026-03-29 in Berlin): the boundary is the moment the clocks jump,
/// the first instant the wall clock reads at or after that time (03:00 CEST), for a start and an end alike;</item>
/// <item>ambiguous (fall back, e.g. 02:30 on 2026-10-25 in Berlin): a start is the earlier of the two instants
/// (02:30 CEST), an end the later (02:30 CET).</item>
/// </list>
/// Windows that touch or overlap are one freeze: <see cref="FreezeMatch.Until"/> is when the last of them ends.
/// A dated window's <see cref="DatedWindow.From"/> and <see cref="DatedWindow.To"/> are wall-clock times in the zone
/// unless their kind is <see cref="DateTimeKind.Utc"/>; the end is exclusive.
/// </remarks>
public static class FreezeCalendar
{
    private const int MinutesPerWeek = 7 * 24 * 60;

    /// <summary>How many touching windows are followed to find the end of a freeze.</summary>
    private const int MaxChainedWindows = 16;

    /// <exception cref="ArgumentException">The zone is unknown or a weekly window does not parse.</exception>
    public static FreezeMatch? Find(FreezeCheckSpec spec, DateTimeOffset at) =>
        Find(ZoneById(spec.TimeZone), spec.WeeklyWindows.Count == spec.Windows.Count ? spec.WeeklyWindows : [.. spec.Windows.Select(WeeklyWindow.Parse)], spec.Dates, at);

    public static FreezeMatch? Find(TimeZoneInfo zone, IReadOnlyList<WeeklyWindow> windows, IReadOnlyList<DatedWindow> dates, DateTimeOffset at)
    {
        var first = FindOne(zone, windows, dates, at);
        if (first is null)
        {
            return null;
        }

        var until = first.Until;
        for (var i = 0; i < MaxChainedWindows && FindOne(zone, windows, dates, until) is { } next && next.Until > until; i++)
        {
            until = next.Until;
        }

        return first with { Until = TimeZoneInfo.ConvertTime(until, zone) };
    }

    public static TimeZoneInfo ZoneById(string id)
    {
        try
        {
            return TimeZoneInfo.FindSystemTimeZoneById(id);
        }
        catch (TimeZoneNotFoundException exception)
        {
            throw new ArgumentException($"unknown time zone '{id}'", nameof(id), exception);
        }
    }

    /// <summary>"2026-11-23T08:00+01:00": minute precision with the offset, for messages.</summary>
    public static string FormatLocal(DateTimeOffset time) => time.ToString("yyyy-MM-dd'T'HH:mmzzz", CultureInfo.InvariantCulture);

    /// <summary>The matching window that ends last, or null.</summary>
    private static FreezeMatch? FindOne(TimeZoneInfo zone, IReadOnlyList<WeeklyWindow> windows, IReadOnlyList<DatedWindow> dates, DateTimeOffset at)
    {
        FreezeMatch? best = null;
        var local = TimeZoneInfo.ConvertTime(at, zone).DateTime;
        var monday = local.Date.AddDays(-(((int)local.DayOfWeek + 6) % 7));
        foreach (var window in windows)
        {
            // An occurrence shorter than a week that covers 'local' starts in this ISO week or the one before;
            // the next week is looked at too because resolving a skipped start can move it by the size of the gap.
            for (var week = -1; week <= 1; week++)
            {
                var start = monday.AddDays(7 * week).AddMinutes(MinuteOfWeek(window.FromDay, window.FromTime));
                Consider(ref best, window.ToString(), null, ResolveStart(start, zone), ResolveEnd(start.AddMinutes(LengthMinutes(window)), zone), at);
            }
        }

        foreach (var dated in dates)
        {
            var text = $"{dated.From:yyyy-MM-dd HH:mm} - {dated.To:yyyy-MM-dd HH:mm}";
            Consider(ref best, text, dated.Reason, Instant(dated.From, zone, isStart: true), Instant(dated.To, zone, isStart: false), at);
        }

        return best;
    }

    /// <summary>The window's length in wall-clock minutes; 0 for a window that ends when it starts.</summary>
    internal static int LengthMinutes(WeeklyWindow window) =>
        (MinuteOfWeek(window.ToDay, window.ToTime) - MinuteOfWeek(window.FromDay, window.FromTime) + MinutesPerWeek) % MinutesPerWeek;

    /// <summary>Minutes from Monday 00:00 (ISO weeks).</summary>
    private static int MinuteOfWeek(DayOfWeek day, TimeOnly time) => ((((int)day) + 6) % 7 * 24 * 60) + (time.Hour * 60) + time.Minute;

    private static void Consider(ref FreezeMatch? best, string text, string? reason, DateTimeOffset start, DateTimeOffset end, DateTimeOffset at)
    {
        if (start <= at && at < end && (best is null || end > best.Until))
        {
            best = new FreezeMatch(text, end, reason);
        }
    }

    private static DateTimeOffset Instant(DateTime time, TimeZoneInfo zone, bool isStart) =>
        time.Kind == DateTimeKind.Utc ? new DateTimeOffset(time)
        : isStart ? ResolveStart(DateTime.SpecifyKind(time, DateTimeKind.Unspecified), zone)
        : ResolveEnd(DateTime.SpecifyKind(time, DateTimeKind.Unspecified), zone);

    internal static DateTimeOffset ResolveStart(DateTime local, TimeZoneInfo zone) => Resolve(local, zone, earlier: true);

    internal static DateTimeOffset ResolveEnd(DateTime local, TimeZoneInfo zone) => Resolve(local, zone, earlier: false);

    private static DateTimeOffset Resolve(DateTime local, TimeZoneInfo zone, bool earlier)
    {
        if (zone.IsInvalidTime(local))
        {
            return TimeZoneInfo.ConvertTime(new DateTimeOffset(EndOfGap(local, zone), TimeSpan.Zero), zone);
        }

        if (zone.IsAmbiguousTime(local))
        {
            var offsets = zone.GetAmbiguousTimeOffsets(local);

            // The larger offset is the earlier instant.
            return new DateTimeOffset(local, earlier ? offsets.Max() : offsets.Min());
        }

        return new DateTimeOffset(local, zone.GetUtcOffset(local));
    }

    /// <summary>
    /// The UTC instant the clocks jump over the skipped wall-clock time <paramref name="local"/>: the first instant
    /// whose wall-clock time is at or after it. That instant lies between local - offsetAfter and local - offsetBefore.
    /// </summary>
    private static DateTime EndOfGap(DateTime local, TimeZoneInfo zone)
    {
        var before = zone.GetUtcOffset(local.AddDays(-1));
        var after = zone.GetUtcOffset(local.AddDays(1));
        if (after <= before)
        {
            throw new InvalidOperationException($"{local:O} is skipped in {zone.Id}, but the offset does not move forward around it");
        }

        var low = DateTime.SpecifyKind(local - after, DateTimeKind.Utc).Ticks;
        var high = DateTime.SpecifyKind(local - before, DateTimeKind.Utc).Ticks;
        while (high - low > 1)
        {
            var middle = low + ((high - low) / 2);
            var utc = new DateTime(middle, DateTimeKind.Utc);
            if (utc + zone.GetUtcOffset(utc) >= local)
            {
                high = middle;
            }
            else
            {
                low = middle;
            }
        }

        return new DateTime(high, DateTimeKind.Utc);
    }
}
