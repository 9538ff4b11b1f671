using System.Globalization;
using RolloutGate.Core.Runbooks;
using static RolloutGate.Core.Analysis.MetricValues;

namespace RolloutGate.Core.Analysis;

/// <summary>
/// Decides, one interval at a time, whether a deploy made a metric worse than its runbook allows.
/// <para>
/// <b>Method.</b> Two kinds of sequential test run side by side on the same evidence, one per kind of regression, and
/// the watch alarms when any passes its threshold. The false-alarm budget alpha (1% of watches) is split between them
/// (union bound), so the watch may look at every interval for 24 hours without false alarms piling up. A fixed-level
/// test repeated at every interval (the naive approach) has no such bound: its false alarms grow with the number of looks.
/// <list type="bullet">
/// <item><description>
/// <b>Evidence since the deploy</b> (half the budget). Most regressions start with the deploy, a change point known in
/// advance, so all the evidence since then can be weighed together: a sequential probability ratio test (Wald, A. 1945,
/// "Sequential tests of statistical hypotheses", Ann. Math. Statist. 16:117–186) without a lower stopping boundary,
/// whose likelihood ratio is a martingale under the null hypothesis. By Ville's inequality (Ville, J. 1939, "Étude
/// critique de la notion de collectif", Gauthier-Villars) it ever reaches 2 / alpha with probability at most alpha / 2,
/// so its threshold ln(2 / alpha) ≈ 5.3 does not grow with the number of looks. For continuous metrics the size of the
/// shift is unknown, so the likelihood ratio is averaged over shifts beyond the limit (a half-normal mixture of one
/// noise unit's scale: the mixture SPRT of Robbins, H. 1970, "Statistical methods related to the law of the iterated
/// logarithm", Ann. Math. Statist. 41:1397–1409, as used for always-valid A/B tests by Johari, R., Koomen, P., Pekelis, L.
/// and Walsh, D. 2022, "Always valid inference: continuous monitoring of A/B tests", Operations Research 70:1806–1821).
/// It may alarm only after <see cref="DetectorOptions.MinLooksSinceDeploy"/> intervals.
/// </description></item>
/// <item><description>
/// <b>A regression that starts later</b> (a leak, a cache that cools, traffic that shifts), after hours of health
/// that the evidence since the deploy would weigh against it: a one-sided CUSUM (Page, E. S. 1954, "Continuous
/// inspection schemes", Biometrika 41:100–115) of the same log-likelihood-ratio increments, which forgets the healthy
/// past. Lorden (1971, "Procedures for reacting to a change in distribution", Ann. Math. Statist. 42:1897–1908) bounds
/// its average run length to a false alarm below by e^h, so with the other half of the budget a chart's threshold is
/// h = ln(2 · looks / alpha), or ln(4 · looks / alpha) each where two charts share it.
/// </description></item>
/// </list>
/// Both bounds hold as long as the model holds (independent noise around a correct reference); real traces break it
/// when the level drifts from one day to the next, and tests/RolloutGate.Benchmarks/README.md measures by how much.
/// </para>
/// <para>
/// <b>The reference's own error.</b> The reference is estimated from the baseline, so every interval's z carries its
/// error (<see cref="BaselineWindow.ReferenceError"/>): the flat reference's, of variance κ = 1/m for m samples, shared by
/// every look; a seasonal reference's, the median of the w samples in its ±30-minute window, of variance κ = (π/2)/w,
/// shared in part by the looks whose windows overlap. Summed over a long watch that error grows like a real shift
/// (unaccounted for, 8 of 100 simulated days held exactly at the limit against a fresh baseline day rang falsely). The
/// evidence since the deploy therefore uses the likelihood of the sum S under its variance n·f, with
/// f = 1 + <see cref="ReferenceError.OfSum"/>(n) / n (1 + nκ when shared, under which S is sufficient and this is the
/// exact likelihood ratio, so still a martingale; for overlapping windows the Gaussian approximation of S's law), and its
/// evidence stops growing once the watch has outweighed the baseline. The CUSUM charts forget the past. A shared error
/// they cannot tell from an old shift, so they count each z beyond the margin Φ⁻¹(1 − alpha/4) √κ that it exceeds with
/// probability at most alpha/4, taken from their half of the budget (<see cref="DetectorOptions.ReferenceErrorMargin"/>);
/// an error that changes along the day they average out by dividing each increment by the long-run variance 1 + κW
/// (W the windows' width in looks), which keeps Lorden's e^h bound in the Brownian approximation. The gap between days
/// (Monday against Sunday) is not in it: that is what the weekly reference is for.
/// </para>
/// <para>
/// <b>Latency, cost per request, request rate.</b> Each interval's log value minus the seasonal reference at the same
/// time of day (<see cref="BaselineWindow"/>) is a log-ratio r. The null hypothesis is "no worse than allowed",
/// r ≤ ln(1 + maxIncrease); the alternative the CUSUM is tuned to is one noise unit beyond it. With the standardized
/// excess z (<see cref="BaselineWindow.StandardScore"/> of r − ln(1 + maxIncrease): that excess over the noise scale σ
/// against a seasonal reference; against the flat reference its normal score in the baseline's own distribution, which is
/// standard normal under the null hypothesis whatever the noise's shape, see <see cref="NoiseDistribution"/>), the Gaussian
/// log-likelihood ratio of that pair of hypotheses is δ·z − δ²/2 with δ = 1. Working on logs makes a relative limit
/// additive and tames the long right tail of latencies. Request rate is mirrored: a drop is the regression; so is a
/// custom query's whose runbook says <c>worse: lower</c> (orders per minute, a cache hit ratio).
/// z is clipped to [−a, 5] with a = <see cref="DetectorOptions.LowerClipSigmas"/> (2): above at 5 so a lone spike cannot
/// decide, and below at 2 so that a low outlier (the dips of a quantised CPU series, where a sample at half the level is
/// −30 noise units) cannot cancel several intervals of evidence of an increase. Where a drop is the regression the clip
/// applies to the mirrored score alike: a drop to nothing counts at most 5, a burst of traffic or orders at most −2.
/// Clipped on one side only, the score is no longer centred, so its mean under standard normal noise,
/// m(a) = φ(a) − aΦ(−a) (0.0085 at a = 2, <see cref="DetectorOptions.LowerClipOffset"/>), is subtracted. The score
/// clip(z) − m is a nondecreasing 1-Lipschitz function of z, so under the null hypothesis (z = μ + ε with μ ≤ 0 and ε
/// standard normal) it has mean at most 0 and E exp(λ(clip(z) − m)) ≤ exp(λ²/2) for every λ ≥ 0 (the Gaussian
/// concentration inequality for Lipschitz functions of
/// Tsirelson, B. S., Ibragimov, I. A. and Sudakov, V. N. 1976, "Norms of Gaussian sample functions", Lecture Notes in
/// Math. 550:20–41; Boucheron, S., Lugosi, G. and Massart, P. 2013, "Concentration Inequalities", Oxford University
/// Press, Theorem 5.5): every increment δ(clip(z) − m) − δ²/2 has E exp ≤ 1, so the mixture and the CUSUMs keep the
/// bounds above. Against a small shift the clipped score drifts Φ(a) times as fast as z, so a = 2 keeps Φ(2)² ≈ 95% of
/// the unclipped score's efficiency at normal noise, the convention behind Huber's k = 1.345 (Huber, P. J. 1964, "Robust
/// estimation of a location parameter", Ann. Math. Statist. 35:73–101). The price: a healthy interval counts at most
/// −2, so two wild intervals right after the deploy and a healthy third (+5 +5 −2) pass the threshold at the third;
/// the minimum of three intervals now stops one wild interval, not two.
/// A CUSUM is quickest for the shift it is tuned to; a regression of half a noise unit beyond the limit barely moves a
/// δ = 1 chart. So a second chart tuned to δ/2 runs beside it (the multi-chart CUSUM: Lorden, G. and Pollak, M. 2005,
/// "Nonanticipating estimation applied to sequential analysis and changepoint detection", Ann. Statist. 33:1422–1454;
/// Tartakovsky, A., Nikiforov, I. and Basseville, M. 2014, "Sequential Analysis", CRC Press, section 8.2.5), the two
/// sharing the CUSUM's half of the budget. The evidence since the deploy is the sum S of the n excesses z; averaged
/// over shifts δ ~ half-normal(0, 1), the likelihood ratio exp(δa − bδ²/2), with a = S / (1 + nκ) and b = n / (1 + nκ)
/// (a = S and b = n without a reference error), becomes 2 (1 + b)^(−1/2) exp(a² / (2 (1 + b))) Φ(a / √(1 + b)).
/// </para>
/// <para>
/// <b>The load.</b> A seasonal reference is another day's level at that time, not at that load: on a public holiday at
/// half the traffic a cost per request that spreads a fixed cost over the requests rises, and a week later (or the day
/// after, with a day's baseline) a latency that rises with load reads as a regression against the holiday. Where the
/// baseline holds days whose load swings (weekends) and a latency or cost per request follows them clearly, the
/// reference is adjusted for the interval's load (covariate adjustment by its request count: <see cref="LoadAdjustment"/>,
/// <see cref="BaselineWindow.LoadShiftAt"/>): r is taken against the reference moved by β̂ u, u the interval's log count
/// against the count's own seasonal reference, credited only towards the load the hours before the deploy led to expect
/// (a change of traffic that came with the deploy may be its own doing) and within the baseline's own swings, and beyond the margin
/// q · SE · |u| for β̂'s own error; one β̂ serves every interval, so that margin, like a flat reference's, is paid from the
/// CUSUMs' half of the budget (<see cref="DetectorOptions.CusumThreshold"/> with the margin's share). The explanation
/// says by how much the traffic and the reference moved. Without counts, with fewer than three days of baseline (a
/// <c>24h</c> baseline), or with load that did not swing, nothing is adjusted and every interval is judged as without it.
/// </para>
/// <para>
/// <b>Error rate.</b> A binomial likelihood ratio on the counts (errors e of n requests): the null rate p0 is the baseline
/// rate times (1 + maxIncrease), and an alternative rate p1 gives e·ln(p1/p0) + (n − e)·ln((1 − p1)/(1 − p0)) per
/// interval. The two CUSUM charts take p1 = 2 p0 and 1.5 p0 (as the continuous charts take the design shift and half of
/// it); the evidence since the deploy counts the errors and requests since the deploy and averages the likelihood ratios
/// of several alternatives, from 1.25 p0 to 10 p0 (<see cref="ErrorAlternatives"/>). A ratio alone would treat 1 error
/// in 10 requests like 100 in 1000.
/// Errors come in bursts, often lasting several intervals, so the increment is divided by the baseline's quasi-binomial
/// dispersion φ, per interval or over runs of intervals, whichever is larger (<see cref="BaselineWindow.Dispersion"/>):
/// a quasi-likelihood is worth 1/φ of a binomial one (McCullagh, P. and
/// Nelder, J. A. 1989, "Generalized Linear Models", 2nd ed., Chapman and Hall, sections 4.5 and 9.2).
/// </para>
/// <para>
/// <b>Absolute max.</b> For every kind, a request rate's too (a surge, a retry storm, is over its max; a drop is
/// what its relative limit watches for). Breached when the value stays above <c>max</c> for
/// <see cref="DetectorOptions.MaxBreachIntervals"/> consecutive intervals, so one spike does not roll back a deploy.
/// It needs no baseline: an interval that cannot be judged against the baseline (too little of it, an error rate
/// without counts) is still judged against the max.
/// </para>
/// <para>
/// <b>Absolute min.</b> The floor, mirroring the max for every kind, whichever way it gets worse (orders per minute that
/// must never fall below 50, a p95 latency near 0 because every request fails fast): breached when the value stays below
/// <c>min</c> for <see cref="DetectorOptions.MaxBreachIntervals"/> consecutive intervals, judged without a baseline
/// as the max is. A request rate's value is its own count, so its limits are judged however few its requests (no traffic
/// at all is 0 req/s, below any floor); the other kinds' need <see cref="DetectorOptions.MinRequests"/> as every verdict
/// does. No value (blind) is not below the floor: it neither counts towards a breach nor ends a run of them, as for the max.
/// </para>
/// <para>
/// <b>No verdict without data.</b> No value is <see cref="Verdict.Blind"/>, never healthy; fewer than
/// <see cref="DetectorOptions.MinRequests"/> requests, or too little baseline, is <see cref="Verdict.InsufficientData"/>.
/// Neither moves any test. A request rate's relative limit is the one exception, below.
/// </para>
/// <para>
/// <b>Traffic lost.</b> The minimum count protects statistics of the requests (a p95 or an error rate of a handful says
/// little), but a request rate's count is the metric itself: a deploy that broke routing leaves 20 requests where the
/// baseline had 3,000, and that low count is the evidence of the drop, not too little of it. So a request rate's interval
/// of fewer than <see cref="DetectorOptions.MinRequests"/> requests is judged against its <c>maxIncrease</c> (with the
/// same test, the same clip and <see cref="DetectorOptions.MinLooksSinceDeploy"/>, so one interval's dip decides
/// nothing: it adds at most 5, and each healthy interval after it takes back up to 2) wherever the baseline expected at
/// least that many at that time (<see cref="BaselineWindow.ExpectedRequestsAt"/>: the median count over the reference's
/// window, quiet intervals included). Where it expected fewer (a small service, its nights, a quiet weekend) the interval
/// stays insufficient data: a quiet night is not a drop, and the reference, which stands on the usable intervals only,
/// would there be borrowed from the nearest busy time of day. Under the null hypothesis the interval's expected count λ
/// is then at least (1 − maxIncrease) · MinRequests, and its log residual is scored at the noise of the count it has
/// (<see cref="BaselineWindow.LogNoiseScaleFor"/>, the baseline's σ₀² + c/n law, whose c/n is a Poisson count's 1/n by
/// the delta method), not of the count expected: the log of a Poisson count has a heavier lower tail than the normal law at
/// 1/λ, and the scale at the smaller observed count makes up for it. At λ = 70 (100 requests against a 30% drop),
/// P(N ≤ 50) = 0.0075 and P(N ≤ 40) = 7.0e-5 against the normal tails 0.0087 and 2.0e-4 of the scores at their own
/// counts (at λ's scale, 0.0024 and 1.4e-6: too small, so too much evidence). An interval without a request has no
/// noise scale of its own: it is scored at the noise of one request, the largest the law gives, and its value, floored
/// at the smallest positive double (<see cref="LogOf"/>), lies so far below the reference that the clip bounds it at 5.
/// A counter series that is gone altogether (new pods that never served a request) is no value at all, blind, and
/// <c>maxBlind</c> decides, not this test. A custom query with <c>worse: lower</c> has no request count, so its value
/// is judged however low, as always.
/// </para>
/// <para>
/// The statistic reported with each evaluation is that of the test nearest its threshold (largest statistic minus
/// threshold), with that threshold; the explanation names the test.
/// </para>
/// </summary>
public static class RegressionDetector
{
    /// <summary>
    /// Evaluates the interval <paramref name="current"/> given the state after the previous one (null at the first interval).
    /// Intervals must come in increasing time order; the returned <see cref="MetricEvaluation.State"/> is the next input.
    /// </summary>
    /// <param name="warmUpUntil">
    /// The end of the runbook's <c>watch.warmup</c> (deploy time plus warm-up), null without one: an interval ending at
    /// or before it is judged against the absolute max only and adds nothing to the tests against the baseline, whose
    /// evidence then counts from the warm-up's end instead of from the deploy.
    /// </param>
    public static MetricEvaluation Evaluate(
        MetricKind kind,
        MetricSpec spec,
        BaselineWindow baseline,
        DetectorState? previous,
        Observation current,
        DetectorOptions? options = null,
        DateTimeOffset? warmUpUntil = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(baseline);
        ArgumentNullException.ThrowIfNull(current);
        options ??= DetectorOptions.Default;
        var state = previous ?? DetectorState.Initial;
        if (state.LastAt is { } last && current.At <= last)
        {
            throw new ArgumentOutOfRangeException(
                nameof(current), $"Interval {current.At:O} is not after the last evaluated interval {last:O}.");
        }

        var context = new Context(kind, spec, options, state with { Evaluations = state.Evaluations + 1, LastAt = current.At })
        {
            ReferenceError = baseline.ReferenceError,
            AdjustsForLoad = baseline.AdjustsForLoad,
            Since = warmUpUntil is null ? "since the deploy" : "since the warm-up",
            WarmsUp = warmUpUntil is not null,
            ErrorNull = kind == MetricKind.ErrorRate && spec.MaxIncrease is { } increase ? ErrorNullRate(baseline, increase) : 0,
            Dispersion = baseline.Dispersion,
        };
        var counts = kind == MetricKind.ErrorRate ? ErrorCounts(current) : null;
        if (current.Value is null && counts is null)
        {
            var blind = context.State with { BlindIntervals = state.BlindIntervals + 1, NoVerdictIntervals = state.NoVerdictIntervals + 1 };
            return context.Result(current, Verdict.Blind, null, null, null, blind,
                $"No data for {spec.Name} at this interval ({Ordinal(blind.BlindIntervals)} in a row); no data is never read as healthy.");
        }

        context = context with { State = context.State with { BlindIntervals = 0 } };
        if (current.Value is { } shown)
        {
            context = context.Apart(shown);
        }

        var requests = counts?.Requests ?? current.Requests;
        if (requests is { } n && n < options.MinRequests && !IsTrafficLost(kind, spec, baseline, current, options))
        {
            if (kind == MetricKind.RequestRate && (spec.Max ?? spec.Min) is not null)
            {
                // A request rate is its count: too few requests to judge it against the baseline, but not against its
                // absolute limits (traffic that stopped is 0 req/s, the floor's very case).
                return context.LimitsOnly(current,
                    $"Only {n} requests in this interval, fewer than the {options.MinRequests} needed to judge {spec.Name} against its baseline");
            }

            return context.Result(current, Verdict.InsufficientData, current.Value, null, null,
                context.State with { NoVerdictIntervals = state.NoVerdictIntervals + 1 },
                $"Only {n} requests in this interval, fewer than the {options.MinRequests} needed for a verdict on {spec.Name}.");
        }

        if (warmUpUntil is { } warm && current.At <= warm)
        {
            return context.LimitsOnly(current,
                $"Warming up: {spec.Name} is compared with its baseline only after the runbook's watch.warmup, which ends at {warm.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)} UTC");
        }

        if (kind == MetricKind.ErrorRate && counts is null)
        {
            return context.LimitsOnly(current,
                $"{spec.Name} came without a request count; an error rate is judged against its baseline on counts, never on the ratio alone");
        }

        if (!baseline.IsUsable(options))
        {
            return context.LimitsOnly(current,
                $"The baseline has {baseline.UsableSamples} usable intervals, fewer than the {options.MinBaselineSamples} needed to judge {spec.Name} against it");
        }

        return kind == MetricKind.ErrorRate
            ? EvaluateCounts(context, baseline, current, counts!.Value)
            : EvaluateContinuous(context, baseline, current, current.Value!.Value);
    }

