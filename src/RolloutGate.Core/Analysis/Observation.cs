namespace RolloutGate.Core.Analysis;

/// <summary>
/// One interval of one metric, as the metric source saw it at <paramref name="At"/> (the end of the interval).
/// </summary>
/// <param name="At">End of the interval; the detector never reads a clock, it only uses this time.</param>
/// <param name="Value">The metric's value in base units (seconds, fraction, requests/s, currency); null when the source had no data.</param>
/// <param name="Requests">Requests served in the interval, when known; below the minimum count no verdict is given (but on a request rate's relative limit where the baseline expected more: see <see cref="RegressionDetector"/>).</param>
/// <param name="Errors">Failed requests in the interval (error rate only); when null it is derived from <paramref name="Value"/> times <paramref name="Requests"/>.</param>
public sealed record Observation(DateTimeOffset At, double? Value, long? Requests = null, long? Errors = null);
