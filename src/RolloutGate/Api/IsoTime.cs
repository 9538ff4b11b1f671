using System.Globalization;
using RolloutGate.Infrastructure;

namespace RolloutGate.Api;

/// <summary>
/// A query parameter that names an instant (<c>from</c>, <c>to</c>): ISO 8601 (<see cref="IsoTimes.Read"/>, the command
/// line's reader), in UTC where it gives no offset, as <c>backtest --deployed-at</c> reads it, and a date alone at its
/// midnight UTC. An offset's <c>+</c> sent unescaped in a URL arrives as a space (<c>...10:00:00 01:00</c>) and is read as
/// the <c>+</c> it was. Bound as a <see cref="DateTimeOffset"/>, the framework took whatever <c>DateTimeOffset.Parse</c>
/// takes: <c>12/07/2026</c> read month first (12 July was meant, or 7 December?), <c>Mon, 07 Dec 2026</c>, a time
/// without an offset on the server's clock; each gave a window other than the one meant, answered as if it were right.
/// Anything but ISO 8601 is refused with 400 naming the parameter (<see cref="InputExceptionHandler"/>).
/// </summary>
public readonly record struct IsoTime(DateTimeOffset Value)
{
    public static bool TryParse(string? text, IFormatProvider? provider, out IsoTime time)
    {
        var read = text is null ? null
            : IsoTimes.Read(text.Replace(' ', '+'), withoutOffsetUtc: true)
              ?? (DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date)
                  ? new DateTimeOffset(date.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero)
                  : null);
        time = new IsoTime(read.GetValueOrDefault());
        return read is not null;
    }
}