    /// <summary>
    /// Whether a request rate's interval of fewer than <see cref="DetectorOptions.MinRequests"/> requests is judged
    /// against its relative limit all the same: where the baseline expects at least that many at this time
    /// (<see cref="BaselineWindow.ExpectedRequestsAt"/>), a low count is the evidence of a drop, not too little of it.
    /// </summary>
    private static bool IsTrafficLost(MetricKind kind, MetricSpec spec, BaselineWindow baseline, Observation current, DetectorOptions options) =>
        kind == MetricKind.RequestRate && spec.MaxIncrease is not null && current.Value is not null
        && baseline.ExpectedRequestsAt(current.At) >= options.MinRequests;

    /// <summary>Requests and errors of an error-rate interval; errors derived from the rate when not given.</summary>
    internal static (long Requests, long Errors)? ErrorCounts(Observation observation)
    {
        if (observation.Requests is not { } requests)
        {
            return null;
        }

        if (observation.Errors is { } errors)
        {
            return (requests, Math.Clamp(errors, 0, requests));
        }

        return observation.Value is { } rate
            ? (requests, Math.Clamp((long)Math.Round(rate * requests), 0, requests))
            : null;
    }

    private static MetricEvaluation EvaluateContinuous(Context context, BaselineWindow baseline, Observation current, double value)
    {
        var (kind, spec, options, _) = context;
        var unadjusted = baseline.LogReferenceAt(current.At);
        // The reference adjusted for the interval's load, where the baseline determines how the metric follows it.
        var load = baseline.LoadShiftAt(current.At, current.Requests);
        var logReference = unadjusted + (load?.LogShift ?? 0);
        var reference = Math.Exp(logReference);
        var logRatio = LogOf(value) - logReference;
        double? allowed = null;
        Evidence? evidence = null;
        if (spec.MaxIncrease is { } maxIncrease)
        {
            var lowerIsWorse = kind.LowerIsWorse(spec);
            var logLimit = lowerIsWorse ? Math.Log(Math.Max(1 - maxIncrease, 1e-6)) : Math.Log(1 + maxIncrease);
            allowed = Math.Exp(logReference + logLimit);
            // Beyond the margin for the load elasticity's own error (none without an adjustment), on the side that is worse:
            // below the limit of a drop.
            var margin = load?.LogMargin ?? 0;
            // An interval without a request is scored at the noise of one, the largest the count's law gives (none has no
            // noise scale of its own); its value, 0, is far below any reference (LogOf), and the clip bounds it.
            var score = baseline.StandardScore(logRatio - logLimit + (lowerIsWorse ? margin : -margin), current.Requests is 0 ? 1 : current.Requests);
            var z = Math.Clamp(lowerIsWorse ? -score : score, -options.LowerClipSigmas, options.ClipSigmas) - options.LowerClipOffset;
            var fast = options.DesignShift;
            var slow = options.DesignShift / 2;
            // The CUSUMs forget the past, so the reference's error cannot be weighed against the looks it spans: a shared
            // one is stepped over by a margin, one that changes along the day is averaged out by dividing each increment by
            // the long-run variance (see the class summary).
            var error = context.ReferenceError;
            var charted = error.IsShared ? z - options.ReferenceErrorMargin(error.Variance) : z;
            var longRun = 1 + (error.LongRun ?? 0);
            evidence = new Evidence((fast * charted - fast * fast / 2) / longRun, (slow * charted - slow * slow / 2) / longRun, z);
        }

        // The reference in words: a daily one pools every day of the baseline at that time of day, so "yesterday" only
        // where there is one (with a week's baseline, the first half hour takes it: not yesterday but all seven days).
        var where = baseline.IsWeekBeforeAt(current.At) ? "the same time last week"
            : !baseline.IsSeasonal ? "the baseline median"
            : baseline.Days <= 1 ? "the same time yesterday"
            : $"the same time of day over the baseline's {baseline.Days} days";
        if (baseline.IsSeasonal && baseline.TimeZone is { } zone)
        {
            // The same time on that zone's clock (watch.timezone), not in UTC: said, since across a clock change the two differ.
            where = $"{where} ({zone.Id})";
        }

        // The change with as many decimals as it takes to tell it from the relative limit: not "20% above" and "beyond the
        // allowed 20%" together.
        var change = (value / Math.Exp(unadjusted)) - 1;
        var limitDigits = spec.MaxIncrease is { } limit ? DigitsApart(Percent, Math.Abs(change), limit) : 0;
        context = context.Apart(value, allowed);
        var seen = $"{spec.Name} {context.Shown(value)} is {AboveOrBelow(change, limitDigits)} {where} ({Format(spec, kind, Math.Exp(unadjusted))})";
        if (load is not null)
        {
            seen += LoadExplanation(spec, kind, load, where, reference);
        }

        return context.Decide(current, value, reference, allowed, evidence, seen);
    }

