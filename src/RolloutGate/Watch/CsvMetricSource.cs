using System.Globalization;
using System.Text.RegularExpressions;
using RolloutGate.Core.Analysis;
using RolloutGate.Infrastructure;

namespace RolloutGate.Watch;

/// <summary>
/// Recorded metrics for a backtest (CONTRACT section 8): a header <c>timestamp,&lt;metric name&gt;,...</c> and one row per
/// interval, the timestamp in ISO 8601 (extended or basic form, UTC without an offset) or unix seconds. An empty cell is no data. Optional columns
/// <c>&lt;metric&gt;.requests</c> and <c>&lt;metric&gt;.errors</c> carry the counts of an interval (an error rate is judged on
/// counts), and a column <c>requests</c> gives the request count of every metric without its own. An error rate without
/// request counts is judged on nominal counts (<see cref="Plan"/>). A file may record some of the runbook's metrics only:
/// the others are left out of the backtest (<see cref="Unrecorded"/>). Rows before the deploy are the baseline; the
/// interval ending at t is the last row in (t − interval, t].
/// </summary>
public sealed partial class CsvMetricSource : IMetricSource
{
    private readonly List<Row> rows;
    private readonly TimeSpan interval;
    private readonly HashSet<string> ratioOnly;

    private CsvMetricSource(List<Row> rows, WatchPlan plan, HashSet<string> ratioOnly, IReadOnlyList<string> unrecorded)
    {
        this.rows = rows;
        interval = plan.Watch.Interval;
        this.ratioOnly = ratioOnly;
        Unrecorded = unrecorded;
        Plan = plan with { Metrics = [.. plan.Metrics.Where(m => !unrecorded.Contains(m.Name, StringComparer.Ordinal))] };
    }

    /// <summary>The runbook's metrics the file has no column for, in the runbook's order: the backtest leaves them out.</summary>
    public IReadOnlyList<string> Unrecorded { get; }

    /// <summary>
    /// The plan to backtest this file with: the runbook's, without the metrics the file has no column for. An error rate the
    /// file gives no request counts for (no <c>&lt;metric&gt;.requests</c> or <c>requests</c> column) is judged on counts
    /// all the same, each interval's ratio read as errors in <see cref="NominalRequests"/> requests: the count test's
    /// dispersion, estimated from the baseline's ratios, scales its evidence to the spread the ratios show, so the nominal
    /// count matters only where they show none (an error-free baseline). Judged as a continuous metric on its logs instead,
    /// as it was, only intervals with an error could form its reference: errors that appeared after an error-free
    /// baseline were never judged against it (every interval insufficient-data, the answer healthy), and after sparse
    /// errors the reference was the median of the intervals that had any, above the baseline's rate. Each such
    /// evaluation's explanation says so.
    /// </summary>
    public WatchPlan Plan { get; }

    /// <summary>The time of the first row.</summary>
    public DateTimeOffset? FirstAt => rows.Count == 0 ? null : rows[0].At;

    /// <summary>The time of the last row, where a backtest over this file ends.</summary>
    public DateTimeOffset? LastAt => rows.Count == 0 ? null : rows[^1].At;

