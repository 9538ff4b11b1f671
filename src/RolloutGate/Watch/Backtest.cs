using RolloutGate.Core.Watch;

namespace RolloutGate.Watch;

/// <summary>One evaluation as the backtest prints it.</summary>
public sealed record BacktestEvaluation(
    DateTimeOffset At, string Metric, double? Value, double? Baseline, double? Threshold, double Statistic, string Verdict, string Explanation);

/// <summary>
/// CONTRACT section 8's answer. <see cref="Outcome"/> (an addition) tells a watch that would have completed from one
/// that ran out of data: regressed, completed, stopped-blind, or incomplete when the data ends before the watch would.
/// </summary>
public sealed record BacktestResult(string Decision, DateTimeOffset? DetectedAt, string Outcome, IReadOnlyList<BacktestEvaluation> Evaluations);

/// <summary>
/// The live watch's evaluation over recorded data: the same baseline, schedule, evaluator and conclusion, walking t
/// from the deploy to the end of the watch (or of the data). Nothing is stored, sent or audited.
/// </summary>
public static class Backtest
{
    public static async Task<BacktestResult> RunAsync(
        IMetricSource source, WatchPlan plan, DateTimeOffset deployedAt, DateTimeOffset dataEnd, CancellationToken cancellationToken)
    {
        var watch = plan.Watch;
        var until = deployedAt + watch.Duration;
        var samples = await WatchEvaluator.CaptureBaselineAsync(source, plan, plan.Metrics, deployedAt - watch.Baseline, deployedAt, cancellationToken);
        var baselines = WatchEvaluator.Baselines(plan, samples, until);
        var states = new Dictionary<string, Core.Analysis.DetectorState>(StringComparer.Ordinal);
        var printed = new List<BacktestEvaluation>();
        foreach (var at in WatchSchedule.DueTimes(deployedAt, watch.Interval, null, dataEnd, until))
        {
            var evaluations = await WatchEvaluator.EvaluateAsync(source, plan, deployedAt, baselines, states, at, cancellationToken);
            foreach (var e in evaluations.Select(w => w.Evaluation))
            {
                states[e.Metric] = e.State;
                printed.Add(new BacktestEvaluation(e.At, e.Metric, e.Value, e.Reference, e.AllowedValue, e.Statistic, VerdictNames.Of(e.Verdict), e.Explanation));
            }

            var conclusion = WatchConclusion.After([.. evaluations.Select(w => w.Evaluation)], at, until, watch.Interval, watch.StopRules.MaxBlind);
            switch (conclusion.Outcome)
            {
                case WatchOutcome.Regressed:
                    return new BacktestResult("rollback", at, "regressed", printed);
                case WatchOutcome.StoppedBlind:
                    return new BacktestResult("healthy", null, "stopped-blind", printed);
                case WatchOutcome.Completed:
                    return new BacktestResult("healthy", null, "completed", printed);
            }
        }

        return new BacktestResult("healthy", null, "incomplete", printed);
    }
}
