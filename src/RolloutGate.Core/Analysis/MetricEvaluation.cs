namespace RolloutGate.Core.Analysis;

/// <summary>
/// The result of evaluating one metric at one interval: what was seen, what it was compared with, the verdict,
/// the state to persist, and the reasoning in plain words.
/// </summary>
/// <param name="Metric">The runbook's metric name.</param>
/// <param name="Kind">The kind of test applied.</param>
/// <param name="At">The interval evaluated.</param>
/// <param name="Verdict">The conclusion.</param>
/// <param name="Value">The observed value in base units; null when blind.</param>
/// <param name="Reference">The baseline reference for this time (same time of day yesterday, or one week earlier with a baseline of about a week, smoothed; or the pooled baseline error rate); for a latency or cost per request adjusted for the interval's load where the baseline determines how the metric follows it (the explanation then says so, with the reference before the adjustment).</param>
/// <param name="AllowedValue">
/// The largest value the runbook allows at this time, the threshold of the evaluation's evidence: with maxIncrease the
/// relative limit, the reference times (1 + maxIncrease) (for request rate, and a query whose runbook says
/// <c>worse: lower</c>, the smallest value allowed, the reference times (1 − maxIncrease)), even when a max is set too,
/// because that limit is what the sequential tests judge and it moves with the reference (a healthy value above the max,
/// or a breach of it, is said so in the explanation, and the same for the min); without maxIncrease the absolute max, or the
/// absolute min where there is no max or the value is below the min (the limit it is then held against).
/// </param>
/// <param name="Statistic">
/// After this interval, the statistic (log-likelihood-ratio units) of the test nearest its threshold: the evidence since
/// the deploy, or the larger CUSUM chart; an alarming test first.
/// </param>
/// <param name="StatisticThreshold">That test's threshold: ln(2 / alpha) since the deploy, ln(2 · charts · looks / alpha) for a CUSUM chart.</param>
/// <param name="State">The state to persist and feed back next interval.</param>
/// <param name="Explanation">One or two plain-English sentences for Slack and the audit trail.</param>
public sealed record MetricEvaluation(
    string Metric,
    MetricKind Kind,
    DateTimeOffset At,
    Verdict Verdict,
    double? Value,
    double? Reference,
    double? AllowedValue,
    double Statistic,
    double StatisticThreshold,
    DetectorState State,
    string Explanation)
{
    /// <summary>Whether this verdict asks for a rollback.</summary>
    public bool IsRegression => Verdict is Verdict.Regressed or Verdict.BreachOfMax or Verdict.BreachOfMin;
}
