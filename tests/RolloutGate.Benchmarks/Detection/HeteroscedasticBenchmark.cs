using System.Globalization;
using System.Text;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Runbooks;
using RolloutGate.Core.Tests.Analysis;

namespace RolloutGate.Benchmarks.Detection;

/// <summary>
/// Seeded 24-hour watches of metrics whose noise follows the time of day (<see cref="SyntheticTraffic.NightlyCostPerRequest"/>,
/// <see cref="SyntheticTraffic.NightlyP95"/>: the night's few requests make them several times noisier than the
/// afternoon's), which the NAB and Nezha traces lack, and of a p95 with the same traffic whose noise does not depend on
/// the count (<see cref="SyntheticTraffic.SteadyP95"/>) or has both terms (<see cref="SyntheticTraffic.MixedP95"/>). For
/// each seed a deploy at hour (seed mod 24) UTC with a 24-hour and a 7-day baseline; null runs (the same process after
/// the deploy: any alarm is a false rollback) and the protocol's regressions × (1 + X) of the same watch, their detection
/// split by deploys at night (21:00–08:00 UTC, whose first hour has fewer requests than the day's median) and by day.
/// maxIncrease 10%, no absolute max, one look a minute (1440 looks).
/// </summary>
internal static class HeteroscedasticBenchmark
{
    private static readonly double[] Regressions = [0.10, 0.25, 0.50];

    public static int Run(string[] args)
    {
        var index = Array.IndexOf(args, "--seeds");
        var seeds = 240;
        if (index >= 0 && (index + 1 >= args.Length || !int.TryParse(args[index + 1], NumberStyles.None, CultureInfo.InvariantCulture, out seeds) || seeds < 1))
        {
            Console.Error.WriteLine("--seeds takes a whole number of seeded watches, such as 240.");
            return 2;
        }

        var spec = new MetricSpec("benchmark", null, null, null, 0.10, null);
        var nightDeploys = Enumerable.Range(0, seeds).Count(seed => IsNight(DeployAt(seed)));
        var shapes = new (string Name, MetricKind Kind, Func<SyntheticTraffic, DateTimeOffset, Observation> Sample)[]
        {
            ("cost per request", MetricKind.CostPerRequest, (traffic, at) => traffic.NightlyCostPerRequest(at)),
            ("p95 latency", MetricKind.Latency, (traffic, at) => traffic.NightlyP95(at)),
            ("p95 latency, noise σ₀ only", MetricKind.Latency, (traffic, at) => traffic.SteadyP95(at)),
            ("p95 latency, σ₀ and c/n", MetricKind.Latency, (traffic, at) => traffic.MixedP95(at)),
        };
        var text = new StringBuilder();
        text.AppendLine("| shape | baseline | watches | false rollbacks | their hours (UTC), test | +10% (on the limit): alarmed, median delay, alarms 00-08 UTC | +25%, night deploys: detected, median delay | +25%, day deploys | +50%, night deploys | +50%, day deploys |")
            .AppendLine("|---|---|---:|---:|---|---:|---:|---:|---:|---:|");
        foreach (var (name, kind, sample) in shapes)
        {
            foreach (var days in new[] { 1, 7 })
            {
                var falseAlarms = new List<string>();
                var delays = Regressions.ToDictionary(x => x, _ => (Night: new List<int>(), Day: new List<int>()));
                var nightly = 0;
                for (var seed = 0; seed < seeds; seed++)
                {
                    var traffic = new SyntheticTraffic(seed);
                    var deployAt = DeployAt(seed);
                    var baselineSamples = SyntheticTraffic.Minutes(deployAt.AddDays(-days), days * 1440).Select(t => sample(traffic, t)).ToList();
                    var watch = SyntheticTraffic.Minutes(deployAt, 1440).Select(t => sample(traffic, t)).ToArray();
                    var baseline = BaselineWindow.From(kind, baselineSamples);
                    if (FirstAlarm(kind, spec, baseline, watch) is { } alarm)
                    {
                        var test = alarm.Explanation.Contains("CUSUM", StringComparison.Ordinal) ? "CUSUM" : "since deploy";
                        falseAlarms.Add(string.Create(CultureInfo.InvariantCulture, $"{alarm.At.UtcDateTime:HH:mm} {test}"));
                    }

                    foreach (var x in Regressions)
                    {
                        var regressed = watch.Select(o => o with { Value = o.Value * (1 + x) }).ToArray();
                        if (FirstAlarm(kind, spec, baseline, regressed) is { } caught)
                        {
                            (IsNight(deployAt) ? delays[x].Night : delays[x].Day).Add((int)(caught.At - deployAt).TotalMinutes + 1);
                            nightly += x == Regressions[0] && caught.At.UtcDateTime.Hour < 8 ? 1 : 0;
                        }
                    }
                }

                var hours = falseAlarms.Count == 0 ? "-" : string.Join(", ", falseAlarms.Order(StringComparer.Ordinal));
                text.AppendLine(CultureInfo.InvariantCulture,
                    $"| {name} | {days * 24} h | {seeds} | {100.0 * falseAlarms.Count / seeds:0.0}% ({falseAlarms.Count}) | {hours} | {Cell([.. delays[Regressions[0]].Night, .. delays[Regressions[0]].Day], seeds)}, {nightly} | {string.Join(" | ", Regressions.Skip(1).Select(x => $"{Cell(delays[x].Night, nightDeploys)} | {Cell(delays[x].Day, seeds - nightDeploys)}"))} |");
            }
        }

        Console.WriteLine(text);
        Console.WriteLine(Holidays(seeds, spec));
        Console.WriteLine($"Command: dotnet run -c Release --project tests/RolloutGate.Benchmarks -- heteroscedastic {string.Join(' ', args)}");
        return 0;
    }

