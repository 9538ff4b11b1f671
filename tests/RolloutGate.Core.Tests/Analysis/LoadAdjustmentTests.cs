using RolloutGate.Core.Analysis;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Tests.Analysis;

public sealed class LoadAdjustmentTests
{
    private static readonly MetricSpec Spec = new("benchmark", null, null, Max: null, MaxIncrease: 0.10, null);

    /// <summary>A Wednesday, 09:00 UTC: a 24-hour baseline before it is a weekday's.</summary>
    private static readonly DateTimeOffset Wednesday = SyntheticTraffic.Deploy.AddDays(2);

    private static readonly DateOnly WednesdayDate = DateOnly.FromDateTime(Wednesday.UtcDateTime);

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void LoadShiftAt_AWeekWithWeekendsAtHalfTheLoad_RecoversTheLoadElasticity(int seed)
    {
        var baseline = Week(MetricKind.Latency, seed, SyntheticTraffic.WeekLoad(0.55));

        Assert.True(baseline.AdjustsForLoad);
        var shift = baseline.LoadShiftAt(Wednesday.AddHours(3), 500)!;
        Assert.InRange(shift.Elasticity, SyntheticTraffic.LoadElasticity - 0.03, SyntheticTraffic.LoadElasticity + 0.03);
        Assert.Equal(shift.Elasticity * shift.Applied, shift.LogShift, 12);
        Assert.True(shift.LogMargin >= 0);
    }

    [Fact]
    public void Evaluate_WorseLower_TheElasticitysMarginHoldsBackADropAsItHoldsBackARise()
    {
        // A custom query with request counts (a backtest's requests column) is load adjusted. The margin for the
        // elasticity's error is taken beyond the limit whichever way is worse: a value 10% past the limit of a drop is as
        // far from alarming as one 10% past the limit of a rise, not nearer for the margin.
        // The deploy's morning a holiday at 30% of the load, as the hours before it showed: its low traffic is credited.
        var baseline = Week(MetricKind.Latency, 8, SyntheticTraffic.WeekLoad(0.55, WednesdayDate, 0.3));
        var minutes = SyntheticTraffic.Minutes(Wednesday.AddHours(6), 5).ToList();
        Assert.All(minutes, at => Assert.True(baseline.LoadShiftAt(at, 500)!.LogMargin > 0));
        var references = minutes.Select(at => RegressionDetector.Evaluate(MetricKind.Latency, Spec, baseline, null, new Observation(at, 0.3, 500)).Reference).ToList();
        var rise = Spec with { MaxIncrease = 0.25 };
        var drop = Spec with { MaxIncrease = 0.20, Worse = Worse.Lower };

        var up = RegressionDetectorTests.Watch(MetricKind.Latency, rise, baseline, minutes.Select((at, i) => new Observation(at, references[i] * 1.25 * 1.1, 500)));
        var down = RegressionDetectorTests.Watch(MetricKind.Latency, drop, baseline, minutes.Select((at, i) => new Observation(at, references[i] / (1.25 * 1.1), 500)));

        Assert.True(up[^1].Statistic > 0);
        Assert.Equal(up.Select(e => e.Statistic), down.Select(e => e.Statistic), (a, b) => Math.Abs(a - b) < 1e-9);
        Assert.Equal(up.Select(e => e.Verdict), down.Select(e => e.Verdict));
    }

    [Fact]
    public void LoadShiftAt_OnTheClockOfATimeZone_RecoversTheLoadElasticityToo()
    {
        var zone = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");
        var baseline = BaselineWindow.From(MetricKind.Latency, Samples(6, Wednesday.AddDays(-7), 7 * 1440, SyntheticTraffic.WeekLoad(0.55)), timeZone: zone);

        var shift = baseline.LoadShiftAt(Wednesday.AddHours(3), 500)!;

        Assert.InRange(shift.Elasticity, SyntheticTraffic.LoadElasticity - 0.03, SyntheticTraffic.LoadElasticity + 0.03);
    }

