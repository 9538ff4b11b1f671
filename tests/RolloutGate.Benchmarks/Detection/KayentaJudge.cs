using RolloutGate.Core.Analysis;

namespace RolloutGate.Benchmarks.Detection;

/// <summary>
/// Kayenta's default canary judge (NetflixACAJudge-v1.0, spinnaker/kayenta, kayenta-judge), re-implemented from its
/// source for the benchmark, one metric at a time:
/// <list type="number">
/// <item>outliers removed from each side: a value below min(p1, Q1 − 3·IQR) or above max(p99, Q3 + 3·IQR) (its
/// IQRDetector with factor 3 and reduceSensitivity);</item>
/// <item>identical samples, or a single distinct value on both sides, pass;</item>
/// <item>the Mann-Whitney confidence interval of the shift, experiment minus control, at a 98% confidence level, and
/// its Hodges-Lehmann estimate, both found as R's wilcox.test finds them with the normal approximation (tie and
/// continuity correction);</item>
/// <item>the metric is High when the interval's lower end lies above a quarter of the estimate's size (its tolerance
/// 0.25) and the ratio of the means, experiment over control (1 when the control's mean is 0), reaches
/// <c>effectSize.allowedIncrease</c>.</item>
/// </list>
/// </summary>
internal static class KayentaJudge
{
    private const double Tolerance = 0.25;

    /// <summary>The normal quantile of a two-sided 98% interval, Φ⁻¹(0.99).</summary>
    private const double Quantile = 2.3263478740408408;

    public static bool IsHigh(double[] experiment, double[] control, double allowedIncrease)
    {
        experiment = WithoutOutliers(experiment);
        control = WithoutOutliers(control);
        if (experiment.Length == 0 || control.Length == 0)
        {
            return false;
        }

        if (experiment.Order().SequenceEqual(control.Order()) || experiment.Concat(control).Distinct().Count() == 1)
        {
            return false;
        }

        var deviation = control.Average() == 0 ? 1 : experiment.Average() / control.Average();
        if (deviation < allowedIncrease)
        {
            return false;
        }

        var shifts = new Shifts(experiment, control);
        return shifts.Root(Quantile) > Tolerance * Math.Abs(shifts.Root(0));
    }

    private static double[] WithoutOutliers(double[] values)
    {
        if (values.Length == 0)
        {
            return values;
        }

        var sorted = values.Order().ToArray();
        var (q1, q3) = (Percentile(sorted, 25), Percentile(sorted, 75));
        var lowerFence = Math.Min(Percentile(sorted, 1), q1 - 3 * (q3 - q1));
        var upperFence = Math.Max(Percentile(sorted, 99), q3 + 3 * (q3 - q1));
        return values.Where(v => v >= lowerFence && v <= upperFence).ToArray();
    }

    /// <summary>Apache Commons Math's default percentile (its LEGACY estimation: position p·(n + 1)/100).</summary>
    private static double Percentile(double[] sorted, double p)
    {
        var n = sorted.Length;
        var position = p * (n + 1) / 100;
        if (position < 1)
        {
            return sorted[0];
        }

        if (position >= n)
        {
            return sorted[n - 1];
        }

        var floor = (int)Math.Floor(position);
        return sorted[floor - 1] + (position - floor) * (sorted[floor] - sorted[floor - 1]);
    }

    /// <summary>
    /// R's wilcox.test statistic for the interval, (W − nm/2 − sign·½) / σ, as a function of the shift μ taken off the
    /// experiment: W counts the pairs with experiment − μ above the control (a tie a half), so it steps at the pairwise
    /// differences, which are sorted once. σ's tie correction counts the ties within each sample; a tie across the
    /// samples happens only at a difference itself, where the search never stops.
    /// </summary>
    private sealed class Shifts
    {
        private readonly double[] differences;
        private readonly double half;
        private readonly double sigma;

        public Shifts(double[] experiment, double[] control)
        {
            int n = experiment.Length, m = control.Length, total = n + m;
            differences = experiment.SelectMany(x => control.Select(y => x - y)).Order().ToArray();
            half = n * (double)m / 2;
            var ties = TieTerm(experiment) + TieTerm(control);
            sigma = Math.Sqrt(n * (double)m / 12 * (total + 1 - ties / ((double)total * (total - 1))));
        }

        /// <summary>The shift at which the statistic equals <paramref name="quantile"/>, searched between the extreme differences as Kayenta's Brent solver does.</summary>
        public double Root(double quantile)
        {
            double low = differences[0], high = differences[^1];
            if (Standardised(low) - quantile <= 0)
            {
                return low;
            }

            if (Standardised(high) - quantile >= 0)
            {
                return high;
            }

            for (var i = 0; i < 100 && high - low > 1e-9 * Math.Max(1, Math.Abs(high)); i++)
            {
                var middle = (low + high) / 2;
                if (Standardised(middle) - quantile > 0)
                {
                    low = middle;
                }
                else
                {
                    high = middle;
                }
            }

            return (low + high) / 2;
        }

        private double Standardised(double shift)
        {
            var below = LowerBound(shift);
            var notAbove = UpperBound(shift);
            var dz = differences.Length - notAbove + (notAbove - below) / 2.0 - half;
            return sigma == 0 ? 0 : (dz - Math.Sign(dz) * 0.5) / sigma;
        }

        private int LowerBound(double value)
        {
            int low = 0, high = differences.Length;
            while (low < high)
            {
                var middle = (low + high) / 2;
                if (differences[middle] < value) low = middle + 1; else high = middle;
            }

            return low;
        }

        private int UpperBound(double value)
        {
            int low = 0, high = differences.Length;
            while (low < high)
            {
                var middle = (low + high) / 2;
                if (differences[middle] <= value) low = middle + 1; else high = middle;
            }

            return low;
        }

        private static double TieTerm(double[] values) =>
            values.GroupBy(v => v).Sum(g => (double)g.Count() * g.Count() * g.Count() - g.Count());
    }
}

/// <summary>
/// Kayenta's judge (<see cref="KayentaJudge"/>) on the first hour after the deploy against the hour before it, judged
/// once at one hour (or, <paramref name="everyInterval"/>, on the latest hour at every look). The runbook's tolerance
/// is Kayenta's own way of stating one, <c>effectSize.allowedIncrease</c> = 1 + maxIncrease: the values are compared
/// as they are (the other rules divide the canary's by 1 + maxIncrease instead).
/// </summary>
internal sealed class KayentaJudgeRule(string name, double maxIncrease, TimeSpan window, bool everyInterval) : IRollbackRule
{
    public string Name => name;

    public int? FirstAlarm(Scenario scenario)
    {
        var size = (int)Math.Round(window / scenario.Trace.Interval);
        var control = MannWhitney.LastValues(scenario.Baseline, size);
        if (control.Length < 3)
        {
            return null;
        }

        var allowedIncrease = 1 + maxIncrease;
        var first = everyInterval ? 2 : size - 1;
        for (var i = first; i < scenario.Watch.Length; i++)
        {
            var from = Math.Max(0, i + 1 - size);
            if (KayentaJudge.IsHigh(MannWhitney.Values(new ArraySegment<Observation>(scenario.Watch, from, i + 1 - from), 1), control, allowedIncrease))
            {
                return i;
            }

            if (!everyInterval)
            {
                return null;
            }
        }

        return null;
    }
}
