namespace RolloutGate.Core.Analysis;

/// <summary>
/// The shape of the baseline's noise: the distribution of its log residuals around the reference, kept as up to
/// <see cref="MaxQuantiles"/> order statistics, and the <b>normal score</b> of a residual, Φ⁻¹(F(y)) with F the
/// baseline's empirical distribution function. <see cref="BaselineWindow"/> uses it against its flat reference (a
/// baseline shorter than a day, compared with the stretch just before the deploy), where the baseline's residuals are
/// the noise the watch's residuals are drawn from.
/// <para>
/// Why not y / σ. Real residuals are rarely normal: a p95 latency per minute is skewed (on the Nezha front end, 10% of
/// the baseline lies below −1.8 noise units and only 5% above +1.2), a CPU series is quantised. Dividing by a scale
/// treats both sides alike, so a skewed metric's test either wastes power (its mean under the null hypothesis sits
/// below zero, eating part of every shift) or overstates it. The normal score maps the baseline's own distribution onto
/// the standard normal: if an interval's residual, less the allowed increase, is drawn from the same distribution as
/// the baseline's, its score is standard normal whatever that distribution is, so the sequential tests keep their
/// false-alarm bounds; and against a shift of the distribution the normal-scores statistic is asymptotically at least
/// as efficient as the mean of y / σ for every continuous noise distribution, and more efficient for every non-normal
/// one (Chernoff, H. and Savage, I. R. 1958, "Asymptotic efficiency and power of certain nonparametric test statistics",
/// Ann. Math. Statist. 29:972–994; the van der Waerden test: van der Waerden, B. L. 1952, "Order tests for the
/// two-sample problem and their power", Indag. Math. 14:453–458).
/// </para>
/// <para>
/// Ties (a quantised series) get the middle of their probability range (mid-ranks). Between stored order statistics F
/// is interpolated linearly; beyond the smallest and largest the score continues with slope 1 / σ (the baseline's noise
/// scale), so it stays nondecreasing and unbounded, and the detector's clip decides how far one interval may count.
/// </para>
/// </summary>
internal sealed class NoiseDistribution
{
    /// <summary>Most order statistics kept: the probability grid's step is then at most 0.5%, and the memory per metric fixed.</summary>
    public const int MaxQuantiles = 201;

    private readonly double[] _values;
    private readonly double[] _probabilities;
    private readonly double _scale;

    private NoiseDistribution(double[] values, double[] probabilities, double scale)
    {
        _values = values;
        _probabilities = probabilities;
        _scale = scale;
    }

    /// <summary>How many values it keeps (order statistics and their probabilities).</summary>
    internal int RetainedValues => _values.Length + _probabilities.Length;

    /// <summary>Writes the distribution in the stored form of its baseline (<see cref="BaselineWindow.Encode"/>).</summary>
    internal void Write(BinaryWriter writer)
    {
        BaselineWindow.Write(writer, _values);
        BaselineWindow.Write(writer, _probabilities);
        writer.Write(_scale);
    }

    /// <summary>Reads what <see cref="Write"/> wrote.</summary>
    internal static NoiseDistribution Read(BinaryReader reader)
    {
        var values = BaselineWindow.Read(reader);
        var probabilities = BaselineWindow.Read(reader);
        var scale = reader.ReadDouble();
        if (values.Length == 0 || values.Length != probabilities.Length || !(scale > 0))
        {
            throw new InvalidDataException($"stored noise distribution: {values.Length} values, {probabilities.Length} probabilities, scale {scale}");
        }

        return new NoiseDistribution(values, probabilities, scale);
    }