    /// <summary>
    /// The log of an interval's value, which has none at 0 (no request, a custom query's) or below (a custom query's): those
    /// are taken at the smallest positive double, below every value a reference can stand on (the baseline takes the log of
    /// each of its positive values as it is), so far below it that the clip bounds what the interval adds. A floor of
    /// 1e-12 lay above a series smaller than that (a custom query's, a cost per request of a cheap service under heavy
    /// traffic): its value was judged 1e-12 against a reference of itself, hundreds of percent above, and rolled back.
    /// </summary>
    private static double LogOf(double value) => Math.Log(Math.Max(value, double.Epsilon));

    /// <summary>
    /// What the load adjustment did, for the explanation: "; traffic 48% below the same time last week, so it is judged
    /// against a reference adjusted by +31% for that load (0.66; …)", saying when the credit was held to the load the
    /// hours before the deploy showed or to the baseline's own swings, and that nothing was adjusted for a change of
    /// traffic those hours did not show (it may be the deploy's own doing).
    /// </summary>
    private static string LoadExplanation(MetricSpec spec, MetricKind kind, LoadShift load, string where, double adjusted)
    {
        var seen = $"; traffic {AboveOrBelow(Math.Exp(load.Load) - 1)} {where}";
        var expected = AboveOrBelow(Math.Exp(load.Expected) - 1);
        var hours = $"the {LoadAdjustment.BeforeWindow.TotalHours:0} hours before the deploy";
        if (load.Applied == 0)
        {
            return $"{seen}, where {hours} led to expect {expected}: a change of traffic that came with the deploy may be its own doing, so the reference is not adjusted for it";
        }

        var by = Math.Exp(load.LogShift) - 1;
        var bound = Math.Abs(load.Applied);
        var held = load.Applied == load.Load ? ""
            : bound < load.Range ? $", for traffic {expected} at most, as {hours} led to expect"
            : load.Load < 0 ? $", for a drop of {Percent(1 - Math.Exp(-load.Range))} at most, the largest the baseline's days showed"
            : $", for a rise of {Percent(Math.Exp(load.Range) - 1)} at most, the largest the baseline's days showed";
        var elasticity = load.Elasticity.ToString("0.00", CultureInfo.InvariantCulture);
        return $"{seen}, so it is judged against a reference adjusted by {SignedPercent(by)} for that load ({Format(spec, kind, adjusted)}; load elasticity {elasticity}, the % it moves with each 1% of traffic, fitted on the baseline's days{held})";
    }

