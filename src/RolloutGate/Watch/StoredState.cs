using RolloutGate.Core.Analysis;

namespace RolloutGate.Watch;

/// <summary>
/// A detector state (<see cref="DetectorState"/>) as every evaluation row stores it (evaluations.detector, migration
/// 0013): an array of doubles in a fixed order, about 100 bytes where the same state as JSON was about 300. Times are
/// milliseconds since the Unix epoch (exact in a double), a missing time NaN. The first element is the layout's version;
/// a later version may append fields, and an older layout's missing fields read as their defaults, as DetectorState's
/// own optional parameters do.
/// </summary>
public static class StoredState
{
    private const double Version = 1;

    public static double[] Encode(DetectorState state) =>
    [
        Version,
        state.Cusum,
        Time(state.AccumulatingSince),
        state.IntervalsAboveMax,
        state.BlindIntervals,
        state.Evaluations,
        Time(state.LastAt),
        state.SlowCusum,
        state.SinceDeploySum,
        state.SinceDeployLooks,
        state.SinceDeployErrors,
        state.SinceDeployRequests,
        state.IntervalsBelowMin,
        state.NoVerdictIntervals,
    ];

    /// <summary>The state an array of <see cref="Encode"/> holds; a layout this version cannot read is refused with why.</summary>
    public static DetectorState Decode(double[] stored)
    {
        if (stored.Length < 7 || stored[0] != Version)
        {
            throw new InvalidDataException(stored.Length == 0
                ? "the stored detector state is empty"
                : $"the stored detector state has layout {stored[0]} with {stored.Length} fields; this version reads layout {Version}");
        }

        double At(int i) => i < stored.Length ? stored[i] : 0;
        return new DetectorState(
            stored[1], Time(stored[2]), (int)stored[3], (int)stored[4], (int)stored[5], Time(stored[6]),
            At(7), At(8), (int)At(9), At(10), At(11), (int)At(12), (int)At(13));
    }

    private static double Time(DateTimeOffset? at) => at is { } t ? t.ToUnixTimeMilliseconds() : double.NaN;

    private static DateTimeOffset? Time(double milliseconds) =>
        double.IsNaN(milliseconds) ? null : DateTimeOffset.FromUnixTimeMilliseconds((long)milliseconds);
}
