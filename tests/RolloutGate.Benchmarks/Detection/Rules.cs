using RolloutGate.Core.Analysis;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Benchmarks.Detection;

/// <summary>A rule that watches a scenario and says at which look (index into the watch) it would roll back, if any.</summary>
internal interface IRollbackRule
{
    string Name { get; }

    int? FirstAlarm(Scenario scenario);
}

/// <summary>
/// Our detector (<see cref="RegressionDetector"/>), with the number of looks set to the watch's length; with a
/// <paramref name="warmup"/>, the runbook's <c>watch.warmup</c>.
/// </summary>
internal sealed class OurDetectorRule(MetricSpec spec, TimeSpan warmup = default) : IRollbackRule
{
    public string Name => warmup > TimeSpan.Zero
        ? $"RolloutGate (since-deploy SPRT + CUSUM, warmup {warmup.TotalMinutes:0}m)"
        : "RolloutGate (since-deploy SPRT + CUSUM)";

    public int? FirstAlarm(Scenario scenario)
    {
        var options = DetectorOptions.Default with { LooksPerWatch = scenario.Watch.Length };
        var baseline = BaselineWindow.From(scenario.Trace.Kind, scenario.Baseline, options);
        // A sample's timestamp is the start of its look, which ends one interval later (the delays count so): the looks
        // that end within the warm-up are those whose sample is at most one interval before its end.
        DateTimeOffset? warmUpUntil = warmup > TimeSpan.Zero ? scenario.DeployAt + warmup - scenario.Trace.Interval : null;
        DetectorState? state = null;
        for (var i = 0; i < scenario.Watch.Length; i++)
        {
            var evaluation = RegressionDetector.Evaluate(scenario.Trace.Kind, spec, baseline, state, scenario.Watch[i], options, warmUpUntil);
            if (evaluation.IsRegression)
            {
                return i;
            }

            state = evaluation.State;
        }

        return null;
    }
}

/// <summary>
/// Flagger-style: a static threshold (baseline mean × (1 + maxIncrease)) checked at every interval; the canary is rolled
/// back when the count of failed checks reaches the analysis <c>threshold</c> (Flagger counts failed checks over the
/// analysis, not only consecutive ones). Argo-Rollouts-style is the same check with <c>failureLimit</c>: the metric fails
/// once failed measurements exceed the limit; with <paramref name="initialDelay"/>, Argo's <c>initialDelay</c>: no
/// measurement until that long after the deploy.
/// </summary>
internal sealed class StaticThresholdRule(string name, double maxIncrease, int failuresToRollback, TimeSpan initialDelay = default) : IRollbackRule
{
    public string Name => name;

    public int? FirstAlarm(Scenario scenario)
    {
        var values = scenario.Baseline.Where(o => o.Value is not null).Select(o => o.Value!.Value).ToArray();
        if (values.Length == 0)
        {
            return null;
        }

        var threshold = values.Average() * (1 + maxIncrease);
        var failures = 0;
        for (var i = (int)(initialDelay / scenario.Trace.Interval); i < scenario.Watch.Length; i++)
        {
            if (scenario.Watch[i].Value is { } v && v > threshold && ++failures >= failuresToRollback)
            {
                return i;
            }
        }

        return null;
    }
}

/// <summary>
/// Kayenta-style (NetflixACA judge): a one-sided Mann-Whitney U test of canary values against baseline values, here the
/// hour before the deploy against an hour after it (there is no concurrent control in recorded data). The canary values
/// are divided by (1 + maxIncrease) so the test asks "worse than allowed?" like the other rules. At a fixed horizon it
/// tests once; re-run at every interval it tests the latest hour at every look.
/// </summary>
internal sealed class MannWhitneyRule(string name, double maxIncrease, double alpha, TimeSpan window, bool everyInterval) : IRollbackRule
{
    public string Name => name;

    public int? FirstAlarm(Scenario scenario)
    {
        var size = (int)Math.Round(window / scenario.Trace.Interval);
        var baseline = MannWhitney.LastValues(scenario.Baseline, size);
        if (baseline.Length < 3)
        {
            return null;
        }

        var scale = 1 / (1 + maxIncrease);
        if (!everyInterval)
        {
            if (scenario.Watch.Length < size)
            {
                return null;
            }

            return MannWhitney.GreaterPValue(MannWhitney.Values(new ArraySegment<Observation>(scenario.Watch, 0, size), scale), baseline) < alpha ? size - 1 : null;
        }

        for (var i = 2; i < scenario.Watch.Length; i++)
        {
            var from = Math.Max(0, i + 1 - size);
            if (MannWhitney.GreaterPValue(MannWhitney.Values(new ArraySegment<Observation>(scenario.Watch, from, i + 1 - from), scale), baseline) < alpha)
            {
                return i;
            }
        }

        return null;
    }

}

/// <summary>Mann-Whitney U (Mann and Whitney 1947) with the normal approximation, tie correction and continuity correction.</summary>
internal static class MannWhitney
{
    /// <summary>The samples with data, each times <paramref name="scale"/>: what the test compares.</summary>
    public static double[] Values(IEnumerable<Observation> observations, double scale) =>
        observations.Where(o => o.Value is not null).Select(o => o.Value!.Value * scale).ToArray();

    /// <summary>The values of the last <paramref name="size"/> samples (the hour before the deploy, for a baseline).</summary>
    public static double[] LastValues(Observation[] observations, int size) =>
        Values(new ArraySegment<Observation>(observations, Math.Max(0, observations.Length - size), Math.Min(size, observations.Length)), 1);

    /// <summary>One-sided p-value for "<paramref name="canary"/> tends to be larger than <paramref name="baseline"/>".</summary>
    public static double GreaterPValue(double[] canary, double[] baseline)
    {
        int n1 = canary.Length, n2 = baseline.Length, n = n1 + n2;
        if (n1 == 0 || n2 == 0)
        {
            return 1;
        }

        var all = new (double Value, bool IsCanary)[n];
        for (var i = 0; i < n1; i++)
        {
            all[i] = (canary[i], true);
        }

        for (var i = 0; i < n2; i++)
        {
            all[n1 + i] = (baseline[i], false);
        }

        Array.Sort(all, (a, b) => a.Value.CompareTo(b.Value));
        double canaryRanks = 0, tieTerm = 0;
        for (var start = 0; start < n;)
        {
            var end = start;
            while (end + 1 < n && all[end + 1].Value == all[start].Value)
            {
                end++;
            }

            var rank = (start + end + 2) / 2.0;
            var ties = end - start + 1;
            tieTerm += (double)ties * ties * ties - ties;
            for (var k = start; k <= end; k++)
            {
                if (all[k].IsCanary)
                {
                    canaryRanks += rank;
                }
            }

            start = end + 1;
        }

        var u = canaryRanks - n1 * (n1 + 1) / 2.0;
        var mean = n1 * (double)n2 / 2;
        var variance = n1 * (double)n2 / 12 * (n + 1 - tieTerm / ((double)n * (n - 1)));
        if (variance <= 0)
        {
            return 1;
        }

        var z = (u - mean - 0.5) / Math.Sqrt(variance);
        return 1 - NormalCdf(z);
    }

    /// <summary>Standard normal CDF via the Abramowitz and Stegun 7.1.26 approximation of erf (error below 1.5e-7).</summary>
    private static double NormalCdf(double z)
    {
        var x = Math.Abs(z) / Math.Sqrt(2);
        var t = 1 / (1 + 0.3275911 * x);
        var erf = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.Exp(-x * x);
        return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
    }
}
