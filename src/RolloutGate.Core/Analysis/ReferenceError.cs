namespace RolloutGate.Core.Analysis;

/// <summary>
/// The estimation error of a baseline's reference, as the watch's scores share it. The reference is estimated from the
/// baseline's samples, so its error b_i at look i is part of every score z_i = μ + b_i + ε_i; a sum of scores that
/// counted only the ε would read that error as evidence, and over a 24-hour watch it would add up like a real shift.
/// <para>
/// The error has variance <see cref="Variance"/> κ (in squared noise units) at every look. A flat reference (the
/// baseline's median) is one estimate that every look shares (<see cref="Span"/> null). A seasonal reference is a median
/// over a window of the baseline (±30 minutes of the same time the day or the week before), so two looks share the
/// part of their windows that overlaps: with windows <see cref="Span"/> looks wide, Cov(b_i, b_j) = κ max(0, 1 − |i − j| / W).
/// </para>
/// </summary>
/// <param name="Variance">κ, the variance of the reference's error at one look, in squared noise units.</param>
/// <param name="Span">W, how many consecutive looks share part of one estimate; null when all of them share it.</param>
public sealed record ReferenceError(double Variance, int? Span)
{
    /// <summary>No error to account for (error rates, whose reference is pooled over the whole baseline, and no relative limit).</summary>
    public static ReferenceError None { get; } = new(0, 1);

    /// <summary>Whether every look shares one and the same error (a flat reference).</summary>
    public bool IsShared => Span is null && Variance > 0;

    /// <summary>
    /// The variance the error adds to the sum of <paramref name="n"/> consecutive scores, κ Σᵢ Σⱼ ρ(|i − j|): κn² when
    /// shared, κ (n + 2 Σ_{l=1}^{L} (n − l)(1 − l/W)) with L = min(n, W) − 1 for overlapping windows.
    /// </summary>
    public double OfSum(int n)
    {
        if (n <= 0 || Variance <= 0)
        {
            return 0;
        }

        if (Span is not { } w)
        {
            return Variance * n * (double)n;
        }

        double lags = Math.Min(n, w) - 1;
        var overlapping = lags * n - lags * (lags + 1) / 2 - (n * lags * (lags + 1) / 2 - lags * (lags + 1) * (2 * lags + 1) / 6) / w;
        return Variance * (n + 2 * overlapping);
    }

    /// <summary>
    /// The variance the error adds per look in the long run, κW (Σ over all lags of κρ); null when the error is shared by
    /// every look, whose long-run variance has no bound.
    /// </summary>
    public double? LongRun => Span is { } w ? Variance * w : null;
}
