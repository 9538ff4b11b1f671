using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using RolloutGate.Cli;

namespace RolloutGate.Tests.Cli;

/// <summary><c>backtest</c> over CSV files: the JSON answer, and exit 2 with file:line for what it cannot read.</summary>
public sealed class BacktestCommandTests : IDisposable
{
    private static readonly DateTimeOffset Deployed = new(2026, 11, 21, 10, 0, 0, TimeSpan.Zero);
    private readonly string folder = Directory.CreateTempSubdirectory("rolloutgate-backtest-").FullName;
    private readonly StringWriter stdout = new();
    private readonly StringWriter stderr = new();

    public void Dispose()
    {
        Directory.Delete(folder, recursive: true);
        stdout.Dispose();
        stderr.Dispose();
    }

    private const string Runbook = """
        apiVersion: rolloutgate/v1
        kind: Runbook
        metadata:
          name: checkout
          version: 1
        spec:
          service: checkout
          environments: [production]
          owner: U024BE7LH
          approvers: [U024BE7LH]
          decisionChannel: C0DECIDE01
          mesh:
            provider: istio
            namespace: shop
            workload: checkout
          watch:
            duration: 1h
            interval: 1m
            baseline: 2h
            metrics:
              - name: p95-latency
                preset: p95-latency
                maxIncrease: 20%
              - name: error-rate
                preset: error-rate
                maxIncrease: 50%
          rollback:
            mode: recommend
            approvalTimeout: 15m
            onTimeout: keep
            action:
              webhook:
                url: http://127.0.0.1:9/rollback
                secret: s3cret
        """;

    /// <summary>2 hours of baseline and 1 hour after the deploy, one row a minute; latency wobbles ±2% around 200 ms.</summary>
    private string Csv(Func<int, double> latencyAfter, Func<int, int> errorsAfter, Func<DateTimeOffset, string>? timestamp = null) =>
        MinutesCsv("metrics.csv", "timestamp,p95-latency,error-rate,error-rate.requests,error-rate.errors", minute =>
            {
                var wobble = 1 + (0.02 * Math.Sin(minute));
                var (latency, errors) = minute <= 0 ? (0.2 * wobble, 2) : (latencyAfter(minute) * wobble, errorsAfter(minute));
                return $"{R(latency)},{R(errors / 1000.0)},1000,{errors.ToString(CultureInfo.InvariantCulture)}";
            },
            timestamp);

    private static string UnixSeconds(DateTimeOffset at) => at.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// The shape of every history these tests replay: <paramref name="header"/>, then a row a minute from 2 hours before
    /// <see cref="Deployed"/> (the runbook's baseline) to 1 hour after it (its watch), each the minute's time (ISO 8601
    /// unless <paramref name="timestamp"/> writes it) and the <paramref name="values"/> of that minute since the deploy.
    /// </summary>
    private string MinutesCsv(string name, string header, Func<int, string> values, Func<DateTimeOffset, string>? timestamp = null)
    {
        var text = new StringBuilder(header).Append('\n');
        for (var minute = -120; minute <= 60; minute++)
        {
            var at = Deployed.AddMinutes(minute);
            text.Append(CultureInfo.InvariantCulture, $"{timestamp?.Invoke(at) ?? at.ToString("O", CultureInfo.InvariantCulture)},{values(minute)}\n");
        }

        return Write(name, text.ToString());
    }

