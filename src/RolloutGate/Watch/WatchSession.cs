using RolloutGate.Core.Analysis;
using RolloutGate.Core.Runbooks;
using RolloutGate.Core.Watch;

namespace RolloutGate.Watch;

/// <summary>
/// One watch as the sweep keeps it in memory between its intervals: the runbook version in force for the deployment,
/// the baseline reduced once, and each metric's detector state and verdict after the last stored evaluation. Everything
/// here is also in the database (baselines, evaluations with their state); a session is rebuilt from there whenever it
/// is missing or out of date, so a restart or another replica taking over loses nothing.
/// </summary>
public sealed class WatchSession
{
    public required string DeploymentId { get; init; }

    public required string Service { get; init; }

    public required Runbook Runbook { get; init; }

    public required WatchPlan Plan { get; init; }

    public required DateTimeOffset DeployedAt { get; init; }

    public required DateTimeOffset Until { get; init; }

    public required IReadOnlyDictionary<string, BaselineWindow> Baselines { get; init; }

    /// <summary>
    /// Set when the baseline could not be read (the source was down when the watch began): <see cref="Baselines"/> are
    /// then empty, and the session can only record intervals blind once the outage has outlasted the grace, never
    /// evaluate data. It is held until <see cref="MissingBaseline.RetryAt"/>, then rebuilt, which reads the baseline again.
    /// </summary>
    public MissingBaseline? Unbaselined { get; init; }

    public Dictionary<string, DetectorState> States { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, string> Verdicts { get; } = new(StringComparer.Ordinal);

    /// <summary>The last evaluation time stored; null before the first.</summary>
    public DateTimeOffset? LastAt { get; private set; }

    /// <summary>When the sweep last used this session: one unused for a while belongs to a watch that ended elsewhere.</summary>
    public DateTimeOffset LastUsed { get; set; }

    /// <summary>The next evaluation time (may lie past <see cref="Until"/> when the watch has no time left).</summary>
    public DateTimeOffset NextDue => WatchSchedule.Next(DeployedAt, Plan.Watch.Interval, LastAt);

    /// <summary>Carries the stored evaluations of one t into the next interval.</summary>
    public void Advance(DateTimeOffset at, IEnumerable<MetricEvaluation> evaluations)
    {
        foreach (var evaluation in evaluations)
        {
            States[evaluation.Metric] = evaluation.State;
            var verdict = VerdictNames.Of(evaluation.Verdict);
            if (!IsWarmingUp(evaluation.At, verdict))
            {
                Verdicts[evaluation.Metric] = verdict;
            }
        }

        LastAt = at;
    }

    /// <summary>
    /// Whether an evaluation at <paramref name="at"/> with <paramref name="verdict"/> only waited for the runbook's
    /// <c>watch.warmup</c> (insufficient-data within it, not compared with the baseline yet): stored like any other, but
    /// not a verdict of its own, so neither it nor the first verdict after the warm-up is announced as a change.
    /// </summary>
    public bool IsWarmingUp(DateTimeOffset at, string verdict) =>
        Plan.Watch.WarmUpUntil(DeployedAt) is { } warm && at <= warm && verdict == VerdictNames.Of(Verdict.InsufficientData);

    /// <summary>Resumes from the last stored evaluation of each metric.</summary>
    public void Resume(IReadOnlyDictionary<string, StoredEvaluation> latest)
    {
        foreach (var (metric, stored) in latest)
        {
            States[metric] = stored.State;
            if (!IsWarmingUp(stored.At, stored.Verdict))
            {
                Verdicts[metric] = stored.Verdict;
            }
        }

        LastAt = latest.Count == 0 ? null : latest.Values.Max(e => e.At);
    }
}

/// <summary>Why a watch has no baseline yet, since when, and when reading it is tried again.</summary>
public sealed record MissingBaseline(string Reason, DateTimeOffset FailedAt, DateTimeOffset RetryAt);
