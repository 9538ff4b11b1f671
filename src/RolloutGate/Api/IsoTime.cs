using RolloutGate.Cli;

namespace RolloutGate.Api;

/// <summary>
/// A query parameter that names an instant (<c>from</c>, <c>to</c>): ISO 8601 with <c>Z</c> or an offset, read as the
/// command line's times are (<see cref="CommandTimes.Read"/>), as a webhook's <c>at</c> must be. Bound as a
/// <see cref="DateTimeOffset"/>, the framework took whatever <c>DateTimeOffset.Parse</c> takes: <c>12/07/2026</c> read
/// month first (12 July was meant, or 7 December?), <c>Mon, 07 Dec 2026</c>, and a time without an offset on the
/// server's clock; each gave a window other than the one meant, answered as if it were right. Anything else is
/// refused with 400 naming the parameter (<see cref="InputExceptionHandler"/>).
/// </summary>
public readonly record struct IsoTime(DateTimeOffset Value)
{
    public static bool TryParse(string? text, IFormatProvider? provider, out IsoTime time)
    {
        var read = text is null ? null : CommandTimes.Read(text);
        time = new IsoTime(read.GetValueOrDefault());
        return read is not null;
    }
}
