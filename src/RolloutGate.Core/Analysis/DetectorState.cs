namespace RolloutGate.Core.Analysis;

/// <summary>
/// What the detector carries from one interval to the next: persist it with the evaluation and pass it back at the
/// next interval, so that a restarted watch resumes exactly where it stopped. A few numbers, serializable as they are.
/// </summary>
/// <param name="Cusum">The one-sided CUSUM of evidence for an increase beyond the allowed one (log-likelihood-ratio units, never below 0).</param>
/// <param name="AccumulatingSince">When the evidence (either CUSUM) last rose from 0; null while both are 0.</param>
/// <param name="IntervalsAboveMax">Consecutive intervals with the value above the absolute <c>max</c>.</param>
/// <param name="BlindIntervals">Consecutive intervals without data (for the runbook's <c>stopRules.maxBlind</c>).</param>
/// <param name="Evaluations">Intervals evaluated so far, data or not.</param>
/// <param name="LastAt">The time of the last evaluated interval; an older or equal time is not counted again.</param>
/// <param name="SlowCusum">The second CUSUM of continuous metrics, tuned to half the shift (0 for error rates; 0 in states stored before it existed).</param>
/// <param name="SinceDeploySum">
/// The evidence since the deploy, never reset: for continuous metrics the sum of the standardized excesses. 0 in states
/// stored before it existed (the test then counts from there). Error rates keep their counts instead (below); states
/// stored before those existed held the sum of the log-likelihood ratios here, which is no longer read.
/// </param>
/// <param name="SinceDeployLooks">Intervals judged since the deploy (with data, enough requests and a limit to judge against).</param>
/// <param name="SinceDeployErrors">Error rates: the errors counted since the deploy (0 for continuous metrics, and in states stored before it existed).</param>
/// <param name="SinceDeployRequests">Error rates: the requests counted since the deploy, as <paramref name="SinceDeployErrors"/>.</param>
/// <param name="IntervalsBelowMin">Consecutive intervals with the value below the absolute <c>min</c> (0 in states stored before it existed).</param>
/// <param name="NoVerdictIntervals">
/// Intervals that got no verdict at all, blind or with too few requests, since the deploy (0 in states stored before it
/// existed, which then count from there): what a watch that completes says it could not see.
/// </param>
public sealed record DetectorState(
    double Cusum,
    DateTimeOffset? AccumulatingSince,
    int IntervalsAboveMax,
    int BlindIntervals,
    int Evaluations,
    DateTimeOffset? LastAt,
    double SlowCusum = 0,
    double SinceDeploySum = 0,
    int SinceDeployLooks = 0,
    double SinceDeployErrors = 0,
    double SinceDeployRequests = 0,
    int IntervalsBelowMin = 0,
    int NoVerdictIntervals = 0)
{
    /// <summary>The state before the first interval after the deploy.</summary>
    public static DetectorState Initial { get; } = new(0, null, 0, 0, 0, null);
}
