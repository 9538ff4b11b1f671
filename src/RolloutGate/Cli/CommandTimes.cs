using System.Globalization;
using System.Text.RegularExpressions;

namespace RolloutGate.Cli;

/// <summary>Times on the command line (backtest --deployed-at, gate --at): ISO 8601, nothing looser.</summary>
public static partial class CommandTimes
{
    /// <summary>
    /// An ISO 8601 date and time with its offset (<c>Z</c> or <c>±hh:mm</c>), to the minute, second or fraction of a
    /// second; null for anything else, such as <c>11/21/2026</c>, a space for the <c>T</c>, or no offset (whose zone
    /// would be a guess), unless <paramref name="withoutOffsetUtc"/>: then a time without an offset is UTC.
    /// </summary>
    public static DateTimeOffset? Read(string text, bool withoutOffsetUtc = false) =>
        IsoTime().Match(text) is { Success: true } match && (withoutOffsetUtc || match.Groups["offset"].Success)
        && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at)
            ? at
            : null;

    [GeneratedRegex(@"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,7})?)?(?<offset>Z|[+-][0-9]{2}:[0-9]{2})?\z", RegexOptions.CultureInvariant)]
    private static partial Regex IsoTime();
}