    /// <summary>The deploy day of <see cref="Holidays"/>: a Wednesday, so that a 24-hour baseline is a weekday too.</summary>
    private static readonly DateOnly Wednesday = DateOnly.FromDateTime(SyntheticTraffic.Deploy.Date).AddDays(2);

    /// <summary>A weekend's share of a weekday's load in <see cref="Holidays"/>.</summary>
    private const double WeekendLoad = 0.55;

    /// <summary>
    /// Services whose load follows the week (<see cref="SyntheticTraffic.WeekLoad"/>: weekends at 55% of a weekday), a cost
    /// per request with a fixed share and a p95 latency that rises with the load (<see cref="SyntheticTraffic.LoadedP95"/>),
    /// deployed on a Wednesday at hour (seed mod 24) UTC: an ordinary week; the deploy's day a public holiday at 40%, 50% or
    /// 60% of the usual load (by seed); and the day after one (24-hour baseline) or the week after one (7-day baseline), the
    /// holiday then in the baseline. Healthy watches (any alarm is a false rollback) and the same watches × 1.1 (held at
    /// the limit: a valid test alarms in at most 1% of an ordinary week's), × 1.25 and × 1.5.
    /// </summary>
    private static string Holidays(int seeds, MetricSpec spec)
    {
        var shapes = new (string Name, MetricKind Kind, Func<SyntheticTraffic, DateTimeOffset, double, Observation> Sample)[]
        {
            ("cost per request", MetricKind.CostPerRequest, (traffic, at, load) => traffic.NightlyCostPerRequest(at, dayLoad: load)),
            ("p95 latency rising with load", MetricKind.Latency, (traffic, at, load) => traffic.LoadedP95(at, load)),
        };
        var scenarios = new (string Name, Func<int, int, Func<DateTimeOffset, double>> Week)[]
        {
            ("ordinary week", (_, _) => SyntheticTraffic.WeekLoad(WeekendLoad)),
            ("holiday in the watch", (seed, _) => SyntheticTraffic.WeekLoad(WeekendLoad, Wednesday, HolidayLoad(seed))),
            ("after a holiday", (seed, days) => SyntheticTraffic.WeekLoad(WeekendLoad, Wednesday.AddDays(-days), HolidayLoad(seed))),
        };
        var text = new StringBuilder();
        text.AppendLine("| shape | baseline | scenario | watches | false rollbacks | +10% (on the limit): alarmed, median delay | +25%: detected, median delay | +50%: detected, median delay |")
            .AppendLine("|---|---|---|---:|---:|---:|---:|---:|");
        foreach (var (name, kind, sample) in shapes)
        {
            foreach (var days in new[] { 1, 7 })
            {
                foreach (var (scenario, week) in scenarios)
                {
                    // False rollbacks by the holiday's share of the load (every scenario draws it; only two use it).
                    var falseAlarms = new SortedDictionary<double, int>();
                    var delays = Regressions.ToDictionary(x => x, _ => new List<int>());
                    for (var seed = 0; seed < seeds; seed++)
                    {
                        var traffic = new SyntheticTraffic(seed);
                        var load = week(seed, days);
                        var deployAt = new DateTimeOffset(Wednesday.ToDateTime(new TimeOnly(seed % 24, 0)), TimeSpan.Zero);
                        var baseline = BaselineWindow.From(kind, [.. SyntheticTraffic.Minutes(deployAt.AddDays(-days), days * 1440).Select(t => sample(traffic, t, load(t)))]);
                        var watch = SyntheticTraffic.Minutes(deployAt, 1440).Select(t => sample(traffic, t, load(t))).ToArray();
                        if (FirstAlarm(kind, spec, baseline, watch) is not null)
                        {
                            falseAlarms[HolidayLoad(seed)] = falseAlarms.GetValueOrDefault(HolidayLoad(seed)) + 1;
                        }

                        foreach (var x in delays.Keys)
                        {
                            if (FirstAlarm(kind, spec, baseline, [.. watch.Select(o => o with { Value = o.Value * (1 + x) })]) is { } caught)
                            {
                                delays[x].Add((int)(caught.At - deployAt).TotalMinutes + 1);
                            }
                        }
                    }

                    var total = falseAlarms.Values.Sum();
                    var byLoad = scenario == scenarios[0].Name || total == 0 ? ""
                        : $"; {string.Join(", ", falseAlarms.Select(a => string.Create(CultureInfo.InvariantCulture, $"{a.Value} at {a.Key:0%}")))}";
                    text.AppendLine(CultureInfo.InvariantCulture,
                        $"| {name} | {days * 24} h | {scenario} | {seeds} | {100.0 * total / seeds:0.0}% ({total}{byLoad}) | {string.Join(" | ", delays.Values.Select(d => Cell(d, seeds)))} |");
                }
            }
        }

        return text.ToString();
    }