    private static MetricEvaluation EvaluateCounts(Context context, BaselineWindow baseline, Observation current, (long Requests, long Errors) counts)
    {
        var (_, spec, _, _) = context;
        var (n, e) = counts;
        var rate = (double)e / n;
        var reference = baseline.ErrorRate;
        double? allowed = null;
        Evidence? evidence = null;
        if (spec.MaxIncrease is { } maxIncrease)
        {
            // The null rate and φ the evidence since the deploy is weighed with (the context holds them for every interval).
            var (p0, dispersion) = (context.ErrorNull, context.Dispersion);
            allowed = p0;
            evidence = new Evidence(
                ErrorLogLikelihoodRatio(e, n, p0, 2) / dispersion,
                ErrorLogLikelihoodRatio(e, n, p0, 1.5) / dispersion,
                0)
            {
                Errors = e,
                Requests = n,
            };
        }

        context = context.Apart(rate, allowed);
        var seen = $"{spec.Name} {context.Shown(rate)} ({e} of {n} requests failed) against a baseline of {Format(MetricKind.ErrorRate, reference)}";
        return context.Decide(current, rate, reference, allowed, evidence, seen);
    }

    /// <summary>The error rate the null hypothesis allows: the baseline's rate times (1 + maxIncrease), at most 50%.</summary>
    private static double ErrorNullRate(BaselineWindow baseline, double maxIncrease) => Math.Min(baseline.ErrorRate * (1 + maxIncrease), 0.5);

