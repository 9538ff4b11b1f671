using System.Globalization;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Analysis;

/// <summary>
/// Decides, one interval at a time, whether a deploy made a metric worse than its runbook allows.
/// <para>
/// <b>Method.</b> A one-sided CUSUM (Page, E. S. 1954, "Continuous inspection schemes", Biometrika 41:100–115) of
/// log-likelihood-ratio increments, stopped when it exceeds h = ln(looks / alpha). Lorden (1971, "Procedures for reacting
/// to a change in distribution", Ann. Math. Statist. 42:1897–1908) bounds the average run length to a false alarm of such
/// a CUSUM below by e^h, so a watch that looks every minute for 24 hours (1440 looks) with alpha = 1% uses h = ln(144000)
/// ≈ 11.9 and, as long as the model holds (independent noise around a correct reference), rings falsely in about 1% of
/// watches at most, however often it looks. A fixed-level test repeated at every interval (the naive approach) has no
/// such bound: its false alarms pile up with the number of looks. Real traces break the model when the level drifts
/// from one day to the next; tests/RolloutGate.Benchmarks/README.md measures by how much.
/// </para>
/// <para>
/// <b>Latency, cost per request, request rate.</b> Each interval's log value minus the seasonal reference at the same
/// time of day (<see cref="BaselineWindow"/>) is a log-ratio r. The null hypothesis is "no worse than allowed",
/// r ≤ ln(1 + maxIncrease); the alternative the CUSUM is tuned to is one noise unit beyond it. With the standardized
/// excess z = (r − ln(1 + maxIncrease)) / σ, clipped to ±5 so a lone spike cannot decide, the Gaussian log-likelihood
/// ratio of that pair of hypotheses is δ·z − δ²/2 with δ = 1. Working on logs makes a relative limit additive and
/// tames the long right tail of latencies. Request rate is mirrored: a drop is the regression.
/// A CUSUM is quickest for the shift it is tuned to; a regression of half a noise unit beyond the limit barely moves a
/// δ = 1 chart. So a second chart tuned to δ/2 runs beside it (the multi-chart CUSUM: Lorden, G. and Pollak, M. 2005,
/// "Nonanticipating estimation applied to sequential analysis and changepoint detection", Ann. Statist. 33:1422–1454;
/// Tartakovsky, A., Nikiforov, I. and Basseville, M. 2014, "Sequential Analysis", CRC Press, section 8.2.5), and the
/// watch alarms when either passes h + ln 2: by the union bound the two charts together keep the false-alarm rate of
/// one chart at h. The statistic shown is the larger of the two.
/// </para>
/// <para>
/// <b>Error rate.</b> A binomial CUSUM on the counts (errors e of n requests): the null rate is the baseline rate times
/// (1 + maxIncrease), the alternative twice that, and each interval adds
/// e·ln(p1/p0) + (n − e)·ln((1 − p1)/(1 − p0)). A ratio alone would treat 1 error in 10 requests like 100 in 1000.
/// Errors come in bursts, so the increment is divided by the baseline's quasi-binomial dispersion φ
/// (<see cref="BaselineWindow.Dispersion"/>): a quasi-likelihood is worth 1/φ of a binomial one (McCullagh, P. and
/// Nelder, J. A. 1989, "Generalized Linear Models", 2nd ed., Chapman and Hall, sections 4.5 and 9.2).
/// </para>
/// <para>
/// <b>Absolute max.</b> Breached when the value stays above <c>max</c> for
/// <see cref="DetectorOptions.MaxBreachIntervals"/> consecutive intervals, so one spike does not roll back a deploy.
/// </para>
/// <para>
/// <b>No verdict without data.</b> No value is <see cref="Verdict.Blind"/>, never healthy; fewer than
/// <see cref="DetectorOptions.MinRequests"/> requests, or too little baseline, is <see cref="Verdict.InsufficientData"/>.
/// Neither moves the CUSUM.
/// </para>
/// </summary>
public static class RegressionDetector
{
    /// <summary>
    /// Evaluates the interval <paramref name="current"/> given the state after the previous one (null at the first interval).
    /// Intervals must come in increasing time order; the returned <see cref="MetricEvaluation.State"/> is the next input.
    /// </summary>
    public static MetricEvaluation Evaluate(
        MetricKind kind,
        MetricSpec spec,
        BaselineWindow baseline,
        DetectorState? previous,
        Observation current,
        DetectorOptions? options = null)
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

