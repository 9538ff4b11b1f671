using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using RolloutGate.Core.Analysis;

namespace RolloutGate.Core.Tests.Analysis;

public sealed class BaselineWindowStoredTests
{
    private static readonly DateTimeOffset Deploy = SyntheticTraffic.Deploy;
    private static readonly DateTimeOffset WatchEnd = Deploy.AddHours(24);
    private static readonly TimeZoneInfo Berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");

    /// <summary>The deploy of the shapes in a time zone: the week after Berlin's clocks went forward (29 March 2026).</summary>
    private static readonly DateTimeOffset DeployAfterTheChange = new(2026, 3, 30, 9, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// What each version of the reduction computed from <see cref="Fixed"/> (see <see cref="Fingerprint"/>). A stored
    /// reduction is reused by the version that wrote it, so a version's output may never change: when this test fails,
    /// raise <see cref="BaselineWindow.StoredVersion"/> and add the new version's line, keeping the old ones.
    /// </summary>
    private static readonly Dictionary<byte, string> Fingerprints = new()
    {
        [1] = "6e83b23aa99afd79614f4942edf15aae708366c3f3c5b384c911b74b9fbc3453",
        // A baseline's coverage counts its quiet intervals (too few requests) too.
        [2] = "e5fe3f6d3bbd2871a315a0831424fe3090c40c356f3f32b56b336abb30c986da",
        // An error rate's dispersion is also read over batches of consecutive intervals (bursts that last several), with
        // the shape that shows it, "error-rate-bursty".
        [3] = "e4ca5adc5a2ea6c5cf7f30288b2f986347e9604efd15c6e1f17135c7171a1afe",
        // The time zone of "the same time of day" (watch.timezone) is an input (stored as one more byte when there is none),
        // and two shapes have one.
        [4] = "d393bbb695f38e88fe475893b2730044c6dc33c8868575c4d49f34a124853da5",
        // A seasonal reference's noise scale follows the interval's request count: its scale at the baseline's median count
        // and that count are stored, and each shape's scale at a few counts is described.
        [5] = "d7cc36817031f5bd45cf97da412b8b5384c335a5f31f6c52f21ea89a6aa3e1ba",
        // The weekly reference is used only where its window a week back lies wholly within the baseline; the watch's first
        // half hour after a baseline of exactly a week takes the daily one.
        [6] = "8d07748a3a5b81017dac743a5a753478386957f9af4792424e15d4d6e31249c8",
        // The noise scale of an interval of fewer requests than the median is also bounded by the variance law σ₀² + c/n
        // fitted to the residuals by count (CountNoiseLaw), stored with the baseline.
        [7] = "71ad07aa5a0e3d9f3ee20f43c46191e8f70d09a2b9c1b83bac3d5dc45f6e3e9a",
        // A latency or cost per request over days whose load swings is adjusted for the interval's load (LoadAdjustment):
        // the elasticity fitted and the count's own reference are stored, the false-rollback rate (which the adjustment's
        // margin reads) is an input, and the shape "weekly-load", whose counts follow the weekend, has one.
        [8] = "aec7ae3ff865e92e3872c4646ab6f30c70587f1a6184d6739303a363aa4a095f",
        // The load adjustment is credited only towards the load the hours before the deploy led to expect, which is stored.
        [9] = "d7019615a3d59a25bb2e173fa3b133a26b687fc1cee13cf12657fa19341b4eb8",
        // The load elasticity's error is the variance components' where their margin is larger than the delete-a-day
        // jackknife's, and the shape "weekly-load-noisy" has one such.
        [10] = "aa5b9fb5bb4fe693c24f01b0ceec1461aa03eaa029e126292965317481f7d170",
        // A request rate's baseline also keeps the count it expects at each time, its quiet intervals included (which
        // decides whether an interval of fewer requests than a verdict needs is judged), with the shapes
        // "daily-request-rate-quiet-nights" and "weekly-request-rate-quiet".
        [11] = "cc37dcadbd6b7041d246340d8c3e7ae493ed24c879ac74f809d7d5af5ed37e40",
        // The days a seasonal reference pools at each time of day are stored (the explanation says "over the baseline's 7
        // days", not "yesterday").
        [12] = "2b42c1db5bf4e0b641b797f2b11a6313443c8433bcfeab827cbf94e661e1dacb",
    };

    public static TheoryData<string> Shapes =>
        ["flat", "daily", "daily-quiet-ends", "weekly", "error-rate", "error-rate-bursty", "empty", "weekly-unbounded", "weekly-irregular", "daily-berlin", "weekly-berlin", "weekly-load", "weekly-load-noisy",
            "daily-request-rate-quiet-nights", "weekly-request-rate-quiet"];

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Decode_WhatEncodeWrote_AnswersAsTheReductionItself(string shape)
    {
        var (kind, samples, until, zone, deploy) = Fixed(shape);
        var reduced = BaselineWindow.From(kind, samples, DetectorOptions.Default, until, zone);

        var stored = reduced.Encode();
        var read = BaselineWindow.Decode(stored, kind, DetectorOptions.Default, until, zone);

        Assert.NotNull(read);
        Assert.Equal(shape.StartsWith("daily", StringComparison.Ordinal) || shape.StartsWith("weekly", StringComparison.Ordinal), reduced.IsSeasonal);
        Assert.Equal(shape.StartsWith("weekly", StringComparison.Ordinal), reduced.IsWeekly);
        Assert.Equal(zone, read.TimeZone);
        Assert.Equal(shape.StartsWith("weekly-load", StringComparison.Ordinal), reduced.AdjustsForLoad);
        Assert.Equal(reduced.AdjustsForLoad, read.AdjustsForLoad);
        Assert.Equal(Describe(reduced, deploy), Describe(read, deploy));
        Assert.Equal(stored, read.Encode());
    }

    [Fact]
    public void Decode_ReducedFromOtherInputs_IsNullSoTheSamplesAreReducedAgain()
    {
        var (kind, samples, until, _, _) = Fixed("weekly");
        var stored = BaselineWindow.From(kind, samples, DetectorOptions.Default, until).Encode();

        Assert.NotNull(BaselineWindow.Decode(stored, kind, DetectorOptions.Default, until));
        Assert.Null(BaselineWindow.Decode(stored, kind, DetectorOptions.Default, until, Berlin));
        Assert.Null(BaselineWindow.Decode(stored, MetricKind.CostPerRequest, DetectorOptions.Default, until));
        Assert.Null(BaselineWindow.Decode(stored, kind, DetectorOptions.Default with { MinRequests = 50 }, until));
        Assert.Null(BaselineWindow.Decode(stored, kind, DetectorOptions.Default with { NoiseFloor = 0.05 }, until));
        Assert.Null(BaselineWindow.Decode(stored, kind, DetectorOptions.Default with { SeasonalHalfWidth = TimeSpan.FromMinutes(15) }, until));
        Assert.Null(BaselineWindow.Decode(stored, kind, DetectorOptions.Default, WatchEnd.AddHours(1)));
        Assert.Null(BaselineWindow.Decode(stored, kind, DetectorOptions.Default, null));

        // Reduced in one time zone, it is not used for another, nor for none.
        var (_, berlinSamples, berlinUntil, _, _) = Fixed("weekly-berlin");
        var inBerlin = BaselineWindow.From(kind, berlinSamples, DetectorOptions.Default, berlinUntil, Berlin).Encode();
        Assert.NotNull(BaselineWindow.Decode(inBerlin, kind, DetectorOptions.Default, berlinUntil, Berlin));
        Assert.Null(BaselineWindow.Decode(inBerlin, kind, DetectorOptions.Default, berlinUntil, TimeZoneInfo.FindSystemTimeZoneById("Europe/London")));
        Assert.Null(BaselineWindow.Decode(inBerlin, kind, DetectorOptions.Default, berlinUntil));

        // The false-rollback rate sets a load adjustment's margin, so it is an input too.
        Assert.Null(BaselineWindow.Decode(stored, kind, DetectorOptions.Default with { FalseAlarmRatePerWatch = 0.05 }, until));

        // Options the reduction does not read do not matter.
        Assert.NotNull(BaselineWindow.Decode(stored, kind, DetectorOptions.Default with { DesignShift = 2 }, until));

        // Another version's reduction, or none.
        var other = (byte[])stored.Clone();
        other[0] = BaselineWindow.StoredVersion + 1;
        Assert.Null(BaselineWindow.Decode(other, kind, DetectorOptions.Default, until));
        other[0] = BaselineWindow.StoredVersion - 1;
        Assert.Null(BaselineWindow.Decode(other, kind, DetectorOptions.Default, until));
        Assert.Null(BaselineWindow.Decode([], kind, DetectorOptions.Default, until));
    }

    [Theory]
    [InlineData("flat")]
    [InlineData("weekly")]
    [InlineData("weekly-load")]
    public void Decode_TruncatedOrPadded_SaysWhyAndReturnsNothing(string shape)
    {
        var (kind, samples, until, _, _) = Fixed(shape);
        var stored = BaselineWindow.From(kind, samples, DetectorOptions.Default, until).Encode();

        foreach (var length in new[] { 20, 50, stored.Length / 2, stored.Length - 1 })
        {
            var error = Assert.Throws<InvalidDataException>(() => BaselineWindow.Decode(stored[..length], kind, DetectorOptions.Default, until));
            Assert.StartsWith("stored", error.Message, StringComparison.Ordinal);
        }

        var padded = Assert.Throws<InvalidDataException>(() => BaselineWindow.Decode([.. stored, 0], kind, DetectorOptions.Default, until));
        Assert.Contains("1 bytes left over", padded.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_ALoadAdjustmentWhoseCountLogsAreCut_SaysWhyAndReturnsNothing()
    {
        var (kind, samples, until, _, _) = Fixed("weekly-load");
        var stored = BaselineWindow.From(kind, samples, DetectorOptions.Default, until).Encode();
        // The count's weekly logs are the last array before a request rate's expected counts (empty for a latency: two
        // empty time arrays of 5 bytes and two empty value arrays of 4) and the noise distribution's presence byte (none,
        // seasonal): the same layout with their last value left out, their length one less.
        const int after = 5 + 4 + 5 + 4 + 1;
        var length = Enumerable.Range(1, stored.Length / 8).Single(n => stored.Length - after - 8 * n - 4 >= 0 && BitConverter.ToInt32(stored, stored.Length - after - 8 * n - 4) == n);
        byte[] cut = [.. stored[..(stored.Length - after - 8 * length - 4)], .. BitConverter.GetBytes(length - 1), .. stored[(stored.Length - after - 8 * length)..^(after + 8)], .. stored[^after..]];

        var error = Assert.Throws<InvalidDataException>(() => BaselineWindow.Decode(cut, kind, DetectorOptions.Default, until));

        Assert.StartsWith("stored reduced baseline: a count reference of ", error.Message, StringComparison.Ordinal);
        Assert.Contains($" and {length - 1} values beside ", error.Message, StringComparison.Ordinal);
        Assert.EndsWith($" and {length} times", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fingerprint_OfThisVersion_IsTheOneRecordedForIt()
    {
        var fingerprint = Fingerprint();

        Assert.True(
            Fingerprints.TryGetValue(BaselineWindow.StoredVersion, out var recorded) && recorded == fingerprint,
            $"BaselineWindow.From (or its stored form) now computes {fingerprint} where version {BaselineWindow.StoredVersion} computed " +
            $"{recorded ?? "nothing recorded"}: raise BaselineWindow.StoredVersion, so that reductions stored by this version are not " +
            "reused, and record the new version's fingerprint here, keeping the old ones.");
    }

    /// <summary>
    /// SHA-256 of every fixed shape's stored length and what its reduction answers, to 10 significant digits (so a last-bit
    /// difference in a math library does not count): properties, the reference at every minute of the watch, and scores.
    /// </summary>
    private static string Fingerprint()
    {
        var text = new StringBuilder();
        foreach (var shape in Shapes)
        {
            var (kind, samples, until, zone, deploy) = Fixed(shape);
            var reduced = BaselineWindow.From(kind, samples, DetectorOptions.Default, until, zone);
            text.Append(shape).Append(' ').Append(reduced.Encode().Length).Append('\n').Append(Describe(reduced, deploy, "G10"));
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    private static string Describe(BaselineWindow baseline, DateTimeOffset deploy, string format = "R")
    {
        string F(double value) => value.ToString(format, CultureInfo.InvariantCulture);
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{baseline.Kind} {baseline.UsableSamples} {baseline.IsSeasonal} {baseline.IsWeekly} {baseline.Days} ")
            .Append(CultureInfo.InvariantCulture, $"{F(baseline.LogNoiseScale)} {F(baseline.ReferenceError.Variance)} {baseline.ReferenceError.Span} ")
            .Append(CultureInfo.InvariantCulture, $"{baseline.Requests} {baseline.Errors} {F(baseline.Dispersion)}\n");
        if (baseline.Kind == MetricKind.ErrorRate || baseline.UsableSamples == 0)
        {
            return text.ToString();
        }

        for (var minute = 0; minute <= 1440; minute += 7)
        {
            text.Append(F(baseline.LogReferenceAt(deploy.AddMinutes(minute).AddSeconds(13)))).Append(' ');
            // A request rate's expected count (none for the other kinds).
            if (baseline.ExpectedRequestsAt(deploy.AddMinutes(minute).AddSeconds(13)) is { } expected)
            {
                text.Append(F(expected)).Append(' ');
            }
        }

        for (var residual = -1.0; residual <= 1.0; residual += 0.0625)
        {
            text.Append(F(baseline.StandardScore(residual, null))).Append(' ');
        }

        foreach (var requests in new long?[] { null, 100, 500, 800, 5000 })
        {
            text.Append(F(baseline.LogNoiseScaleFor(requests))).Append(' ');
        }

        // The load adjustment (none but for the "weekly-load" shapes) of a few counts at a few times, the first half hour's among them.
        foreach (var minute in new[] { 7, 300, 1000 })
        {
            foreach (var requests in new long[] { 100, 600, 5000 })
            {
                if (baseline.LoadShiftAt(deploy.AddMinutes(minute), requests) is { } shift)
                {
                    text.Append(CultureInfo.InvariantCulture, $"{F(shift.Load)} {F(shift.Applied)} {F(shift.Elasticity)} {F(shift.LogShift)} {F(shift.LogMargin)} {F(shift.Range)} ");
                }
            }
        }

        return text.Append('\n').ToString();
    }

    /// <summary>
    /// Fixed baselines of every shape the reduction has, from plain arithmetic (not <see cref="SyntheticTraffic"/>, which
    /// other tests may change): a daily swing, a weekend, a skewed wobble, and error counts. The "-berlin" shapes are
    /// reduced in Europe/Berlin, their daily swing on Berlin's clock, over the week its clocks went forward.
    /// </summary>
    private static (MetricKind Kind, IReadOnlyList<Observation> Samples, DateTimeOffset? Until, TimeZoneInfo? Zone, DateTimeOffset Deploy) Fixed(string shape)
    {
        // With loadFollows, the counts follow the weekend too (at 60% of a weekday's, wobbling by 1% a sample, not 30%), and
        // the value follows them, less.
        IReadOnlyList<Observation> Latency(int minutes, int step, TimeZoneInfo? zone = null, bool loadFollows = false) =>
        [
            .. Enumerable.Range(0, minutes / step).Select(i =>
            {
                var at = (zone is null ? Deploy : DeployAfterTheChange).AddMinutes(-minutes + i * step);
                var clock = zone is null ? at : TimeZoneInfo.ConvertTime(at, zone);
                var daily = 1 + 0.3 * Math.Sin(2 * Math.PI * clock.TimeOfDay.TotalMinutes / 1440);
                var weekend = at.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday ? 0.8 : 1.0;
                var wobble = 1 + 0.1 * Math.Pow(((i * 7919) % 101) / 100.0, 3);
                var requests = 500 + (i % 7) * 100;
                return new Observation(at, 0.2 * daily * weekend * wobble, loadFollows ? (long)((1000 + (i % 7) * 10) * (weekend == 1 ? 1 : 0.6)) : requests);
            }),
        ];

        IReadOnlyList<Observation> RequestRate(int minutes, int step) =>
        [
            .. Enumerable.Range(0, minutes / step).Select(i =>
            {
                var at = Deploy.AddMinutes(-minutes + i * step);
                var hour = at.TimeOfDay.TotalHours;
                var weekend = at.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday;
                long requests = hour is >= 2 and < 3 ? 0 : hour < 6 || weekend ? 40 + i % 13 : 2000 + (i % 7) * 100;
                return new Observation(at, requests / 60.0, requests);
            }),
        ];

        // A number in [0, 1) that looks random: the fraction of 43758.5453 sin(12.9898 i).
        static double Hash(int i) => (Math.Sin(i * 12.9898) * 43758.5453 % 1 + 1) % 1;

        (MetricKind, IReadOnlyList<Observation>, DateTimeOffset?, TimeZoneInfo?, DateTimeOffset) Utc(MetricKind kind, IReadOnlyList<Observation> samples, DateTimeOffset? until) =>
            (kind, samples, until, null, Deploy);
        return shape switch
        {
            "flat" => Utc(MetricKind.Latency, Latency(120, 1), WatchEnd),
            "daily" => Utc(MetricKind.Latency, Latency(1440, 1), WatchEnd),
            // Too few requests in its first 4 hours and its last: a day all the same, 19 hours of it usable.
            "daily-quiet-ends" => Utc(MetricKind.Latency, [.. Latency(1440, 1).Select((o, i) => i < 240 || i >= 1380 ? o with { Requests = 50 } : o)], WatchEnd),
            "weekly" => Utc(MetricKind.Latency, Latency(7 * 1440, 5), WatchEnd),
            "weekly-unbounded" => Utc(MetricKind.CostPerRequest, Latency(7 * 1440, 15), null),
            // Gaps, and times off the minute (as a scrape's jitter leaves them): runs of equal steps break, nothing is lost.
            "weekly-irregular" => Utc(MetricKind.Latency,
                [.. Latency(7 * 1440, 1).Where((_, i) => i % 97 != 0).Select((o, i) => i % 13 == 0 ? o with { At = o.At.AddMilliseconds(17 * (i % 7)) } : o)],
                WatchEnd),
            "empty" => Utc(MetricKind.RequestRate, [], WatchEnd),
            "error-rate" => Utc(MetricKind.ErrorRate,
                [.. Enumerable.Range(0, 120).Select(i => new Observation(Deploy.AddMinutes(i - 120), null, 1000, (i * 37) % 11 == 0 ? 9 : 1))],
                WatchEnd),
            "error-rate-bursty" => Utc(MetricKind.ErrorRate,
                [.. Enumerable.Range(0, 120).Select(i => new Observation(Deploy.AddMinutes(i - 120), null, 1000, i % 20 < 3 ? 50 : 2))],
                WatchEnd),
            // A day of baseline over the change (09:00 UTC the day before to 09:00 on the day of it), and a week of it.
            "daily-berlin" => (MetricKind.Latency, [.. Latency(2 * 1440, 1, Berlin).Take(1440)], DeployAfterTheChange, Berlin, DeployAfterTheChange.AddHours(-24)),
            "weekly-berlin" => (MetricKind.Latency, Latency(7 * 1440, 5, Berlin), DeployAfterTheChange.AddHours(24), Berlin, DeployAfterTheChange),
            "weekly-load" => Utc(MetricKind.Latency, Latency(7 * 1440, 5, loadFollows: true), WatchEnd),
            // With 2% of noise a sample besides (sin-hash: plain arithmetic), at 1-minute steps: the load elasticity's error
            // is the variance components' (its margin the larger), not the jackknife's.
            "weekly-load-noisy" => Utc(MetricKind.Latency,
                [.. Latency(7 * 1440, 1, loadFollows: true).Select((o, i) => o with { Value = o.Value * (1 + 0.02 * (Hash(i) - 0.5)) })],
                WatchEnd),
            // Fewer requests than a verdict needs from 00:00 to 06:00 (none from 02:00 to 03:00), and at weekends.
            "daily-request-rate-quiet-nights" => Utc(MetricKind.RequestRate, RequestRate(1440, 1), WatchEnd),
            "weekly-request-rate-quiet" => Utc(MetricKind.RequestRate, RequestRate(7 * 1440, 5), WatchEnd),
            _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, null),
        };
    }
}
