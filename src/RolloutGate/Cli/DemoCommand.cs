using System.Globalization;
using RolloutGate.Demo;

namespace RolloutGate.Cli;

/// <summary><c>demo history [--hours N]</c>: the demo workload's last N hours as OpenMetrics, for promtool backfill.</summary>
public static class DemoCommand
{
    private const string Usage = "usage: rolloutgate demo history [--hours N]   (N from 1 to 336; samples are one minute apart)";

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args is ["help" or "--help" or "-h", ..])
        {
            await stdout.WriteLineAsync(Usage);
            return 0;
        }

        var hours = 25;
        if (args is not ["history", ..] || (args.Length > 1 && !(args is [_, "--hours", var text] && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out hours) && hours is > 0 and <= 24 * 14)))
        {
            await stderr.WriteLineAsync(Usage);
            return 2;
        }

        // Whole minutes, ending a minute ago, so a scrape that starts now continues the series.
        var end = TimeProvider.System.GetUtcNow();
        end = new DateTimeOffset(end.Ticks - (end.Ticks % TimeSpan.TicksPerMinute), TimeSpan.Zero).AddMinutes(-1);
        await stdout.WriteAsync(DemoWorkload.History(end, TimeSpan.FromHours(hours), TimeSpan.FromMinutes(1)));
        return 0;
    }
}