    /// <summary>
    /// The binomial log-likelihood ratio of <paramref name="errors"/> in <paramref name="requests"/> at the rate
    /// <paramref name="ratio"/> × <paramref name="p0"/> (at most 0.999) against <paramref name="p0"/>.
    /// </summary>
    private static double ErrorLogLikelihoodRatio(double errors, double requests, double p0, double ratio)
    {
        var p1 = Math.Min(ratio * p0, 0.999);
        return errors * Math.Log(p1 / p0) + (requests - errors) * Math.Log((1 - p1) / (1 - p0));
    }

    /// <summary>"31%"; with <paramref name="decimals"/>, "20.2%".</summary>
    private static string Percent(double fraction, int decimals = 0) =>
        (fraction * 100).ToString(decimals == 0 ? "0" : "0." + new string('0', decimals), CultureInfo.InvariantCulture) + "%";

    /// <summary>"31% above", "17% below": a relative change in words, with <paramref name="decimals"/>.</summary>
    private static string AboveOrBelow(double fraction, int decimals = 0) => $"{Percent(Math.Abs(fraction), decimals)} {(fraction >= 0 ? "above" : "below")}";

    /// <summary>"+31%", "-17%"; "0%" without a sign for a change that rounds to none (not "-0%").</summary>
    private static string SignedPercent(double fraction) =>
        Percent(Math.Abs(fraction)) is var size && size == "0%" ? size : (fraction >= 0 ? "+" : "-") + size;

    private static string Number(double value) => value.ToString("0.0", CultureInfo.InvariantCulture);

    /// <summary>
    /// "statistic > threshold" with as many decimals as it takes (up to four) to show the difference: a statistic just past
    /// its threshold read "5.3 > 5.3" with one.
    /// </summary>
    internal static string Beyond(double statistic, double threshold)
    {
        var format = "0.0";
        for (var decimals = 1; decimals < 4 && statistic.ToString(format, CultureInfo.InvariantCulture) == threshold.ToString(format, CultureInfo.InvariantCulture); decimals++)
        {
            format += "0";
        }

        return $"{statistic.ToString(format, CultureInfo.InvariantCulture)} > {threshold.ToString(format, CultureInfo.InvariantCulture)}";
    }

    private static string Ordinal(int n) => (n % 100) switch
    {
        11 or 12 or 13 => $"{n}th",
        _ => (n % 10) switch { 1 => $"{n}st", 2 => $"{n}nd", 3 => $"{n}rd", _ => $"{n}th" },
    };

    private static string Span(TimeSpan span) => span <= TimeSpan.Zero ? "in this interval"
        : span.TotalMinutes < 120 ? $"over the last {span.TotalMinutes:0} minutes"
        : $"over the last {span.TotalHours:0.#} hours";

    /// <summary>What one interval adds to each test: the CUSUM charts' increments and the evidence since the deploy.</summary>
    /// <param name="Cusum">Increment of the first (or only) CUSUM chart.</param>
    /// <param name="SlowCusum">Increment of the chart tuned to half the shift (error rates: to 1.5 times the null rate).</param>
    /// <param name="SinceDeploy">What the interval adds to <see cref="DetectorState.SinceDeploySum"/>.</param>
    private sealed record Evidence(double Cusum, double SlowCusum, double SinceDeploy)
    {
        /// <summary>Error rates: the interval's errors and requests, which the evidence since the deploy counts.</summary>
        public long Errors { get; init; }