    [Fact]
    public void LoadShiftAt_ABaselineOfMoreThanTwoWeeks_IsFittedOnItsLastTwoWeeksOfDays()
    {
        var samples = Samples(19, Wednesday.AddDays(-30), 30 * 1440, SyntheticTraffic.WeekLoad(0.55));

        var month = BaselineWindow.From(MetricKind.Latency, samples).LoadShiftAt(Wednesday.AddHours(3), 500)!;
        // The last 14 days of pairs of hours with the same hour the day before: 15 days of samples, from midnight.
        var fortnight = BaselineWindow.From(MetricKind.Latency, [.. samples.Where(s => s.At >= (Wednesday - Wednesday.TimeOfDay).AddDays(-15))]).LoadShiftAt(Wednesday.AddHours(3), 500)!;

        Assert.Equal(fortnight.Elasticity, month.Elasticity);
        Assert.Equal(fortnight.LogMargin, month.LogMargin);
    }

    [Fact]
    public void LoadShiftAt_ACostPerRequestWithAFixedShare_FallsWithTheLoad()
    {
        var shift = Week(MetricKind.CostPerRequest, 7, SyntheticTraffic.WeekLoad(0.55)).LoadShiftAt(Wednesday.AddHours(3), 500)!;

        // Its elasticity is minus the fixed share of its cost: from a quarter at the peak to three quarters at night.
        Assert.InRange(shift.Elasticity, -0.75, -0.25);
    }

    [Fact]
    public void LoadShiftAt_TrafficFarBeyondTheBaselinesSwings_IsHeldToThem_AndCreditedOnlyTowardsTheLoadBeforeTheDeploy()
    {
        // The deploy's morning a holiday at 30% of the load, quieter than any weekend (55%) the baseline holds.
        var baseline = Week(MetricKind.Latency, 8, SyntheticTraffic.WeekLoad(0.55, WednesdayDate, 0.3));
        var usual = baseline.LoadShiftAt(Wednesday.AddHours(6), 1300)!;

        var outage = baseline.LoadShiftAt(Wednesday.AddHours(6), 1300 / 20)!;
        var storm = baseline.LoadShiftAt(Wednesday.AddHours(6), 1300 * 20)!;

        // A weekend is at 55% of a weekday: swings of about ln(0.55) = −0.6 either way; the morning was quieter still.
        Assert.InRange(outage.Range, 0.5, 0.7);
        Assert.True(outage.Expected < -outage.Range, $"expected {outage.Expected}");
        Assert.Equal(-outage.Range, outage.Applied);
        Assert.Equal(outage.Elasticity * -outage.Range, outage.LogShift, 12);
        Assert.Equal(-Math.Log(20), outage.Load - usual.Load, 9);
        // A rise the hours before the deploy did not show is not credited at all.
        Assert.Equal(0, storm.Applied);
        Assert.Equal(0, storm.LogShift);
        Assert.Equal(0, storm.LogMargin);
        // And the explanations say which bound held, or why nothing was adjusted.
        var quiet = RegressionDetector.Evaluate(MetricKind.Latency, Spec, baseline, null, new Observation(Wednesday.AddHours(6), 0.3, 200));
        var busy = RegressionDetector.Evaluate(MetricKind.Latency, Spec, baseline, null, new Observation(Wednesday.AddHours(6), 0.3, 1300 * 20));
        Assert.Matches(@"traffic [0-9]+% below the same time last week, so it is judged against a reference adjusted by -[0-9]+% for that load \([0-9]+ ms; load elasticity 0\.[0-9]+, the % it moves with each 1% of traffic, fitted on the baseline's days, for a drop of [0-9]+% at most, the largest the baseline's days showed\)", quiet.Explanation);
        Assert.Matches(@"traffic [0-9]+% above the same time last week, where the 2 hours before the deploy led to expect [0-9]+% below: a change of traffic that came with the deploy may be its own doing, so the reference is not adjusted for it", busy.Explanation);
        // A count a hair below its reference: an adjustment that rounds to none has no sign.
        var near = RegressionDetector.Evaluate(MetricKind.Latency, Spec, baseline, null,
            new Observation(Wednesday.AddHours(6), 0.3, (long)Math.Round(1300 * Math.Exp(-usual.Load - 0.002))));
        Assert.Contains("so it is judged against a reference adjusted by 0% for that load", near.Explanation, StringComparison.Ordinal);
    }

