using RolloutGate.Core.Analysis;

namespace RolloutGate.Core.Tests.Analysis;

public sealed class BaselineWindowTests
{
    private const double Day = 86400;

    [Theory]
    [InlineData(1440, 1800, 60)]      // a day at 1-minute steps, ±30 min
    [InlineData(10080, 1800, 60)]     // a week at 1-minute steps: 7 samples at every time of day
    [InlineData(300, 1800, 1)]        // few samples at random times, many ties
    [InlineData(50, 7200, 3600)]      // sparse, wide windows across midnight
    [InlineData(40, 43200, 600)]      // half a day each way: every sample is in every window
    [InlineData(1, 1800, 60)]
    public void SmoothCircular_WalkingOutwards_EqualsTheMedianOverEverySampleWithinReach(int samples, double halfWidth, int grid)
    {
        var random = new Random(samples);
        var timeOfDay = Enumerable.Range(0, samples).Select(_ => (double)(random.Next((int)(Day / grid)) * grid)).Order().ToArray();
        var logs = timeOfDay.Select(_ => random.NextDouble()).ToArray();

        var smoothed = BaselineWindow.SmoothCircular(timeOfDay, logs, halfWidth);

        for (var i = 0; i < samples; i++)
        {
            var within = Enumerable.Range(0, samples).Where(j => Circular(timeOfDay[i], timeOfDay[j]) <= halfWidth).Select(j => logs[j]).Order().ToArray();
            var median = within.Length % 2 == 1 ? within[within.Length / 2] : (within[within.Length / 2 - 1] + within[within.Length / 2]) / 2;
            Assert.Equal(median, smoothed[i]);
        }
    }

    [Fact]
    public void LogNoiseScaleFor_FewerRequestsThanTheBaselinesMedian_GrowsLikeOneOverTheirRootAndMatchesTheNoiseOfAQuantile()
    {
        var traffic = new SyntheticTraffic(3);
        var samples = SyntheticTraffic.Minutes(SyntheticTraffic.Deploy.AddDays(-1), 1440).Select(t => traffic.NightlyP95(t)).ToList();

        var baseline = BaselineWindow.From(MetricKind.Latency, samples);
        var withoutCounts = BaselineWindow.From(MetricKind.Latency, [.. samples.Select(s => s with { Requests = null })]);

        // The p95 of n log-normal requests (log standard deviation 0.8) has a log standard deviation of about
        // 0.8 √(0.95 × 0.05 / n) / φ(1.645): 0.138 at the night's 150 requests, where one scale for the day says less than half.
        var night = baseline.LogNoiseScaleFor(150);
        Assert.InRange(night, 0.138 * 0.9, 0.138 * 1.1);
        Assert.True(night > 2 * baseline.LogNoiseScale, $"{night} at night against {baseline.LogNoiseScale} for the day");
        Assert.Equal(Math.Sqrt(2), night / baseline.LogNoiseScaleFor(300), 9);
        // More requests than the median, or no count: the baseline's one scale, never less.
        Assert.Equal(baseline.LogNoiseScale, baseline.LogNoiseScaleFor(5000));
        Assert.Equal(baseline.LogNoiseScale, baseline.LogNoiseScaleFor(null));
        Assert.Equal(baseline.LogNoiseScale, withoutCounts.LogNoiseScale);
        Assert.Equal(withoutCounts.LogNoiseScale, withoutCounts.LogNoiseScaleFor(150));
    }

    [Fact]
    public void From_AWeekWithTheWatchEnd_KeepsAboutOneDayAndAnswersAsIfItKeptAll()
    {
        var traffic = new SyntheticTraffic(5);
        var deploy = SyntheticTraffic.Deploy;
        var samples = SyntheticTraffic.Minutes(deploy.AddDays(-7), 7 * 1440).Select(t => traffic.WeeklyLatency(t)).ToList();
        var until = deploy.AddHours(24);

        var all = BaselineWindow.From(MetricKind.Latency, samples);
        var trimmed = BaselineWindow.From(MetricKind.Latency, samples, referenceUntil: until);

        Assert.True(all.IsWeekly && trimmed.IsWeekly);
        foreach (var at in SyntheticTraffic.Minutes(deploy.AddMinutes(1), 1440))
        {
            Assert.Equal(all.LogReferenceAt(at), trimmed.LogReferenceAt(at));
        }

        Assert.Equal(all.LogNoiseScale, trimmed.LogNoiseScale);
        Assert.InRange(trimmed.RetainedValues, 0, all.RetainedValues / 3);
    }

