using RolloutGate.Core.Analysis;

namespace RolloutGate.Benchmarks.Detection;

/// <summary>
/// What a single test at one fixed look, <see cref="Horizon"/> after the deploy, catches when it is tuned on the answers:
/// the yardstick for "caught within a quarter of the peer's hour" (a median delay within it needs half the detected runs
/// caught by then). Not a rule anyone could run. It is told the horizon, spends its whole false-rollback budget on that
/// one look and keeps nothing for the rest of the watch, and it is tuned on the answers: its threshold is set on this
/// trace's own null runs (the largest null statistic beyond the 1% of null runs it may roll back), and for each
/// regression size the best of its candidate statistics is reported. Candidates: the mean or the median, over the looks
/// up to the horizon, of the excess (log values; error rates as they are) over a reference: the median of the hour
/// before the deploy (Kayenta-style's), of the whole baseline, or of the same ±30 minutes a day (a week, with a baseline
/// of a week) before each look; and Mann-Whitney's p-value against the hour before the deploy or the whole baseline. Like
/// every rule it must keep "no worse than allowed" healthy, so regressed values are divided by (1 + maxIncrease) before
/// the statistic, as Kayenta-style does.
/// </summary>
internal sealed class OneShotBound(Trace trace, double maxIncrease)
{
    public static readonly TimeSpan Horizon = TimeSpan.FromMinutes(15);

    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);
    private static readonly TimeSpan HalfWindow = TimeSpan.FromMinutes(30);

    private readonly List<double[]> _nulls = [];
    private readonly Dictionary<double, List<double[]>> _regressions = [];

    public void Add(double x, Scenario scenario)
    {
        var scale = x == 0 ? 1 : 1 / (1 + maxIncrease);
        var statistics = Statistics(scenario, scale);
        if (x == 0)
        {
            _nulls.Add(statistics);
        }
        else
        {
            (_regressions.TryGetValue(x, out var list) ? list : _regressions[x] = []).Add(statistics);
        }
    }

    /// <summary>Null runs, and per regression size the most runs any candidate catches with at most 1% of null runs rolled back.</summary>
    public (int Runs, IReadOnlyDictionary<double, int> Caught) Result()
    {
        var caught = new Dictionary<double, int>();
        if (_nulls.Count == 0)
        {
            return (0, caught);
        }

        var candidates = _nulls[0].Length;
        var thresholds = Enumerable.Range(0, candidates).Select(c =>
        {
            var values = _nulls.Select(s => s[c]).Where(double.IsFinite).OrderDescending().ToArray();
            var allowed = (int)Math.Floor(0.01 * _nulls.Count);
            return values.Length > allowed ? values[allowed] : double.NegativeInfinity;
        }).ToArray();
        foreach (var (x, runs) in _regressions)
        {
            caught[x] = Enumerable.Range(0, candidates).Max(c => runs.Count(s => double.IsFinite(s[c]) && s[c] > thresholds[c]));
        }

        return (_nulls.Count, caught);
    }

    private double[] Statistics(Scenario scenario, double scale)
    {
        var looks = (int)Math.Round(Horizon / trace.Interval);
        var watch = scenario.Watch.Take(looks).ToArray();
        var baseline = scenario.Baseline;
        var hourBefore = baseline.Where(o => o.At >= scenario.DeployAt - Hour).ToArray();
        var lastHour = Median(hourBefore.Select(o => Transform(o.Value, 1)));
        var whole = Median(baseline.Select(o => Transform(o.Value, 1)));
        var period = trace.Baseline >= TimeSpan.FromDays(7) ? TimeSpan.FromDays(7) : trace.Baseline >= TimeSpan.FromDays(1) ? TimeSpan.FromDays(1) : (TimeSpan?)null;
        var seasonal = watch.Select(o => period is { } p
            ? Median(baseline.Where(b => (b.At - (o.At - p)).Duration() <= HalfWindow).Select(b => Transform(b.Value, 1)))
            : double.NaN).ToArray();

        var statistics = new List<double>();
        foreach (var reference in new Func<int, double>[] { _ => lastHour, _ => whole, i => seasonal[i] })
        {
            var excess = watch.Select((o, i) => Transform(o.Value, scale) - reference(i)).Where(double.IsFinite).ToArray();
            var enough = excess.Length * 2 >= looks;
            statistics.Add(enough ? excess.Average() : double.NaN);
            statistics.Add(enough ? Median(excess) : double.NaN);
        }

        var canary = MannWhitney.Values(watch, scale);
        foreach (var reference in new[] { hourBefore, baseline })
        {
            var values = MannWhitney.Values(reference, 1);
            statistics.Add(canary.Length * 2 >= looks && values.Length >= 3 ? -Math.Log(MannWhitney.GreaterPValue(canary, values)) : double.NaN);
        }

        return [.. statistics];
    }

    /// <summary>Log values for continuous metrics (a regression is a ratio), error rates as they are (they start at 0).</summary>
    private double Transform(double? value, double scale) =>
        value is not { } v ? double.NaN
        : trace.Kind == MetricKind.ErrorRate ? v * scale
        : v > 0 ? Math.Log(v * scale)
        : double.NaN;

    /// <summary>The median of the finite values (the others are samples without data); NaN when there are none.</summary>
    private static double Median(IEnumerable<double> values) => RobustStatistics.Median(values.Where(double.IsFinite));
}
