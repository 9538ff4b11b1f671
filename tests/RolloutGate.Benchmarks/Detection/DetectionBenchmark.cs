using System.Diagnostics;
using System.Globalization;
using System.Text;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Runbooks;
using Bound = (int Runs, System.Collections.Generic.IReadOnlyDictionary<double, int> Caught);

namespace RolloutGate.Benchmarks.Detection;

/// <summary>
/// The detection benchmark of shared/data/README.md: null runs give the false rollback rate per watch; regression runs
/// (× (1 + X) after the deploy, or + X points for error rates) give the share detected and the median delay. Every rule
/// sees the same scenarios in the same run. One runbook-like configuration for all: maxIncrease 10% (or
/// <c>--max-increase P%</c>), no absolute max.
/// </summary>
internal static class DetectionBenchmark
{
    private static readonly double[] Regressions = [0.10, 0.25, 0.50, 1.00];

    public static int Run(string[] args)
    {
        var stopwatch = Stopwatch.StartNew();
        var data = DataDirectory(args);
        if (data is null || !Directory.Exists(data))
        {
            Console.Error.WriteLine($"Trace folder not found ({data ?? "no RolloutGate.sln above the current folder"}); pass --data DIR.");
            return 2;
        }

        if (NabBaseline(args) is not { } nabBaseline)
        {
            Console.Error.WriteLine("--nab-baseline takes a whole number of days or hours, such as 7d or 24h.");
            return 2;
        }

        if (MaxIncreaseOption(args) is not { } maxIncrease)
        {
            Console.Error.WriteLine("--max-increase takes a whole percentage from 0% to 100%, such as 10%.");
            return 2;
        }

        if (ColdStartOption(args) is not { } coldStart)
        {
            Console.Error.WriteLine("--cold-start takes a whole number of minutes, such as 5m.");
            return 2;
        }

        var traces = TraceLoader.Load(data, nabBaseline);
        var spec = new MetricSpec("benchmark", null, null, null, maxIncrease, null);
        IReadOnlyList<IRollbackRule> rules =
        [
            new OurDetectorRule(spec),
            new StaticThresholdRule("Flagger-style (threshold 5 failed checks)", maxIncrease, 5),
            new StaticThresholdRule("Argo-Rollouts-style (failureLimit 3)", maxIncrease, 4),
            new MannWhitneyRule("Kayenta-style Mann-Whitney at 1 h", maxIncrease, 0.05, TimeSpan.FromHours(1), everyInterval: false),
            new MannWhitneyRule("Mann-Whitney every interval", maxIncrease, 0.05, TimeSpan.FromHours(1), everyInterval: true),
            new KayentaJudgeRule("Kayenta judge at 1 h (98%, effect size)", maxIncrease, TimeSpan.FromHours(1), everyInterval: false),
            new KayentaJudgeRule("Kayenta judge every interval (98%, effect size)", maxIncrease, TimeSpan.FromHours(1), everyInterval: true),
            .. coldStart > TimeSpan.Zero
                ? new IRollbackRule[]
                {
                    new OurDetectorRule(spec, coldStart),
                    new StaticThresholdRule($"Argo-Rollouts-style (failureLimit 3, initialDelay {coldStart.TotalMinutes:0}m)", maxIncrease, 4, coldStart),
                }
                : [],
        ];

        var results = new List<Tally>();
        var bounds = new Dictionary<string, OneShotBound>();
        foreach (var trace in traces)
        {
            var tallies = rules.Select(r => new Tally(trace.Name, r.Name)).ToArray();
            var bound = bounds[trace.Name] = new OneShotBound(trace, maxIncrease);
            foreach (var deployAt in DeployTimes(trace))
            {
                var (baseline, recorded) = Cut(trace, deployAt);
                var watch = ColdStart(trace, recorded, coldStart);
                var scenarios = new[] { (X: 0.0, Watch: watch) }
                    .Concat(Regressions.Select(x => (X: x, Watch: Inject(trace.Kind, watch, x))));
                foreach (var (x, regressed) in scenarios)
                {
                    var scenario = new Scenario(trace, deployAt, baseline, regressed);
                    bound.Add(x, scenario);
                    for (var r = 0; r < rules.Count; r++)
                    {
                        tallies[r].Add(x, rules[r].FirstAlarm(scenario), trace.Interval);
                    }
                }
            }

            results.AddRange(tallies);
        }

        Console.WriteLine(Report(traces, rules, results, bounds.ToDictionary(b => b.Key, b => b.Value.Result()), maxIncrease, coldStart, args, stopwatch.Elapsed));
        return 0;
    }