    [Fact]
    public void ExpectedRequestsAt_ARequestRateWhoseWeekendIsQuiet_ExpectsItsFewOnASaturdayWhereTheReferenceTakesAWeekday()
    {
        // About 2,000 requests a minute on weekdays and 40 at weekends, with a minute of none now and then. The reference
        // stands on the usable intervals, so on a Saturday it borrows a weekday's (the week before has none usable);
        // the expected count is the Saturday the week before, quiet intervals included, and answers the same from a
        // baseline trimmed to the watch's end.
        var deploy = SyntheticTraffic.Deploy; // a Monday
        var samples = SyntheticTraffic.Minutes(deploy.AddDays(-7), 7 * 1440).Select((t, i) =>
        {
            long requests = i % 97 == 0 ? 0 : t.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday ? 40 : 2000 + i % 50;
            return new Observation(t, requests / 60.0, requests);
        }).ToList();
        var until = deploy.AddDays(6);

        var all = BaselineWindow.From(MetricKind.RequestRate, samples);
        var trimmed = BaselineWindow.From(MetricKind.RequestRate, samples, referenceUntil: until);

        var saturday = new DateTimeOffset(2026, 3, 7, 12, 0, 0, TimeSpan.Zero);
        Assert.True(trimmed.IsWeekly);
        Assert.InRange(Math.Exp(trimmed.LogReferenceAt(saturday)) * 60, 2000, 2050);
        Assert.Equal(40, trimmed.ExpectedRequestsAt(saturday)!.Value, 6);
        Assert.InRange(trimmed.ExpectedRequestsAt(deploy.AddHours(3))!.Value, 2000, 2050);
        foreach (var at in SyntheticTraffic.Every(TimeSpan.FromMinutes(17), deploy.AddMinutes(1), 6 * 1440 / 17))
        {
            Assert.Equal(all.ExpectedRequestsAt(at), trimmed.ExpectedRequestsAt(at));
        }
    }

    [Fact]
    public void LogReferenceAt_ABaselineOfExactlyAWeek_TakesTheWeekBeforeOnlyWhereItsWindowIsWhole()
    {
        var traffic = new SyntheticTraffic(5);
        var deploy = SyntheticTraffic.Deploy;
        var samples = SyntheticTraffic.Minutes(deploy.AddDays(-7).AddHours(-1), 7 * 1440 + 60).Select(t => traffic.WeeklyLatency(t)).ToList();
        var week = BaselineWindow.From(MetricKind.Latency, [.. samples.Where(s => s.At >= deploy.AddDays(-7))]);
        var weekAndAnHour = BaselineWindow.From(MetricKind.Latency, samples);

        // ±30 minutes of the same time a week back: for the first half hour after the deploy that window begins before
        // the baseline does, and the daily reference (whose windows are whole) is taken instead.
        Assert.True(week.IsWeekly && weekAndAnHour.IsWeekly);
        Assert.All(Enumerable.Range(1, 29), m => Assert.False(week.IsWeekBeforeAt(deploy.AddMinutes(m))));
        Assert.All(Enumerable.Range(30, 60), m => Assert.True(week.IsWeekBeforeAt(deploy.AddMinutes(m))));
        Assert.All(Enumerable.Range(1, 89), m => Assert.True(weekAndAnHour.IsWeekBeforeAt(deploy.AddMinutes(m))));
        Assert.Equal(weekAndAnHour.LogReferenceAt(deploy.AddMinutes(45)), week.LogReferenceAt(deploy.AddMinutes(45)));
    }

