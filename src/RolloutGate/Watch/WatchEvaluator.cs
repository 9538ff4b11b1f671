using RolloutGate.Core.Analysis;

namespace RolloutGate.Watch;

/// <summary>One metric's evaluation at one time, with the query that produced its value (the evidence).</summary>
public sealed record WatchEvaluation(MetricEvaluation Evaluation, string Query);

/// <summary>
/// The evaluation step shared by the live watch and the backtest: for every metric, read the interval ending at t from
/// the source and run the detector against the baseline and the state carried from the previous interval.
/// </summary>
public static class WatchEvaluator
{
    /// <summary>The baseline of every metric, read from the source over the window before the deploy (step = interval).</summary>
    public static async Task<Dictionary<string, IReadOnlyList<Observation>>> CaptureBaselineAsync(
        IMetricSource source, WatchPlan plan, IEnumerable<WatchMetric> metrics, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken)
    {
        var samples = new Dictionary<string, IReadOnlyList<Observation>>(StringComparer.Ordinal);
        foreach (var metric in metrics)
        {
            samples[metric.Name] = await source.BaselineAsync(metric, from, to, plan.Watch.Interval, cancellationToken);
        }

        return samples;
    }

    /// <summary>
    /// Reduces stored baseline samples to what the detector compares with during a watch that ends at <paramref name="until"/>,
    /// its "same time of day" on the clock of the runbook's <c>watch.timezone</c>.
    /// </summary>
    public static Dictionary<string, BaselineWindow> Baselines(
        WatchPlan plan, IReadOnlyDictionary<string, IReadOnlyList<Observation>> samples, DateTimeOffset until) =>
        plan.Metrics.ToDictionary(
            m => m.Name,
            m => BaselineWindow.From(m.Kind, samples.GetValueOrDefault(m.Name) ?? [], plan.Options, until, plan.TimeZone),
            StringComparer.Ordinal);

    /// <summary>
    /// Evaluates every metric at <paramref name="at"/>. Throws if the source cannot answer, so that nothing is recorded
    /// for t and it is evaluated again later; no data is a blind verdict, never an exception.
    /// </summary>
    public static async Task<IReadOnlyList<WatchEvaluation>> EvaluateAsync(
        IMetricSource source,
        WatchPlan plan,
        DateTimeOffset deployedAt,
        IReadOnlyDictionary<string, BaselineWindow> baselines,
        IReadOnlyDictionary<string, DetectorState> states,
        DateTimeOffset at,
        CancellationToken cancellationToken) =>
        Evaluate(plan, deployedAt, baselines, states, await source.ObserveAsync(plan.Metrics, at, cancellationToken));

    /// <summary>
    /// Runs the detector on what the source saw of each metric (<paramref name="seen"/>, in the order of the plan's
    /// metrics) against the baseline and the state carried from the previous interval; within the runbook's
    /// <c>watch.warmup</c> after <paramref name="deployedAt"/>, against the absolute max only.
    /// </summary>
    public static IReadOnlyList<WatchEvaluation> Evaluate(
        WatchPlan plan,
        DateTimeOffset deployedAt,
        IReadOnlyDictionary<string, BaselineWindow> baselines,
        IReadOnlyDictionary<string, DetectorState> states,
        IReadOnlyList<MetricObservation> seen)
    {
        var warmUpUntil = plan.Watch.WarmUpUntil(deployedAt);
        var evaluations = new List<WatchEvaluation>(plan.Metrics.Count);
        for (var i = 0; i < plan.Metrics.Count; i++)
        {
            var metric = plan.Metrics[i];
            var evaluation = RegressionDetector.Evaluate(
                metric.Kind, metric.Spec, baselines[metric.Name], states.GetValueOrDefault(metric.Name), seen[i].Observation, plan.Options, warmUpUntil);
            if (seen[i].Note is { } note)
            {
                evaluation = evaluation with { Explanation = $"{evaluation.Explanation} {note}" };
            }

            evaluations.Add(new WatchEvaluation(evaluation, metric.Query.Value));
        }

        return evaluations;
    }
}