        /// <inheritdoc cref="Errors"/>
        public long Requests { get; init; }
    }

    /// <summary>One of the tests: its statistic, its threshold and whether it alarms.</summary>
    private sealed record Test(bool IsSinceDeploy, double Statistic, double Threshold, bool Alarms);

    private sealed record Context(MetricKind Kind, MetricSpec Spec, DetectorOptions Options, DetectorState State)
    {
        /// <summary><see cref="BaselineWindow.ReferenceError"/>: the reference's own error, which the scores share.</summary>
        public ReferenceError ReferenceError { get; init; } = ReferenceError.None;

        /// <summary>
        /// Whether the reference is adjusted for the load (<see cref="BaselineWindow.AdjustsForLoad"/>): the CUSUMs then share
        /// their half of the budget with the margin for the load elasticity's error, as with a flat reference's.
        /// </summary>
        public bool AdjustsForLoad { get; init; }

        /// <summary>Where the evidence against the baseline starts, in words: the deploy, or the end of its warm-up.</summary>
        public string Since { get; init; } = "since the deploy";

        /// <summary>Whether the runbook has a warm-up, whose intervals are not judged against the baseline.</summary>
        public bool WarmsUp { get; init; }

        /// <summary>Error rates with a relative limit: the rate the null hypothesis allows (see <see cref="ErrorNullRate"/>); 0 otherwise.</summary>
        public double ErrorNull { get; init; }

        /// <summary>The baseline's dispersion φ (<see cref="BaselineWindow.Dispersion"/>), which divides the error tests' evidence.</summary>
        public double Dispersion { get; init; } = 1;

        /// <summary>
        /// The digits beyond the usual that the interval's value and the absolute limits are shown with, so that a value
        /// beyond a limit does not read as equal to it (<see cref="Apart"/>).
        /// </summary>
        public int Digits { get; init; }

        /// <summary>
        /// This context showing <paramref name="value"/> apart from the max, the min and the value the relative limit allows
        /// at this time (<see cref="MetricValues.DigitsApart"/>).
        /// </summary>
        public Context Apart(double value, double? allowed = null) => this with
        {
            Digits = new[] { Spec.Max, Spec.Min, allowed }.Max(limit => DigitsApart(Spec, Kind, value, limit)),
        };

        /// <summary>The interval's value or an absolute limit in the metric's unit, with <see cref="Digits"/>.</summary>
        public string Shown(double value) => Format(Spec, Kind, value, Digits);

        public MetricEvaluation Result(
            Observation current, Verdict verdict, double? value, double? reference, double? allowed, DetectorState state, string explanation)
        {
            var leading = Leading(Tests(state));
            return new(Spec.Name, Kind, current.At, verdict, value, reference, allowed, leading.Statistic, leading.Threshold, state, explanation);
        }

        /// <summary>
        /// An interval that cannot be judged against the baseline (<paramref name="why"/>): no verdict on the relative
        /// limit, but the absolute max and min need no baseline and are still judged, with their consecutive intervals
        /// counted as usual; without either the interval is insufficient data.
        /// </summary>
        public MetricEvaluation LimitsOnly(Observation current, string why)
        {
            if ((Spec.Max ?? Spec.Min) is null || current.Value is not { } value)
            {
                return Result(current, Verdict.InsufficientData, current.Value, null, null, State, why + ".");
            }

            var next = Counted(value);
            var seen = $"{Spec.Name} {Shown(value)}";
            var allowed = AbsoluteLimit(value);
            if (next.IntervalsAboveMax >= Options.MaxBreachIntervals)
            {
                return Result(current, Verdict.BreachOfMax, value, null, allowed, next,
                    $"{why}; but {seen} has been above the absolute max of {Shown(Spec.Max!.Value)}, which needs no baseline, for {next.IntervalsAboveMax} consecutive intervals.");
            }

            if (next.IntervalsBelowMin >= Options.MaxBreachIntervals)
            {
                return Result(current, Verdict.BreachOfMin, value, null, allowed, next,
                    $"{why}; but {seen} has been below the absolute min of {Shown(Spec.Min!.Value)}, which needs no baseline, for {next.IntervalsBelowMin} consecutive intervals.");
            }

            var limits = Spec.Max is null ? "min needs" : Spec.Min is null ? "max needs" : "min and max need";
            return Result(current, Verdict.InsufficientData, value, null, allowed, next,
                $"{why}; the absolute {limits} no baseline: {seen} is {TowardsBreach(next) ?? WithinLimits()}.");
        }

        /// <summary>The state with this value counted against the absolute limits: a run above the max or below the min goes on or ends.</summary>
        private DetectorState Counted(double value) => State with
        {
            IntervalsAboveMax = Spec.Max is { } max && value > max ? State.IntervalsAboveMax + 1 : 0,
            IntervalsBelowMin = Spec.Min is { } min && value < min ? State.IntervalsBelowMin + 1 : 0,
        };

        /// <summary>
        /// The absolute limit shown as the threshold where no relative limit is: the max, or the min where there is no max
        /// or the value is below the min, the limit it is then held against.
        /// </summary>
        private double? AbsoluteLimit(double value) => Spec.Min is { } min && (value < min || Spec.Max is null) ? min : Spec.Max;

        /// <summary>How far a run beyond an absolute limit has come ("above the absolute max of 800 ms for 1 of the 3 ..."); null outside both.</summary>
        private string? TowardsBreach(DetectorState counted) =>
            counted.IntervalsAboveMax > 0
                ? $"above the absolute max of {Shown(Spec.Max!.Value)} for {counted.IntervalsAboveMax} of the {Options.MaxBreachIntervals} consecutive intervals that make a breach"
                : counted.IntervalsBelowMin > 0
                ? $"below the absolute min of {Shown(Spec.Min!.Value)} for {counted.IntervalsBelowMin} of the {Options.MaxBreachIntervals} consecutive intervals that make a breach"
                : null;

        /// <summary>
        /// " It is also above the absolute max of 2.00% for 1 of the 3 ...": a regression the tests found says so where the
        /// value is beyond an absolute limit too, which the tests' reason alone leaves out.
        /// </summary>
        private static string AlsoTowardsBreach(string? towardsBreach) => towardsBreach is null ? "" : $" It is also {towardsBreach}.";

