namespace RolloutGate.Core.Analysis;

/// <summary>
/// How a latency or a cost per request follows the load, fitted on a seasonal baseline of several days, so that an
/// interval whose traffic is far from its reference's (a public holiday, the week or the day after one, growth) is judged
/// against a reference adjusted for that load (<see cref="BaselineWindow.LoadShiftAt"/>).
/// <para>
/// <b>Model.</b> With u = ln n − ln n_ref, the interval's request count against the count's own seasonal reference (the
/// same time yesterday or last week, ±30-minute median, built like the metric's), the metric's log-ratio to its reference
/// is r = β u + (noise) + (any regression): covariate adjustment by a concomitant variable the change does not cause
/// (Cox, D. R. and McCullagh, P. 1982, "Some aspects of analysis of covariance", Biometrics 38:541–561). β is the load
/// elasticity: about −(fixed share) for a cost per request that spreads a fixed cost over the requests, positive for a
/// latency that rises with load. The interval is judged on r − β̂ u_c, u_c = u credited only as far as the load before
/// the deploy supports and within ±<see cref="Range"/> (below, "What a bad deploy could hide").
/// </para>
/// <para>
/// <b>Fit: on the days' load swings, never on the minutes' noise.</b> A minute's count and a cost per request of the same
/// minute share their noise (a fixed cost over a count a little low is a little high), so their per-minute elasticity is
/// near −1 whatever the true one is; and within one day the load follows the time of day, as the metric may for other
/// reasons. So the baseline is cut into hours (on the runbook's clock), each hour reduced to the median log value and the
/// median log count of its samples, and each hour is paired with the same hour the day before: x = the count's
/// day-over-day log-ratio, y = the metric's (over the latest <see cref="MaxDays"/> days of such pairs). A baseline of a week holds the weekday/weekend swings of load, the same
/// exogenous variation a holiday is. β̂ is the weighted median of the pairwise slopes (y_j − y_i)/(x_j − x_i) with weights
/// |x_j − x_i| (Sievers, G. L. 1978, "Weighted rank statistics for simple linear regression", J. Amer. Statist. Assoc.
/// 73:628–631; Scholz, F. W. 1978, "Weighted median regression estimates", Ann. Statist. 6:603–609): Theil's slope made
/// to lean on the large swings, not on the many pairs of hours whose counts differ by noise only, and robust to an odd hour.
/// </para>
/// <para>
/// <b>When it is determined.</b> Errors in x attenuate the slope towards 0, the conservative side, by the reliability
/// ratio λ = 1 − (x's noise variance) / (x's mean square) (Fuller, W. A. 1987, "Measurement Error Models", Wiley, section
/// 1.1), and towards the noise's own elasticity by the rest; x's noise variance is estimated from the counts within each
/// hour (the median of m values of spread s has variance (π/2) s² / m), so a baseline without load swings beyond that
/// noise (λ below <see cref="MinReliability"/>: 90% of x's variation must be load) is not fitted. The hours of one day
/// share that day's level, which moves from one day to the next for reasons of its own, so the error of β̂ is estimated by
/// the delete-a-day jackknife (Künsch, H. R. 1989, "The jackknife and the bootstrap for general stationary observations",
/// Ann. Statist. 17:1217–1241, with days as blocks), referred to Student's t with g − 1 degrees of freedom for g days. At
/// least <see cref="MinDays"/> days.
/// </para>
/// <para>
/// <b>How well that error is calibrated</b> (measured with the benchmarks' <c>elasticity</c>: 300 seeded week baselines,
/// weekends at 55% of the load, β̂ against the mean β̂ of the seeds). The delete-1 jackknife of a median is not
/// consistent (Miller, R. G. 1974, "The jackknife — a review", Biometrika 61:1–15; Efron, B. 1982, "The Jackknife, the
/// Bootstrap and Other Resampling Plans", SIAM), and here the load swings sit in two day transitions
/// (Friday→Saturday, Sunday→Monday): for a latency whose elasticity is one number its SE is on average about twice the seeds'
/// spread of β̂ (rms 0.009 against 0.005), yet |β̂ − β̄| / SE passes q in 2.3% of the baselines (meant: alpha/4 = 0.25%)
/// and t_{g−1}(0.975) in 11% (meant: 5%); for a cost per request (whose elasticity changes with the hour) it is five times
/// the spread and never passed. The margin is therefore less sure than its q says for a latency, and too wide for a cost
/// per request. Tried and not kept: the delete-d jackknife over all C(g, ⌊g/2⌋) sets of days (Shao, J. and Wu, C. F. J.
/// 1989, "A general theory for jackknife variance estimation", Ann. Statist. 17:1176–1197, consistent for a median as d
/// grows): half the days deleted often takes both weekend transitions, and with them every load swing, so the refits
/// scatter and the SE of the latency's β̂ grew to an rms 0.146, 30 times the spread, which left β̂ determined in 30 of 300
/// baselines instead of 300 (no miss, and no adjustment). An effective number of days (the days whose x differs from the
/// day before's: two in such a week) would give t with one degree of freedom, q about 255, with the same effect.
/// </para>
/// <para>
/// <b>Its own error.</b> One β̂ serves every interval of the watch, so its error (β − β̂) u_c is shared by them all,
/// like a flat reference's. The detector treats it the same way: every interval's residual is taken beyond the margin
/// q · SE · |u_c| (<see cref="Margin"/>), q = t_{g−1}(1 − alpha/8), which covers |β̂ − β| at every interval at once except
/// with probability alpha/4, taken from the CUSUMs' half of the false-rollback budget (as
/// <see cref="DetectorOptions.ReferenceErrorMargin"/> is). An adjustment is made only when |β̂| > q · SE: with less,
/// the margin takes back more than the adjustment gives. The adjustment also carries the count's Poisson noise into the
/// residual, variance β̂²/n, which the interval's noise scale adds (<see cref="BaselineWindow.LogNoiseScaleFor"/>).
/// </para>
/// <para>
/// <b>What a bad deploy could hide.</b> Covariate adjustment is valid for a covariate the change does not affect (Cox
/// and McCullagh 1982), and a deploy can change the count itself: a retry storm raises it (a latency with β̂ &gt; 0
/// would then be credited), a broken route lowers it (a cost per request with β̂ &lt; 0 would be); credited for the
/// whole traffic it moved, a real regression of a third or a half hid behind it. The load the deploy cannot have caused
/// is the load before it (a holiday, growth are already there; a deploy's own effect is not): <see cref="Before"/>, the
/// median over the baseline's last <see cref="BeforeWindow"/> of the count against its daily reference (the baseline's
/// days pooled at that time of day, the typical day). An interval is expected to be as far from the typical day, so
/// against its own reference (last week's, say) the load expected is e = Before + (typical day − reference) at its time:
/// the week after a holiday, an ordinary morning (Before near 0) is expected to be well above last week's holiday. u is
/// credited only towards e and no further: u_c = u clamped to [min(0, e), max(0, e)], and never beyond ±<see cref="Range"/>,
/// the 90th percentile of the baseline's own |x| (the relation is used only over load swings the baseline showed). A
/// deploy that moves the traffic of an ordinary day (e near 0) is credited next to nothing, and one deployed in the
/// first hours of a holiday, before its quiet showed, is not credited for it.
/// </para>
/// </summary>
/// <param name="Elasticity">β̂, the load elasticity.</param>
/// <param name="StandardError">Its delete-a-day jackknife standard error.</param>
/// <param name="Quantile">q, the Student-t quantile of the margin (and of the test that β̂ is determined).</param>
/// <param name="Range">The largest |u| credited or charged: the 90th percentile of the baseline's day-over-day |x|.</param>
/// <param name="Before">The load before the deploy: the median over the baseline's last <see cref="BeforeWindow"/> of the count against its daily reference.</param>
internal readonly record struct LoadAdjustment(double Elasticity, double StandardError, double Quantile, double Range, double Before = 0)
{
    /// <summary>How much of the baseline's end tells the load the deploy found (<see cref="Before"/>): two hours.</summary>
    public static readonly TimeSpan BeforeWindow = TimeSpan.FromHours(2);

    /// <summary>u credited: towards the load <paramref name="expected"/> and no further, within ±<see cref="Range"/> (see the class summary).</summary>
    public double Credited(double load, double expected)
    {
        var bound = Math.Min(Range, Math.Abs(expected));
        return Math.Sign(load) == Math.Sign(expected) ? Math.Clamp(load, -bound, bound) : 0;
    }

    /// <summary>Fewest days of day-over-day pairs (jackknife blocks): t with 2 degrees of freedom is the least usable.</summary>
    public const int MinDays = 3;

    /// <summary>
    /// Most days of pairs the fit reads, the latest: two weeks hold two of every weekday's and weekend's swings, and the
    /// pairs of hours (whose slopes the fit sorts) grow with the square of the days (a 14-day fit sorts about 48,000).
    /// </summary>
    public const int MaxDays = 14;

    /// <summary>Least reliability ratio λ: 90% of the variation of the count's day-over-day log-ratios must be load, not noise.</summary>
    public const double MinReliability = 0.9;

    /// <summary>The quantile of |x| that bounds the load an interval is adjusted for.</summary>
    public const double RangeQuantile = 0.9;

    /// <summary>The adjustment's margin at a load of <paramref name="applied"/> (u_c): q · SE · |u_c|, in log units.</summary>
    public double Margin(double applied) => Quantile * StandardError * Math.Abs(applied);

    /// <summary>
    /// The load adjustment fitted to <paramref name="points"/> (in time order, every one with a count), read by hour on the
    /// clock of <paramref name="zone"/>; null when it is not determined (too few days, swings of load no larger than the
    /// counts' noise, or |β̂| not beyond q · SE) at <paramref name="alpha"/>, the watch's false-rollback budget.
    /// </summary>
    public static LoadAdjustment? Fit(IReadOnlyList<(DateTimeOffset At, double Log, long? Requests)> points, TimeZoneInfo? zone, double alpha)
    {
        if (Estimate(points, zone) is not var (slope, standardError, degrees, range))
        {
            return null;
        }

        var quantile = StudentQuantile(1 - alpha / 8, degrees);
        return Math.Abs(slope) > quantile * standardError ? new LoadAdjustment(slope, standardError, quantile, range) : null;
    }

    /// <summary>
    /// β̂, its standard error, the degrees of freedom of its t and the range, fitted to <paramref name="points"/> as
    /// <see cref="Fit"/> does but before the test that β̂ is determined; null when it cannot be fitted (too few days,
    /// swings of load no larger than the counts' noise).
    /// </summary>
    internal static (double Slope, double StandardError, int Degrees, double Range)? Estimate(
        IReadOnlyList<(DateTimeOffset At, double Log, long? Requests)> points, TimeZoneInfo? zone)
    {
        // Pairs on three days need more than two days of baseline (a 24-hour baseline has none).
        if (points.Count == 0 || points[^1].At - points[0].At <= TimeSpan.FromDays(2))
        {
            return null;
        }

        // Each hour's median log value and log count, and the variance of that median log count.
        var hours = points
            .GroupBy(p => Hour(p.At, zone))
            .ToDictionary(g => g.Key, g =>
            {
                var counts = g.Select(p => Math.Log(p.Requests!.Value)).ToArray();
                var spread = RobustStatistics.MadToSigma * RobustStatistics.Mad(counts);
                return (Log: RobustStatistics.Median(g.Select(p => p.Log)), Count: RobustStatistics.Median(counts), Noise: Math.PI / 2 * spread * spread / counts.Length);
            });
        var pairs = hours
            .Where(h => hours.ContainsKey(h.Key.AddDays(-1)))
            .OrderBy(h => h.Key)
            .Select(h => (Day: h.Key.Date, X: h.Value.Count - hours[h.Key.AddDays(-1)].Count, Y: h.Value.Log - hours[h.Key.AddDays(-1)].Log,
                Noise: h.Value.Noise + hours[h.Key.AddDays(-1)].Noise))
            .ToArray();
        // The last MaxDays days of pairs: two weeks of weekdays and weekends; a longer baseline would cost the square of its
        // hours in pairs of them and add little.
        var days = pairs.Select(p => p.Day).Distinct().TakeLast(MaxDays).ToArray();
        if (days.Length < MinDays)
        {
            return null;
        }

        pairs = [.. pairs.Where(p => p.Day >= days[0])];

        var meanSquare = pairs.Average(p => p.X * p.X);
        if (meanSquare <= 0 || 1 - pairs.Average(p => p.Noise) / meanSquare < MinReliability)
        {
            return null;
        }

        var x = pairs.Select(p => p.X).ToArray();
        var slopes = Slopes(x, [.. pairs.Select(p => p.Y)]);
        if (WeightedMedian(slopes, _ => true) is not { } slope)
        {
            return null;
        }

        // Delete-a-day jackknife: SE² = (g − 1)/g Σ (β̂₍ᵢ₎ − mean)², each β̂₍ᵢ₎ the weighted median of the slopes of the
        // pairs of hours outside day i (the slopes are sorted once).
        var leaveOut = new List<double>(days.Length);
        foreach (var day in days)
        {
            if (WeightedMedian(slopes, i => pairs[i].Day != day) is not { } partial)
            {
                return null;
            }

            leaveOut.Add(partial);
        }

        var mean = leaveOut.Average();
        var g = days.Length;
        var standardError = Math.Sqrt((g - 1.0) / g * leaveOut.Sum(b => (b - mean) * (b - mean)));
        var absolute = x.Select(Math.Abs).Order().ToArray();
        var range = absolute[Math.Min(absolute.Length - 1, (int)Math.Ceiling(RangeQuantile * absolute.Length) - 1)];
        return (slope, standardError, g - 1, range);
    }

    /// <summary>
    /// The weighted median of the slopes of all pairs of points with different x, each weighted by |x_j − x_i| (Sievers
    /// 1978, Scholz 1978); null when every x is the same.
    /// </summary>
    internal static double? WeightedSlope(double[] x, double[] y) => WeightedMedian(Slopes(x, y), _ => true);

    /// <summary>The slopes of every pair of points (i, j) with different x, with their weights |x_j − x_i|, sorted by slope.</summary>
    private static (double Slope, double Weight, int I, int J)[] Slopes(double[] x, double[] y)
    {
        var slopes = new List<(double Slope, double Weight, int I, int J)>(x.Length * (x.Length - 1) / 2);
        for (var i = 0; i < x.Length; i++)
        {
            for (var j = i + 1; j < x.Length; j++)
            {
                var dx = x[j] - x[i];
                if (dx != 0)
                {
                    slopes.Add(((y[j] - y[i]) / dx, Math.Abs(dx), i, j));
                }
            }
        }

        var sorted = slopes.ToArray();
        Array.Sort(sorted, (a, b) => a.Slope.CompareTo(b.Slope));
        return sorted;
    }

    /// <summary>The weighted median of the <paramref name="slopes"/> (sorted) of pairs whose both points <paramref name="keep"/> keeps; null when none.</summary>
    private static double? WeightedMedian((double Slope, double Weight, int I, int J)[] slopes, Func<int, bool> keep)
    {
        var total = slopes.Where(s => keep(s.I) && keep(s.J)).Sum(s => s.Weight);
        if (total <= 0)
        {
            return null;
        }

        var cumulative = 0.0;
        foreach (var (slope, weight, i, j) in slopes)
        {
            if (keep(i) && keep(j))
            {
                cumulative += weight;
                if (cumulative >= total / 2)
                {
                    return slope;
                }
            }
        }

        return null;
    }

    /// <summary>
    /// The <paramref name="p"/> quantile (p above ½) of Student's t with <paramref name="degrees"/> degrees of freedom, by
    /// bisection on its distribution function in closed form for whole degrees of freedom (Abramowitz, M. and Stegun, I. A.
    /// 1964, "Handbook of Mathematical Functions", NBS, 26.7.3 and 26.7.4).
    /// </summary>
    internal static double StudentQuantile(double p, int degrees)
    {
        var (low, high) = (0.0, 1.0);
        while (StudentCdf(high, degrees) < p)
        {
            high *= 2;
        }

        for (var i = 0; i < 200 && high - low > 1e-12 * high; i++)
        {
            var mid = (low + high) / 2;
            (low, high) = StudentCdf(mid, degrees) < p ? (mid, high) : (low, mid);
        }

        return (low + high) / 2;
    }

    /// <summary>P(T ≤ t) for t ≥ 0: ½ + ½ A(t | ν), A of A&amp;S 26.7.3 (ν odd) and 26.7.4 (ν even), θ = arctan(t / √ν).</summary>
    internal static double StudentCdf(double t, int degrees)
    {
        var theta = Math.Atan(t / Math.Sqrt(degrees));
        var (sin, cos) = (Math.Sin(theta), Math.Cos(theta));
        double a;
        if (degrees % 2 == 1)
        {
            // (2/π) [θ + sin θ (cos θ + (2/3) cos³ θ + … + (2·4…(ν−3))/(1·3…(ν−2)) cos^(ν−2) θ)]
            var (term, sum) = (cos, degrees > 1 ? cos : 0.0);
            for (var k = 3; k <= degrees - 2; k += 2)
            {
                term *= (k - 1.0) / k * cos * cos;
                sum += term;
            }

            a = 2 / Math.PI * (theta + sin * sum);
        }
        else
        {
            // sin θ [1 + ½ cos² θ + (1·3)/(2·4) cos⁴ θ + … + (1·3…(ν−3))/(2·4…(ν−2)) cos^(ν−2) θ]
            var (term, sum) = (1.0, 1.0);
            for (var k = 2; k <= degrees - 2; k += 2)
            {
                term *= (k - 1.0) / k * cos * cos;
                sum += term;
            }

            a = sin * sum;
        }

        return 0.5 + 0.5 * a;
    }

    public void Write(BinaryWriter writer)
    {
        writer.Write(Elasticity);
        writer.Write(StandardError);
        writer.Write(Quantile);
        writer.Write(Range);
        writer.Write(Before);
    }

    public static LoadAdjustment Read(BinaryReader reader) =>
        new(reader.ReadDouble(), reader.ReadDouble(), reader.ReadDouble(), reader.ReadDouble(), reader.ReadDouble());

    /// <summary>The hour <paramref name="at"/> falls in, on the clock of <paramref name="zone"/> (UTC without one).</summary>
    private static DateTime Hour(DateTimeOffset at, TimeZoneInfo? zone)
    {
        var clock = zone is null ? at.UtcDateTime : TimeZoneInfo.ConvertTime(at, zone).DateTime;
        return new DateTime(clock.Year, clock.Month, clock.Day, clock.Hour, 0, 0, DateTimeKind.Unspecified);
    }
}
