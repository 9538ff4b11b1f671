using RolloutGate.Core.Analysis;

namespace RolloutGate.Benchmarks.Detection;

/// <summary>
/// A recorded metric series and how the protocol cuts it into deploy scenarios.
/// </summary>
/// <param name="Name">Short name for the table.</param>
/// <param name="Kind">The test our detector applies (and how a regression is injected: × (1 + X), or + X points for error rates).</param>
/// <param name="Interval">Spacing of the samples; one look per sample.</param>
/// <param name="Points">The samples in time order; <see cref="Observation.At"/> is the sample's timestamp.</param>
/// <param name="Anomalies">Labelled anomaly windows; a deploy time is used only if baseline and watch avoid them all.</param>
/// <param name="Baseline">Length of the baseline window before the deploy.</param>
/// <param name="Watch">Length of the watch after the deploy.</param>
/// <param name="Stride">Spacing of the deploy times tried.</param>
/// <param name="Note">How the protocol was adapted for this trace, if it was.</param>
internal sealed record Trace(
    string Name,
    MetricKind Kind,
    TimeSpan Interval,
    IReadOnlyList<Observation> Points,
    IReadOnlyList<(DateTimeOffset From, DateTimeOffset To)> Anomalies,
    TimeSpan Baseline,
    TimeSpan Watch,
    TimeSpan Stride,
    string Note);

/// <summary>One deploy: the baseline before T and the watch after it, the watch possibly with an injected regression.</summary>
internal sealed record Scenario(Trace Trace, DateTimeOffset DeployAt, Observation[] Baseline, Observation[] Watch);