        var context = new Context(kind, spec, options, state with { Evaluations = state.Evaluations + 1, LastAt = current.At });
        var counts = kind == MetricKind.ErrorRate ? ErrorCounts(current) : null;
        if (current.Value is null && counts is null)
        {
            var blind = context.State with { BlindIntervals = state.BlindIntervals + 1 };
            return context.Result(current, Verdict.Blind, null, null, null, blind,
                $"No data for {spec.Name} at this interval ({Ordinal(blind.BlindIntervals)} in a row); no data is never read as healthy.");
        }

        context = context with { State = context.State with { BlindIntervals = 0 } };
        var requests = counts?.Requests ?? current.Requests;
        if (requests is { } n && n < options.MinRequests)
        {
            return context.Result(current, Verdict.InsufficientData, current.Value, null, null, context.State,
                $"Only {n} requests in this interval, fewer than the {options.MinRequests} needed for a verdict on {spec.Name}.");
        }

        if (kind == MetricKind.ErrorRate && counts is null)
        {
            return context.Result(current, Verdict.InsufficientData, current.Value, null, null, context.State,
                $"{spec.Name} came without a request count; an error rate is judged on counts, never on the ratio alone.");
        }

        if (!baseline.IsUsable(options))
        {
            return context.Result(current, Verdict.InsufficientData, current.Value, null, null, context.State,
                $"The baseline has {baseline.UsableSamples} usable intervals, fewer than the {options.MinBaselineSamples} needed to judge {spec.Name}.");
        }