    /// <summary>
    /// The distribution of <paramref name="residuals"/> (log units), with <paramref name="scale"/> (their robust standard
    /// deviation, &gt; 0, floored) for the tails. Residuals whose own robust standard deviation is below
    /// <paramref name="scale"/> (a baseline quieter than the noise floor) are stretched to it; no residuals, or more than
    /// half of them equal, gives the normal distribution of that scale. <paramref name="spread"/>, their robust standard
    /// deviation before any floor, is computed here unless the caller has it already (<see cref="BaselineWindow"/> floors
    /// it into <paramref name="scale"/>).
    /// </summary>
    public static NoiseDistribution From(IReadOnlyCollection<double> residuals, double scale, double? spread = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(scale);
        var sorted = residuals.Where(double.IsFinite).ToArray();
        var robust = spread ?? (sorted.Length == 0 ? 0 : RobustStatistics.MadToSigma * RobustStatistics.Mad(sorted));
        if (robust <= 0)
        {
            return new NoiseDistribution([0], [0.5], scale);
        }

        // A baseline quieter than the noise floor is widened to it, keeping its shape, as the scale is floored.
        if (robust < scale)
        {
            for (var i = 0; i < sorted.Length; i++)
            {
                sorted[i] *= scale / robust;
            }
        }

        Array.Sort(sorted);
        var m = sorted.Length;

        // Mid-rank probabilities: the i-th of m sorted values (from 0) is at (i + 0.5) / m, and tied values share the middle
        // of their run, so a post-deploy value equal to the baseline's most common one scores as the middle of that block.
        var probabilities = new double[m];
        for (var i = 0; i < m;)
        {
            var j = i;
            while (j + 1 < m && sorted[j + 1] == sorted[i])
            {
                j++;
            }

            var middle = ((i + j) / 2.0 + 0.5) / m;
            for (var k = i; k <= j; k++)
            {
                probabilities[k] = middle;
            }

            i = j + 1;
        }

        // Distinct values only (one per tie run), then thinned evenly to at most MaxQuantiles, always keeping both ends.
        var distinct = Enumerable.Range(0, m).Where(i => i == 0 || sorted[i] != sorted[i - 1]).ToArray();
        var kept = distinct.Length <= MaxQuantiles
            ? distinct
            : Enumerable.Range(0, MaxQuantiles).Select(k => distinct[(int)Math.Round(k * (distinct.Length - 1.0) / (MaxQuantiles - 1))]).Distinct().ToArray();
        return new NoiseDistribution(kept.Select(i => sorted[i]).ToArray(), kept.Select(i => probabilities[i]).ToArray(), scale);
    }

    /// <summary>The normal score Φ⁻¹(F(<paramref name="residual"/>)) of a log residual; nondecreasing in it.</summary>
    public double Score(double residual)
    {
        var last = _values.Length - 1;
        if (residual <= _values[0])
        {
            return NormalQuantile(_probabilities[0]) - (_values[0] - residual) / _scale;
        }

        if (residual >= _values[last])
        {
            return NormalQuantile(_probabilities[last]) + (residual - _values[last]) / _scale;
        }

        var index = Array.BinarySearch(_values, residual);
        if (index >= 0)
        {
            return NormalQuantile(_probabilities[index]);
        }

        var above = ~index;
        var below = above - 1;
        var fraction = (residual - _values[below]) / (_values[above] - _values[below]);
        return NormalQuantile(_probabilities[below] + fraction * (_probabilities[above] - _probabilities[below]));
    }

    /// <summary>
    /// The standard normal quantile Φ⁻¹(p), 0 &lt; p &lt; 1: algorithm AS 241 (PPND16) of Wichura, M. J. 1988, "The percentage
    /// points of the normal distribution", Applied Statistics 37:477–484, accurate to about 1 part in 10¹⁶.
    /// </summary>
    internal static double NormalQuantile(double p)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(p, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(p, 1);
        var q = p - 0.5;
        if (Math.Abs(q) <= 0.425)
        {
            var r = 0.180625 - q * q;
            return q * (((((((2509.0809287301226727 * r + 33430.575583588128105) * r + 67265.770927008700853) * r
                + 45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r + 133.14166789178437745) * r
                + 3.387132872796366608)
                / (((((((5226.495278852545925 * r + 28729.085735721942674) * r + 39307.89580009271061) * r
                + 21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r + 42.313330701600911252) * r + 1);
        }

        var tail = Math.Sqrt(-Math.Log(q < 0 ? p : 1 - p));
        double value;
        if (tail <= 5)
        {
            var r = tail - 1.6;
            value = (((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r + 0.24178072517745061177) * r
                + 1.27045825245236838258) * r + 3.64784832476320460504) * r + 5.7694972214606914055) * r + 4.6303378461565452959) * r
                + 1.42343711074968357734)
                / (((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r
                + 0.14810397642748007459) * r + 0.68976733498510000455) * r + 1.6763848301838038494) * r + 2.05319162663775882187) * r + 1);
        }
        else
        {
            var r = tail - 5;
            value = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r
                + 0.026532189526576123093) * r + 0.29656057182850489123) * r + 1.7848265399172913358) * r + 5.4637849111641143699) * r
                + 6.6579046435011037772)
                / (((((((2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r
                + 7.868691311456132591e-4) * r + 0.0148753612908506148525) * r + 0.13692988092273580531) * r + 0.59983220655588793769) * r + 1);
        }

        return q < 0 ? -value : value;
    }
}