        /// <summary>"within the absolute max of 800 ms", "within the absolute min of 50", or both; null without either.</summary>
        private string? WithinLimits() => (Spec.Min, Spec.Max) switch
        {
            ({ } min, { } max) => $"within the absolute min of {Shown(min)} and max of {Shown(max)}",
            ({ } min, null) => $"within the absolute min of {Shown(min)}",
            (null, { } max) => $"within the absolute max of {Shown(max)}",
            _ => null,
        };

        /// <param name="allowed">The relative limit at this time; null without one (see <see cref="MetricEvaluation.AllowedValue"/>).</param>
        /// <param name="evidence">What this interval adds to the tests; null without a relative limit.</param>
        public MetricEvaluation Decide(
            Observation current, double value, double reference, double? allowed, Evidence? evidence, string seen)
        {
            // Without a relative limit the absolute one it is held against (the max, or the min).
            allowed ??= AbsoluteLimit(value);
            var cusum = Math.Max(0, State.Cusum + (evidence?.Cusum ?? 0));
            var slowCusum = evidence is null ? 0 : Math.Max(0, State.SlowCusum + evidence.SlowCusum);
            // When the CUSUM evidence last started to accumulate, in either chart.
            DateTimeOffset? since = Math.Max(cusum, slowCusum) <= 0 ? null
                : Math.Max(State.Cusum, State.SlowCusum) > 0 ? State.AccumulatingSince ?? current.At : current.At;
            var next = Counted(value) with
            {
                Cusum = cusum,
                SlowCusum = slowCusum,
                SinceDeploySum = State.SinceDeploySum + (evidence?.SinceDeploy ?? 0),
                SinceDeployLooks = State.SinceDeployLooks + (evidence is null ? 0 : 1),
                SinceDeployErrors = State.SinceDeployErrors + (evidence?.Errors ?? 0),
                SinceDeployRequests = State.SinceDeployRequests + (evidence?.Requests ?? 0),
                AccumulatingSince = since,
            };
            var tests = Tests(next);
            var leading = Leading(tests);
            // With the value it allows at this time, the evaluation's threshold: "the allowed 20% (240 ms)".
            var limit = Spec.MaxIncrease is { } m ? $"the allowed {Percent(m)}" : null;
            var allows = limit is null ? "" : $" ({Shown(allowed!.Value)})";
            var lowerIsWorse = Kind.LowerIsWorse(Spec);
            // Where a drop is the regression, a value well above the reference is within its limit: "within the allowed 30%"
            // after "45% above" would read as a contradiction, so those sentences name the drop.
            var limitOfValue = lowerIsWorse ? $"{limit} drop" : limit;
            // Healthy but above the max or below the min: a breach needs MaxBreachIntervals in a row, so say how far along it is.
            var towardsBreach = TowardsBreach(next);
            var direction = lowerIsWorse ? "a drop" : "an increase";
            string explanation;
            Verdict verdict;
            if (next.IntervalsAboveMax >= Options.MaxBreachIntervals)
            {
                verdict = Verdict.BreachOfMax;
                explanation = $"{seen}; it has been above the absolute max of {Shown(Spec.Max!.Value)} for {next.IntervalsAboveMax} consecutive intervals.";
            }
            else if (next.IntervalsBelowMin >= Options.MaxBreachIntervals)
            {
                verdict = Verdict.BreachOfMin;
                explanation = $"{seen}; it has been below the absolute min of {Shown(Spec.Min!.Value)} for {next.IntervalsBelowMin} consecutive intervals.";
            }
            else if (leading is { Alarms: true, IsSinceDeploy: true })
            {
                verdict = Verdict.Regressed;
                explanation = $"{seen}; taken together, the {next.SinceDeployLooks} intervals {Since} are evidence for {direction} beyond {limit}{allows} (evidence {Since}, a likelihood ratio test: {Beyond(leading.Statistic, leading.Threshold)}).{AlsoTowardsBreach(towardsBreach)}";
            }
            else if (leading.Alarms)
            {
                verdict = Verdict.Regressed;
                // CUSUM glossed: the evidence of the recent intervals, whose healthy ones wear it down (the healthy past does not
                // outweigh a regression that starts late, as it would the evidence since the deploy).
                explanation = $"{seen}; the evidence of the recent intervals for {direction} beyond {limit}{allows} has built up past its threshold {Span(current.At - since!.Value)} (CUSUM, a running total that healthy intervals wear down: {Beyond(leading.Statistic, leading.Threshold)}).{AlsoTowardsBreach(towardsBreach)}";
            }
            else
            {
                verdict = Verdict.Healthy;
                // "Within" only when it is.
                var againstMax = (towardsBreach ?? WithinLimits()) is { } against ? $" and it is {against}" : "";
                // Healthy is the tests' verdict, not this interval's: a value beyond the limit says so, and why it does not decide.
                var beyond = limit is not null && allowed is { } a && (lowerIsWorse ? value < a : value > a);
                // Past its threshold yet not alarming: it has not seen enough intervals to decide, which "of" alone would hide.
                var tooFewLooks = tests.SinceDeploy.Statistic > tests.SinceDeploy.Threshold && next.SinceDeployLooks < Options.MinLooksSinceDeploy
                    ? $" after {next.SinceDeployLooks} of the {Options.MinLooksSinceDeploy} judged intervals it needs before it may decide"
                    : "";
                var evidenceSoFar = $"evidence {Since} {Number(tests.SinceDeploy.Statistic)} of {Number(tests.SinceDeploy.Threshold)}{tooFewLooks}, recent evidence (CUSUM) {Number(tests.Cusum.Statistic)} of {Number(tests.Cusum.Threshold)}";
                var butMax = towardsBreach is null ? "" : $", and it is {towardsBreach}";
                // Why a value beyond the limit does not decide: on the first interval, that it is one; later, unless too few
                // intervals are the reason already given, that the shift has not stood out from the noise (not "one interval").
                var undecided = next.SinceDeployLooks <= 1 ? "; one noisy interval does not decide"
                    : tooFewLooks.Length > 0 ? ""
                    : "; so far it does not stand out from the baseline's own noise";
                // "So far" covers the judged intervals only: say how many the tests have not seen (no data, too few requests,
                // the warm-up; each of their explanations says which), or a watch judged in 3 intervals of 60 reads as 60.
                var unjudged = next.SinceDeployLooks < next.Evaluations
                    ? $"; {next.SinceDeployLooks} of the {next.Evaluations} intervals since the deploy could be judged against the baseline{(WarmsUp ? " (the warm-up's are not)" : "")}"
                    : "";
                explanation = limit is null ? $"{seen}; no relative limit is set{againstMax}."
                    : beyond ? $"{seen}: beyond {limitOfValue}{allows} in this interval, but the evidence is not yet enough to call it a regression ({evidenceSoFar}{undecided}){butMax}{unjudged}."
                    : $"{seen}, within {limitOfValue}{allows} so far ({evidenceSoFar}){(towardsBreach is null ? "" : $", but it is {towardsBreach}")}{unjudged}.";
            }

            return new(Spec.Name, Kind, current.At, verdict, value, reference, allowed, leading.Statistic, leading.Threshold, next, explanation);
        }

        /// <summary>CUSUM charts sharing their half of the budget, two for every kind of metric.</summary>
        private const int Charts = 2;

        /// <summary>Both tests on <paramref name="state"/>: the evidence since the deploy, and the larger CUSUM chart.</summary>
        private (Test SinceDeploy, Test Cusum) Tests(DetectorState state)
        {
            var sinceDeploy = SinceDeployStatistic(state);
            var cusum = Math.Max(state.Cusum, state.SlowCusum);
            var cusumThreshold = Options.CusumThreshold(Charts, ReferenceError.IsShared || AdjustsForLoad);
            return (
                new Test(true, sinceDeploy, Options.SinceDeployThreshold,
                    state.SinceDeployLooks >= Options.MinLooksSinceDeploy && sinceDeploy > Options.SinceDeployThreshold),
                new Test(false, cusum, cusumThreshold, cusum > cusumThreshold));
        }

        /// <summary>An alarming test first, else the one nearest its threshold.</summary>
        private static Test Leading((Test SinceDeploy, Test Cusum) tests)
        {
            var (sinceDeploy, cusum) = tests;
            return sinceDeploy.Alarms != cusum.Alarms
                ? (sinceDeploy.Alarms ? sinceDeploy : cusum)
                : sinceDeploy.Statistic - sinceDeploy.Threshold > cusum.Statistic - cusum.Threshold ? sinceDeploy : cusum;
        }

        /// <summary>
        /// The log-likelihood ratio of the evidence since the deploy, shown from 0 up. Error rates: the errors E of the N
        /// requests since the deploy, their binomial likelihood ratio at each rate of <see cref="ErrorAlternatives"/> times
        /// the null rate against the null rate, divided by φ, averaged (with equal weights) over those rates.
        /// Continuous metrics: the sum S of n excesses sharing a reference error of variance κ, mixed over shifts
        /// δ ~ half-normal(0, τ²) with τ the design shift; with a = S / (1 + nκ) and b = n / (1 + nκ):
        /// ln 2 − ½ ln(1 + bτ²) + a²τ² / (2 (1 + bτ²)) + ln Φ(aτ / √(1 + bτ²)).
        /// </summary>
        private double SinceDeployStatistic(DetectorState state)
        {
            if (Kind == MetricKind.ErrorRate)
            {
                return ErrorSinceDeployStatistic(state, ErrorNull, Dispersion);
            }

            var (sum, n) = (state.SinceDeploySum, state.SinceDeployLooks);
            if (sum <= 0 || n == 0)
            {
                return 0;
            }

            // The z carry the reference's error: the sum's variance is n f with f = 1 + ReferenceError.OfSum(n) / n (1 + nκ
            // when every z shares it), and the likelihood ratio of a shift μ is exp(μa − μ²b/2) with a = S / f, b = n / f.
            var shared = 1 + ReferenceError.OfSum(n) / n;
            var (a, b) = (sum / shared, n / shared);
            var tau2 = Options.DesignShift * Options.DesignShift;
            var spread = 1 + b * tau2;
            var logRatio = Math.Log(2) - 0.5 * Math.Log(spread) + a * a * tau2 / (2 * spread) + Math.Log(NormalCdf(a * Math.Sqrt(tau2 / spread)));
            return Math.Max(0, logRatio);
        }
    }

