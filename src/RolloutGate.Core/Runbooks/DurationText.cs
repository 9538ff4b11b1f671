using System.Globalization;
using System.Text;

namespace RolloutGate.Core.Runbooks;

/// <summary>
/// A duration as a runbook writes it (<c>15m</c>, <c>1h30m</c>, <c>2d</c>, <c>5s438ms</c>): the units largest first, each
/// that is not zero, to the millisecond. For what people read (a decision's reason, a log line), where .NET's own
/// <c>00:15:00</c> or <c>00:00:05.4382928</c> says the same less plainly.
/// </summary>
public static class DurationText
{
    private static readonly (string Unit, long Milliseconds)[] Units =
        [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

    public static string Format(TimeSpan span)
    {
        var left = (long)Math.Round(span.Duration().TotalMilliseconds, MidpointRounding.AwayFromZero);
        if (left == 0)
        {
            return "0s";
        }

        var text = new StringBuilder(span < TimeSpan.Zero ? "-" : "");
        foreach (var (unit, milliseconds) in Units)
        {
            if (left >= milliseconds)
            {
                text.Append((left / milliseconds).ToString(CultureInfo.InvariantCulture)).Append(unit);
                left %= milliseconds;
            }
        }

        return text.ToString();
    }
}
