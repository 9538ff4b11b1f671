using System.Globalization;
using System.Text;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Tests.Analysis;

namespace RolloutGate.Benchmarks.Detection;

/// <summary>
/// How often the load elasticity's margin misses its error (<see cref="LoadAdjustment"/>): seeded week baselines of the
/// two shapes the adjustment is for, <see cref="SyntheticTraffic.LoadedP95"/> (true elasticity
/// <see cref="SyntheticTraffic.LoadElasticity"/>) and <see cref="SyntheticTraffic.NightlyCostPerRequest"/> (minus its fixed
/// share, which changes with the hour: no one true value), weekends at 55% of a weekday's load, each ending at hour
/// (seed mod 24) UTC of a Wednesday. For each, β̂, its standard error and degrees of freedom as the fit makes them
/// (before the test that β̂ is determined), and how often |β̂ − β| / SE exceeds the margin's q = t(1 − alpha/8) (meant:
/// alpha/4) and t(0.975) (meant: 5%), β being the mean β̂ over the seeds (and, for the latency, the generator's own).
/// Deterministic: no clock is read.
/// </summary>
internal static class ElasticityCoverageBenchmark
{
    public static int Run(string[] args)
    {
        var seeds = args.Length == 2 && args[0] == "--seeds" && int.TryParse(args[1], CultureInfo.InvariantCulture, out var n) && n > 1 ? n
            : args.Length == 0 ? 300 : -1;
        if (seeds < 0)
        {
            Console.Error.WriteLine("usage: dotnet run -c Release --project tests/RolloutGate.Benchmarks -- elasticity [--seeds 300]");
            return 2;
        }

        var alpha = DetectorOptions.Default.FalseAlarmRatePerWatch;
        var load = SyntheticTraffic.WeekLoad(0.55);
        var wednesday = SyntheticTraffic.Deploy.AddDays(2) - SyntheticTraffic.Deploy.TimeOfDay;
        var shapes = new (string Name, double? Truth, Func<SyntheticTraffic, DateTimeOffset, Observation> Sample)[]
        {
            ("p95 latency rising with load", SyntheticTraffic.LoadElasticity, (traffic, at) => traffic.LoadedP95(at, load(at))),
            ("cost per request", null, (traffic, at) => traffic.NightlyCostPerRequest(at, dayLoad: load(at))),
        };
        var text = new StringBuilder();
        text.AppendLine("| shape | fitted | determined | mean β̂ | sd of β̂ | rms SE | sd / rms SE | df | beyond q, about the mean | beyond t(0.975), about the mean | beyond q, about the truth | beyond t(0.975), about the truth |")
            .AppendLine("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|");
        foreach (var (name, truth, sample) in shapes)
        {
            var fits = new List<(double Slope, double StandardError, int Degrees)>();
            for (var seed = 0; seed < seeds; seed++)
            {
                var traffic = new SyntheticTraffic(seed);
                var end = wednesday.AddHours(seed % 24);
                var points = SyntheticTraffic.Minutes(end.AddDays(-7), 7 * 1440)
                    .Select(t => sample(traffic, t))
                    .Where(o => o.Value is > 0 && o.Requests is > 0)
                    .Select(o => (o.At, Log: Math.Log(o.Value!.Value), o.Requests))
                    .ToList();
                if (LoadAdjustment.Estimate(points, null, alpha) is var (slope, standardError, degrees, _))
                {
                    fits.Add((slope, standardError, degrees));
                }
            }

            var mean = fits.Average(f => f.Slope);
            var sd = Math.Sqrt(fits.Sum(f => (f.Slope - mean) * (f.Slope - mean)) / (fits.Count - 1));
            var rms = Math.Sqrt(fits.Average(f => f.StandardError * f.StandardError));
            var determined = fits.Count(f => Math.Abs(f.Slope) > Quantile(f.Degrees) * f.StandardError);
            var degreesSeen = string.Join(", ", fits.GroupBy(f => f.Degrees).OrderBy(d => d.Key).Select(d => $"{d.Key}: {d.Count()}"));
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {name} | {fits.Count} | {determined} | {mean:0.000} | {sd:0.000} | {rms:0.000} | {sd / rms:0.00} | {degreesSeen} | {Beyond(fits, mean, Quantile)} | {Beyond(fits, mean, d => LoadAdjustment.StudentQuantile(0.975, d))} | {(truth is { } b ? Beyond(fits, b, Quantile) : "n/a")} | {(truth is { } c ? Beyond(fits, c, d => LoadAdjustment.StudentQuantile(0.975, d)) : "n/a")} |");
        }

        Console.WriteLine(text);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"q = t(1 − alpha/8), alpha = {alpha}: meant to be exceeded with probability {alpha / 4:0.####}."));
        Console.WriteLine($"Command: dotnet run -c Release --project tests/RolloutGate.Benchmarks -- elasticity {string.Join(' ', args)}");
        return 0;

        double Quantile(int degrees) => LoadAdjustment.MarginQuantile(degrees, alpha);
    }

    /// <summary>How many of the <paramref name="fits"/> have |β̂ − <paramref name="centre"/>| / SE beyond their <paramref name="quantile"/>, as "k/n (p%)".</summary>
    private static string Beyond(List<(double Slope, double StandardError, int Degrees)> fits, double centre, Func<int, double> quantile)
    {
        var beyond = fits.Count(f => Math.Abs(f.Slope - centre) > quantile(f.Degrees) * f.StandardError);
        return string.Create(CultureInfo.InvariantCulture, $"{beyond}/{fits.Count} ({100.0 * beyond / fits.Count:0.0}%)");
    }
}
