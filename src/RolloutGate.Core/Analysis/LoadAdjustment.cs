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
/// noise (λ below <see cref="MinReliability"/>: 90% of x's variation must be load) is not fitted. At least
/// <see cref="MinDays"/> days.
/// </para>
/// <para>
/// <b>The error of β̂.</b> The hours of one day share that day's level, which moves from one day to the next for reasons
/// of its own, and the load swings sit in a few day transitions (a week's in two: Friday→Saturday, Sunday→Monday). The
/// error is estimated in two ways and the one whose margin q · SE is the larger is kept: if |β̂ − β| passes the larger
/// margin it passes both, so it is missed at most as often as by the better of the two, whichever that is.
/// (1) The delete-a-day jackknife (Künsch, H. R. 1989, "The jackknife and the bootstrap for general stationary
/// observations", Ann. Statist. 17:1217–1241, with days as blocks), referred to Student's t with g − 1 degrees of freedom
/// for g days. (2) The variance components of the residuals e = y − β̂x (<see cref="ComponentError"/>): an hour of day d
/// is the day's level a_d plus its own noise η_{d,h}, so a pair's residual is e_{d,h} = (a_d − a_{d−1}) + (η_{d,h} −
/// η_{d−1,h}); the variances of a day's change of level and of a pair's own noise are those of the one-way analysis of
/// variance of the residuals by day (Searle, S. R., Casella, G. and McCulloch, C. E. 1992, "Variance Components", Wiley:
/// the one-way classification, unbalanced), read from every day, quiet or not; they give the variance of the
/// least-squares slope Σ cᵢ eᵢ, cᵢ = (xᵢ − x̄)/Sxx, through what each a_d and η_{d,h} weighs in it (a_d enters day d's
/// pairs and, negatively, day d + 1's). The weighted median of the slopes is the Wilcoxon rank estimate of the slope (it
/// minimises Jaeckel's dispersion Σ |e_j − e_i|; Hettmansperger, T. P. and McKean, J. W. 2011, "Robust Nonparametric
/// Statistical Methods", 2nd ed., CRC, chapter 3), whose variance at normal noise is π/3 times least squares' (τ² =
/// πσ²/3), an upper bound for the days' part (ranks within a day correlate less than the residuals do). The degrees of
/// freedom are Satterthwaite's (Satterthwaite, F. E. 1946, "An approximate distribution of estimates of variance
/// components", Biometrics Bulletin 2:110–114): the within-day mean square's n − g − 1 when the days' levels do not show
/// (the between-day mean square not above it), about g − 1 when they dominate.
/// </para>
/// <para>
/// <b>Why both, and how well the result is calibrated</b> (measured with the benchmarks' <c>elasticity</c>: 300 seeded
/// week baselines, weekends at 55% of the load, β̂ against the mean β̂ of the seeds; README "Holidays"). Each misses in a
/// way of its own. The delete-1 jackknife of a median is not consistent (Miller, R. G. 1974, "The jackknife — a review",
/// Biometrika 61:1–15; Efron, B. 1982, "The Jackknife, the Bootstrap and Other Resampling Plans", SIAM): its refits move
/// in jumps between neighbouring slopes, and with two transitions carrying the swings they can all land near the same
/// one. For a latency whose elasticity is one number its SE alone was on average twice the seeds' spread of β̂, yet a
/// tenth of it in some weeks, and |β̂ − β̄| / SE passed q in 2.3% of the baselines (meant: alpha/4 = 0.25%), t_{g−1}(0.975)
/// in 11% (meant: 5%). The components alone are steady (rms SE 0.006 against a spread of 0.005; beyond q 0.3%, beyond
/// t(0.975) 2.3%), but assume the pairs' own noise alike on every day, which a cost per request whose elasticity changes
/// with the hour (minus its fixed share: −0.25 at the peak, −0.77 at night) does not meet: its misfit (β_h − β̂) x sits on
/// the swing days, diluted among the quiet days' pairs, while deleting a swing day shows it to the jackknife. Alone they
/// narrowed the cost per request's margin and rolled back more of its holidays (<c>heteroscedastic</c>: 44 → 49 of 240
/// on a holiday). Kept together: for the latency beyond q in none of the 300 baselines, beyond t(0.975) in 1.7%, at an rms
/// SE of 0.010 (the larger margin is mostly still the jackknife's, its weeks of collapse replaced); the cost per request's
/// (the components' in about a third of the baselines, on 4 or 5 degrees of freedom, where its misfit shows between the
/// days) is as before five times its spread over the seeds and never passed: that width is the margin for the
/// elasticity's change with the hour (one β̂ for every hour of the day), not β̂'s sampling error. Tried and not kept: the
/// delete-d jackknife over all C(g, ⌊g/2⌋) sets of days (Shao, J. and Wu, C. F. J. 1989, "A general theory for jackknife
/// variance estimation", Ann. Statist. 17:1176–1197): half the days deleted often takes both weekend transitions, and
/// with them every load swing, so the latency's SE grew to an rms 0.146 and β̂ was determined in 30 of 300 baselines; an
/// effective number of days (two in such a week) would give t with one degree of freedom, q about 255, with the same
/// effect; the components with a heteroscedasticity-consistent within-day part (White, H. 1980, Econometrica
/// 48:817–838), which sees the misfit but with some 50 degrees of freedom a smaller q: 65 of 240 cost-per-request
/// holidays rolled back.
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
/// <param name="StandardError">Its standard error: the delete-a-day jackknife's or the variance components', whichever margin is the larger.</param>
/// <param name="Quantile">q, the Student-t quantile of the margin (and of the test that β̂ is determined), at that error's degrees of freedom.</param>
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
        if (Estimate(points, zone, alpha) is not var (slope, standardError, degrees, range))
        {
            return null;
        }

        var quantile = MarginQuantile(degrees, alpha);
        return Math.Abs(slope) > quantile * standardError ? new LoadAdjustment(slope, standardError, quantile, range) : null;
    }

    /// <summary>
    /// β̂, its standard error, the degrees of freedom of its t and the range, fitted to <paramref name="points"/> as
    /// <see cref="Fit"/> does but before the test that β̂ is determined (the error is the one of the two whose margin at
    /// <paramref name="alpha"/> is the larger); null when it cannot be fitted (too few days, swings of load no larger
    /// than the counts' noise).
    /// </summary>
    internal static (double Slope, double StandardError, int Degrees, double Range)? Estimate(
        IReadOnlyList<(DateTimeOffset At, double Log, long? Requests)> points, TimeZoneInfo? zone, double alpha)
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
            .Select(h => (Hour: h.Key, Day: h.Key.Date, X: h.Value.Count - hours[h.Key.AddDays(-1)].Count, Y: h.Value.Log - hours[h.Key.AddDays(-1)].Log,
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
        var jackknife = Math.Sqrt((g - 1.0) / g * leaveOut.Sum(b => (b - mean) * (b - mean)));

        // The error whose margin is the larger: the jackknife's or the variance components' (the class summary says why).
        var (standardError, degrees) =
            ComponentError([.. pairs.Select(p => (p.Hour, p.X, Residual: p.Y - slope * p.X))]) is var (model, modelDegrees)
            && MarginQuantile(modelDegrees, alpha) * model > MarginQuantile(g - 1, alpha) * jackknife
                ? (model, modelDegrees)
                : (jackknife, g - 1);
        var absolute = x.Select(Math.Abs).Order().ToArray();
        var range = absolute[Math.Min(absolute.Length - 1, (int)Math.Ceiling(RangeQuantile * absolute.Length) - 1)];
        return (slope, standardError, degrees, range);
    }

    /// <summary>
    /// The standard error of β̂ and the degrees of freedom of its t from the <paramref name="pairs"/>' residuals y − β̂x
    /// (by the hour of each pair's later day), with each day's level a random effect (see the class summary): the
    /// variance of the least-squares slope Σ cᵢ eᵢ, cᵢ = (xᵢ − x̄)/Sxx, under e_{d,h} = (a_d − a_{d−1}) + (η_{d,h} −
    /// η_{d−1,h}), its two variances from the one-way analysis of variance of the residuals by day, times π/3 for the
    /// weighted median of the slopes; the degrees of freedom Satterthwaite's. Null when no degree of freedom is left
    /// within the days, or the residuals are all alike.
    /// </summary>
    internal static (double StandardError, int Degrees)? ComponentError((DateTime Hour, double X, double Residual)[] pairs)
    {
        var n = pairs.Length;
        var dayMean = pairs.GroupBy(p => p.Hour.Date).ToDictionary(d => d.Key, d => (Count: d.Count(), Mean: d.Average(p => p.Residual)));
        var g = dayMean.Count;
        if (n - g - 1 < 1)
        {
            return null;
        }

        // One-way analysis of variance: within a day a pair's own noise η_{d,h} − η_{d−1,h}, between days that plus the
        // day's change of level a_d − a_{d−1} times the (effective) number of pairs of a day.
        var grand = pairs.Average(p => p.Residual);
        var within = pairs.Sum(p => Math.Pow(p.Residual - dayMean[p.Hour.Date].Mean, 2)) / (n - g - 1);
        var between = dayMean.Values.Sum(d => d.Count * (d.Mean - grand) * (d.Mean - grand)) / (g - 1);
        var perDay = (n - dayMean.Values.Sum(d => (double)d.Count * d.Count) / n) / (g - 1);

        // The slope's coefficients (x is not constant: β̂ exists), and what each day's level and each hour's noise weigh in
        // it: a_d enters day d's pairs and, negatively, day d + 1's; η_{d,h} the pair at hour h of day d and, negatively, of
        // day d + 1.
        var mean = pairs.Average(p => p.X);
        var sxx = pairs.Sum(p => (p.X - mean) * (p.X - mean));
        var c = pairs.ToDictionary(p => p.Hour, p => (p.X - mean) / sxx);
        var dayWeight = c.GroupBy(h => h.Key.Date).ToDictionary(d => d.Key, d => d.Sum(h => h.Value));
        var levels = dayWeight.Keys.Concat(dayWeight.Keys.Select(d => d.AddDays(-1))).Distinct()
            .Sum(d => Math.Pow(dayWeight.GetValueOrDefault(d) - dayWeight.GetValueOrDefault(d.AddDays(1)), 2)) / 2;
        var noises = c.Keys.Concat(c.Keys.Select(h => h.AddDays(-1))).Distinct()
            .Sum(h => Math.Pow(c.GetValueOrDefault(h) - c.GetValueOrDefault(h.AddDays(1)), 2)) / 2;

        // Var = levels · σ_b² + noises · σ_w², σ_b² = (between − within)/perDay (none when below 0), σ_w² = within.
        var (fromBetween, fromWithin) = between > within ? (levels / perDay * between, (noises - levels / perDay) * within) : (0, noises * within);
        var variance = fromBetween + fromWithin;
        if (!(variance > 0))
        {
            return null;
        }

        var degrees = variance * variance / (fromBetween * fromBetween / (g - 1) + fromWithin * fromWithin / (n - g - 1));
        return (Math.Sqrt(Math.PI / 3 * variance), Math.Max(1, (int)Math.Floor(degrees)));
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
    /// q of the margin, t_ν(1 − alpha/8) with ν = <paramref name="degrees"/>: |β̂ − β| beyond q · SE has probability alpha/4
    /// on both sides together (the class summary, "Its own error").
    /// </summary>
    internal static double MarginQuantile(int degrees, double alpha) => StudentQuantile(1 - alpha / 8, degrees);

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
