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
    /// else null (also null without observations or without a finite bucket).
    /// </summary>
    public static double? QuantileBeyondLastFiniteBucket(IReadOnlyList<HistogramBucket> buckets, double quantile)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        var total = buckets.Where(b => double.IsPositiveInfinity(b.UpperBound)).Select(b => b.Count).FirstOrDefault();
        var finite = buckets.Where(b => !double.IsPositiveInfinity(b.UpperBound)).OrderBy(b => b.UpperBound).LastOrDefault();
        if (total <= 0 || finite is null)
        {
            return null;
        }

        return quantile * total > finite.Count ? finite.UpperBound : null;
    }
}