    /// <summary>A number as a CSV cell: round-trip precision, '.' for the decimal point whatever the machine's culture.</summary>
    private static string R(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private string Write(string name, string text)
    {
        var path = Path.Combine(folder, name);
        File.WriteAllText(path, text);
        return path;
    }

    private Task<int> RunAsync(params string[] args) => CommandLine.RunAsync(["backtest", .. args], stdout, stderr);

    /// <summary>
    /// <c>backtest</c> of <paramref name="csv"/> against <paramref name="runbook"/> (by default <see cref="Runbook"/>, written
    /// as checkout.yaml) deployed at <paramref name="deployedAt"/>: what most tests run, so each says only what it varies.
    /// The tests of the command line itself spell their arguments out with <see cref="RunAsync"/>.
    /// </summary>
    private Task<int> BacktestAsync(string csv, string deployedAt = "2026-11-21T10:00:00Z", string? runbook = null) =>
        RunAsync("--runbook", runbook ?? Write("checkout.yaml", Runbook), "--deployed-at", deployedAt, "--csv", csv);

    /// <summary>The command as run from a shell whose PWD is <paramref name="pwd"/> (null: no PWD).</summary>
    private Task<int> RunFromAsync(string? pwd, params string[] args) =>
        BacktestCommand.RunAsync(args, stdout, stderr, name => name == "PWD" ? pwd : null);

    private const string RatioNote =
        "The CSV gives no request counts for error-rate (columns error-rate.requests and error-rate.errors would give them): "
        + "each interval's ratio is read as errors in a nominal 10000 requests, so these counts are nominal, and the evidence is scaled to the spread of the baseline's ratios.";

    /// <summary>The contract's own format: no request counts, the error rate as a ratio; both wobble ±2% like <see cref="Csv"/>.</summary>
    private string RatioCsv(Func<int, double> errorRatio) =>
        MinutesCsv("history.csv", "timestamp,p95-latency,error-rate", minute =>
        {
            var wobble = 1 + (0.02 * Math.Sin(minute));
            return $"{R(0.2 * wobble)},{R(errorRatio(minute) * wobble)}";
        });

    private JsonElement Answer()
    {
        using var document = JsonDocument.Parse(stdout.ToString());
        return document.RootElement.Clone();
    }

    /// <summary>The answer's evaluations of <paramref name="metric"/>, in the answer's (time) order.</summary>
    private static List<JsonElement> EvaluationsOf(JsonElement answer, string metric) =>
        answer.GetProperty("evaluations").EnumerateArray().Where(e => e.GetProperty("metric").GetString() == metric).ToList();

    [Fact]
    public async Task Backtest_CsvLatencyDoubles_RollbackDetectedEarly()
    {
        var csv = Csv(_ => 0.4, _ => 2);

        var exit = await BacktestAsync(csv);

        Assert.True(exit == 0, stderr.ToString());
        var answer = Answer();
        Assert.Equal("rollback", answer.GetProperty("decision").GetString());
        var detected = answer.GetProperty("detectedAt").GetDateTimeOffset();
        Assert.InRange(detected, Deployed.AddMinutes(1), Deployed.AddMinutes(5));
        var last = EvaluationsOf(answer, "p95-latency")[^1];
        Assert.Equal("regressed", last.GetProperty("verdict").GetString());
        Assert.Equal(detected, last.GetProperty("at").GetDateTimeOffset());
    }

    [Fact]
    public async Task Backtest_ColdStartWithinTheRunbooksWarmUp_HealthyWithTheWarmUpSaid()
    {
        // New pods answer twice as slowly for their first four minutes.
        var csv = Csv(minute => minute <= 4 ? 0.4 : 0.2, _ => 2);
        var warming = Write("warming.yaml", Runbook.Replace("    baseline: 2h\n", "    baseline: 2h\n    warmup: 5m\n", StringComparison.Ordinal));

        var without = await BacktestAsync(csv);
        Assert.True(without == 0, stderr.ToString());
        Assert.Equal("rollback", Answer().GetProperty("decision").GetString());
        stdout.GetStringBuilder().Clear();
        var with = await BacktestAsync(csv, runbook: warming);

        Assert.True(with == 0, stderr.ToString());
        var answer = Answer();
        Assert.Equal("healthy", answer.GetProperty("decision").GetString());
        Assert.Equal("completed", answer.GetProperty("outcome").GetString());
        var latency = EvaluationsOf(answer, "p95-latency");
        Assert.All(latency.Take(5), e =>
        {
            Assert.Equal("insufficient-data", e.GetProperty("verdict").GetString());
            Assert.StartsWith("Warming up: p95-latency is compared with its baseline only after the runbook's watch.warmup, which ends at 2026-11-21 10:05:00 UTC.",
                e.GetProperty("explanation").GetString(), StringComparison.Ordinal);
        });
        Assert.All(latency.Skip(5), e => Assert.Equal("healthy", e.GetProperty("verdict").GetString()));
    }

    [Fact]
    public async Task Backtest_TheWeekAfterTheClocksChangeWithTheUsersTimeZone_HealthyWithTheZoneSaid()
    {
        // Requests a second following Berlin's clock (a peak at 15:00 local, a tenth of it at 03:00), a week of baseline
        // before a deploy the day after the clocks went forward: in UTC each evening's fall comes an hour earlier than last
        // week's and reads as traffic lost; on Berlin's clock it is the same time as last week's.
        var berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");
        var deployed = new DateTimeOffset(2026, 3, 30, 0, 0, 0, TimeSpan.Zero);
        var text = new StringBuilder("timestamp,request-rate\n");
        for (var at = deployed.AddDays(-7); at <= deployed.AddDays(1); at = at.AddMinutes(5))
        {
            var hour = TimeZoneInfo.ConvertTime(at, berlin).TimeOfDay.TotalHours;
            var rate = 50 * (0.55 - 0.45 * Math.Cos(2 * Math.PI * (hour - 3) / 24)) * (1 + 0.02 * Math.Sin(at.ToUnixTimeSeconds() / 300.0));
            text.Append(CultureInfo.InvariantCulture, $"{at.ToUnixTimeSeconds()},{rate.ToString("R", CultureInfo.InvariantCulture)}\n");
        }

        var csv = Write("berlin.csv", text.ToString());
        // The runbook with another watch: a day at 5-minute steps against a week of request rate.
        var runbook = Runbook[..Runbook.IndexOf("  watch:\n", StringComparison.Ordinal)] + """
              watch:
                duration: 24h
                interval: 5m
                baseline: 7d
                metrics:
                  - name: request-rate
                    preset: request-rate
                    maxIncrease: 20%

            """ + Runbook[Runbook.IndexOf("  rollback:\n", StringComparison.Ordinal)..];

        var utc = await BacktestAsync(csv, deployedAt: "2026-03-30T00:00:00Z", runbook: Write("utc.yaml", runbook));
        Assert.True(utc == 0, stderr.ToString());
        var inUtc = Answer();
        Assert.Equal("rollback", inUtc.GetProperty("decision").GetString());
        Assert.Contains("below the same time last week (", inUtc.GetProperty("evaluations").EnumerateArray().Last().GetProperty("explanation").GetString(), StringComparison.Ordinal);
        stdout.GetStringBuilder().Clear();
        var local = await BacktestAsync(csv, deployedAt: "2026-03-30T00:00:00Z",
            runbook: Write("berlin.yaml", runbook.Replace("    interval: 5m\n", "    interval: 5m\n    timezone: Europe/Berlin\n", StringComparison.Ordinal)));

        Assert.True(local == 0, stderr.ToString());
        var answer = Answer();
        Assert.Equal("healthy", answer.GetProperty("decision").GetString());
        Assert.Equal("completed", answer.GetProperty("outcome").GetString());
        var evaluations = answer.GetProperty("evaluations").EnumerateArray().ToList();
        Assert.Equal(288, evaluations.Count);
        Assert.All(evaluations, e => Assert.Contains("the same time last week (Europe/Berlin)", e.GetProperty("explanation").GetString(), StringComparison.Ordinal));
    }

    [Fact]
    public async Task Backtest_CsvErrorCountsSpike_Rollback()
    {
        var csv = Csv(_ => 0.2, minute => minute > 10 ? 60 : 2, timestamp: UnixSeconds);

        var exit = await BacktestAsync(csv);

        Assert.True(exit == 0, stderr.ToString());
        var answer = Answer();
        Assert.Equal("rollback", answer.GetProperty("decision").GetString());
        Assert.Equal(Deployed.AddMinutes(11), answer.GetProperty("detectedAt").GetDateTimeOffset());
    }

    [Fact]
    public async Task Backtest_CsvUnchanged_HealthyOverTheWholeWatch()
    {
        var csv = Csv(_ => 0.2, _ => 2);

        var exit = await BacktestAsync(csv);

        Assert.True(exit == 0, stderr.ToString());
        var answer = Answer();
        Assert.Equal("healthy", answer.GetProperty("decision").GetString());
        Assert.Equal(JsonValueKind.Null, answer.GetProperty("detectedAt").ValueKind);
        Assert.Equal("completed", answer.GetProperty("outcome").GetString());
        Assert.Equal(2 * 60, answer.GetProperty("evaluations").GetArrayLength());
    }

    [Fact]
    public async Task Backtest_CsvWithBadNumber_ExitsTwoWithFileAndLine()
    {
        var csv = Write("bad.csv", "timestamp,p95-latency,error-rate\n2026-11-21T09:00:00Z,0.2,0.001\n2026-11-21T09:01:00Z,fast,0.001\n");

        var exit = await BacktestAsync(csv);

        Assert.Equal(2, exit);
        Assert.Contains($"{csv}:3: 'fast' in column 'p95-latency' is not a number", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_CsvWithANegativeValue_ExitsTwoWithFileAndLine()
    {
        var csv = Write("negative.csv", "timestamp,p95-latency,error-rate\n2026-11-21T09:00:00Z,0.2,0.001\n2026-11-21T09:01:00Z,-0.2,0.001\n");

        var exit = await BacktestAsync(csv);

        Assert.Equal(2, exit);
        Assert.Contains($"{csv}:3: '-0.2' in column 'p95-latency' is negative; a metric's value is at least 0", stderr.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("error-rate.requests")]
    [InlineData("error-rate.errors")]
    public async Task Backtest_CsvCountBeyondATrillionAnInterval_ExitsTwoWithFileAndLine_NotAStackTrace(string column)
    {
        // Summed over the baseline, counts of 5e18 overflowed a long: the command crashed with OverflowException.
        var csv = MinutesCsv("huge.csv", "timestamp,error-rate,error-rate.requests,error-rate.errors",
            minute => column == "error-rate.requests" ? "0.001,5e18,1000" : "0.5,1000,5e18");

        var exit = await BacktestAsync(csv);

        Assert.Equal(2, exit);
        Assert.Empty(stdout.ToString());
        Assert.Contains($"{csv}:2: '5e18' in column '{column}' is more than 1e12 requests or errors in one interval", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_CsvQuotedAsASpreadsheetWritesIt_IsReadAsUnquoted()
    {
        var quoted = new StringBuilder("\"timestamp\",\"p95-latency\",\"error-rate\"\n");
        var plain = new StringBuilder("timestamp,p95-latency,error-rate\n");
        for (var minute = 0; minute < 180; minute++)
        {
            var at = new DateTimeOffset(2026, 11, 21, 8, 0, 0, TimeSpan.Zero).AddMinutes(minute).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
            var latency = (minute < 120 ? 0.2 : 0.4) + (minute % 7 * 0.003);
            quoted.Append(CultureInfo.InvariantCulture, $"\"{at}\",\"{latency}\",\"0.001\"\n");
            plain.Append(CultureInfo.InvariantCulture, $"{at},{latency},0.001\n");
        }

        var runbook = Write("checkout.yaml", Runbook);
        Assert.Equal(0, await BacktestAsync(Write("plain.csv", plain.ToString()), runbook: runbook));
        var expected = stdout.ToString();
        stdout.GetStringBuilder().Clear();

        var exit = await BacktestAsync(Write("quoted.csv", quoted.ToString()), runbook: runbook);

        Assert.True(exit == 0, stderr.ToString());
        Assert.Equal(expected, stdout.ToString());
        Assert.Equal("rollback", Answer().GetProperty("decision").GetString());
    }

    [Theory]
    [InlineData("yyyyMMdd'T'HHmmss'Z'", 0)]
    [InlineData("yyyyMMdd'T'HHmm'Z'", 0)]
    [InlineData("yyyyMMdd'T'HHmmss.fff'Z'", 0)]
    [InlineData("yyyyMMdd'T'HHmmss'+0100'", 1)]
    [InlineData("yyyyMMdd'T'HHmm'-0530'", -5.5)]
    [InlineData("yyyyMMdd'T'HHmmss'+01'", 1)]
    [InlineData("yyyyMMdd'T'HHmmss", 0)]
    [InlineData("yyyy-MM-dd'T'HH:mm:ss'+01'", 1)]
    public async Task Backtest_CsvTimestampsInIso8601sBasicForm_SameAnswerAsInTheExtendedForm(string format, double offsetHours)
    {
        var runbook = Write("checkout.yaml", Runbook);
        Assert.Equal(0, await BacktestAsync(Csv(_ => 0.4, _ => 2), runbook: runbook));
        var expected = stdout.ToString();
        stdout.GetStringBuilder().Clear();
        var offset = TimeSpan.FromHours(offsetHours);

        var exit = await BacktestAsync(
            Csv(_ => 0.4, _ => 2, timestamp: at => at.ToOffset(offset).ToString(format, CultureInfo.InvariantCulture)), runbook: runbook);

        Assert.True(exit == 0, stderr.ToString());
        Assert.Equal(expected, stdout.ToString());
    }

    [Theory]
    [InlineData("20261121T2500Z")]
    [InlineData("20261121T10:00:00Z")]
    [InlineData("2026-11-21T1000Z")]
    [InlineData("20261121T100000+1500")]
    [InlineData("yesterday")]
    // Numbers to double.TryParse, not times: NaN was read as 1970-01-01 (first in a file, the start of its baseline),
    // Infinity crashed the command with a stack trace.
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("-Infinity")]
    public async Task Backtest_CsvTimestampNeitherIso8601NorUnixSeconds_ExitsTwoWithFileAndLine(string timestamp)
    {
        var csv = Write("times.csv", $"timestamp,p95-latency,error-rate\n2026-11-21T09:00:00Z,0.2,0.001\n{timestamp},0.2,0.001\n");

        var exit = await BacktestAsync(csv);

        Assert.Equal(2, exit);
        Assert.Contains($"{csv}:3: timestamp '{timestamp}' is neither ISO 8601 nor unix seconds", stderr.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("1795251600000")] // 2026-11-21T09:00:00Z in unix milliseconds, as many exporters write it
    [InlineData("1795251600000000")] // and in microseconds
    [InlineData("-1e12")]
    public async Task Backtest_CsvTimestampBeyondTheYearsOfUnixSeconds_ExitsTwoWithFileAndLine_NotAStackTrace(string timestamp)
    {
        // Each row out of the range is refused at its own line, and the command ends with exit 2, not a stack trace.
        var csv = Write("times.csv", $"timestamp,p95-latency,error-rate\n{timestamp},0.2,0.001\n1795251660000,0.2,0.001\n");

        var exit = await BacktestAsync(csv);

        Assert.Equal(2, exit);
        var said = stderr.ToString();
        Assert.Contains(
            $"{csv}:2: timestamp '{timestamp}' is out of the range of unix seconds, the years 1 to 9999 (unix milliseconds? divide them by 1000, or write ISO 8601)",
            said, StringComparison.Ordinal);
        Assert.Contains($"{csv}:3: timestamp '1795251660000' is out of the range of unix seconds", said, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("11/21/2026 09:05")]
    [InlineData("05/11/2026 09:05:00")]
    [InlineData("21.11.2026 09:05")]
    [InlineData("11-21-2026 09:05")]
    public async Task Backtest_CsvTimestampWithDayAndMonthInAnOrderOfItsOwn_IsRefusedNotGuessed(string timestamp)
    {
        // .NET's general parser read these month first, whatever the exporter meant: 05/11/2026 as 11 May, so a European
        // spreadsheet's 5 November was backtested half a year off, without a word.
        var csv = Write("times.csv", $"timestamp,p95-latency,error-rate\n2026-11-21T09:00:00Z,0.2,0.001\n{timestamp},0.2,0.001\n");

        var exit = await BacktestAsync(csv);

        Assert.Equal(2, exit);
        Assert.Contains(
            $"{csv}:3: timestamp '{timestamp}' writes the day and the month in an order that cannot be told from the text; write ISO 8601 (2026-11-21T09:05:00Z) or unix seconds",
            stderr.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("2026-11-21 09:05:00")]
    [InlineData("2026-11-21 09:05:00Z")]
    [InlineData("21 Nov 2026 09:05:00 GMT")]
    public async Task Backtest_CsvTimestampThatNamesItsOrder_IsStillRead(string timestamp)
    {
        var csv = Write("times.csv", $"timestamp,p95-latency,error-rate\n2026-11-21T09:00:00Z,0.2,0.001\n{timestamp},0.2,0.001\n");

        var exit = await BacktestAsync(csv);

        // Read as 09:05 that day: the only complaint is that the file ends before the deploy.
        Assert.Equal(2, exit);
        Assert.EndsWith("(its rows run from 2026-11-21T09:00:00Z to 2026-11-21T09:05:00Z)", stderr.ToString().Trim(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_CsvWithUnknownColumn_ExitsTwo()
    {
        var csv = Write("bad.csv", "timestamp,p95-latency,error-rate,p99\n");

        var exit = await BacktestAsync(csv);

        Assert.Equal(2, exit);
        Assert.Contains($"{csv}:1: column 'p99' is not a metric of the runbook", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_CsvWithAColumnTwice_ExitsTwoNamingIt()
    {
        var csv = MinutesCsv("twice.csv", "timestamp,p95-latency,error-rate,p95-latency", minute => $"0.2,0.002,{R(minute <= 0 ? 0.2 : 0.4)}");

        var exit = await BacktestAsync(csv);

        Assert.Equal(2, exit);
        Assert.Equal("", stdout.ToString());
        Assert.Contains($"{csv}:1: column 'p95-latency' is given more than once", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_CsvWithSomeOfTheRunbooksMetrics_JudgedOnThoseAndTheOthersNamed()
    {
        var csv = MinutesCsv("p95.csv", "timestamp,p95-latency", minute => R((minute <= 0 ? 0.2 : 0.4) * (1 + (0.02 * Math.Sin(minute)))));

        var exit = await BacktestAsync(csv);

        Assert.True(exit == 0, stderr.ToString());
        Assert.Contains("has no column for error-rate; judged without them, on p95-latency", stderr.ToString(), StringComparison.Ordinal);
        var answer = Answer();
        Assert.Equal("rollback", answer.GetProperty("decision").GetString());
        Assert.All(answer.GetProperty("evaluations").EnumerateArray(), e => Assert.Equal("p95-latency", e.GetProperty("metric").GetString()));
    }

    [Fact]
    public async Task Backtest_CsvWithNoneOfTheRunbooksMetrics_ExitsTwo()
    {
        var csv = Write("none.csv", "timestamp,error-rate.requests\n2026-11-21T09:00:00Z,1000\n");

        var exit = await BacktestAsync(csv);

        Assert.Equal(2, exit);
        Assert.Contains($"{csv}:1: no column names a metric of the runbook (its metrics: p95-latency, error-rate)", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_BadRunbook_ExitsTwoWithFileAndLine()
    {
        var runbook = Write("broken.yaml", Runbook.Replace("  owner: U024BE7LH", "  ownr: U024BE7LH", StringComparison.Ordinal));

        var exit = await BacktestAsync(Csv(_ => 0.2, _ => 2), runbook: runbook);

        Assert.Equal(2, exit);
        Assert.Contains($"{runbook}:9: unknown field 'ownr' in spec", stderr.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// A runbook file that cannot be read is an error, read as <c>runbooks validate</c> reads it. Before, the command read
    /// the whole file: a FIFO hung it for ever, a file it may not open and one of 3 GB threw out of it.
    /// </summary>
    [Theory]
    [InlineData(Infrastructure.TestRunbooks.Fifo, "the file is empty, or not a regular file (a FIFO or a device is not read")]
    [InlineData(Infrastructure.TestRunbooks.NotPermitted, "cannot read the file: Access to the path")]
    [InlineData(Infrastructure.TestRunbooks.TooLarge, "the file is 3221225472 bytes long; a runbook file is at most 1048576 bytes (1 MiB)")]
    public async Task Backtest_RunbookThatCannotBeRead_ExitsTwoSayingWhy(string kind, string reason)
    {
        var runbook = Path.Combine(folder, "checkout.yaml");
        Infrastructure.TestRunbooks.MakeUnreadable(runbook, kind);

        var exit = await Task.Run(() => BacktestAsync(Csv(_ => 0.2, _ => 2), runbook: runbook))
            .WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, exit);
        Assert.Contains($"{runbook}:1: {reason}", stderr.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--deployed-at", "2026-11-21T10:00:00Z", "--csv", "x.csv")]
    [InlineData("--runbook", "r.yaml", "--csv", "x.csv")]
    [InlineData("--runbook", "r.yaml", "--deployed-at", "2026-11-21T10:00:00Z")]
    [InlineData("--runbook", "r.yaml", "--deployed-at", "2026-11-21T10:00:00Z", "--csv", "x.csv", "--prometheus", "http://p")]
    [InlineData("--runbook")]
    [InlineData("--runbook", "r.yaml", "--deployed-at", "2026-11-21T10:00:00Z", "--csv", "x.csv", "--deployed-at", "2026-11-21T11:00:00Z")]
    [InlineData("--runbook", "r.yaml", "--runbook", "s.yaml", "--deployed-at", "2026-11-21T10:00:00Z", "--csv", "x.csv")]
    public async Task Backtest_MissingOrConflictingArguments_ExitsTwoWithUsage(params string[] args)
    {
        var exit = await RunAsync(args);

        Assert.Equal(2, exit);
        Assert.Contains("usage:", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_OptionGivenTwice_ExitsTwoNamingIt_NotTheLastOneWinning()
    {
        var runbook = Write("checkout.yaml", Runbook);
        var csv = Csv(_ => 0.2, _ => 2);

        var exit = await RunAsync("--runbook", runbook, "--deployed-at", "2026-11-21T10:00:00Z", "--csv", csv, "--deployed-at", "2026-11-21T11:00:00Z");

        Assert.Equal(2, exit);
        Assert.Equal("", stdout.ToString());
        Assert.Contains("backtest: --deployed-at is given more than once", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_DeployedAtNotATime_ExitsTwo()
    {
        var exit = await BacktestAsync(Csv(_ => 0.2, _ => 2), deployedAt: "yesterday");

        Assert.Equal(2, exit);
        Assert.Contains("--deployed-at 'yesterday' is not an ISO 8601 time", stderr.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("notaurl", "notaurl")]
    [InlineData("ftp://x", "ftp://x/")]
    [InlineData("/var/lib/prometheus", "/var/lib/prometheus")]
    [InlineData("http://", "http://")]
    [InlineData("htp://reader:url-password@prometheus.example/?token=url-token", "htp://prometheus.example/?…")]
    public async Task Backtest_PrometheusNotAnHttpUrl_ExitsTwoNamingTheOptionWithoutItsCredentials(string url, string shown)
    {
        var exit = await RunAsync("--runbook", Write("checkout.yaml", Runbook), "--deployed-at", "2026-11-21T10:00:00Z", "--prometheus", url);

        Assert.Equal(2, exit);
        Assert.Equal($"backtest: --prometheus '{shown}' is not an absolute http(s) URL (e.g. http://127.0.0.1:9090)", stderr.ToString().Trim());
    }

    [Theory]
    [InlineData("11/21/2026")]
    [InlineData("2026-11-21 10:00")]
    [InlineData("2026-11-21")]
    [InlineData("2026-11-21T10:00:00+0100")]
    [InlineData("21 Nov 2026 10:00:00 +00:00")]
    [InlineData("20261121T10:00:00Z")]
    [InlineData("20261121T2400Z")]
    [InlineData("20261121")]
    public async Task Backtest_DeployedAtNotIso8601WithOffset_ExitsTwo(string deployedAt)
    {
        var exit = await BacktestAsync(Csv(_ => 0.2, _ => 2), deployedAt: deployedAt);

        Assert.Equal(2, exit);
        Assert.Equal(
            $"backtest: --deployed-at '{deployedAt}' is not an ISO 8601 time (e.g. 2026-11-21T10:00:00Z, 2026-11-21T11:00:00+01:00, or 2026-11-21T10:00:00 for UTC)",
            stderr.ToString().Trim());
    }

    [Theory]
    [InlineData("2026-11-21T10:00:00Z")]
    [InlineData("2026-11-21T10:00Z")]
    [InlineData("2026-11-21T11:00:00+01:00")]
    [InlineData("2026-11-21T10:00:00.0000000+00:00")]
    [InlineData("2026-11-21T10:00:00")]
    [InlineData("2026-11-21T10:00")]
    [InlineData("2026-11-21T11:00:00+01")]
    [InlineData("20261121T100000Z")]
    [InlineData("20261121T1000Z")]
    [InlineData("20261121T110000+0100")]
    [InlineData("20261121T0830-0130")]
    [InlineData("20261121T100000.000Z")]
    [InlineData("20261121T100000")]
    public async Task Backtest_DeployedAtIso8601_SameDeploymentTime(string deployedAt)
    {
        var exit = await BacktestAsync(Csv(_ => 0.4, _ => 2), deployedAt: deployedAt);

        Assert.True(exit == 0, stderr.ToString());
        Assert.Equal(Deployed.AddMinutes(1), Answer().GetProperty("evaluations")[0].GetProperty("at").GetDateTimeOffset());
    }

    [Fact]
    public async Task Backtest_RelativePaths_ResolvedAgainstTheShellsDirectory()
    {
        Write("checkout.yaml", Runbook);
        Csv(_ => 0.4, _ => 2);

        var exit = await RunFromAsync(folder, "--runbook", "checkout.yaml", "--deployed-at", "2026-11-21T10:00:00Z", "--csv", "metrics.csv");

        Assert.True(exit == 0, stderr.ToString());
        Assert.Equal("rollback", Answer().GetProperty("decision").GetString());
    }

    [Fact]
    public async Task Backtest_RelativeRunbookMissing_ErrorShowsThePathAsGivenAndTheFullPath()
    {
        var exit = await RunFromAsync(folder, "--runbook", "runbooks/checkout.yaml", "--deployed-at", "2026-11-21T10:00:00Z", "--csv", Csv(_ => 0.2, _ => 2));

        Assert.Equal(2, exit);
        Assert.Equal(
            $"backtest: no such runbook file: runbooks/checkout.yaml (looked for {Path.Combine(folder, "runbooks", "checkout.yaml")})",
            stderr.ToString().Trim());
    }

    [Fact]
    public async Task Backtest_RelativeCsvMissing_ErrorShowsThePathAsGivenAndTheFullPath()
    {
        var exit = await RunFromAsync(folder, "--runbook", Write("checkout.yaml", Runbook), "--deployed-at", "2026-11-21T10:00:00Z", "--csv", "history.csv");

        Assert.Equal(2, exit);
        Assert.Equal($"backtest: no such CSV file: history.csv (looked for {Path.Combine(folder, "history.csv")})", stderr.ToString().Trim());
    }

    [Fact]
    public async Task Backtest_RelativeCsvWithBadNumber_LinesNameThePathAsGiven()
    {
        Write("checkout.yaml", Runbook);
        Write("bad.csv", "timestamp,p95-latency,error-rate\n2026-11-21T09:00:00Z,0.2,0.001\n2026-11-21T09:01:00Z,fast,0.001\n");

        var exit = await RunFromAsync(folder, "--runbook", "checkout.yaml", "--deployed-at", "2026-11-21T10:00:00Z", "--csv", "bad.csv");

        Assert.Equal(2, exit);
        Assert.Equal("bad.csv:3: 'fast' in column 'p95-latency' is not a number", stderr.ToString().Trim());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("relative/folder")]
    [InlineData("/no/such/folder/rolloutgate")]
    public async Task Backtest_NoUsablePwd_RelativePathsResolvedAgainstTheWorkingDirectory(string? pwd)
    {
        var exit = await RunFromAsync(pwd, "--runbook", "no-such-runbook.yaml", "--deployed-at", "2026-11-21T10:00:00Z", "--csv", Csv(_ => 0.2, _ => 2));

        Assert.Equal(2, exit);
        Assert.Equal(
            $"backtest: no such runbook file: no-such-runbook.yaml (looked for {Path.Combine(Directory.GetCurrentDirectory(), "no-such-runbook.yaml")})",
            stderr.ToString().Trim());
    }

    [Fact]
    public async Task Backtest_DeployedAfterTheLastRow_ExitsTwoNothingToJudge()
    {
        var csv = Csv(_ => 0.2, _ => 2);

        var exit = await BacktestAsync(csv, deployedAt: "2026-11-21T12:00:00Z");

        Assert.Equal(2, exit);
        Assert.Empty(stdout.ToString());
        Assert.Equal(
            $"backtest: {csv} has no row at or after 2026-11-21T12:01:00Z, the watch's first evaluation after --deployed-at 2026-11-21T12:00:00Z, "
            + "so there is nothing to judge (its rows run from 2026-11-21T08:00:00Z to 2026-11-21T11:00:00Z)",
            stderr.ToString().Trim());
    }

    [Fact]
    public async Task Backtest_DeployedAtTheLastRow_ExitsTwoNothingToJudge()
    {
        var exit = await BacktestAsync(Csv(_ => 0.2, _ => 2), deployedAt: "2026-11-21T11:00:00Z");

        Assert.Equal(2, exit);
        Assert.Contains("has no row at or after 2026-11-21T11:01:00Z", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_DeployedBeforeTheFirstRow_ExitsTwoNoBaseline()
    {
        var csv = Csv(_ => 0.2, _ => 2);

        var exit = await BacktestAsync(csv, deployedAt: "2026-11-21T07:00:00Z");

        Assert.Equal(2, exit);
        Assert.Empty(stdout.ToString());
        Assert.Equal(
            $"backtest: {csv} has no row before --deployed-at 2026-11-21T07:00:00Z, so there is no baseline to judge against "
            + "(its rows run from 2026-11-21T08:00:00Z to 2026-11-21T11:00:00Z)",
            stderr.ToString().Trim());
    }

    [Theory]
    [InlineData(24 * 60)] // a deploy in the future (a date mistyped)
    [InlineData(0)] // a deploy just now: the first evaluation is a minute later
    public async Task Backtest_PrometheusBeforeTheWatchsFirstEvaluation_ExitsTwoNothingToJudge_NeverHealthy(int minutesFromNow)
    {
        // A Prometheus that has no data for those times, as every Prometheus has none for the future. The answer was
        // {"decision": "healthy", "outcome": "incomplete", "evaluations": []}, exit 0.
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var prometheus = builder.Build();
        prometheus.Map("/api/v1/{endpoint}", (string endpoint) => Results.Text(
            $$$"""{"status":"success","data":{"resultType":"{{{(endpoint == "query_range" ? "matrix" : "vector")}}}","result":[]}}""", "application/json"));
        await prometheus.StartAsync();
        var deployedAt = DateTimeOffset.UtcNow.AddMinutes(minutesFromNow);

        var exit = await RunAsync("--runbook", Write("checkout.yaml", Runbook),
            "--deployed-at", deployedAt.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture), "--prometheus", prometheus.Urls.Single());

        Assert.Equal(2, exit);
        Assert.Empty(stdout.ToString());
        Assert.Matches(
            @"^backtest: the watch's first evaluation after --deployed-at \S+ is at \S+, later than now \(\S+\), so there is nothing to judge yet$",
            stderr.ToString().Trim());
    }

    [Theory]
    [InlineData("9999-12-31T23:59:00Z", "--csv")]
    [InlineData("0001-01-01T00:30:00Z", "--prometheus")]
    public async Task Backtest_DeployedAtWhoseWatchCrossesAnEndOfTheCalendar_ExitsTwoCheckTheYear_NotAStackTrace(string deployedAt, string source)
    {
        // The watch's first evaluation (an interval after) or its baseline's start (a week before) is no time a
        // DateTimeOffset holds: the command crashed with ArgumentOutOfRangeException and its stack trace.
        var exit = await RunAsync("--runbook", Write("checkout.yaml", Runbook), "--deployed-at", deployedAt,
            source, source == "--csv" ? Write("rows.csv", "timestamp,p95-latency\n2026-11-21T09:00:00Z,100\n") : "http://127.0.0.1:9");

        Assert.Equal(2, exit);
        Assert.Empty(stdout.ToString());
        Assert.StartsWith($"backtest: --deployed-at {deployedAt} leaves no room for the watch within the years 1 to 9999 (its baseline of ", stderr.ToString(), StringComparison.Ordinal);
        Assert.EndsWith("): check the year", stderr.ToString().Trim(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_CsvWithOnlyAHeader_ExitsTwoNoRows()
    {
        var csv = Write("empty.csv", "timestamp,p95-latency,error-rate\n");

        var exit = await BacktestAsync(csv);

        Assert.Equal(2, exit);
        Assert.Empty(stdout.ToString());
        Assert.Equal($"backtest: {csv} has a header but no rows, so there is nothing to judge", stderr.ToString().Trim());
    }

    [Fact]
    public async Task Backtest_ContractCsvErrorRatioSpikes_RollbackJudgedOnNominalCounts()
    {
        var csv = RatioCsv(minute => minute > 10 ? 0.025 : 0.001);

        var exit = await BacktestAsync(csv);

        Assert.True(exit == 0, stderr.ToString());
        var answer = Answer();
        Assert.Equal("rollback", answer.GetProperty("decision").GetString());
        var detected = answer.GetProperty("detectedAt").GetDateTimeOffset();
        Assert.InRange(detected, Deployed.AddMinutes(11), Deployed.AddMinutes(14));
        var errorRate = EvaluationsOf(answer, "error-rate");
        Assert.Equal("regressed", errorRate[^1].GetProperty("verdict").GetString());
        Assert.Equal(detected, errorRate[^1].GetProperty("at").GetDateTimeOffset());
        Assert.All(errorRate, e => Assert.EndsWith(RatioNote, e.GetProperty("explanation").GetString(), StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("errors after an error-free baseline", 0.0, 0.0, 0.02)]
    [InlineData("a steady rate after sparse errors", 0.01, 0.0, 0.008)]
    public async Task Backtest_ContractCsvErrorRatioRisesFromZerosInTheBaseline_Rollback(string what, double everyTenthMinute, double otherMinutes, double after)
    {
        // Judged as a continuous metric on its logs, only intervals with an error formed the reference: after an error-free
        // baseline every interval was insufficient-data and the answer healthy; after 1% every tenth minute (0.1% on average)
        // a steady 0.8% was "20% below the baseline median (1.00%)", healthy.
        var csv = MinutesCsv("history.csv", "timestamp,error-rate", minute =>
            R(minute > 0 ? after : minute % 10 == 0 ? everyTenthMinute : otherMinutes));

        var exit = await BacktestAsync(csv);

        Assert.True(exit == 0, stderr.ToString());
        var answer = Answer();
        Assert.True(answer.GetProperty("decision").GetString() == "rollback", $"{what}: {answer}");
        var last = EvaluationsOf(answer, "error-rate")[^1];
        Assert.Equal("regressed", last.GetProperty("verdict").GetString());
        Assert.InRange(answer.GetProperty("detectedAt").GetDateTimeOffset(), Deployed.AddMinutes(1), Deployed.AddMinutes(15));
        Assert.EndsWith(RatioNote, last.GetProperty("explanation").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_ContractCsvSparseErrorsUnchanged_Healthy()
    {
        var csv = MinutesCsv("history.csv", "timestamp,error-rate", minute => R(minute % 10 == 0 ? 0.01 : 0));

        var exit = await BacktestAsync(csv);

        Assert.True(exit == 0, stderr.ToString());
        var answer = Answer();
        Assert.Equal("healthy", answer.GetProperty("decision").GetString());
        Assert.Equal("completed", answer.GetProperty("outcome").GetString());
    }

    [Fact]
    public async Task Backtest_CsvLargerThanItReads_ExitsTwoSayingSo_WithoutReadingIt()
    {
        var csv = Write("huge.csv", "timestamp,p95-latency\n");
        await using (var file = File.OpenWrite(csv))
        {
            file.SetLength(RolloutGate.Watch.CsvMetricSource.MaxFileBytes + 1); // sparse: no disk and no time spent on it
        }

        var exit = await BacktestAsync(csv);

        Assert.Equal(2, exit);
        Assert.Equal($"backtest: {csv} is larger than 256 MiB; a backtest needs the watch and its baseline, not the whole history: cut the rows outside them", stderr.ToString().Trim());
    }

    [Fact]
    public async Task Backtest_ContractCsvErrorRatioAboveOne_ExitsTwoWithFileAndLine()
    {
        var csv = Write("percent.csv", "timestamp,error-rate\n2026-11-21T09:00:00Z,0.2\n2026-11-21T09:01:00Z,2.5\n");

        var exit = await BacktestAsync(csv);

        Assert.Equal(2, exit);
        Assert.Contains($"{csv}:3: '2.5' in column 'error-rate' is above 1; an error rate is a ratio (0.02 for 2%)", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_ContractCsvErrorRatioAboveMax_BreachOfMax()
    {
        var runbook = Write("checkout.yaml", Runbook.Replace("maxIncrease: 50%", "max: 2%", StringComparison.Ordinal));
        var csv = RatioCsv(minute => minute > 10 ? 0.025 : 0.001);

        var exit = await BacktestAsync(csv, runbook: runbook);

        Assert.True(exit == 0, stderr.ToString());
        var answer = Answer();
        Assert.Equal("rollback", answer.GetProperty("decision").GetString());
        Assert.Equal(Deployed.AddMinutes(13), answer.GetProperty("detectedAt").GetDateTimeOffset());
        var last = EvaluationsOf(answer, "error-rate")[^1];
        Assert.Equal("breach-of-max", last.GetProperty("verdict").GetString());
        Assert.Contains("above the absolute max", last.GetProperty("explanation").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_LatencyThatFallsBelowItsMin_BreachOfMin()
    {
        // Every request failing fast: a p95 of 4 ms against a floor of 50 ms, from the 11th minute after the deploy. A drop
        // is no regression of a latency's maxIncrease; the floor is.
        var runbook = Write("checkout.yaml", Runbook.Replace("maxIncrease: 20%", "maxIncrease: 20%\n        min: 50ms", StringComparison.Ordinal));
        var csv = MinutesCsv("history.csv", "timestamp,p95-latency", minute => R(minute > 10 ? 0.004 : 0.2 * (1 + (0.02 * Math.Sin(minute)))));

        var exit = await BacktestAsync(csv, runbook: runbook);

        Assert.True(exit == 0, stderr.ToString());
        var answer = Answer();
        Assert.Equal("rollback", answer.GetProperty("decision").GetString());
        Assert.Equal(Deployed.AddMinutes(13), answer.GetProperty("detectedAt").GetDateTimeOffset());
        var last = EvaluationsOf(answer, "p95-latency")[^1];
        Assert.Equal("breach-of-min", last.GetProperty("verdict").GetString());
        Assert.EndsWith("it has been below the absolute min of 50 ms for 3 consecutive intervals.", last.GetProperty("explanation").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backtest_ContractCsvErrorRatioUnchanged_HealthyOnTheRatio()
    {
        var csv = RatioCsv(_ => 0.001);

        var exit = await BacktestAsync(csv);

        Assert.True(exit == 0, stderr.ToString());
        var answer = Answer();
        Assert.Equal("healthy", answer.GetProperty("decision").GetString());
        Assert.Equal("completed", answer.GetProperty("outcome").GetString());
        var errorRate = EvaluationsOf(answer, "error-rate");
        Assert.Equal(60, errorRate.Count);
        Assert.All(errorRate, e => Assert.Equal("healthy", e.GetProperty("verdict").GetString()));
    }

    [Fact]
    public async Task Backtest_CsvWithErrorCounts_JudgedOnCountsNotTheRatio()
    {
        var csv = Csv(_ => 0.2, _ => 2);

        var exit = await BacktestAsync(csv);

        Assert.True(exit == 0, stderr.ToString());
        var last = EvaluationsOf(Answer(), "error-rate")[^1];
        var explanation = last.GetProperty("explanation").GetString();
        Assert.Contains("(2 of 1000 requests failed)", explanation, StringComparison.Ordinal);
        Assert.DoesNotContain("ratio alone", explanation, StringComparison.Ordinal);
    }
}