    private static string? DataDirectory(string[] args)
    {
        var index = Array.IndexOf(args, "--data");
        if (index >= 0 && index + 1 < args.Length)
        {
            return Path.GetFullPath(args[index + 1]);
        }

        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "RolloutGate.sln")))
                {
                    return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "data"));
                }
            }
        }

        return null;
    }

    /// <summary>
    /// The NAB traces' baseline (<c>--nab-baseline 7d</c> or <c>24h</c>): 7 days by default, the runbook's
    /// <c>watch.baseline</c> for a service with weekly traffic; 24 h is the protocol as written.
    /// </summary>
    private static TimeSpan? NabBaseline(string[] args)
    {
        var index = Array.IndexOf(args, "--nab-baseline");
        if (index < 0)
        {
            return TimeSpan.FromDays(7);
        }

        var text = index + 1 < args.Length ? args[index + 1] : "";
        return text.Length > 1 && int.TryParse(text[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            ? text[^1] switch { 'd' => TimeSpan.FromDays(n), 'h' => TimeSpan.FromHours(n), _ => null }
            : null;
    }

    /// <summary>
    /// The runbook's <c>maxIncrease</c> every rule is given (<c>--max-increase 5%</c>): 10% by default. A regression of
    /// exactly that size is on the limit, not beyond it; a smaller tolerance shows how the rules trade false rollbacks for
    /// detection.
    /// </summary>
    private static double? MaxIncreaseOption(string[] args)
    {
        var index = Array.IndexOf(args, "--max-increase");
        if (index < 0)
        {
            return 0.10;
        }

        var text = index + 1 < args.Length ? args[index + 1] : "";
        return text.EndsWith('%') && int.TryParse(text[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var percent) && percent <= 100
            ? percent / 100.0
            : null;
    }

    /// <summary>
    /// <c>--cold-start 5m</c>: every scenario, healthy or regressed, starts with that long at twice the recorded value
    /// (new pods' cold caches and JIT; error rates are left as recorded), and two more rules run, ours with
    /// <c>watch.warmup</c> and Argo-Rollouts-style with <c>initialDelay</c> of that length. Zero (the default) leaves the
    /// protocol as written.
    /// </summary>
    private static TimeSpan? ColdStartOption(string[] args)
    {
        var index = Array.IndexOf(args, "--cold-start");
        if (index < 0)
        {
            return TimeSpan.Zero;
        }

        var text = index + 1 < args.Length ? args[index + 1] : "";
        return text.EndsWith('m') && int.TryParse(text[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var minutes)
            ? TimeSpan.FromMinutes(minutes)
            : null;
    }

    /// <summary>The watch with the looks that end within <paramref name="length"/> of the deploy doubled (see <see cref="ColdStartOption"/>).</summary>
    private static Observation[] ColdStart(Trace trace, Observation[] watch, TimeSpan length) =>
        trace.Kind == MetricKind.ErrorRate ? watch
            : watch.Select((o, i) => trace.Interval * (i + 1) <= length && o.Value is { } v ? o with { Value = 2 * v } : o).ToArray();

    /// <summary>Deploy times every stride, where baseline and watch fit in the trace and avoid every labelled anomaly.</summary>
    private static IEnumerable<DateTimeOffset> DeployTimes(Trace trace)
    {
        var first = trace.Points[0].At + trace.Baseline;
        var last = trace.Points[^1].At - trace.Watch;
        for (var t = first; t <= last; t += trace.Stride)
        {
            var from = t - trace.Baseline;
            var to = t + trace.Watch;
            if (!trace.Anomalies.Any(a => a.From < to && a.To >= from))
            {
                yield return t;
            }
        }
    }

    private static (Observation[] Baseline, Observation[] Watch) Cut(Trace trace, DateTimeOffset deployAt) =>
        (trace.Points.Where(p => p.At >= deployAt - trace.Baseline && p.At < deployAt).ToArray(),
         trace.Points.Where(p => p.At >= deployAt && p.At < deployAt + trace.Watch).ToArray());

    /// <summary>The protocol's regression: values × (1 + X); error rates + X points, with the error count to match.</summary>
    private static Observation[] Inject(MetricKind kind, Observation[] watch, double x) =>
        watch.Select(o => o.Value is not { } v ? o
            : kind != MetricKind.ErrorRate ? o with { Value = v * (1 + x) }
            : Math.Min(1, v + x) is var rate && o.Requests is { } n
                ? o with { Value = rate, Errors = (long)Math.Round(rate * n) }
                : o with { Value = rate }).ToArray();

    private static string Report(
        IReadOnlyList<Trace> traces, IReadOnlyList<IRollbackRule> rules, List<Tally> results, Dictionary<string, Bound> bounds,
        double maxIncrease, TimeSpan coldStart, string[] args, TimeSpan elapsed)
    {
        var text = new StringBuilder();
        var header = "| trace | rule | deploys | false rollbacks per watch | " +
            string.Join(" | ", Regressions.Select(x => $"+{x * 100:0}%: detected, median delay")) + " |";
        var rule = "|---|---|---:|---:|" + string.Concat(Regressions.Select(_ => "---:|"));
        text.AppendLine(header).AppendLine(rule);
        foreach (var tally in results)
        {
            text.AppendLine(Row(tally.Trace, tally));
        }

        text.AppendLine().AppendLine("Overall (all traces pooled; delays pooled before taking the median):").AppendLine();
        text.AppendLine(header).AppendLine(rule);
        var overall = rules.Select(r => Tally.Pool("all", r.Name, results.Where(t => t.Rule == r.Name))).ToList();
        foreach (var tally in overall)
        {
            text.AppendLine(Row("all", tally));
        }

        bounds["all"] = (bounds.Values.Sum(b => b.Runs),
            Regressions.ToDictionary(x => x, x => bounds.Values.Sum(b => b.Caught.GetValueOrDefault(x))));
        text.AppendLine().AppendLine(CultureInfo.InvariantCulture,
            $"One look at {OneShotBound.Horizon.TotalMinutes:0} min, tuned on the answers (not a rule: it spends the whole false-rollback budget on that look, its threshold is set on each trace's own null runs, at most 1% of them rolled back, and each cell takes the best of eight statistics; see OneShotBound):").AppendLine();
        var horizon = OneShotBound.Horizon.TotalMinutes;
        text.AppendLine("| trace | caught by " + horizon.ToString("0", CultureInfo.InvariantCulture) + " min | deploys | " +
                string.Join(" | ", Regressions.Select(x => $"+{x * 100:0}%")) + " |")
            .AppendLine("|---|---|---:|" + string.Concat(Regressions.Select(_ => "---:|")));
        foreach (var scope in traces.Select(t => t.Name).Append("all"))
        {
            var bound = bounds[scope];
            var ours = scope == "all" ? overall[0] : results.First(t => t.Trace == scope);
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {scope} | one tuned look | {bound.Runs} | {string.Join(" | ", Regressions.Select(x => Share(bound.Caught.GetValueOrDefault(x), bound.Runs)))} |");
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {scope} | {ours.Rule} | {ours.NullRuns} | {string.Join(" | ", Regressions.Select(x => Share(ours.CaughtBy(x, horizon), ours.NullRuns)))} |");
        }

        text.AppendLine().AppendLine("Target check (ours against the best peer rule that keeps to at most 1% false rollbacks per watch):").AppendLine();
        foreach (var scope in traces.Select(t => t.Name).Prepend("all"))
        {
            var tallies = scope == "all" ? overall : results.Where(t => t.Trace == scope).ToList();
            var interval = traces.Where(t => scope == "all" || t.Name == scope).Min(t => t.Interval);
            text.AppendLine(Target(scope, tallies, bounds[scope], interval));
        }

        text.AppendLine().AppendLine("Notes:");
        foreach (var group in traces.GroupBy(t => t.Note))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"- {string.Join(", ", group.Select(t => t.Name))}: {group.Key}.");
        }

        text.AppendLine(CultureInfo.InvariantCulture,
            $"- One configuration for every rule: maxIncrease {maxIncrease * 100:0}%, no absolute max; delay = end of the alarming interval minus deploy time.");
        if (coldStart > TimeSpan.Zero)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"- Cold start: in every scenario the looks that end within {coldStart.TotalMinutes:0} min of the deploy are at twice the recorded value (error rates as recorded), before any regression is injected.");
        }
        text.AppendLine().AppendLine(CultureInfo.InvariantCulture,
            $"Command: dotnet run -c Release --project tests/RolloutGate.Benchmarks -- detection{string.Concat(args.Select(a => " " + a))}");
        text.AppendLine(CultureInfo.InvariantCulture, $"Elapsed: {elapsed.TotalSeconds:0.0} s");
        return text.ToString();
    }

    private static string Row(string trace, Tally tally) =>
        $"| {trace} | {tally.Rule} | {tally.NullRuns} | {Share(tally.NullAlarms, tally.NullRuns)} | " +
        string.Join(" | ", Regressions.Select(x => tally.Cell(x))) + " |";

    private static string Target(string scope, IReadOnlyList<Tally> tallies, Bound bound, TimeSpan interval)
    {
        var ours = tallies[0];
        var peers = tallies.Skip(1).Where(t => t.NullRuns > 0 && (double)t.NullAlarms / t.NullRuns <= 0.01).ToList();
        var line = new StringBuilder().Append(CultureInfo.InvariantCulture, $"- {scope}: ours {Share(ours.NullAlarms, ours.NullRuns)} false rollbacks");
        if (peers.Count == 0)
        {
            return line.Append("; no peer rule keeps to 1% false rollbacks here").ToString();
        }

        foreach (var x in Regressions)
        {
            var best = peers.OrderByDescending(p => p.DetectedShare(x)).ThenBy(p => p.MedianDelay(x) ?? double.MaxValue).First();
            var meets = ours.DetectedShare(x) >= best.DetectedShare(x)
                && (best.MedianDelay(x) is not { } peerDelay || (ours.MedianDelay(x) ?? double.MaxValue) <= peerDelay / 4);
            var unattainable = !meets && best.MedianDelay(x) is { } delay && delay / 4 < interval.TotalMinutes;
            line.Append(CultureInfo.InvariantCulture,
                $"; +{x * 100:0}%: ours {ours.Cell(x)} vs {best.Rule} {best.Cell(x)} {(meets ? best.DetectedShare(x) == 0 ? "(met; no such peer rule catches any)" : "(met)" : unattainable ? "(not met; a quarter of its delay is under one interval)" : "(not met)")}");
            if (!meets && bound.Runs > 0)
            {
                line.Append(CultureInfo.InvariantCulture,
                    $" [one tuned look at {OneShotBound.Horizon.TotalMinutes:0} min: {Share(bound.Caught.GetValueOrDefault(x), bound.Runs)}]");
            }
        }

        return line.ToString();
    }

    private static string Share(int count, int total) =>
        total == 0 ? "n/a" : string.Create(CultureInfo.InvariantCulture, $"{100.0 * count / total:0.0}%");

    /// <summary>Counts of one rule on one trace (or pooled).</summary>
    private sealed class Tally(string trace, string rule)
    {
        private readonly Dictionary<double, (int Runs, List<double> Delays)> _regressions = [];

        public string Trace => trace;

        public string Rule => rule;

        public int NullRuns { get; private set; }

        public int NullAlarms { get; private set; }

        public static Tally Pool(string trace, string rule, IEnumerable<Tally> parts)
        {
            var pooled = new Tally(trace, rule);
            foreach (var part in parts)
            {
                pooled.NullRuns += part.NullRuns;
                pooled.NullAlarms += part.NullAlarms;
                foreach (var (x, (runs, delays)) in part._regressions)
                {
                    var entry = pooled.Entry(x);
                    entry.Delays.AddRange(delays);
                    pooled._regressions[x] = (entry.Runs + runs, entry.Delays);
                }
            }

            return pooled;
        }

        public void Add(double x, int? alarmIndex, TimeSpan interval)
        {
            if (x == 0)
            {
                NullRuns++;
                NullAlarms += alarmIndex is null ? 0 : 1;
                return;
            }

            var entry = Entry(x);
            if (alarmIndex is { } i)
            {
                entry.Delays.Add((i + 1) * interval.TotalMinutes);
            }

            _regressions[x] = (entry.Runs + 1, entry.Delays);
        }

        /// <summary>Regression runs of size <paramref name="x"/> caught within <paramref name="minutes"/> of the deploy.</summary>
        public int CaughtBy(double x, double minutes) => Entry(x).Delays.Count(d => d <= minutes);

        public double DetectedShare(double x) => Entry(x) is var (runs, delays) && runs > 0 ? (double)delays.Count / runs : 0;

        public double? MedianDelay(double x)
        {
            var delays = Entry(x).Delays;
            if (delays.Count == 0)
            {
                return null;
            }

            var sorted = delays.Order().ToArray();
            return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
        }

        public string Cell(double x) => Entry(x).Runs == 0 ? "n/a"
            : string.Create(CultureInfo.InvariantCulture,
                $"{100 * DetectedShare(x):0}%, {(MedianDelay(x) is { } d ? $"{d:0} min" : "-")}");

        private (int Runs, List<double> Delays) Entry(double x) =>
            _regressions.TryGetValue(x, out var entry) ? entry : (0, []);
    }
}