    /// <summary>Reads a CSV for the plan's metrics; the errors say file:line and what is wrong.</summary>
    public static (CsvMetricSource? Source, IReadOnlyList<string> Errors) Parse(string text, string file, WatchPlan plan)
    {
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var errors = new List<string>();
        var header = Cells(lines[0].TrimStart('\uFEFF'));
        if (header.Length < 2 || !string.Equals(header[0], "timestamp", StringComparison.Ordinal))
        {
            return (null, [$"{file}:1: the header must be 'timestamp,<metric name>,...', not '{lines[0]}'"]);
        }

        var metrics = plan.Metrics.Select(m => m.Name).ToHashSet(StringComparer.Ordinal);
        for (var c = 1; c < header.Length; c++)
        {
            var column = header[c];
            if (Array.IndexOf(header, column, 1) < c)
            {
                // Each row's later value would replace the earlier one unsaid: which of the two was recorded is unknown.
                errors.Add($"{file}:1: column '{column}' is given more than once");
                continue;
            }

            var metric = column.EndsWith(".requests", StringComparison.Ordinal) ? column[..^".requests".Length]
                : column.EndsWith(".errors", StringComparison.Ordinal) ? column[..^".errors".Length]
                : column;
            if (column != "requests" && !metrics.Contains(metric))
            {
                errors.Add($"{file}:1: column '{column}' is not a metric of the runbook (its metrics: {string.Join(", ", metrics)})");
            }
        }

        var unrecorded = plan.Metrics.Select(m => m.Name).Where(m => !header.Contains(m, StringComparer.Ordinal)).ToList();
        if (unrecorded.Count == plan.Metrics.Count)
        {
            errors.Add($"{file}:1: no column names a metric of the runbook (its metrics: {string.Join(", ", metrics)})");
        }

        var requestsForAll = header.Contains("requests", StringComparer.Ordinal);
        var ratioOnly = plan.Metrics
            .Where(m => m.Kind == MetricKind.ErrorRate && !requestsForAll && !header.Contains($"{m.Name}.requests", StringComparer.Ordinal))
            .Select(m => m.Name)
            .ToHashSet(StringComparer.Ordinal);
        var rows = new List<Row>();
        for (var i = 1; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i]))
            {
                continue;
            }

            var cells = Cells(lines[i]);
            var line = i + 1;
            if (cells.Length != header.Length)
            {
                errors.Add($"{file}:{line}: {cells.Length} values, but the header has {header.Length} columns");
                continue;
            }

            if (DayAndMonthInAnOrderOfItsOwn().IsMatch(cells[0]))
            {
                errors.Add($"{file}:{line}: timestamp '{cells[0]}' writes the day and the month in an order that cannot be told from the text; "
                    + "write ISO 8601 (2026-11-21T09:05:00Z) or unix seconds");
                continue;
            }

            if (!TryParseTime(cells[0], out var at, out var unreadable))
            {
                errors.Add($"{file}:{line}: timestamp '{cells[0]}' {unreadable}");
                continue;
            }

            if (rows.Count > 0 && at <= rows[^1].At)
            {
                errors.Add($"{file}:{line}: timestamp {cells[0]} is not after the previous row's; rows must be in time order");
                continue;
            }

            var values = new Dictionary<string, double?>(StringComparer.Ordinal);
            for (var c = 1; c < header.Length; c++)
            {
                if (cells[c].Length == 0)
                {
                    values[header[c]] = null;
                }
                else if (double.TryParse(cells[c], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value))
                {
                    if (value < 0)
                    {
                        // A latency, a rate, a cost or a count below zero is a recording error, not a value to judge.
                        errors.Add($"{file}:{line}: '{cells[c]}' in column '{header[c]}' is negative; a metric's value is at least 0");
                    }
                    else if (value > 1 && ratioOnly.Contains(header[c]))
                    {
                        // Read as errors in NominalRequests requests, it would count more errors than requests.
                        errors.Add($"{file}:{line}: '{cells[c]}' in column '{header[c]}' is above 1; an error rate is a ratio (0.02 for 2%)");
                    }
                    else if (value > MaxCount && IsCountColumn(header[c]))
                    {
                        // Summed over a baseline, such counts overflowed and crashed the command with a stack trace.
                        errors.Add($"{file}:{line}: '{cells[c]}' in column '{header[c]}' is more than {MaxCount:0.#e0} requests or errors in one interval; a count of the interval, not a total since start?");
                    }

                    values[header[c]] = value;
                }
                else
                {
                    errors.Add($"{file}:{line}: '{cells[c]}' in column '{header[c]}' is not a number");
                }
            }

            rows.Add(new Row(at, values));
        }

        return errors.Count > 0 ? (null, errors) : (new CsvMetricSource(rows, plan, ratioOnly, unrecorded), []);
    }

    public Task<IReadOnlyList<MetricObservation>> ObserveAsync(IReadOnlyList<WatchMetric> metrics, DateTimeOffset at, CancellationToken cancellationToken)
    {
        var row = rows.LastOrDefault(r => r.At <= at && r.At > at - interval);
        return Task.FromResult<IReadOnlyList<MetricObservation>>(
            [.. metrics.Select(metric => new MetricObservation(row is null ? new Observation(at, null) : Observe(metric, row, at), Note(metric)))]);
    }

    /// <summary>Every row before the deploy (<paramref name="to"/>) is baseline, as CONTRACT section 8 says.</summary>
    public Task<IReadOnlyList<Observation>> BaselineAsync(
        WatchMetric metric, DateTimeOffset from, DateTimeOffset to, TimeSpan step, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<Observation>>([.. rows.Where(r => r.At < to).Select(r => Observe(metric, r, r.At))]);

    /// <summary>
    /// The largest file a backtest reads (it reads it whole): 256 MiB, some two million rows of a dozen columns, a month at
    /// a 1-minute interval forty times over.
    /// </summary>
    public const long MaxFileBytes = 256L * 1024 * 1024;

    /// <summary>The requests an interval of an error rate given as a ratio alone is read as (see <see cref="Plan"/>).</summary>
    public const long NominalRequests = 10_000;

    private string? Note(WatchMetric metric) => ratioOnly.Contains(metric.Name)
        ? $"The CSV gives no request counts for {metric.Name} (columns {metric.Name}.requests and {metric.Name}.errors would give them): "
            + $"each interval's ratio is read as errors in a nominal {NominalRequests} requests, so these counts are nominal, and the evidence is scaled to the spread of the baseline's ratios."
        : null;

    private Observation Observe(WatchMetric metric, Row row, DateTimeOffset at)
    {
        var value = row.Values.GetValueOrDefault(metric.Name);
        if (ratioOnly.Contains(metric.Name))
        {
            return new Observation(at, value, value is null ? null : NominalRequests, value is { } ratio ? (long)Math.Round(ratio * NominalRequests) : null);
        }

        var requests = row.Values.GetValueOrDefault($"{metric.Name}.requests") ?? row.Values.GetValueOrDefault("requests");
        var errors = row.Values.GetValueOrDefault($"{metric.Name}.errors");
        return new Observation(at, value, requests is { } n ? (long)Math.Round(n) : null, errors is { } e ? (long)Math.Round(e) : null);
    }

    /// <summary>
    /// A line's cells, trimmed, each without the double quotes a spreadsheet may put around it ("timestamp","p95-latency").
    /// A comma inside quotes is not supported: names and numbers have none.
    /// </summary>
    private static string[] Cells(string line) =>
        [.. line.Split(',').Select(c => c.Trim()).Select(c => c.Length >= 2 && c[0] == '"' && c[^1] == '"' ? c[1..^1].Trim() : c)];

    /// <summary>
    /// The time <paramref name="text"/> gives, or false with why it gives none (<paramref name="unreadable"/>, after
    /// "timestamp '...' "). "NaN" and "Infinity", which double.TryParse reads as numbers, are no unix seconds: NaN was read
    /// as 1970-01-01 without a word. A number of seconds beyond the years DateTimeOffset holds (1 to 9999), such as unix
    /// milliseconds (1795251600000, read as seconds, is in the year 58,859), is refused with a hint, not a crash of the
    /// command with a stack trace.
    /// </summary>
    private static bool TryParseTime(string text, out DateTimeOffset at, out string unreadable)
    {
        unreadable = "is neither ISO 8601 nor unix seconds";
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && double.IsFinite(seconds))
        {
            var milliseconds = Math.Round(seconds * 1000);
            if (milliseconds < MinUnixMilliseconds || milliseconds > MaxUnixMilliseconds)
            {
                at = default;
                unreadable = "is out of the range of unix seconds, the years 1 to 9999 (unix milliseconds? divide them by 1000, or write ISO 8601)";
                return false;
            }

            at = DateTimeOffset.FromUnixTimeMilliseconds((long)milliseconds);
            return true;
        }

        // ISO 8601's basic form too (20261121T100000Z), which the general parser below does not read; that one stays for
        // what files that loaded before hold (a space for the T, say).
        if (IsoTimes.Read(text, withoutOffsetUtc: true) is { } iso)
        {
            at = iso.ToUniversalTime();
            return true;
        }

        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out at);
    }

    /// <summary>The most requests or errors one interval's row may count: a trillion, far beyond any service's, far below a sum's overflow.</summary>
    private const double MaxCount = 1e12;

    private static bool IsCountColumn(string column) =>
        column == "requests" || column.EndsWith(".requests", StringComparison.Ordinal) || column.EndsWith(".errors", StringComparison.Ordinal);

    private static readonly double MinUnixMilliseconds = DateTimeOffset.MinValue.ToUnixTimeMilliseconds();

    private static readonly double MaxUnixMilliseconds = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();

    /// <summary>
    /// A date of numbers that starts with the day or the month (<c>05/11/2026</c>, <c>21.11.2026</c>, <c>11-21-2026</c>):
    /// the general parser below reads them month first, whatever the exporter meant, so a European spreadsheet's
    /// 5 November was backtested as 11 May without a word. Refused instead (CONTRACT section 8 asks for ISO 8601 or unix
    /// seconds anyway); a date that starts with its year, or names its month, still reads.
    /// </summary>
    [GeneratedRegex(@"^[0-9]{1,2}[/.-][0-9]{1,2}[/.-][0-9]{2,4}\b", RegexOptions.CultureInvariant)]
    private static partial Regex DayAndMonthInAnOrderOfItsOwn();

    private sealed record Row(DateTimeOffset At, Dictionary<string, double?> Values);
}
