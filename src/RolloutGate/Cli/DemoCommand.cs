using System.Globalization;
using RolloutGate.Demo;

namespace RolloutGate.Cli;

/// <summary><c>demo history [--hours N]</c>: the demo workload's last N hours as OpenMetrics, for promtool backfill.</summary>
public static class DemoCommand
{
    private const int DefaultHours = 25;
    private const int MaxHours = 24 * 14;

    private const string Usage = "usage: rolloutgate demo history [--hours N]   (N from 1 to 336, default 25; samples are one minute apart)";

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args is ["help" or "--help" or "-h", ..])
        {
            await stdout.WriteLineAsync(Usage);
            return 0;
        }

        var hours = DefaultHours;
        var problem = args switch
        {
            ["history"] => null,
            ["history", "--hours", var text] => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out hours) && hours is > 0 and <= MaxHours
                ? null
                : $"--hours '{text}' is not a whole number from 1 to {MaxHours}",
            ["history", "--hours"] => "--hours needs a value",
            ["history", "--hours", _, var extra, ..] => Unknown(extra),
            ["history", var other, ..] => Unknown(other),
            [var other, ..] => $"unknown subcommand '{other}'; demo has one: history",
            [] => "give a subcommand: history",
        };
        if (problem is not null)
        {
            await stderr.WriteLineAsync($"demo: {problem}\n{Usage}");
            return 2;
        }

        // Whole minutes, ending a minute ago, so a scrape that starts now continues the series.
        var end = TimeProvider.System.GetUtcNow();
        end = new DateTimeOffset(end.Ticks - (end.Ticks % TimeSpan.TicksPerMinute), TimeSpan.Zero).AddMinutes(-1);
        await stdout.WriteAsync(DemoWorkload.History(end, TimeSpan.FromHours(hours), TimeSpan.FromMinutes(1)));
        return 0;
    }

    private static string Unknown(string argument) => $"unknown argument '{argument}': history takes only --hours N";
}