    /// <summary>A holiday's share of the usual load: 40%, 50% or 60%, in turn by seed (each deploy hour gets each).</summary>
    private static double HolidayLoad(int seed) => 0.4 + 0.1 * (seed / 24 % 3);

    private static DateTimeOffset DeployAt(int seed) => new(SyntheticTraffic.Deploy.Date.AddHours(seed % 24), TimeSpan.Zero);

    /// <summary>A deploy at 21:00–08:00 UTC: its first hour has fewer requests than the day's median (load below 0.55).</summary>
    private static bool IsNight(DateTimeOffset deployAt) => deployAt.UtcDateTime.Hour is >= 21 or <= 8;

    private static MetricEvaluation? FirstAlarm(MetricKind kind, MetricSpec spec, BaselineWindow baseline, Observation[] watch)
    {
        DetectorState? state = null;
        foreach (var observation in watch)
        {
            var evaluation = RegressionDetector.Evaluate(kind, spec, baseline, state, observation);
            if (evaluation.IsRegression)
            {
                return evaluation;
            }

            state = evaluation.State;
        }

        return null;
    }

    private static string Cell(List<int> delays, int runs) =>
        delays.Count == 0 ? "0%, -"
            : string.Create(CultureInfo.InvariantCulture, $"{100.0 * delays.Count / runs:0}% ({delays.Count}), {delays.Order().ElementAt(delays.Count / 2)} min");
}
