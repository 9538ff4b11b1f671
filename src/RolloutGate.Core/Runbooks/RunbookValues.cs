using System.Globalization;
using System.Text.RegularExpressions;

namespace RolloutGate.Core.Runbooks;

/// <summary>What a metric threshold is measured in; decides which spellings <c>max</c> accepts.</summary>
internal enum ThresholdUnit
{
    /// <summary>Latency: "800ms", "1.5s" or a plain number of seconds.</summary>
    Seconds,

    /// <summary>A rate between 0 and 1: "2%" or 0.02.</summary>
    Fraction,

    /// <summary>A plain number (requests per second, cost per request).</summary>
    Plain,

    /// <summary>A custom query: the author knows the unit, so any spelling is taken to its base unit.</summary>
    Any,
}

/// <summary>
/// The scalar spellings a runbook uses (durations, percentages, thresholds, weekly windows, dates), parsed with the
/// invariant culture so a runbook means the same on every machine.
/// </summary>
internal static partial class RunbookValues
{
    public const string DurationExpectation = "a duration such as 500ms, 30s, 15m, 24h or 1h30m";
    public const string PercentExpectation = "a percentage such as 20%";
    public const string WindowExpectation = "a weekly window such as \"Fri 16:00 - Mon 08:00\" (Mon, Tue, Wed, Thu, Fri, Sat or Sun; 24-hour HH:mm)";
    public const string DateExpectation = "an ISO date such as 2026-12-24 or 2026-12-24T18:00 (local time in the freeze's time zone)";

    private static readonly string[] DateTimeFormats = ["yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd HH:mm", "yyyy-MM-dd HH:mm:ss"];

    // Units largest first; a duration lists each unit at most once, in this order, as Prometheus does.
    private static readonly (string Unit, double Milliseconds)[] DurationUnits =
        [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

    [GeneratedRegex(@"\G(\d+(?:\.\d+)?)(ms|d|h|m|s)", RegexOptions.CultureInvariant)]
    private static partial Regex DurationPart();

    [GeneratedRegex(@"^(\d+(?:\.\d+)?)%$", RegexOptions.CultureInvariant)]
    private static partial Regex Percent();

    /// <summary>
    /// The longest a watch's durations (duration, interval, baseline, warmup, stopRules.maxBlind) and a recommendation's
    /// approvalTimeout may be. Each is added to or taken from a deploy's time, or multiplied: unbounded, a baseline of
    /// 800000d reached before year 1 and a duration of 4000000d past year 9999, times the deployed webhook computes and
    /// .NET cannot hold, and an interval of 10675199d overflowed the parser itself.
    /// </summary>
    public static readonly TimeSpan MaxWatchDuration = TimeSpan.FromDays(365);

    public const string MaxWatchDurationReason = "a watch's durations and rollback.approvalTimeout are at most 365d (a year)";

    /// <summary>
    /// The shortest a watch's interval may be. An evaluation is a handful of Prometheus queries, stored rows for every
    /// metric, and the baseline holds one sample per interval (step = interval), so the cost grows as the interval shrinks:
    /// with the default 7d baseline, 10s reads 60,480 points a query in 7 range queries, 1s 604,800 points in 55 and keeps
    /// them (about 20 MB a metric in watch_baselines), and 1ms some 600 million points in about 55,000 range queries, more
    /// than the service can hold, while the sweep, one t per watch a round, would be asked for a thousand evaluations a
    /// second of each watch and never catch up. Nothing is gained below it: Prometheus scrapes every 10s (Linkerd's own) to
    /// 1m, so a shorter interval mostly sees no new sample, and the presets' rate window is at least 2m anyway.
    /// </summary>
    public static readonly TimeSpan MinWatchInterval = TimeSpan.FromSeconds(10);

    public const string MinWatchIntervalReason =
        "a watch's interval is at least 10s: Prometheus scrapes every 10s to 1m, so a shorter interval sees no new data, yet each costs queries, stored evaluations and baseline samples";

    /// <summary>
    /// The longest a pre-deploy timeout (preDeploy.timeout, an http check's timeout) may be. The predeploy webhook holds its
    /// database transaction open that long, PostgreSQL's idle_in_transaction_session_timeout takes at most 24.8 days, and a
    /// timer at most 49.7 days; the pipeline waits for the answer all the while.
    /// </summary>
    public static readonly TimeSpan MaxCheckTimeout = TimeSpan.FromHours(24);

    public const string MaxCheckTimeoutReason = "a pre-deploy timeout is at most 24h (the pipeline waits for the checks' answer)";

    public static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        var position = 0;
        var nextUnit = 0;
        double milliseconds = 0;
        var match = DurationPart().Match(text);
        while (match.Success)
        {
            var unit = Array.FindIndex(DurationUnits, u => u.Unit == match.Groups[2].Value);
            if (unit < nextUnit)
            {
                return false;
            }

            milliseconds += double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) * DurationUnits[unit].Milliseconds;
            nextUnit = unit + 1;
            position += match.Length;
            match = match.NextMatch();
        }

