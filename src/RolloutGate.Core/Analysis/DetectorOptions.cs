using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Analysis;

/// <summary>
/// Tuning of <see cref="RegressionDetector"/>. The defaults are the product's; each is explained where it is used.
/// </summary>
/// <param name="LooksPerWatch">How many times the watch evaluates (duration / interval); the CUSUM thresholds grow with its log (<see cref="CusumThreshold"/>).</param>
/// <param name="FalseAlarmRatePerWatch">Allowed probability of a false rollback over the whole watch (alpha).</param>
/// <param name="MinRequests">Fewest requests an interval needs before any verdict; below it the verdict is insufficient data, but for a request rate's relative limit where the baseline expected at least this many (<see cref="RegressionDetector"/>, "Traffic lost").</param>
/// <param name="MinBaselineSamples">Fewest usable baseline intervals for a reference.</param>
/// <param name="SeasonalHalfWidth">Half-width of the time-of-day window over which the baseline is smoothed (rolling median).</param>
/// <param name="DesignShift">The shift beyond the allowed increase, in noise units, the CUSUM is tuned to catch fastest.</param>
/// <param name="ClipSigmas">Standardized residuals are clipped above at this many noise units, so one wild sample cannot decide alone.</param>
/// <param name="NoiseFloor">Smallest noise scale on the log scale (0.02 is about 2%), so a flat baseline cannot make every wiggle significant.</param>
/// <param name="MaxBreachIntervals">Consecutive intervals above the absolute <c>max</c> before the verdict is breach-of-max (below the absolute <c>min</c>: breach-of-min).</param>
/// <param name="MinLooksSinceDeploy">Fewest judged intervals before the test of the evidence since the deploy may alarm, so one wild sample cannot decide alone (two can, with a third that is not far below the limit: see <paramref name="LowerClipSigmas"/>).</param>
/// <param name="LowerClipSigmas">Standardized residuals are clipped below at minus this many noise units (a one-sided floor, <see cref="LowerClipOffset"/>), so one low outlier cannot cancel the evidence of several intervals; at or beyond <paramref name="ClipSigmas"/> no centring is applied.</param>
public sealed record DetectorOptions(
    int LooksPerWatch = 1440,
    double FalseAlarmRatePerWatch = 0.01,
    long MinRequests = 100,
    int MinBaselineSamples = 12,
    TimeSpan? SeasonalHalfWidth = null,
    double DesignShift = 1.0,
    double ClipSigmas = 5.0,
    double NoiseFloor = 0.02,
    int MaxBreachIntervals = 3,
    int MinLooksSinceDeploy = 3,
    double LowerClipSigmas = 2.0)
{
    /// <summary>
    /// The mean of the clipped score under standard normal noise, subtracted from every clipped residual so that the
    /// score stays centred: E[max(Z, −a)] = φ(a) − a Φ(−a) for Z standard normal and a = <see cref="LowerClipSigmas"/>
    /// (0.0085 at a = 2); the upper clip only lowers the mean, so this is an upper bound. 0 when the floor is at least as far
    /// as the upper clip: the clipped score's mean is then at most 0 already.
    /// </summary>
    public double LowerClipOffset => LowerClipSigmas >= ClipSigmas ? 0
        : Math.Exp(-LowerClipSigmas * LowerClipSigmas / 2) / Math.Sqrt(2 * Math.PI) - LowerClipSigmas * RegressionDetector.NormalCdf(-LowerClipSigmas);

    /// <summary>The product's defaults: a 24-hour watch evaluated every minute.</summary>
    public static DetectorOptions Default { get; } = new();

    /// <summary>Options for a runbook's watch: the number of looks follows its duration and interval.</summary>
    public static DetectorOptions ForWatch(WatchSpec watch) =>
        Default with { LooksPerWatch = Math.Max(1, (int)Math.Ceiling(watch.Duration / watch.Interval)) };

    /// <summary>Half-width of the seasonal smoothing window; 30 minutes unless set.</summary>
    public TimeSpan SmoothingHalfWidth => SeasonalHalfWidth ?? TimeSpan.FromMinutes(30);

    /// <summary>
    /// The threshold of the test of the evidence since the deploy, ln(2 / alpha): half the false-alarm budget. Under the
    /// null hypothesis its likelihood ratio is a nonnegative martingale starting at 1, so by Ville's inequality it ever
    /// reaches 2 / alpha with probability at most alpha / 2, however many times it is looked at.
    /// </summary>
    public double SinceDeployThreshold => Math.Log(2 / FalseAlarmRatePerWatch);

    /// <summary>
    /// The alarm threshold of each of <paramref name="charts"/> CUSUM charts, ln(2 · charts · looks / alpha): the other
    /// half of the budget, shared by the charts. Lorden (1971) shows a CUSUM with threshold h has an average run length to
    /// a false alarm of at least e^h looks, so over the watch's looks each chart rings falsely with probability at most
    /// about alpha / (2 · charts), and by the union bound all tests together at most alpha. When the charts also
    /// <paramref name="shareWithMargin"/> (a reference with its own error, <see cref="ReferenceErrorMargin"/>, or one
    /// adjusted for the load, whose elasticity's error has its margin: <see cref="LoadAdjustment"/>), that half is split
    /// once more, half to the margin and half to the charts: ln(4 · charts · looks / alpha).
    /// </summary>
    public double CusumThreshold(int charts, bool shareWithMargin = false) =>
        Math.Log(2.0 * charts * (shareWithMargin ? 2 : 1) * LooksPerWatch / FalseAlarmRatePerWatch);

    /// <summary>
    /// How far, in noise units, the reference's own error (of variance <paramref name="referenceVariance"/>, shared by every
    /// interval) may push every interval up at once, except with probability alpha / 4: Φ⁻¹(1 − alpha / 4) √κ. A CUSUM
    /// forgets the healthy past, so it cannot tell a reference that is a little low from a regression that started long
    /// ago and would ring on it over a long watch; its increments are taken beyond this margin, and the margin's alpha / 4
    /// comes out of the charts' half of the budget (<see cref="CusumThreshold"/>). 0 without such an error.
    /// </summary>
    public double ReferenceErrorMargin(double referenceVariance) => referenceVariance <= 0 ? 0
        : NoiseDistribution.NormalQuantile(1 - FalseAlarmRatePerWatch / 4) * Math.Sqrt(referenceVariance);
}