    /// <summary>
    /// On an ordinary day the hours before the deploy show the usual load, so a deploy that moves the count itself is
    /// credited next to nothing: held to the load expected (a few percent), whatever the baseline's swings.
    /// </summary>
    [Fact]
    public void LoadShiftAt_AnOrdinaryDay_ExpectsTheUsualLoad_AndCreditsAMoveOfTrafficNextToNothing()
    {
        var baseline = Week(MetricKind.CostPerRequest, 23, SyntheticTraffic.WeekLoad(0.55));

        var halved = baseline.LoadShiftAt(Wednesday.AddHours(3), 600)!;

        Assert.InRange(halved.Expected, -0.1, 0.1);
        Assert.True(Math.Abs(halved.Applied) <= Math.Abs(halved.Expected));
        Assert.True(halved.Range > 0.5);
    }

    [Fact]
    public void LoadShiftAt_NoSwingsOfLoad_NoCounts_ADayOnly_OrARequestRate_IsNone()
    {
        var flat = Week(MetricKind.Latency, 9, SyntheticTraffic.WeekLoad(1));
        var withoutCounts = BaselineWindow.From(MetricKind.Latency,
            [.. Samples(9, Wednesday.AddDays(-7), 7 * 1440, SyntheticTraffic.WeekLoad(0.55)).Select(o => o with { Requests = null })]);
        var oneDay = BaselineWindow.From(MetricKind.Latency, Samples(9, Wednesday.AddDays(-1), 1440, SyntheticTraffic.WeekLoad(0.55)));
        var traffic = new SyntheticTraffic(9);
        var load = SyntheticTraffic.WeekLoad(0.55);
        var requestRate = BaselineWindow.From(MetricKind.RequestRate,
            [.. SyntheticTraffic.Minutes(Wednesday.AddDays(-7), 7 * 1440).Select(t => traffic.LoadedP95(t, load(t))).Select(o => o with { Value = o.Requests / 60.0 })]);

        foreach (var baseline in new[] { flat, withoutCounts, oneDay, requestRate })
        {
            Assert.False(baseline.AdjustsForLoad);
            Assert.Null(baseline.LoadShiftAt(Wednesday.AddHours(3), 500));
        }

        // Without an adjustment nothing is said about the traffic, and the scale is the one without it.
        var evaluation = RegressionDetector.Evaluate(MetricKind.Latency, Spec, flat, null, new Observation(Wednesday.AddMinutes(1), 0.2, 500));
        Assert.DoesNotContain("traffic", evaluation.Explanation, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(MetricKind.CostPerRequest, 0.5)]
    [InlineData(MetricKind.CostPerRequest, 0.6)]
    [InlineData(MetricKind.Latency, 0.5)]
    public void Evaluate_AHolidayInTheWatch_IsNotRolledBackAndSaysSo(MetricKind kind, double holidayLoad)
    {
        var load = SyntheticTraffic.WeekLoad(0.55, WednesdayDate, holidayLoad);
        foreach (var seed in new[] { 10, 11, 12 })
        {
            var baseline = Week(kind, seed, load);
            var watch = Samples(seed + 100, Wednesday, 15 * 60, load, kind);

            var evaluations = RegressionDetectorTests.Watch(kind, Spec, baseline, watch);

            Assert.DoesNotContain(evaluations, e => e.IsRegression);
            var noon = evaluations.Single(e => e.At == Wednesday.AddHours(3));
            Assert.Contains("below the same time last week, so it is judged against a reference adjusted by", noon.Explanation, StringComparison.Ordinal);
            Assert.Contains(kind == MetricKind.CostPerRequest ? "adjusted by +" : "adjusted by -", noon.Explanation, StringComparison.Ordinal);
            // In words: what the elasticity is, and that the credit was held to the traffic the hours before the deploy showed
            // (it read "for 45% below at most", a percentage of nothing named).
            Assert.Contains(", the % it moves with each 1% of traffic, fitted on the baseline's days", noon.Explanation, StringComparison.Ordinal);
            Assert.Matches(@"fitted on the baseline's days(\)|, for traffic [0-9]+% below at most, as the 2 hours before the deploy led to expect\)|, for a drop of [0-9]+% at most, the largest the baseline's days showed\))", noon.Explanation);
        }
    }

    [Fact]
    public void Evaluate_TheWeekAfterAHoliday_AP95ThatRisesWithTheLoadIsNotRolledBack()
    {
        var load = SyntheticTraffic.WeekLoad(0.55, WednesdayDate.AddDays(-7), 0.5);
        foreach (var seed in new[] { 13, 14, 15 })
        {
            var baseline = Week(MetricKind.Latency, seed, load);

            var evaluations = RegressionDetectorTests.Watch(MetricKind.Latency, Spec, baseline, Samples(seed + 100, Wednesday, 15 * 60, load));

            Assert.DoesNotContain(evaluations, e => e.IsRegression);
            Assert.Contains("above the same time last week, so it is judged against a reference adjusted by +",
                evaluations.Single(e => e.At == Wednesday.AddHours(3)).Explanation, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(MetricKind.CostPerRequest)]
    [InlineData(MetricKind.Latency)]
    public void Evaluate_ARealIncreaseOfHalfOnAHoliday_IsStillRolledBack(MetricKind kind)
    {
        var load = SyntheticTraffic.WeekLoad(0.55, WednesdayDate, 0.5);
        foreach (var seed in new[] { 16, 17, 18 })
        {
            var baseline = Week(kind, seed, load);
            var watch = Samples(seed + 100, Wednesday, 15 * 60, load, kind).Select(o => o with { Value = o.Value * 1.5 });

            var first = RegressionDetectorTests.Watch(kind, Spec, baseline, watch).First(e => e.IsRegression);

            Assert.True(first.At <= Wednesday.AddHours(1), $"seed {seed}: {first.At:O} {first.Explanation}");
            Assert.Contains("judged against a reference adjusted by", first.Explanation, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// A bad deploy that moves the count itself, a retry storm tripling it (a latency, β̂ &gt; 0) or a broken route
    /// halving it (a cost per request, β̂ &lt; 0), on an ordinary day: credited only towards the load the hours before the
    /// deploy led to expect, next to nothing, so a real increase of 35% is rolled back, and soon. Credited for the whole
    /// move (up to the baseline's swings, +20% and +32% here) it was never rolled back in 15 hours.
    /// </summary>
    [Theory]
    [InlineData(MetricKind.Latency, 3.0)]
    [InlineData(MetricKind.CostPerRequest, 0.5)]
    public void Evaluate_ADeployThatMovesTheCountItself_IsCreditedOnlyTheLoadExpectedBeforeIt_AndARealIncreaseIsRolledBack(MetricKind kind, double count)
    {
        var load = SyntheticTraffic.WeekLoad(0.55);
        foreach (var seed in new[] { 20, 21, 22 })
        {
            var baseline = Week(kind, seed, load);
            var watch = Samples(seed + 100, Wednesday, 15 * 60, load, kind)
                .Select(o => o with { Value = o.Value * 1.35, Requests = (long)(o.Requests!.Value * count) });

            var evaluations = RegressionDetectorTests.Watch(kind, Spec, baseline, watch);

            var first = evaluations.First(e => e.IsRegression);
            Assert.True(first.At <= Wednesday.AddMinutes(30), $"seed {seed}: {first.At:O} {first.Explanation}");
            Assert.Matches(count > 1 ? "traffic [0-9]+% above" : "traffic [0-9]+% below", first.Explanation);
            // No interval's reference moved by more than a few percent.
            Assert.All(evaluations, e => Assert.InRange(Math.Log(e.Reference!.Value) - baseline.LogReferenceAt(e.At), -0.05, 0.05));
        }
    }

    /// <summary>
    /// Hours on a clock that changes: a week in Europe/Berlin across the spring change (an hour missing) and across the
    /// autumn one (an hour repeated, which the hour's median takes together); the elasticity is recovered, an ordinary
    /// Wednesday is not rolled back, and traffic is measured against the same reference as the value (that time of day
    /// over the baseline's seven days where the week before is not whole, in the autumn for the watch's first hour and a half).
    /// </summary>
    [Theory]
    [InlineData("2026-04-01T09:00:00Z", "the same time last week (Europe/Berlin)")]
    [InlineData("2026-10-28T09:00:00Z", "the same time of day over the baseline's 7 days (Europe/Berlin)")]
    public void Evaluate_ABaselineAcrossAClockChange_IsAdjustedOnTheZonesHours(string end, string where)
    {
        var zone = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");
        var wednesday = DateTimeOffset.Parse(end, System.Globalization.CultureInfo.InvariantCulture);
        var load = SyntheticTraffic.WeekLoad(0.55);
        foreach (var kind in new[] { MetricKind.Latency, MetricKind.CostPerRequest })
        {
            var baseline = BaselineWindow.From(kind, Samples(30, wednesday.AddDays(-7), 7 * 1440, load, kind), DetectorOptions.Default, wednesday.AddHours(15), zone);

            var evaluations = RegressionDetectorTests.Watch(kind, Spec, baseline, Samples(130, wednesday, 15 * 60, load, kind));

            var shift = baseline.LoadShiftAt(wednesday.AddHours(3), 1000)!;
            if (kind == MetricKind.Latency)
            {
                Assert.InRange(shift.Elasticity, SyntheticTraffic.LoadElasticity - 0.03, SyntheticTraffic.LoadElasticity + 0.03);
            }

            Assert.DoesNotContain(evaluations, e => e.IsRegression);
            Assert.Contains($" {where} (", evaluations[0].Explanation, StringComparison.Ordinal);
            Assert.Contains($" {where}, so it is judged", evaluations[0].Explanation, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void LoadShiftAt_CountsMissingOrExtreme_AdjustsNothingOrStaysFinite()
    {
        var load = SyntheticTraffic.WeekLoad(0.55);
        var samples = Samples(40, Wednesday.AddDays(-7), 7 * 1440, load);
        var baseline = BaselineWindow.From(MetricKind.Latency, samples);

        // A baseline with a count on some intervals only is not adjusted (as without counts).
        Assert.False(BaselineWindow.From(MetricKind.Latency, [.. samples.Select((o, i) => i % 97 == 0 ? o with { Requests = null } : o)]).AdjustsForLoad);
        // An interval without a count is judged on the unadjusted reference and the one scale, and says nothing of traffic.
        var noCount = RegressionDetector.Evaluate(MetricKind.Latency, Spec, baseline, null, new Observation(Wednesday.AddMinutes(1), 0.3));
        Assert.Equal(Math.Exp(baseline.LogReferenceAt(Wednesday.AddMinutes(1))), noCount.Reference!.Value, 12);
        Assert.DoesNotContain("traffic", noCount.Explanation, StringComparison.Ordinal);
        Assert.Equal(baseline.LogNoiseScale, baseline.LogNoiseScaleFor(null));
        // Counts a trillion times larger: the same fit, as it reads log-ratios only; the largest count is held to the range.
        var huge = BaselineWindow.From(MetricKind.Latency, [.. samples.Select(o => o with { Requests = o.Requests * 1_000_000_000_000 })]);
        Assert.Equal(baseline.LoadShiftAt(Wednesday.AddHours(3), 1000)!.Elasticity, huge.LoadShiftAt(Wednesday.AddHours(3), 1000_000_000_000_000)!.Elasticity, 2);
        var most = RegressionDetector.Evaluate(MetricKind.Latency, Spec, huge, null, new Observation(Wednesday.AddMinutes(1), 0.3, long.MaxValue));
        Assert.True(double.IsFinite(most.Reference!.Value) && double.IsFinite(most.Statistic), most.Explanation);
        Assert.Matches("traffic [0-9]+% above .*(at most|not adjusted for it)", most.Explanation);
    }

    [Theory]
    // Weeks (the benchmarks' elasticity seeds) whose delete-a-day jackknife put β̂'s error at 0.0004 to 0.0009, a tenth of
    // its spread over the seeds (0.005): β̂ missed the generator's 0.3 by 1.3 to 1.8 times q · SE.
    [InlineData(34)]
    [InlineData(237)]
    [InlineData(281)]
    public void Estimate_AWeekWhoseSwingsSitInTwoDays_HasAnErrorThatCoversTheElasticity(int seed)
    {
        var (slope, standardError, degrees, _) = LoadAdjustment.Estimate(Points(seed), null, 0.01)!.Value;

        Assert.InRange(Math.Abs(slope - SyntheticTraffic.LoadElasticity), 0, LoadAdjustment.StudentQuantile(1 - 0.01 / 8, degrees) * standardError);
    }

    [Fact]
    public void ComponentError_DaysWithALevelOfTheirOwn_WidenIt_OnAsFewDegreesOfFreedomAsDays()
    {
        // A week of pairs of hours whose load swings on two days (by −0.6 and +0.6), residuals uniform over ±1% (sin-hash),
        // less their day's mean: nothing but the hours' noise.
        var start = new DateTime(2026, 3, 3, 0, 0, 0, DateTimeKind.Unspecified);
        static double Noise(int i) => (Math.Sin(i * 12.9898) * 43758.5453 % 1 + 1) % 1 - 0.5;
        (DateTime Hour, double X, double Residual)[] Pairs(Func<int, double> dayLevel) =>
        [
            .. Enumerable.Range(0, 7 * 24).Select(i =>
                (start.AddHours(i), (i / 24) switch { 3 => -0.6, 5 => 0.6, _ => 0.0 } + 0.01 * Noise(i + 1000),
                    0.02 * (Noise(i) - Enumerable.Range(i / 24 * 24, 24).Average(Noise)) + dayLevel(i / 24))),
        ];
        var steady = Pairs(_ => 0);
        var x = steady.Select(p => p.X).ToArray();
        var sxx = x.Sum(v => (v - x.Average()) * (v - x.Average()));

        var alone = LoadAdjustment.ComponentError(steady)!.Value;
        // Each day 3% above or below its usual level, at every hour of it.
        var moving = LoadAdjustment.ComponentError(Pairs(day => 0.03 * Math.Sign(Math.Sin(3 * day + 1))))!.Value;

        // Without levels: about least squares' σ / √Sxx times √(π/3) (σ = 0.02/√12), on the hours' degrees of freedom.
        Assert.InRange(alone.StandardError / (Math.Sqrt(Math.PI / 3) * 0.02 / Math.Sqrt(12 * sxx)), 0.9, 1.1);
        Assert.Equal(7 * 24 - 7 - 1, alone.Degrees);
        Assert.InRange(moving.Degrees, 1, 6);
        Assert.True(moving.StandardError > 2 * alone.StandardError, $"{moving.StandardError} against {alone.StandardError}");
    }

    [Fact]
    public void WeightedSlope_ALineWithAnOddPoint_IsTheLinesSlope()
    {
        double[] x = [-0.6, -0.5, -0.1, 0, 0.05, 0.4, 0.6, 0.55];
        var y = x.Select(v => 0.3 * v + 0.01).ToArray();
        y[2] = 5;

        Assert.Equal(0.3, LoadAdjustment.WeightedSlope(x, y)!.Value, 9);
        Assert.Null(LoadAdjustment.WeightedSlope([1, 1, 1], [0, 1, 2]));
    }

    [Theory]
    [InlineData(0.975, 1, 12.7062)]
    [InlineData(0.975, 5, 2.5706)]
    [InlineData(0.995, 2, 9.9248)]
    [InlineData(0.995, 10, 3.1693)]
    [InlineData(0.999, 6, 5.2076)]
    [InlineData(0.975, 120, 1.9799)]
    // The margin's q at alpha = 1%, t(1 − alpha/8) for the few degrees of freedom of 3 to 14 days (the jackknife's, or the
    // variance components' where the days' levels dominate): 2 degrees in closed form, t² = 2s²/(1 − s²) with s = 2p − 1,
    // the others by numerical integration of the density.
    [InlineData(1 - 0.01 / 8, 2, 19.96248)]
    [InlineData(1 - 0.01 / 8, 3, 9.4649)]
    [InlineData(1 - 0.01 / 8, 5, 5.6042)]
    [InlineData(1 - 0.01 / 8, 13, 3.73454)]
    public void StudentQuantile_IsTheTablesValue(double p, int degrees, double table)
    {
        Assert.Equal(table, LoadAdjustment.StudentQuantile(p, degrees), 3);
    }

    /// <summary>A week of baseline before <see cref="Wednesday"/> of <paramref name="kind"/>'s shape under the week's <paramref name="load"/>.</summary>
    private static BaselineWindow Week(MetricKind kind, int seed, Func<DateTimeOffset, double> load) =>
        BaselineWindow.From(kind, Samples(seed, Wednesday.AddDays(-7), 7 * 1440, load, kind));

    /// <summary>
    /// The points <see cref="LoadAdjustment.Estimate"/> reads of a week of <see cref="SyntheticTraffic.LoadedP95"/>, weekends
    /// at 55% of the load, ending at hour (<paramref name="seed"/> mod 24) of <see cref="Wednesday"/> (as the benchmarks'
    /// elasticity builds them).
    /// </summary>
    private static List<(DateTimeOffset At, double Log, long? Requests)> Points(int seed)
    {
        var end = Wednesday - Wednesday.TimeOfDay + TimeSpan.FromHours(seed % 24);
        return
        [
            .. Samples(seed, end.AddDays(-7), 7 * 1440, SyntheticTraffic.WeekLoad(0.55))
                .Where(o => o.Value is > 0 && o.Requests is > 0)
                .Select(o => (o.At, Math.Log(o.Value!.Value), o.Requests)),
        ];
    }

    /// <summary>
    /// <paramref name="minutes"/> of <see cref="SyntheticTraffic.NightlyCostPerRequest"/> (cost per request) or
    /// <see cref="SyntheticTraffic.LoadedP95"/> (latency) from <paramref name="from"/>, under the week's <paramref name="load"/>.
    /// </summary>
    private static List<Observation> Samples(int seed, DateTimeOffset from, int minutes, Func<DateTimeOffset, double> load, MetricKind kind = MetricKind.Latency)
    {
        var traffic = new SyntheticTraffic(seed);
        return
        [
            .. SyntheticTraffic.Minutes(from, minutes).Select(t =>
                kind == MetricKind.CostPerRequest ? traffic.NightlyCostPerRequest(t, dayLoad: load(t)) : traffic.LoadedP95(t, load(t))),
        ];
    }
}
