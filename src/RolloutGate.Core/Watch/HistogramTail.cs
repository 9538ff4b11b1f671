namespace RolloutGate.Core.Watch;

/// <summary>One cumulative histogram bucket: observations at or below <see cref="UpperBound"/> (+Inf for the last).</summary>
public sealed record HistogramBucket(double UpperBound, double Count);

/// <summary>
/// histogram_quantile cannot see past the last finite bucket: when the quantile's rank falls in the +Inf bucket it
/// answers that bucket's lower bound (the largest finite <c>le</c>). The true value is then only known to be at least that.
/// </summary>
public static class HistogramTail
{
    /// <summary>
    /// The largest finite upper bound when the <paramref name="quantile"/> of these cumulative buckets lies beyond it,
    /// else null (also null without observations or without a finite bucket). Buckets of one bound are one bucket, their
    /// counts summed, as histogram_quantile merges them: Prometheus 3 writes <c>le="25.0"</c> where Prometheus 2 wrote
    /// <c>le="25"</c>, so a window across the upgrade holds both series, each with part of the window's count.
    /// </summary>
    public static double? QuantileBeyondLastFiniteBucket(IReadOnlyList<HistogramBucket> buckets, double quantile)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        var byBound = buckets.GroupBy(b => b.UpperBound).ToDictionary(g => g.Key, g => g.Sum(b => b.Count));
        var total = byBound.GetValueOrDefault(double.PositiveInfinity);
        var finite = byBound.Keys.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Max();
        if (total <= 0 || double.IsNaN(finite))
        {
            return null;
        }

        return quantile * total > byBound[finite] ? finite : null;
    }
}
