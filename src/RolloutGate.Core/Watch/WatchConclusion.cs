using RolloutGate.Core.Analysis;

namespace RolloutGate.Core.Watch;

/// <summary>What the watch does after the evaluations of one interval.</summary>
public enum WatchOutcome
{
    /// <summary>Keep watching.</summary>
    Continue,

    /// <summary>A metric regressed (or breached its max or min): the deployment moves to regressed.</summary>
    Regressed,

    /// <summary>Every metric has been blind for longer than stopRules.maxBlind: the automation stops and says so.</summary>
    StoppedBlind,

    /// <summary>The watch reached its end without a regression.</summary>
    Completed,
}

/// <summary>The outcome after one interval, with the reason in words for the audit trail.</summary>
public sealed record WatchConclusion(WatchOutcome Outcome, string? Reason)
{
    /// <summary>
    /// Decides from the evaluations at <paramref name="at"/>. A regression wins over everything; no data is never healthy,
    /// so blindness stops the watch rather than letting it complete; the last evaluation time before the end completes it.
    /// </summary>
    public static WatchConclusion After(
        IReadOnlyList<MetricEvaluation> evaluations, DateTimeOffset at, DateTimeOffset until, TimeSpan interval, TimeSpan maxBlind)
    {
        ArgumentNullException.ThrowIfNull(evaluations);
        if (evaluations.FirstOrDefault(e => e.IsRegression) is { } regression)
        {
            return new WatchConclusion(WatchOutcome.Regressed, regression.Explanation);
        }

        if (evaluations.Count > 0 && evaluations.All(e => e.Verdict == Verdict.Blind))
        {
            var blindFor = interval * evaluations.Min(e => e.State.BlindIntervals);
            if (blindFor > maxBlind)
            {
                return new WatchConclusion(WatchOutcome.StoppedBlind,
                    $"every metric has had no data for {MetricQueries.Duration(blindFor)}, longer than stopRules.maxBlind ({MetricQueries.Duration(maxBlind)}); the watch stops because no data is never healthy");
            }
        }

        return WatchSchedule.IsLast(at, interval, until)
            ? new WatchConclusion(WatchOutcome.Completed, "the watch ran its full duration without a regression" + Unseen(evaluations))
            : new WatchConclusion(WatchOutcome.Continue, null);
    }

    /// <summary>
    /// What a completed watch could not see: "; no verdict for p95-latency in 312 of its 1440 intervals (no data, or too few
    /// requests)". No data is never healthy, and a watch that completes after judging a metric in a few of its intervals
    /// says so, rather than reading as 24 hours of health.
    /// </summary>
    private static string Unseen(IReadOnlyList<MetricEvaluation> evaluations)
    {
        var unseen = evaluations.Where(e => e.State.NoVerdictIntervals > 0)
            .Select(e => $"{e.Metric} in {e.State.NoVerdictIntervals} of its {e.State.Evaluations} intervals")
            .ToList();
        return unseen.Count == 0 ? "" : $"; no verdict for {string.Join(", for ", unseen)} (no data, or too few requests)";
    }
}

/// <summary>Verdicts as stored and shown by the API.</summary>
public static class VerdictNames
{
    public static string Of(Verdict verdict) => verdict switch
    {
        Verdict.Healthy => "healthy",
        Verdict.Regressed => "regressed",
        Verdict.BreachOfMax => "breach-of-max",
        Verdict.BreachOfMin => "breach-of-min",
        Verdict.InsufficientData => "insufficient-data",
        _ => "blind",
    };
}
