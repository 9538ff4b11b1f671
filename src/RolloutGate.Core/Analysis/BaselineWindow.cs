namespace RolloutGate.Core.Analysis;

/// <summary>
/// The pre-deploy baseline, reduced once to what every interval of the watch compares with.
/// <para>
/// Continuous metrics (latency, cost, request rate) get a <b>seasonal reference</b>: each baseline sample is replaced by
/// the median of the log values within ±30 minutes of the same time of day (a rolling median, robust to the odd spike),
/// and an interval of the watch is compared with the reference at its own time of day, i.e. "the same time yesterday"
/// (with more than a day of baseline, that time of day over its <see cref="Days"/>).
/// Comparing with a flat baseline mean (what static thresholds do) would read the daily rise of traffic as a regression
/// and the nightly lull as spare room. The noise scale is 1.4826 × the median absolute deviation of the baseline's log
/// residuals around that reference, floored at <see cref="DetectorOptions.NoiseFloor"/>, and larger for an interval of
/// fewer requests than the baseline's median (<see cref="LogNoiseScaleFor"/>: the night's few requests are noisier).
/// When the baseline covers less than 20 hours (from its first interval to its last, quiet ones with too few requests
/// included) there is no "same time yesterday"; the reference is then the baseline's median and the explanation says so.
/// </para>
/// <para>
/// How far an interval is from its reference, in noise units, is <see cref="StandardScore"/>. Against a seasonal
/// reference it is the log residual over the noise scale. Against the flat reference it is the residual's normal score
/// in the baseline's own distribution (<see cref="NoiseDistribution"/>): the watch is then compared with the stretch of
/// time just before the deploy, so "no worse than allowed" means "drawn from the baseline's distribution, shifted by at
/// most the allowance", and the baseline's shape (a p95 latency's skew, a quantised series) is the shape of the noise.
/// A seasonal reference is another day's (or week's) level at that time: the gap between days, not the minute-to-minute
/// residuals inside the baseline, dominates its error, so their shape would misstate it
/// (tests/RolloutGate.Benchmarks/README.md measures both).
/// </para>
/// <para>
/// When the baseline covers about a week (runbook <c>watch.baseline: 7d</c> or more), the reference is <b>the same time
/// one week earlier</b> (<see cref="IsWeekly"/>), smoothed the same way: a Monday is compared with the Monday before,
/// not with Sunday, so weekday/weekend traffic is not read as a regression. Where that window a week back is not whole
/// within the baseline (the watch's first half hour after a baseline of exactly a week), the daily reference is taken
/// (<see cref="LogWeekBefore"/>).
/// </para>
/// <para>
/// "The same time" is on the clock of <see cref="TimeZone"/> when the runbook gives one (<c>watch.timezone</c>), else UTC.
/// Users follow their own clock, so where it changes for daylight saving their daily pattern moves by an hour in UTC:
/// compared in UTC, the hour that traffic moved read as a regression (a rise, or a loss) for the week after every
/// change with a weekly reference, and in a watch over the change with a daily one. With a zone, the daily reference
/// pools the baseline's samples by their local time of day, and the weekly one looks at the same local time one week
/// earlier, 167 or 169 hours before across a change (<see cref="WeekBefore"/>). The hour the clocks skip has no samples
/// in a baseline that spans it: a reference asked for that local time another day takes the nearest local time that has
/// them, as for any gap. The hour they repeat has two samples for each local time, and the daily reference pools both:
/// both are that time on the users' clock.
/// </para>
/// <para>
/// Neither reference knows the load: a public holiday at half the traffic, compared with the same weekday a week
/// earlier, raises a cost per request that spreads a fixed cost over the requests. With request counts over a baseline of
/// several days whose load swings (weekends), a latency's or cost per request's reference is adjusted for the interval's
/// load (<see cref="LoadShiftAt"/>, <see cref="LoadAdjustment"/>): the count gets a seasonal reference of its own, built
/// the same way, and the load elasticity fitted on the baseline's day-over-day swings moves the reference by as much as
/// the interval's count is off its own.
/// </para>
/// <para>
/// Error rates get the pooled baseline error rate (errors / requests over the whole window): errors are sparse, and a
/// count-based test needs a rate, not a per-interval ratio that is 0 most of the time.
/// </para>
/// </summary>
public sealed partial class BaselineWindow
{
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);
    private static readonly TimeSpan Week = TimeSpan.FromDays(7);
    private static readonly TimeSpan SeasonalCoverage = TimeSpan.FromHours(20);

    /// <summary>A week less the 4 hours the daily coverage (20 of 24 hours) also leaves for gaps at the ends.</summary>
    private static readonly TimeSpan WeeklyCoverage = Week - TimeSpan.FromHours(4);

    private readonly double[] _timeOfDaySeconds;
    private readonly double[] _logReference;

    // Weekly reference: the baseline's samples in time order (seconds since the Unix epoch) and their logs.
    private double[] _seconds = [];
    private double[] _logs = [];
    private double _halfWidthSeconds;

    // Flat reference: the distribution of the baseline's log residuals around it.
    private readonly NoiseDistribution? _noise;

    // Seasonal reference with request counts: the noise scale at the baseline's median count, and that count (see
    // LogNoiseScaleFor); 0 without counts.
    private double _countScale;
    private double _medianRequests;

    // And the variance law over the count fitted to the residuals, where they tell its two terms apart (see LogNoiseScaleFor).
    private CountNoiseLaw? _noiseLaw;

    // Latency and cost per request over several days with counts: how the metric follows the load, where the baseline
    // determines it (see LoadShiftAt), and the count's own seasonal reference, built like the metric's: its log at each
    // distinct time of day (beside _logReference) and, weekly, at each of _seconds (beside _logs). Empty without one.
    private LoadAdjustment? _load;
    private double[] _countReference = [];
    private double[] _countLogs = [];

    // Request rate with counts: the count the baseline expects at each time, its quiet intervals (fewer requests than a
    // verdict needs, none at all) included, which the reference leaves out (see ExpectedRequestsAt): its log at each
    // distinct time of day of those samples (or one value, flat), and, weekly, at each of their times in order. Empty otherwise.
    private double[] _expectedTimeOfDay = [];
    private double[] _expectedDaily = [];
    private double[] _expectedSeconds = [];
    private double[] _expectedLogs = [];

    // What it was reduced from besides the samples (its stored form records them: see Encode).
    private ReductionInputs _inputs;

    private BaselineWindow(
        MetricKind kind, int usableSamples, bool isSeasonal, double[] timeOfDaySeconds, double[] logReference,
        double logNoiseScale, long requests, long errors, NoiseDistribution? noise = null)
    {
        Kind = kind;
        UsableSamples = usableSamples;
        IsSeasonal = isSeasonal;
        _timeOfDaySeconds = timeOfDaySeconds;
        _logReference = logReference;
        LogNoiseScale = logNoiseScale;
        _noise = noise;
        Requests = requests;
        Errors = errors;
    }

    public MetricKind Kind { get; }

    /// <summary>Baseline intervals with data and enough requests.</summary>
    public int UsableSamples { get; }

    /// <summary>Whether the reference follows the time of day (baseline of at least 20 hours) or is flat.</summary>
    public bool IsSeasonal { get; }

    /// <summary>
    /// Whether the reference is the same time of day on the same weekday one week earlier (a baseline of about a week or
    /// more, continuous metrics); <see cref="IsSeasonal"/> is then true as well.
    /// </summary>
    public bool IsWeekly { get; private init; }

    /// <summary>
    /// The days a seasonal reference pools at each time of day: what the baseline covers (as for
    /// <see cref="IsSeasonal"/>), in days, rounded and at least 1; 0 for a flat reference. A 24-hour baseline's is 1, whose
    /// reference is "the same time yesterday"; a week's 7, whose daily reference (the watch's first half hour, where the
    /// window a week back is not whole) is that time of day over all seven, and the explanation says so.
    /// </summary>
    public int Days { get; private set; }

    /// <summary>
    /// The zone whose wall clock "the same time of day" follows (runbook <c>watch.timezone</c>); null for UTC. It matters
    /// to a seasonal reference only.
    /// </summary>
    public TimeZoneInfo? TimeZone { get; private set; }

    /// <summary>
    /// Robust standard deviation of the log residuals (continuous metrics); against a seasonal reference, the least scale an
    /// interval is judged on, and the scale of one without a request count (see <see cref="LogNoiseScaleFor"/>).
    /// </summary>
    public double LogNoiseScale { get; }

    /// <summary>
    /// The reference's own estimation error, which the watch's scores share (continuous metrics; none for error rates).
    /// The flat reference of m samples: variance 1/m, shared by every look (the mean normal score of a new interval,
    /// measured against an empirical distribution of m samples, is off by that much: the normal-scores two-sample
    /// statistic has variance 1/n + 1/m). A seasonal reference, the median of the w samples in its ±30-minute window:
    /// variance (π/2)/w in noise units (the median's at normal noise), shared in part by the looks whose windows overlap,
    /// W = the window's width in looks (the baseline holds one sample per watch interval). The day-to-day gap is not in it.
    /// </summary>
    public ReferenceError ReferenceError { get; private init; } = ReferenceError.None;

    /// <summary>Requests over the baseline (error rate).</summary>
    public long Requests { get; }

    /// <summary>Errors over the baseline (error rate).</summary>
    public long Errors { get; }

    /// <summary>
    /// How much more the baseline's error counts vary than independent requests would (the quasi-binomial dispersion φ,
    /// at least 1; per interval and over runs of intervals, see <see cref="PearsonDispersion"/>): errors come in bursts,
    /// so an interval's count carries less evidence than a binomial count of the same size. The error tests divide their
    /// increments by φ (quasi-likelihood, McCullagh and Nelder 1989, "Generalized Linear Models", 2nd ed., section 4.5 and
    /// chapter 9). 1 for continuous metrics.
    /// </summary>
    public double Dispersion { get; private init; } = 1;

    /// <summary>
    /// The baseline error rate, with half an error and one request added (the Jeffreys-style continuity correction),
    /// so an error-free baseline still gives a small positive rate rather than a rate of zero that any error would exceed.
    /// </summary>
    public double ErrorRate => (Errors + 0.5) / (Requests + 1.0);

    /// <summary>Whether there is enough baseline to compare with.</summary>
    public bool IsUsable(DetectorOptions options) => UsableSamples >= options.MinBaselineSamples;

    /// <summary>
    /// Reduces the samples before the deploy to a baseline. Samples without data or with too few requests are skipped.
    /// <paramref name="referenceUntil"/>, when given, is the latest time the reference will be asked for (the watch's
    /// end): a weekly baseline then keeps only the samples that a reference up to then can reach, about one day of the
    /// seven, and answers the same as one that kept them all. <paramref name="timeZone"/> is the clock "the same time of
    /// day" is read on (see the class summary); null for UTC.
    /// </summary>
    public static BaselineWindow From(
        MetricKind kind,
        IReadOnlyList<Observation> samples,
        DetectorOptions? options = null,
        DateTimeOffset? referenceUntil = null,
        TimeZoneInfo? timeZone = null)
    {
        options ??= DetectorOptions.Default;
        var window = Reduce(kind, samples, options, referenceUntil, timeZone);
        window._inputs = new ReductionInputs(kind, options, referenceUntil, timeZone);
        window.TimeZone = timeZone;
        if (window._load is { } load)
        {
            window._load = load with { Before = window.LoadBefore(samples, options) };
        }

        if (kind == MetricKind.RequestRate && window.UsableSamples > 0)
        {
            window.ReduceExpectedRequests(samples, options, referenceUntil);
        }

        return window;
    }

    /// <summary>
    /// The count a request rate's baseline expects at <paramref name="at"/>, its quiet intervals included: the median
    /// count over the same window as the reference's (±<see cref="DetectorOptions.SmoothingHalfWidth"/> of the same time
    /// last week, or of that time of day over the baseline's days, or the whole baseline where the reference is flat),
    /// counting every interval the source answered with a count, those with fewer than
    /// <see cref="DetectorOptions.MinRequests"/> requests and those with none as well. Null without counts, and for every
    /// other kind.
    /// <para>
    /// The reference itself stands on the usable intervals only, so at a time of day that was always quiet (a small
    /// service at night) it is borrowed from the nearest time that was not, and would expect the day's traffic at night;
    /// the expected count is what the baseline saw at that time. It is a median, so it is at least <c>MinRequests</c> exactly when
    /// at least half of its window's intervals had that many (<see cref="RegressionDetector"/> judges a request rate's
    /// interval of fewer requests only then).
    /// </para>
    /// </summary>
    public double? ExpectedRequestsAt(DateTimeOffset at)
    {
        if (_expectedDaily.Length == 0)
        {
            return null;
        }

        if (!IsSeasonal)
        {
            return Math.Exp(_expectedDaily[0]);
        }

        // The same time last week where that window lies wholly within the baseline, whether or not it was usable (a quiet
        // weekend has no usable interval, and the reference then borrows the daily one: weekdays); else that time of day
        // over the baseline's days.
        var centre = WeekBefore(at, TimeZone);
        var weekly = IsWeekly && _expectedSeconds.Length > 0 && centre - _halfWidthSeconds >= _expectedSeconds[0] - 1e-6
            ? WindowMedian(_expectedSeconds, _expectedLogs, centre, _halfWidthSeconds)
            : null;
        return Math.Exp(weekly ?? DailyAt(at, _expectedTimeOfDay, _expectedDaily));
    }

    /// <summary>
    /// Reduces a request rate's samples with a value and a count, quiet ones included, to <see cref="ExpectedRequestsAt"/>:
    /// the log of each count (of half a request for none, so that an empty interval is the lowest, not minus infinity;
    /// a median does not read how low), smoothed as the reference is and, weekly, kept up to the reach of the watch's end.
    /// </summary>
    private void ReduceExpectedRequests(IReadOnlyList<Observation> samples, DetectorOptions options, DateTimeOffset? referenceUntil)
    {
        var counted = samples
            .Where(s => s.Value is not null && s.Requests is >= 0)
            .Select(s => (s.At, Log: Math.Log(Math.Max(s.Requests!.Value, 0.5))))
            .OrderBy(s => s.At)
            .ToArray();
        if (counted.Length == 0)
        {
            return;
        }

        if (!IsSeasonal)
        {
            (_expectedTimeOfDay, _expectedDaily) = ([0], [RobustStatistics.Median(counted.Select(c => c.Log))]);
            return;
        }

        var byTimeOfDay = counted.OrderBy(c => TimeOfDaySeconds(c.At, TimeZone)).ToArray();
        var timeOfDay = byTimeOfDay.Select(c => TimeOfDaySeconds(c.At, TimeZone)).ToArray();
        (_expectedTimeOfDay, _expectedDaily) = DistinctTimes(timeOfDay, SmoothCircular(timeOfDay, [.. byTimeOfDay.Select(c => c.Log)], options.SmoothingHalfWidth.TotalSeconds));
        if (IsWeekly)
        {
            var reach = referenceUntil is not { } until ? DateTimeOffset.MaxValue
                : TimeZone is null ? until - Week + options.SmoothingHalfWidth
                : LatestWeekBefore(until, TimeZone) + options.SmoothingHalfWidth;
            var kept = counted.Where(c => c.At <= reach).ToArray();
            (_expectedSeconds, _expectedLogs) = ([.. kept.Select(c => Seconds(c.At))], [.. kept.Select(c => c.Log)]);
        }
    }

    private static BaselineWindow Reduce(
        MetricKind kind, IReadOnlyList<Observation> samples, DetectorOptions options, DateTimeOffset? referenceUntil, TimeZoneInfo? timeZone)
    {
        if (kind == MetricKind.ErrorRate)
        {
            // In time order: the dispersion over batches reads neighbouring intervals together.
            var intervals = samples
                .OrderBy(s => s.At)
                .Select(RegressionDetector.ErrorCounts)
                .Where(c => c is { } counts && counts.Requests >= options.MinRequests)
                .Select(c => c!.Value)
                .ToArray();
            var requests = intervals.Sum(c => c.Requests);
            var errors = intervals.Sum(c => c.Errors);
            return new BaselineWindow(kind, intervals.Length, false, [], [], 0, requests, errors)
            {
                Dispersion = PearsonDispersion(intervals, (errors + 0.5) / (requests + 1.0)),
            };
        }

        // In time order: the weekly reference and the reference's error read the samples in order.
        var points = samples
            .Where(s => IsUsable(s, options))
            .Select(s => (s.At, Log: Math.Log(s.Value!.Value), s.Requests))
            .ToArray();
        Array.Sort(points, (a, b) => a.At.CompareTo(b.At));
        if (points.Length == 0)
        {
            return new BaselineWindow(kind, 0, false, [], [], 0, 0, 0);
        }

        // What the baseline covers is every interval the source answered for, the quiet ones included: a night with fewer
        // requests than a verdict needs is part of the day, not a gap, and the watch's nights are as quiet. Measured by the
        // usable samples alone, a 24-hour baseline of a deploy made at night (its usable part from yesterday morning to last
        // night, 18 hours) was taken as shorter than a day, and its flat median read the morning's rise as a regression.
        var span = samples.Max(s => s.At) - samples.Min(s => s.At);
        var isSeasonal = span >= SeasonalCoverage;
        double[] timeOfDay, reference;
        if (isSeasonal)
        {
            var sorted = points.OrderBy(p => TimeOfDaySeconds(p.At, timeZone)).ToArray();
            timeOfDay = sorted.Select(p => TimeOfDaySeconds(p.At, timeZone)).ToArray();
            var sortedTimes = timeOfDay;
            var logs = sorted.Select(p => p.Log).ToArray();
            reference = SmoothCircular(timeOfDay, logs, options.SmoothingHalfWidth.TotalSeconds);
            var residuals = logs.Select((l, i) => l - reference[i]).ToArray();
            var scale = Math.Max(options.NoiseFloor, RobustStatistics.MadToSigma * RobustStatistics.Mad(residuals));
            // Samples at the same time of day (one per day of the baseline) share one window, so one reference each is enough.
            (timeOfDay, reference) = DistinctTimes(timeOfDay, reference);
            var weekly = span >= WeeklyCoverage;
            var error = SeasonalReferenceError(points, options.SmoothingHalfWidth, weekly);
            var window = weekly
                ? Weekly(kind, points, timeOfDay, reference, scale, error, options, referenceUntil, timeZone)
                : new BaselineWindow(kind, points.Length, true, timeOfDay, reference, scale, 0, 0) { ReferenceError = error };
            window.Days = Math.Max(1, (int)Math.Round(span / TimeSpan.FromDays(1)));
            var counts = sorted.Select(p => p.Requests).ToArray();
            (window._countScale, window._medianRequests) = CountScale(counts, residuals);
            window._noiseLaw = window._countScale > 0 ? CountNoiseLaw.Fit([.. counts.Select(n => n!.Value)], residuals, options.NoiseFloor * options.NoiseFloor) : null;
            window._load = window._countScale > 0 && kind is MetricKind.Latency or MetricKind.CostPerRequest
                ? LoadAdjustment.Fit(points, timeZone, options.FalseAlarmRatePerWatch)
                : null;
            if (window._load is null)
            {
                window._countLogs = [];
            }
            else
            {
                var countReference = SmoothCircular(sortedTimes, [.. counts.Select(n => Math.Log(n!.Value))], options.SmoothingHalfWidth.TotalSeconds);
                window._countReference = DistinctTimes(sortedTimes, countReference).Reference;
            }

            return window;
        }

        var allLogs = points.Select(p => p.Log).ToArray();
        var median = RobustStatistics.Median(allLogs);
        var spread = RobustStatistics.MadToSigma * RobustStatistics.Mad(allLogs);
        var flatScale = Math.Max(options.NoiseFloor, spread);
        var noise = NoiseDistribution.From(allLogs.Select(l => l - median).ToArray(), flatScale, spread);
        return new BaselineWindow(kind, points.Length, false, [0], [median], flatScale, 0, 0, noise)
        {
            ReferenceError = new ReferenceError(1.0 / points.Length, null),
        };
    }

    /// <summary>
    /// A baseline of about a week: an interval is compared with the same time one week earlier (the median of the log
    /// values within ±<see cref="DetectorOptions.SmoothingHalfWidth"/> of it), so a Monday is compared with the Monday
    /// before, not with a Sunday. This is the seasonal-naive forecast with a weekly period (Hyndman, R. J. and
    /// Athanasopoulos, G. 2021, "Forecasting: Principles and Practice", 3rd ed., OTexts, section 5.2), made robust by the
    /// median like the daily reference. The noise scale stays the minute-to-minute one of the daily reference: a scale
    /// from each sample's log-ratio to the same time the day before was measured (tests/RolloutGate.Benchmarks/README.md)
    /// and changed nothing.
    /// </summary>
    private static BaselineWindow Weekly(
        MetricKind kind, (DateTimeOffset At, double Log, long? Requests)[] points, double[] timeOfDay, double[] dailyReference, double scale, ReferenceError error, DetectorOptions options,
        DateTimeOffset? referenceUntil, TimeZoneInfo? timeZone)
    {
        // A reference at t reads the samples within ±half-width of t − 1 week; none later than that is ever needed.
        var reach = referenceUntil is not { } until ? DateTimeOffset.MaxValue
            : timeZone is null ? until - Week + options.SmoothingHalfWidth
            : LatestWeekBefore(until, timeZone) + options.SmoothingHalfWidth;
        var ordered = points.Where(p => p.At <= reach).ToArray(); // From hands the points over in time order
        return new BaselineWindow(kind, points.Length, true, timeOfDay, dailyReference, scale, 0, 0)
        {
            IsWeekly = true,
            ReferenceError = error,
            _seconds = ordered.Select(p => Seconds(p.At)).ToArray(),
            _logs = ordered.Select(p => p.Log).ToArray(),
            // The count's, for a load adjustment (Reduce drops them when there is none).
            _countLogs = ordered.Select(p => p.Requests is { } n ? Math.Log(n) : double.NaN).ToArray(),
            _halfWidthSeconds = options.SmoothingHalfWidth.TotalSeconds,
        };
    }

    /// <summary>
    /// The error of a seasonal reference (see <see cref="ReferenceError"/>): the median of the w samples in a window of
    /// 2 × half-width (plus one sample's step) has variance (π/2)/w in noise units, and the window spans W looks of a watch
    /// that evaluates once per sample step. A daily reference pools the window of every day of the baseline (w grows with
    /// the days); a weekly one reads one week's. <paramref name="points"/> are in time order.
    /// </summary>
    private static ReferenceError SeasonalReferenceError((DateTimeOffset At, double Log, long? Requests)[] points, TimeSpan halfWidth, bool weekly)
    {
        var times = points.Select(p => Seconds(p.At)).ToArray();
        var gaps = times.Zip(times.Skip(1), (a, b) => b - a).Where(g => g > 0).ToArray();
        var step = gaps.Length == 0 ? halfWidth.TotalSeconds : RobustStatistics.Median(gaps);
        var window = 2 * halfWidth.TotalSeconds + step;
        var covered = times[^1] - times[0] + step;
        var perWindow = points.Length * window / (weekly ? covered : Day.TotalSeconds);
        return new ReferenceError(Math.PI / 2 / Math.Max(1, perWindow), Math.Max(1, (int)Math.Round(window / step)));
    }

    /// <summary>
    /// The noise scale at the baseline's median request count ñ, 1.4826 × the MAD of the log residuals each brought to ñ
    /// requests (times √(n / ñ), see <see cref="LogNoiseScaleFor"/>), and ñ; (0, 0) unless every sample has a count.
    /// </summary>
    private static (double Scale, double MedianRequests) CountScale(long?[] requests, double[] residuals)
    {
        if (requests.Length == 0 || requests.Any(n => n is not > 0))
        {
            return (0, 0);
        }

        var median = RobustStatistics.Median(requests.Select(n => (double)n!.Value));
        var brought = residuals.Select((r, i) => r * Math.Sqrt(requests[i]!.Value / median)).ToArray();
        return (RobustStatistics.MadToSigma * RobustStatistics.Mad(brought), median);
    }

    /// <summary>The first of each run of equal times (sorted) with its reference; the references of equal times are equal.</summary>
    private static (double[] TimeOfDay, double[] Reference) DistinctTimes(double[] timeOfDay, double[] reference)
    {
        var keep = Enumerable.Range(0, timeOfDay.Length).Where(i => i == 0 || timeOfDay[i] != timeOfDay[i - 1]).ToArray();
        return keep.Length == timeOfDay.Length ? (timeOfDay, reference) : (keep.Select(i => timeOfDay[i]).ToArray(), keep.Select(i => reference[i]).ToArray());
    }

    /// <summary>How many values the reduced baseline keeps in memory (its arrays' lengths together).</summary>
    internal int RetainedValues =>
        _timeOfDaySeconds.Length + _logReference.Length + _seconds.Length + _logs.Length + _countReference.Length + _countLogs.Length
        + _expectedTimeOfDay.Length + _expectedDaily.Length + _expectedSeconds.Length + _expectedLogs.Length + (_noise?.RetainedValues ?? 0);

    /// <summary>
    /// A log residual (log value minus <see cref="LogReferenceAt"/>, less any allowance) in noise units, nondecreasing in
    /// it: the normal score in the baseline's distribution against the flat reference, the residual over
    /// <see cref="LogNoiseScaleFor"/> the interval's <paramref name="requests"/> against a seasonal one (see the class summary).
    /// </summary>
    public double StandardScore(double logResidual, long? requests) => _noise?.Score(logResidual) ?? logResidual / LogNoiseScaleFor(requests);

    /// <summary>
    /// The noise scale of an interval of <paramref name="requests"/> requests against a seasonal reference:
    /// <see cref="LogNoiseScale"/>, or more for an interval of fewer requests than the baseline's median ñ.
    /// <para>
    /// A latency quantile, a cost per request, a request rate are statistics of the interval's n requests, whose noise
    /// shrinks like 1/√n: the log of a quantile of n requests has variance c/n (the asymptotic variance of a sample
    /// quantile), a fixed cost spread over n requests has the relative variance 1/n of their Poisson count, and so has the
    /// count itself; noise that does not depend on n (the service's own) adds σ₀². So the variance at n requests is
    /// σ²(n) = σ₀² + c/n with σ₀², c ≥ 0, and for n ≤ ñ, σ²(n) ≤ (ñ / n) σ²(ñ) whatever σ₀² and c are. One noise scale for
    /// the whole baseline is a scale near ñ: by day (more requests) it over-states the noise, which costs power only, but
    /// at night, with a tenth of the day's requests, the noise of a p95 or of a cost per request is up to three times as
    /// large, and one scale made a watch held exactly at the allowed increase roll back in up to 57% of seeded 24-hour
    /// watches (tests/RolloutGate.Benchmarks/README.md, "Noise that follows the day"). The scale at ñ is estimated from the
    /// residuals brought to ñ requests (r √(n / ñ), whose variance is σ²(ñ) under the pure 1/n law and at most that for
    /// n ≤ ñ otherwise), and the scale of an interval of n requests is that times √(ñ / n), never below
    /// <see cref="LogNoiseScale"/>. Without counts (in the baseline or in the interval) it is <see cref="LogNoiseScale"/>.
    /// </para>
    /// <para>
    /// That rule holds whatever σ₀² and c are, but where the noise does not depend on n (σ₀ only) it overstates the noise
    /// of an interval of fewer requests by up to √(ñ / n): power lost at night. So σ₀² and c are also fitted apart from the
    /// baseline's residuals and their counts (<see cref="CountNoiseLaw"/>), and where the upper 99% confidence bound of the
    /// fitted σ₀² + c/n is below the rule's variance, the scale is the bound's root, never below
    /// <see cref="LogNoiseScale"/>: the rule is what σ₀² ≥ 0 allows, the floor what c ≥ 0 does. Counts that do not
    /// spread enough to tell the two terms apart give a wide bound, and the rule stays. Measured
    /// (tests/RolloutGate.Benchmarks/README.md, "Noise that follows the day"): a night deploy's +25% of a p95 whose noise
    /// does not depend on the count is caught at a median 4 minutes instead of 6–7, as by day, with every shape's healthy
    /// and at-the-limit false rollbacks the same as with the rule alone.
    /// </para>
    /// <para>
    /// With a load adjustment (<see cref="LoadShiftAt"/>) the residual is r − β̂ u, and u carries the interval's count's
    /// Poisson noise, of variance 1/n: the scale adds β̂²/n to the variance (for a cost per request, whose own noise
    /// shares the count's, the adjustment takes noise out rather than in, so this overstates it). The count's reference is
    /// a median of the same windows as the metric's, of the same relative error (π/2)/w, so the reference's error in units
    /// of this scale is still <see cref="ReferenceError"/>'s.
    /// </para>
    /// </summary>
    public double LogNoiseScaleFor(long? requests)
    {
        if (_countScale <= 0 || requests is not { } n || n <= 0)
        {
            return LogNoiseScale;
        }

        var anyLaw = _countScale * Math.Sqrt(_medianRequests / n);
        var fitted = _noiseLaw is { } law ? Math.Sqrt(Math.Max(0, law.UpperVariance(n))) : double.PositiveInfinity;
        var scale = Math.Max(LogNoiseScale, Math.Min(anyLaw, fitted));
        return _load is { } load ? Math.Sqrt(scale * scale + load.Elasticity * load.Elasticity / n) : scale;
    }

    /// <summary>Whether the baseline adjusts latency or cost per request for the interval's load (<see cref="LoadShiftAt"/>).</summary>
    public bool AdjustsForLoad => _load is not null;

    /// <summary>
    /// The load adjustment of an interval ending at <paramref name="at"/> with <paramref name="requests"/> requests (see
    /// <see cref="LoadAdjustment"/>): its load against the count's own seasonal reference, the same time yesterday or last
    /// week (u = ln n − ln n_ref), what the reference's log moves by for it (β̂ u_c, u_c = u credited only towards the load
    /// the hours before the deploy led to expect, within the baseline's own swings) and the margin for β̂'s error; null without an adjustment or without a count. A latency or a cost per
    /// request over a baseline of at least <see cref="LoadAdjustment.MinDays"/> days of day-over-day pairs with counts
    /// whose swings of load determine β̂; none for a request rate (its count is the metric), an error rate, a baseline
    /// shorter than that or one without such swings: those are judged exactly as without it.
    /// </summary>
    public LoadShift? LoadShiftAt(DateTimeOffset at, long? requests)
    {
        if (_load is not { } load || requests is not { } n || n <= 0)
        {
            return null;
        }

        var reference = SeasonalAt(at, _countReference, _countLogs);
        var u = Math.Log(n) - reference;
        // The load the hours before the deploy lead to expect, against the same reference: the day as it was going (its
        // offset from the baseline's typical day), plus how far this reference (last week's, say) is from the typical day.
        var expected = load.Before + DailyAt(at, _countReference) - reference;
        var applied = load.Credited(u, expected);
        return new LoadShift(u, applied, load.Elasticity, load.Elasticity * applied, load.Margin(applied), load.Range, expected);
    }

    /// <summary>
    /// The load the deploy found (<see cref="LoadAdjustment.Before"/>): the median, over the baseline's last
    /// <see cref="LoadAdjustment.BeforeWindow"/>, of the count's log against its daily reference (the baseline's days
    /// pooled at that time of day), read on the runbook's clock.
    /// </summary>
    private double LoadBefore(IReadOnlyList<Observation> samples, DetectorOptions options)
    {
        // The samples the reduction kept, each with a count (a load adjustment is fitted only when every one has one).
        var counted = samples.Where(s => IsUsable(s, options)).ToList();
        var end = counted.Max(s => s.At);
        return RobustStatistics.Median(counted
            .Where(s => s.At > end - LoadAdjustment.BeforeWindow)
            .Select(s => Math.Log(s.Requests!.Value) - DailyAt(s.At, _countReference)));
    }

    /// <summary>Whether a continuous metric's sample is one the baseline is reduced from: a value, and enough requests when counted.</summary>
    private static bool IsUsable(Observation sample, DetectorOptions options) =>
        sample.Value is > 0 && (sample.Requests is null || sample.Requests >= options.MinRequests);

    /// <summary>Whether <see cref="LogReferenceAt"/> is the same time one week earlier for an interval ending at <paramref name="at"/>.</summary>
    public bool IsWeekBeforeAt(DateTimeOffset at) => LogWeekBefore(at, _logs) is not null;

    /// <summary>
    /// The weekly reference at <paramref name="at"/>: the median of <paramref name="logs"/> (the metric's, or for a load
    /// adjustment the count's, beside the baseline's times) within ±half-width of the same time
    /// one week earlier; null when the baseline is not weekly, has no sample there, or that window begins before the
    /// baseline does. With a baseline of exactly a week, the window of the watch's first half hour does: its median would
    /// stand on the later half of the window only, biased towards the later time of day, with up to twice the error counted
    /// for it (<see cref="ReferenceError"/>), and a cost per request held at the allowed increase alarmed in 12% of seeded
    /// watches, nearly all in that half hour (tests/RolloutGate.Benchmarks/README.md, "Noise that follows the day").
    /// Those intervals take the daily reference, whose windows, pooled over the baseline's days, are whole.
    /// </summary>
    private double? LogWeekBefore(DateTimeOffset at, double[] logs)
    {
        if (!IsWeekly || _seconds.Length == 0)
        {
            return null;
        }

        var centre = WeekBefore(at, TimeZone);
        return centre - _halfWidthSeconds >= _seconds[0] - 1e-6 ? WindowMedian(_seconds, logs, centre, _halfWidthSeconds) : null;
    }

    /// <summary>The median of the logs whose time lies within ±<paramref name="halfWidth"/> seconds of <paramref name="center"/>; null when none does.</summary>
    private static double? WindowMedian(double[] seconds, double[] logs, double center, double halfWidth)
    {
        var from = LowerBound(seconds, center - halfWidth);
        var to = LowerBound(seconds, center + halfWidth + 1e-6);
        return to > from ? RobustStatistics.Median(logs.AsSpan(from, to - from).ToArray().AsSpan()) : null;
    }

    private static int LowerBound(double[] sorted, double value)
    {
        var index = Array.BinarySearch(sorted, value);
        if (index < 0)
        {
            return ~index;
        }

        while (index > 0 && sorted[index - 1] == value)
        {
            index--;
        }

        return index;
    }

    private static double Seconds(DateTimeOffset at) => at.ToUnixTimeMilliseconds() / 1000.0;

    /// <summary>
    /// The centre of the weekly reference for an interval ending at <paramref name="at"/>, in seconds since the Unix epoch:
    /// one week earlier, in UTC exactly 168 hours; on the clock of <paramref name="zone"/> the instant that clock showed
    /// the same local time seven days before, 167 or 169 hours earlier across a daylight-saving change. A local time the
    /// clocks skipped that day (spring forward) is the instant they jumped over it: the ±half-width window around it
    /// then holds the local times just before and just after the gap, the nearest to the one asked for on either side. A
    /// local time they showed twice (fall back) is the first of the two: either is that time on the users' clock, and a
    /// freeze window's start is resolved the same way (<see cref="Checks.FreezeCalendar"/>).
    /// </summary>
    private static double WeekBefore(DateTimeOffset at, TimeZoneInfo? zone) => zone is null
        ? Seconds(at) - Week.TotalSeconds
        : Seconds(Checks.FreezeCalendar.ResolveStart(TimeZoneInfo.ConvertTime(at, zone).DateTime.AddDays(-7), zone));

    /// <summary>
    /// The latest instant a weekly reference in <paramref name="zone"/> asked for up to <paramref name="until"/> centres
    /// on. The local time a week back rises with the local time asked for, and no interval before <paramref name="until"/>
    /// shows a later local time than <paramref name="until"/> plus the largest UTC offset of its last day (clocks go back
    /// by less than a day): the week before that local time bounds them all.
    /// </summary>
    private static DateTimeOffset LatestWeekBefore(DateTimeOffset until, TimeZoneInfo zone)
    {
        var largest = Enumerable.Range(0, 25).Max(hours => zone.GetUtcOffset(until.AddHours(-hours)));
        var local = DateTime.SpecifyKind(until.UtcDateTime + largest, DateTimeKind.Unspecified);
        return Checks.FreezeCalendar.ResolveStart(local.AddDays(-7), zone);
    }

    /// <summary>
    /// The dispersion the error tests divide by: the larger of the Pearson estimate over the baseline's intervals and over
    /// batches of about √k consecutive intervals, floored at 1 (fewer errors than chance would give is not credited).
    /// <para>
    /// The Pearson estimate φ = Σ (e_i − n_i p)² / (n_i p (1 − p)) / (k − 1) (McCullagh and Nelder 1989, section 4.5.2)
    /// sees how lumpy one interval's count is, not that a burst lasts several intervals. The tests sum their increments
    /// over many intervals, and the variance of a sum of correlated counts is the long-run variance, larger than k times
    /// one interval's. The same estimate over batch sums is the batch-means estimate of that long-run variance, consistent
    /// with batches of √k (Flegal, J. M. and Jones, G. L. 2010, "Batch means and spectral variance estimators in Markov
    /// chain Monte Carlo", Ann. Statist. 38:1034–1070). Measured: bursts of three 1-minute intervals at 25 times the usual
    /// rate rolled back 7–10% of healthy 24-hour watches with the per-interval φ alone (23–36% where traffic follows the
    /// day), none with the larger of the two. It also takes in a rate that drifts along the day, which the tests, comparing
    /// every interval with the day's average rate, would otherwise read as evidence.
    /// </para>
    /// </summary>
    private static double PearsonDispersion(IReadOnlyList<(long Requests, long Errors)> intervals, double rate)
    {
        var batch = (int)Math.Sqrt(intervals.Count);
        var batches = Enumerable.Range(0, intervals.Count / Math.Max(1, batch))
            .Select(b => Enumerable.Range(b * batch, batch).Aggregate((Requests: 0L, Errors: 0L),
                (sum, i) => (sum.Requests + intervals[i].Requests, sum.Errors + intervals[i].Errors)))
            .ToArray();
        return Math.Max(1, Math.Max(Pearson(intervals, rate), batch > 1 ? Pearson(batches, rate) : 1));
    }

    /// <summary>Σ (e − n p)² / (n p (1 − p)) / (k − 1) over <paramref name="counts"/>; 1 with fewer than two.</summary>
    private static double Pearson(IReadOnlyList<(long Requests, long Errors)> counts, double rate) =>
        counts.Count < 2 ? 1
            : counts.Sum(c => (c.Errors - c.Requests * rate) * (c.Errors - c.Requests * rate) / (c.Requests * rate * (1 - rate))) / (counts.Count - 1);

    /// <summary>The log of the reference value for an interval ending at <paramref name="at"/>.</summary>
    public double LogReferenceAt(DateTimeOffset at) => IsSeasonal ? SeasonalAt(at, _logReference, _logs) : _logReference[0];

    /// <summary>
    /// The seasonal reference at <paramref name="at"/> of the values whose daily reference is <paramref name="daily"/>
    /// (beside <c>_timeOfDaySeconds</c>) and whose weekly samples are <paramref name="weekly"/> (beside <c>_seconds</c>):
    /// the metric's log, or the count's for a load adjustment.
    /// </summary>
    private double SeasonalAt(DateTimeOffset at, double[] daily, double[] weekly)
    {
        // Weekly: the same time one week earlier; where the baseline cannot give it, the daily reference.
        return LogWeekBefore(at, weekly) ?? DailyAt(at, daily);
    }

    /// <summary>The daily reference at <paramref name="at"/> of the values whose reference by time of day is <paramref name="daily"/>.</summary>
    private double DailyAt(DateTimeOffset at, double[] daily) => DailyAt(at, _timeOfDaySeconds, daily);

    /// <summary>The value of <paramref name="daily"/> (beside the sorted times of day <paramref name="timeOfDay"/>) nearest to <paramref name="at"/>'s time of day.</summary>
    private double DailyAt(DateTimeOffset at, double[] timeOfDay, double[] daily)
    {
        // Nearest baseline sample by time of day, going round midnight.
        var tod = TimeOfDaySeconds(at, TimeZone);
        var index = Array.BinarySearch(timeOfDay, tod);
        if (index >= 0)
        {
            return daily[index];
        }

        var above = ~index;
        var below = above - 1;
        var n = timeOfDay.Length;
        var aboveIndex = above % n;
        var belowIndex = (below + n) % n;
        var distanceAbove = CircularDistance(tod, timeOfDay[aboveIndex]);
        var distanceBelow = CircularDistance(tod, timeOfDay[belowIndex]);
        return distanceAbove < distanceBelow ? daily[aboveIndex] : daily[belowIndex];
    }

    /// <summary>Seconds since midnight on the clock of <paramref name="zone"/>, or in UTC without one.</summary>
    private static double TimeOfDaySeconds(DateTimeOffset at, TimeZoneInfo? zone) =>
        (zone is null ? at.UtcDateTime : TimeZoneInfo.ConvertTime(at, zone).DateTime).TimeOfDay.TotalSeconds;

    private static double CircularDistance(double a, double b)
    {
        var d = Math.Abs(a - b);
        return Math.Min(d, Day.TotalSeconds - d);
    }

    /// <summary>
    /// The rolling median of <paramref name="logs"/> over ±<paramref name="halfWidth"/> seconds of time of day, going
    /// round midnight; <paramref name="timeOfDay"/> is sorted. The window of sample i is a run of neighbours on the circle
    /// (indices <c>from</c> to <c>to</c>, unwrapped), and both ends only move forward as i does, so the window's values are
    /// kept sorted and updated by insertion and removal instead of being collected and sorted again for every sample: a
    /// week at 1-minute steps (10,080 windows of about 420 values) costs milliseconds, not a pass over every pair.
    /// </summary>
    internal static double[] SmoothCircular(double[] timeOfDay, double[] logs, double halfWidth)
    {
        var n = timeOfDay.Length;
        var smoothed = new double[n];
        var window = new List<double>(n);
        var from = 0;
        var to = -1;
        for (var i = 0; i < n; i++)
        {
            // The window's start: the first index, going back from i, still within reach, never before i - (n - 1) (that
            // would be a sample a second time). It only moves forward from one sample to the next.
            if (i == 0)
            {
                while (from > 1 - n && CircularDistance(timeOfDay[0], timeOfDay[Wrap(from - 1, n)]) <= halfWidth)
                {
                    from--;
                }
            }

            while (from < i && (from < i - (n - 1) || CircularDistance(timeOfDay[i], timeOfDay[Wrap(from, n)]) > halfWidth))
            {
                Remove(window, logs[Wrap(from, n)]);
                from++;
            }

            // Its end: the last index within reach going forward, at most n values in all.
            if (to < i)
            {
                to = i - 1;
            }

            while (to + 1 < from + n && CircularDistance(timeOfDay[i], timeOfDay[Wrap(to + 1, n)]) <= halfWidth)
            {
                to++;
                Insert(window, logs[Wrap(to, n)]);
            }

            if (i == 0)
            {
                for (var k = from; k < 0; k++)
                {
                    Insert(window, logs[Wrap(k, n)]);
                }
            }

            var count = window.Count;
            smoothed[i] = count % 2 == 1 ? window[count / 2] : (window[count / 2 - 1] + window[count / 2]) / 2;
        }

        return smoothed;
    }

    private static int Wrap(int index, int n) => ((index % n) + n) % n;

    private static void Insert(List<double> sorted, double value)
    {
        var at = sorted.BinarySearch(value);
        sorted.Insert(at < 0 ? ~at : at, value);
    }

    private static void Remove(List<double> sorted, double value) => sorted.RemoveAt(sorted.BinarySearch(value));
}
