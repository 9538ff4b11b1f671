namespace RolloutGate.Core.Analysis;

/// <summary>
/// The noise's variance law σ²(n) = σ₀² + c/n over an interval's request count n, fitted to a seasonal baseline's log
/// residuals and their counts, and an upper confidence bound for it at any n (see <see cref="BaselineWindow.LogNoiseScaleFor"/>,
/// which uses the bound where it is below the rule that holds whatever σ₀² and c are).
/// <para>
/// <b>Fit.</b> The samples are split by count into up to <see cref="MaxBins"/> bins of equal size, at least
/// <see cref="MinBinSize"/> each. A bin's variance v_k is (1.4826 × its median absolute residual)², robust like the
/// baseline's one scale, at x_k, the bin's mean of 1/n. Under the law E v_k = σ₀² + c x_k, and at normal noise v_k has
/// variance <see cref="MedianVarianceFactor"/> μ_k² / m_k (μ_k = E v_k, m_k the bin's samples: the median of |r| has
/// asymptotic variance ¼ / (m f²), f its density at the median). That is a generalised linear model with identity link
/// and variance ∝ μ², fitted by iteratively reweighted least squares with weights m_k / μ_k² (McCullagh, P. and Nelder,
/// J. A. 1989, "Generalized Linear Models", 2nd ed., section 2.5 and chapter 8); its covariance is the inverse information
/// times the dispersion, the Pearson estimate over the bins floored at the model's own (more scatter than the law
/// gives, from a law that does not quite hold or heavier tails, widens the bound; less is not credited).
/// </para>
/// <para>
/// <b>Bound.</b> σ₀² + c/n + z √Var(σ̂₀² + ĉ/n) with z = Φ⁻¹(0.99), the watch's default false-rollback budget: the
/// variance at n is understated with probability about 1% (1–2.5% on generated days, see the benchmarks' README). The fit is unconstrained; σ₀², c ≥ 0 enter where
/// the bound is used (c ≥ 0: no interval of fewer requests than the median is less noisy than the median's; σ₀² ≥ 0:
/// none is noisier than the pure 1/n law allows). Counts that hardly spread leave x_k close together and a wide
/// bound at every n away from them, so the rule for any law is kept there: the bound's width, not a tuned threshold,
/// decides whether the two terms are told apart. There is no fit with fewer than two bins (fewer than
/// 2 × <see cref="MinBinSize"/> samples) or with every bin's x_k the same.
/// </para>
/// </summary>
/// <param name="Intercept">σ̂₀², the variance that does not depend on the count.</param>
/// <param name="Slope">ĉ, the variance of one request's share (the variance at n is ĉ / n more).</param>
/// <param name="InterceptVariance">The estimated variance of <paramref name="Intercept"/>.</param>
/// <param name="Covariance">The estimated covariance of <paramref name="Intercept"/> and <paramref name="Slope"/>.</param>
/// <param name="SlopeVariance">The estimated variance of <paramref name="Slope"/>.</param>
internal readonly record struct CountNoiseLaw(double Intercept, double Slope, double InterceptVariance, double Covariance, double SlopeVariance)
{
    /// <summary>Fewest samples in a bin: the median's large-sample variance is then close to its exact one.</summary>
    public const int MinBinSize = 30;

    /// <summary>Most bins: deciles of the count, enough for a law of two terms.</summary>
    public const int MaxBins = 10;

    /// <summary>z of the bound: Φ⁻¹(0.99).</summary>
    public static readonly double BoundQuantile = NoiseDistribution.NormalQuantile(0.99);

    /// <summary>
    /// m × Var(v) / σ⁴ for v = (1.4826 × the median of m values |r|)², r normal of variance σ²: 1.4826² / (4 φ(Φ⁻¹(¾))²) ≈ 5.44.
    /// </summary>
    public static readonly double MedianVarianceFactor =
        RobustStatistics.MadToSigma * RobustStatistics.MadToSigma / (4 * Square(NormalDensity(NoiseDistribution.NormalQuantile(0.75))));

    /// <summary>
    /// The law fitted to <paramref name="residuals"/> and their <paramref name="requests"/> (every one positive), or null
    /// when they do not make two bins of different counts. <paramref name="varianceFloor"/> is the least variance a bin's
    /// weight assumes (the noise floor's square), so a bin of equal values does not take all the weight.
    /// </summary>
    public static CountNoiseLaw? Fit(IReadOnlyList<long> requests, IReadOnlyList<double> residuals, double varianceFloor)
    {
        var bins = Math.Min(MaxBins, requests.Count / MinBinSize);
        if (bins < 2)
        {
            return null;
        }

        // The samples by count (ties in any order: a bin is a range of counts), as 1/n and |r|.
        var counts = requests.Select(n => (double)n).ToArray();
        var absolute = residuals.Select(Math.Abs).ToArray();
        Array.Sort(counts, absolute);
        var x = new double[bins];
        var v = new double[bins];
        var m = new double[bins];
        for (var k = 0; k < bins; k++)
        {
            var (from, to) = (k * counts.Length / bins, (k + 1) * counts.Length / bins);
            var reciprocals = 0.0;
            for (var i = from; i < to; i++)
            {
                reciprocals += 1 / counts[i];
            }

            m[k] = to - from;
            x[k] = reciprocals / m[k];
            v[k] = Square(RobustStatistics.MadToSigma * RobustStatistics.Median(absolute.AsSpan(from, to - from)));
        }

        var pooled = Enumerable.Range(0, bins).Sum(k => m[k] * v[k]) / counts.Length;
        var mean = Enumerable.Repeat(Math.Max(varianceFloor, pooled), bins).ToArray();
        double a = 0, b = 0, s0 = 0, s1 = 0, s2 = 0, det = 0;
        var w = new double[bins];
        for (var iteration = 0; iteration < 100; iteration++)
        {
            for (var k = 0; k < bins; k++)
            {
                w[k] = m[k] / (MedianVarianceFactor * Square(mean[k]));
            }

            (s0, s1, s2) = (w.Sum(), Enumerable.Range(0, bins).Sum(k => w[k] * x[k]), Enumerable.Range(0, bins).Sum(k => w[k] * x[k] * x[k]));
            var (t0, t1) = (Enumerable.Range(0, bins).Sum(k => w[k] * v[k]), Enumerable.Range(0, bins).Sum(k => w[k] * x[k] * v[k]));
            det = s0 * s2 - s1 * s1;
            if (!(det > 1e-12 * s0 * s2))
            {
                return null; // the bins' mean 1/n all (nearly) the same: the counts do not spread
            }

            (a, b) = ((s2 * t0 - s1 * t1) / det, (s0 * t1 - s1 * t0) / det);
            var change = 0.0;
            for (var k = 0; k < bins; k++)
            {
                var next = Math.Max(varianceFloor, a + b * x[k]);
                change = Math.Max(change, Math.Abs(next - mean[k]) / mean[k]);
                mean[k] = next;
            }

            if (change < 1e-9)
            {
                break;
            }
        }

        var dispersion = bins > 2 ? Enumerable.Range(0, bins).Sum(k => w[k] * Square(v[k] - (a + b * x[k]))) / (bins - 2) : 1;
        var scale = Math.Max(1, dispersion) / det;
        return new CountNoiseLaw(a, b, scale * s2, -scale * s1, scale * s0);
    }

    /// <summary>The upper confidence bound for the variance at <paramref name="requests"/> (see the summary); it may be negative.</summary>
    public double UpperVariance(double requests)
    {
        var x = 1 / requests;
        return Intercept + Slope * x + BoundQuantile * Math.Sqrt(Math.Max(0, InterceptVariance + 2 * Covariance * x + SlopeVariance * x * x));
    }

    public void Write(BinaryWriter writer)
    {
        writer.Write(Intercept);
        writer.Write(Slope);
        writer.Write(InterceptVariance);
        writer.Write(Covariance);
        writer.Write(SlopeVariance);
    }

    public static CountNoiseLaw Read(BinaryReader reader) =>
        new(reader.ReadDouble(), reader.ReadDouble(), reader.ReadDouble(), reader.ReadDouble(), reader.ReadDouble());

    private static double NormalDensity(double z) => Math.Exp(-z * z / 2) / Math.Sqrt(2 * Math.PI);

    private static double Square(double value) => value * value;
}