    [Theory]
    [InlineData("2026-03-30T12:00:00Z")] // a week after the clocks went forward: the week before is 167 hours back
    [InlineData("2026-03-29T03:00:00Z")] // a watch over the change, its last intervals 167 hours after theirs
    [InlineData("2026-10-25T01:30:00Z")] // clocks back within the watch's last hour: its local times went back too
    public void From_AWeekInATimeZoneWithTheWatchEnd_KeepsAboutOneDayAndAnswersAsIfItKeptAll(string watchEnd)
    {
        var berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");
        var traffic = new SyntheticTraffic(7);
        var until = DateTimeOffset.Parse(watchEnd, System.Globalization.CultureInfo.InvariantCulture);
        var deploy = until.AddHours(-24);
        var samples = SyntheticTraffic.Minutes(deploy.AddDays(-7), 7 * 1440).Select(t => traffic.LocalRequestRate(t, berlin)).ToList();

        var all = BaselineWindow.From(MetricKind.RequestRate, samples, timeZone: berlin);
        var trimmed = BaselineWindow.From(MetricKind.RequestRate, samples, referenceUntil: until, timeZone: berlin);

        Assert.True(all.IsWeekly && trimmed.IsWeekly);
        foreach (var at in SyntheticTraffic.Minutes(deploy.AddMinutes(1), 1440))
        {
            Assert.Equal(all.LogReferenceAt(at), trimmed.LogReferenceAt(at));
        }

        Assert.InRange(trimmed.RetainedValues, 0, all.RetainedValues / 3);
    }

    [Fact]
    public void From_AFixedOffsetTimeZone_AnswersAsUtcDoesForTheSameLocalTraffic()
    {
        // A zone that never changes its clock shifts every local time alike: the daily and the weekly reference are those of
        // UTC, for traffic that follows that clock.
        var plusOne = TimeZoneInfo.CreateCustomTimeZone("UTC+1", TimeSpan.FromHours(1), "UTC+1", "UTC+1");
        var traffic = new SyntheticTraffic(8);
        var deploy = SyntheticTraffic.Deploy;
        foreach (var days in new[] { 1, 7 })
        {
            var samples = SyntheticTraffic.Minutes(deploy.AddDays(-days), days * 1440).Select(t => traffic.LocalRequestRate(t, plusOne)).ToList();

            var utc = BaselineWindow.From(MetricKind.RequestRate, samples);
            var local = BaselineWindow.From(MetricKind.RequestRate, samples, timeZone: plusOne);

            Assert.Equal(utc.LogNoiseScale, local.LogNoiseScale);
            foreach (var at in SyntheticTraffic.Minutes(deploy, 1440).Select(t => t.AddSeconds(17)))
            {
                Assert.Equal(utc.LogReferenceAt(at), local.LogReferenceAt(at));
            }
        }
    }

    [Fact]
    public void From_TwoIdenticalDays_KeepsOneReferencePerTimeOfDayAndAnswersLikeOneDay()
    {
        var traffic = new SyntheticTraffic(6);
        var deploy = SyntheticTraffic.Deploy;
        var day = SyntheticTraffic.Minutes(deploy.AddDays(-1), 1440).Select(t => traffic.Latency(t)).ToList();
        var twice = day.Select(o => o with { At = o.At.AddDays(-1) }).Concat(day).ToList();

        var one = BaselineWindow.From(MetricKind.Latency, day);
        var two = BaselineWindow.From(MetricKind.Latency, twice);

        Assert.Equal(one.RetainedValues, two.RetainedValues);
        foreach (var at in SyntheticTraffic.Minutes(deploy, 1440).Select(t => t.AddSeconds(17)))
        {
            Assert.Equal(one.LogReferenceAt(at), two.LogReferenceAt(at));
        }
    }

    private static double Circular(double a, double b) => Math.Min(Math.Abs(a - b), Day - Math.Abs(a - b));
}