        if (position == 0 || position != text.Length || milliseconds > TimeSpan.MaxValue.TotalMilliseconds)
        {
            return false;
        }

        value = TimeSpan.FromMilliseconds(milliseconds);
        return true;
    }

    /// <summary>A duration that must be longer than zero: every duration in a runbook is a timeout, window or interval.</summary>
    public static bool TryParsePositiveDuration(string text, out TimeSpan value) =>
        TryParseDuration(text, out value) && value > TimeSpan.Zero;

    public static bool TryParsePercent(string text, out double fraction)
    {
        fraction = 0;
        var match = Percent().Match(text);
        if (!match.Success)
        {
            return false;
        }

        fraction = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) / 100;
        return true;
    }

    public static bool TryParseNumber(string text, out double value) =>
        double.TryParse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out value)
        && double.IsFinite(value);

    public static bool TryParseNonNegativeNumber(string text, out double value) =>
        TryParseNumber(text, out value) && value >= 0;

    public static bool TryParsePositiveInteger(string text, out int value) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value > 0;

    /// <summary>A pre-deploy Prometheus bound: a number, or a percentage for ratio queries.</summary>
    public static bool TryParseBound(string text, out double value) =>
        TryParseNumber(text, out value) || TryParsePercent(text, out value);

    /// <summary>A metric threshold in the metric's base unit: seconds for latency, a fraction for rates.</summary>
    public static bool TryParseThreshold(string text, ThresholdUnit unit, out double value)
    {
        if (TryParseNonNegativeNumber(text, out value))
        {
            return unit != ThresholdUnit.Fraction || value <= 1;
        }

        if (unit is ThresholdUnit.Fraction or ThresholdUnit.Any && TryParsePercent(text, out value))
        {
            return unit != ThresholdUnit.Fraction || value <= 1;
        }

        if (unit is ThresholdUnit.Seconds or ThresholdUnit.Any && TryParseDuration(text, out var duration))
        {
            value = duration.TotalSeconds;
            return true;
        }

        return false;
    }

    public static string ThresholdExpectation(ThresholdUnit unit) => unit switch
    {
        ThresholdUnit.Seconds => "a latency such as 800ms or 1.5s (or a number of seconds)",
        ThresholdUnit.Fraction => "a rate such as 2% (or a fraction between 0 and 1 such as 0.02)",
        ThresholdUnit.Plain => "a number that is not negative",
        _ => "a number, a percentage such as 2% or a duration such as 800ms",
    };

    public static bool TryParseWeeklyWindow(string text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out WeeklyWindow? window) =>
        WeeklyWindow.TryParse(text.Trim(), out window, out _);

    /// <summary>
    /// The first and last days a freeze's dates may name. A day further out is a local time some zone cannot place in .NET's
    /// years 1 to 9999: "to: 9999-12-31", whose end is the next midnight, threw out of the parser, and "from: 0001-01-01"
    /// loaded although in Asia/Tokyo it is before year 1 in UTC, an instant the freeze check cannot compute.
    /// </summary>
    public static readonly DateTime EarliestDate = new(1, 1, 2, 0, 0, 0, DateTimeKind.Unspecified);

    /// <inheritdoc cref="EarliestDate"/>
    public static readonly DateTime LatestDate = new(9999, 12, 30, 0, 0, 0, DateTimeKind.Unspecified);

    public const string DateRangeReason = "a freeze's dates lie from 0001-01-02 to 9999-12-30, so that every time zone can place them";

    /// <summary>A dated freeze bound; <paramref name="dateOnly"/> tells the caller whether a time of day was given.</summary>
    public static bool TryParseLocalDate(string text, out DateTime value, out bool dateOnly)
    {
        dateOnly = DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date);
        if (dateOnly)
        {
            value = date.ToDateTime(TimeOnly.MinValue, DateTimeKind.Unspecified);
            return true;
        }

        return DateTime.TryParseExact(text, DateTimeFormats, CultureInfo.InvariantCulture, DateTimeStyles.None, out value);
    }

    public static bool TryFindTimeZone(string id, out TimeZoneInfo zone)
    {
        zone = TimeZoneInfo.Utc;
        try
        {
            zone = TimeZoneInfo.FindSystemTimeZoneById(id);
            return true;
        }
        catch (Exception)
        {
            // Not only TimeZoneNotFoundException: a prefix such as "Europe" is a folder under /usr/share/zoneinfo and
            // surfaces as a SecurityException. Whatever the reason, the name does not resolve to a zone.
            return false;
        }
    }
}