    /// <summary>
    /// The error rates, as multiples of the null rate, whose likelihood ratios the evidence since the deploy averages: from
    /// a quarter beyond the limit to ten times it, about evenly spaced in the logarithm. One alternative (twice the null
    /// rate, the CUSUM's) leaves a rate up to about 1.44 times the null with evidence that falls on average, so it would
    /// be caught by chance if at all; an error rate that doubled against a 50% limit (1.33 times the null) took hours.
    /// The average of likelihood ratios is the likelihood ratio of the mixture of those alternatives, still a martingale
    /// under the null hypothesis, so the threshold ln(2 / alpha) stands (Robbins 1970, as for continuous metrics); each
    /// alternative costs ln 6 of evidence against the single one when it is the truth.
    /// </summary>
    internal static readonly double[] ErrorAlternatives = [1.25, 1.5, 2, 3, 5, 10];

    /// <summary>The error rate's evidence since the deploy (see <see cref="Context"/>'s SinceDeployStatistic), from 0 up.</summary>
    private static double ErrorSinceDeployStatistic(DetectorState state, double p0, double dispersion)
    {
        if (state.SinceDeployRequests <= 0 || p0 <= 0)
        {
            return 0;
        }

        var logs = ErrorAlternatives.Select(r => ErrorLogLikelihoodRatio(state.SinceDeployErrors, state.SinceDeployRequests, p0, r) / dispersion).ToArray();
        var top = logs.Max();
        return Math.Max(0, top + Math.Log(logs.Sum(l => Math.Exp(l - top)) / logs.Length));
    }

    /// <summary>
    /// The standard normal distribution function, from the complementary error function <c>erfcc</c> of Press, W. H.,
    /// Teukolsky, S. A., Vetterling, W. T. and Flannery, B. P. 1992, "Numerical Recipes in C", 2nd ed., Cambridge University
    /// Press, section 6.2 (a Chebyshev fit with fractional error below 1.2e-7 everywhere).
    /// </summary>
    internal static double NormalCdf(double x)
    {
        var y = -x / Math.Sqrt(2);
        var t = 1 / (1 + 0.5 * Math.Abs(y));
        var erfc = t * Math.Exp(-y * y - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
            + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return (y >= 0 ? erfc : 2 - erfc) / 2;
    }
}