        return kind == MetricKind.ErrorRate
            ? EvaluateCounts(context, baseline, current, counts!.Value)
            : EvaluateContinuous(context, baseline, current, current.Value!.Value);
    }

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
        var logReference = baseline.LogReferenceAt(current.At);
        var reference = Math.Exp(logReference);
        var logRatio = Math.Log(Math.Max(value, 1e-12)) - logReference;
        double? allowed = null;
        var increment = 0.0;
        var slowIncrement = 0.0;
        if (spec.MaxIncrease is { } maxIncrease)
        {
            var lowerIsWorse = kind.LowerIsWorse();
            var logLimit = lowerIsWorse ? Math.Log(Math.Max(1 - maxIncrease, 1e-6)) : Math.Log(1 + maxIncrease);
            allowed = Math.Exp(logReference + logLimit);
            var excess = lowerIsWorse ? logLimit - logRatio : logRatio - logLimit;
            var z = Math.Clamp(excess / baseline.LogNoiseScale, -options.ClipSigmas, options.ClipSigmas);
            increment = options.DesignShift * z - options.DesignShift * options.DesignShift / 2;
            var slow = options.DesignShift / 2;
            slowIncrement = slow * z - slow * slow / 2;
        }

        var where = baseline.IsWeekly ? "the same time last week" : baseline.IsSeasonal ? "the same time yesterday" : "the baseline median";
        var change = (value / reference) - 1;
        var seen = $"{spec.Name} {Format(kind, value)} is {Percent(Math.Abs(change))} {(change >= 0 ? "above" : "below")} {where} ({Format(kind, reference)})";
        return context.Decide(current, value, reference, allowed, increment, seen, slowIncrement);
    }

    private static MetricEvaluation EvaluateCounts(Context context, BaselineWindow baseline, Observation current, (long Requests, long Errors) counts)
    {
        var (_, spec, _, _) = context;
        var (n, e) = counts;
        var rate = (double)e / n;
        var reference = baseline.ErrorRate;
        double? allowed = null;
        var increment = 0.0;
        if (spec.MaxIncrease is { } maxIncrease)
        {
            var p0 = Math.Min(reference * (1 + maxIncrease), 0.5);
            var p1 = Math.Min(2 * p0, 0.999);
            allowed = p0;
            increment = (e * Math.Log(p1 / p0) + (n - e) * Math.Log((1 - p1) / (1 - p0))) / baseline.Dispersion;
        }

        var seen = $"{spec.Name} {Format(MetricKind.ErrorRate, rate)} ({e} of {n} requests failed) against a baseline of {Format(MetricKind.ErrorRate, reference)}";
        return context.Decide(current, rate, reference, allowed, increment, seen);
    }

    private static string Format(MetricKind kind, double value) => kind switch
    {
        MetricKind.Latency => value < 1
            ? string.Create(CultureInfo.InvariantCulture, $"{value * 1000:0} ms")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.00} s"),
        MetricKind.ErrorRate => string.Create(CultureInfo.InvariantCulture, $"{value * 100:0.00}%"),
        MetricKind.RequestRate => string.Create(CultureInfo.InvariantCulture, $"{value:0.##} req/s"),
        _ => value.ToString("G4", CultureInfo.InvariantCulture),
    };

    private static string Percent(double fraction) => string.Create(CultureInfo.InvariantCulture, $"{fraction * 100:0}%");

    private static string Number(double value) => value.ToString("0.0", CultureInfo.InvariantCulture);

    private static string Ordinal(int n) => (n % 100) switch
    {
        11 or 12 or 13 => $"{n}th",
        _ => (n % 10) switch { 1 => $"{n}st", 2 => $"{n}nd", 3 => $"{n}rd", _ => $"{n}th" },
    };

    private static string Span(TimeSpan span) => span <= TimeSpan.Zero ? "in this interval"
        : span.TotalMinutes < 120 ? $"over the last {span.TotalMinutes:0} minutes"
        : $"over the last {span.TotalHours:0.#} hours";

    private sealed record Context(MetricKind Kind, MetricSpec Spec, DetectorOptions Options, DetectorState State)
    {
        public MetricEvaluation Result(
            Observation current, Verdict verdict, double? value, double? reference, double? allowed, DetectorState state, string explanation) =>
            new(Spec.Name, Kind, current.At, verdict, value, reference, allowed, state.Cusum, Options.CusumThreshold, state, explanation);

        /// <param name="slowIncrement">The second chart's increment (continuous metrics); each chart then has ln 2 more threshold.</param>
        public MetricEvaluation Decide(
            Observation current, double value, double reference, double? allowed, double increment, string seen, double? slowIncrement = null)
        {
            var threshold = slowIncrement is null ? Options.CusumThreshold : Options.CusumThreshold + Math.Log(2);
            var slowCusum = slowIncrement is { } si ? Math.Max(0, State.SlowCusum + si) : 0;
            var cusum = Math.Max(0, State.Cusum + increment);
            // When the evidence last started to accumulate, in either chart.
            var statistic = Math.Max(cusum, slowCusum);
            DateTimeOffset? since = statistic <= 0 ? null : Math.Max(State.Cusum, State.SlowCusum) > 0 ? State.AccumulatingSince ?? current.At : current.At;
            var aboveMax = Spec.Max is { } max && !Kind.LowerIsWorse() && value > max;
            var next = State with
            {
                Cusum = cusum,
                SlowCusum = slowCusum,
                AccumulatingSince = since,
                IntervalsAboveMax = aboveMax ? State.IntervalsAboveMax + 1 : 0,
            };
            var limit = Spec.MaxIncrease is { } m ? $"the allowed {Percent(m)}" : null;
            string explanation;
            Verdict verdict;
            if (next.IntervalsAboveMax >= Options.MaxBreachIntervals)
            {
                verdict = Verdict.BreachOfMax;
                explanation = $"{seen}; it has been above the absolute max of {Format(Kind, Spec.Max!.Value)} for {next.IntervalsAboveMax} consecutive intervals.";
            }
            else if (statistic > threshold)
            {
                verdict = Verdict.Regressed;
                explanation = $"{seen}; the evidence for {(Kind.LowerIsWorse() ? "a drop" : "an increase")} beyond {limit} has accumulated past the threshold (CUSUM {Number(statistic)} > {Number(threshold)}) {Span(current.At - since!.Value)}.";
            }
            else
            {
                verdict = Verdict.Healthy;
                explanation = limit is null
                    ? $"{seen}; no relative limit is set{(Spec.Max is { } m2 ? $" and it is within the absolute max of {Format(Kind, m2)}" : "")}."
                    : $"{seen}, within {limit} so far (CUSUM {Number(statistic)} of {Number(threshold)}).";
            }

            return new(Spec.Name, Kind, current.At, verdict, value, reference, allowed, statistic, threshold, next, explanation);
        }
    }
}
