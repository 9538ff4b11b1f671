using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Options;
using RolloutGate.Core.Runbooks;
using RolloutGate.Core.Watch;
using RolloutGate.Infrastructure;
using RolloutGate.Prometheus;
using RolloutGate.Runbooks;
using RolloutGate.Watch;

namespace RolloutGate.Cli;

/// <summary>
/// <c>backtest</c>: the live watch's evaluation over recorded data (CONTRACT section 8), from Prometheus or a CSV.
/// Exit codes: 0 with the JSON answer, 1 when Prometheus cannot answer, 2 for usage, a bad runbook, an unreadable CSV, or
/// nothing to judge (a CSV's rows, or Prometheus before the watch's first evaluation).
/// Relative paths are read from the folder the command was run from (<see cref="CommandPaths"/>).
/// </summary>
public static class BacktestCommand
{
    public const string Usage = """
        usage:
          rolloutgate backtest --runbook FILE --deployed-at ISO8601 (--prometheus URL | --csv FILE) [--environment ENV]

          --environment ENV   the environment of the change replayed, one of the runbook's (default: its first): the
                              {{ environment }} of its queries (runbooks/README.md, "Placeholders")
        """;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr) =>
        RunAsync(args, stdout, stderr, Environment.GetEnvironmentVariable);

    /// <summary>The command with the environment passed in, so tests choose the PWD relative paths are resolved against.</summary>
    internal static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, Func<string, string?> environment)
    {
        if (args is ["help" or "--help" or "-h", ..])
        {
            await stdout.WriteLineAsync(Usage);
            return 0;
        }

        var (options, problem) = ReadOptions(args);
        if (problem is not null)
        {
            await stderr.WriteLineAsync($"backtest: {problem}\n{Usage}");
            return 2;
        }

        var runbookFile = options["--runbook"];
        var runbookPath = CommandPaths.Resolve(runbookFile, environment);
        if (!File.Exists(runbookPath))
        {
            await stderr.WriteLineAsync($"backtest: no such runbook file: {CommandPaths.Describe(runbookFile, runbookPath)}");
            return 2;
        }

        // Read as the service and runbooks validate read it: a FIFO, a file it may not open or one of gigabytes is an error.
        var parsed = await RunbookFile.ParseAsync(runbookPath, runbookFile);
        if (parsed.Runbook is not { } runbook)
        {
            foreach (var error in parsed.Errors)
            {
                await stderr.WriteLineAsync(error.ToString());
            }

            return 2;
        }

        // Without an offset UTC, as the CSV's own timestamps are read: the same text names the same row.
        if (IsoTimes.Read(options["--deployed-at"], withoutOffsetUtc: true) is not { } deployedAt)
        {
            await stderr.WriteLineAsync(
                $"backtest: --deployed-at '{options["--deployed-at"]}' is not an ISO 8601 time (e.g. 2026-11-21T10:00:00Z, 2026-11-21T11:00:00+01:00, or 2026-11-21T10:00:00 for UTC)");
            return 2;
        }

        // A deploy is always to one environment, whose name the queries' {{ environment }} takes; the runbook's first
        // unless one is given, and said where it matters (queries sent to Prometheus that name it).
        var environmentGiven = options.TryGetValue("--environment", out var deployEnvironment);
        deployEnvironment ??= runbook.Environments[0];
        if (!runbook.Environments.Contains(deployEnvironment, StringComparer.Ordinal))
        {
            await stderr.WriteLineAsync(
                $"backtest: --environment '{deployEnvironment}' is not governed by {runbookFile}, whose environments are {string.Join(", ", runbook.Environments)}");
            return 2;
        }

        if (!environmentGiven && options.ContainsKey("--prometheus") && QueryPlaceholders.UsesEnvironment(runbook))
        {
            await stderr.WriteLineAsync(
                $"backtest: the queries' {{{{ environment }}}} is '{deployEnvironment}', the runbook's first environment (give --environment to replay another)");
        }

        var plan = WatchPlan.From(runbook, deployEnvironment);
        if (OutsideTheCalendar(deployedAt, plan.Watch) is { } outside)
        {
            await stderr.WriteLineAsync($"backtest: {outside}");
            return 2;
        }

        try
        {
            BacktestResult result;
            if (options.TryGetValue("--csv", out var csvFile))
            {
                var csvPath = CommandPaths.Resolve(csvFile, environment);
                if (!File.Exists(csvPath))
                {
                    await stderr.WriteLineAsync($"backtest: no such CSV file: {CommandPaths.Describe(csvFile, csvPath)}");
                    return 2;
                }

                if (new FileInfo(csvPath).Length > CsvMetricSource.MaxFileBytes)
                {
                    // Read whole, a file of gigabytes ended the command out of memory, with a stack trace.
                    await stderr.WriteLineAsync(
                        $"backtest: {csvFile} is larger than {CsvMetricSource.MaxFileBytes / (1024 * 1024)} MiB; a backtest needs the watch and its baseline, not the whole history: cut the rows outside them");
                    return 2;
                }

                var (csv, errors) = CsvMetricSource.Parse(await File.ReadAllTextAsync(csvPath), csvFile, plan);
                if (csv is null)
                {
                    foreach (var error in errors)
                    {
                        await stderr.WriteLineAsync(error);
                    }

                    return 2;
                }

                if (NothingToJudge(csv, deployedAt, plan.Watch.Interval) is { } nothing)
                {
                    await stderr.WriteLineAsync($"backtest: {csvFile} {nothing}");
                    return 2;
                }

                if (csv.Unrecorded.Count > 0)
                {
                    await stderr.WriteLineAsync(
                        $"backtest: {csvFile} has no column for {string.Join(", ", csv.Unrecorded)}; judged without them, on {string.Join(", ", csv.Plan.Metrics.Select(m => m.Name))}");
                }

                result = await Backtest.RunAsync(csv, csv.Plan, deployedAt, csv.LastAt ?? deployedAt, CancellationToken.None);
            }
            else
            {
                if (!Urls.IsAbsoluteHttp(options["--prometheus"]))
                {
                    await stderr.WriteLineAsync($"backtest: --prometheus '{Urls.Shown(options["--prometheus"])}' is not an absolute http(s) URL (e.g. http://127.0.0.1:9090)");
                    return 2;
                }

                var prometheus = PrometheusSettings(options["--prometheus"]);
                if (prometheus.Problems("RolloutGate__Prometheus", "__", "--prometheus").FirstOrDefault() is { } conflict)
                {
                    await stderr.WriteLineAsync($"backtest: {conflict}");
                    return 2;
                }

                var now = TimeProvider.System.GetUtcNow();
                if (NotYetEvaluated(deployedAt, plan.Watch.Interval, now) is { } notYet)
                {
                    await stderr.WriteLineAsync($"backtest: {notYet}");
                    return 2;
                }

                await using var services = PrometheusServices(prometheus);
                var source = new PrometheusMetricSource(services.GetRequiredService<IPrometheusClient>());
                result = await Backtest.RunAsync(source, plan, deployedAt, now, CancellationToken.None);
            }

            await stdout.WriteLineAsync(JsonSerializer.Serialize(result, Json));
            return 0;
        }
        catch (PrometheusException ex)
        {
            await stderr.WriteLineAsync($"backtest: {ex.Message}");
            return 1;
        }
    }

    private static (Dictionary<string, string> Options, string? Problem) ReadOptions(string[] args)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        string[] known = ["--runbook", "--deployed-at", "--prometheus", "--csv", "--environment"];
        for (var i = 0; i < args.Length; i++)
        {
            if (!known.Contains(args[i], StringComparer.Ordinal))
            {
                return (options, $"unknown argument '{args[i]}'");
            }

            if (i + 1 >= args.Length)
            {
                return (options, $"{args[i]} needs a value");
            }

            // The last of two would win unsaid: a backtest of another deploy time or runbook than the one meant.
            if (!options.TryAdd(args[i], args[i + 1]))
            {
                return (options, $"{args[i]} is given more than once");
            }

            i++;
        }

        foreach (var required in new[] { "--runbook", "--deployed-at" }.Where(r => !options.ContainsKey(r)))
        {
            return (options, $"{required} is required");
        }

        return options.ContainsKey("--prometheus") == options.ContainsKey("--csv")
            ? (options, "give exactly one of --prometheus URL and --csv FILE")
            : (options, null);
    }

    /// <summary>
    /// Why the CSV leaves a backtest from <paramref name="deployedAt"/> nothing to judge, or null when it does not: no rows,
    /// no row before the deploy (no baseline), or none at or after the watch's first evaluation (the backtest evaluates
    /// up to the last row, so it would print no evaluation at all). No data is never healthy, so these are errors, not
    /// answers.
    /// </summary>
    private static string? NothingToJudge(CsvMetricSource csv, DateTimeOffset deployedAt, TimeSpan interval)
    {
        if (csv is not { FirstAt: { } firstRow, LastAt: { } lastRow })
        {
            return "has a header but no rows, so there is nothing to judge";
        }

        var rows = $"(its rows run from {Time(firstRow)} to {Time(lastRow)})";
        if (firstRow >= deployedAt)
        {
            return $"has no row before --deployed-at {Time(deployedAt)}, so there is no baseline to judge against {rows}";
        }

        var firstEvaluation = WatchSchedule.First(deployedAt, interval);
        return lastRow < firstEvaluation
            ? $"has no row at or after {Time(firstEvaluation)}, the watch's first evaluation after --deployed-at {Time(deployedAt)}, so there is nothing to judge {rows}"
            : null;
    }

    /// <summary>
    /// Why the watch of a deploy at <paramref name="deployedAt"/> does not fit in the years a time can hold (1 to 9999), or
    /// null: its baseline before it or its duration (and one interval) after it would cross an end, which crashed the
    /// command with a stack trace (a mistyped year, 0001 or 9999).
    /// </summary>
    private static string? OutsideTheCalendar(DateTimeOffset deployedAt, WatchSpec watch)
    {
        var before = deployedAt - DateTimeOffset.MinValue;
        var after = DateTimeOffset.MaxValue - deployedAt;
        return before < watch.Baseline || after < watch.Duration + watch.Interval
            ? $"--deployed-at {Time(deployedAt)} leaves no room for the watch within the years 1 to 9999 (its baseline of {DurationText.Format(watch.Baseline)} before it, "
                + $"its duration of {DurationText.Format(watch.Duration)} after it): check the year"
            : null;
    }

    /// <summary>
    /// Why Prometheus can give a backtest from <paramref name="deployedAt"/> nothing to judge yet, or null: the watch's first
    /// evaluation is later than <paramref name="now"/> (a deploy in the future, or less than an interval ago). The answer
    /// was <c>"decision": "healthy"</c> with no evaluation at all; no data is never healthy, so this is an error, as it is
    /// for a CSV (<see cref="NothingToJudge"/>).
    /// </summary>
    private static string? NotYetEvaluated(DateTimeOffset deployedAt, TimeSpan interval, DateTimeOffset now)
    {
        var firstEvaluation = WatchSchedule.First(deployedAt, interval);
        return firstEvaluation > now
            ? $"the watch's first evaluation after --deployed-at {Time(deployedAt)} is at {Time(firstEvaluation)}, later than now ({Time(now)}), so there is nothing to judge yet"
            : null;
    }

    private static string Time(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);


    /// <summary>
    /// The Prometheus at <paramref name="url"/>, with the service's authentication settings from the environment
    /// (<c>RolloutGate__Prometheus__BearerToken</c>, <c>__BearerTokenFile</c>, <c>__Username</c> and <c>__Password</c>,
    /// <c>__Headers__*</c>), so that a Prometheus behind authentication can be backtested against as the service asks it.
    /// </summary>
    private static PrometheusOptions PrometheusSettings(string url)
    {
        var settings = new PrometheusOptions();
        new ConfigurationBuilder().AddEnvironmentVariables().Build().GetSection($"{RolloutGateOptions.SectionName}:Prometheus").Bind(settings);
        settings.Url = url;
        return settings;
    }

    private static ServiceProvider PrometheusServices(PrometheusOptions prometheus)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddOptions<RolloutGateOptions>().Configure(o => o.Prometheus = prometheus);
        services.AddPrometheus();
        return services.BuildServiceProvider();
    }
}
