using System.Diagnostics;
using System.Globalization;
using RolloutGate.Core.Analysis;

namespace RolloutGate.Benchmarks.Baselines;

/// <summary>
/// What reducing one metric's baseline costs (<see cref="BaselineWindow.From"/>): the watch does it for every metric of
/// every watch it sees for the first time; after a restart it reads the stored reduction back instead
/// (<see cref="BaselineWindow.Decode"/>), whose size and time are measured too. Latency-shaped samples at a
/// 1-minute interval over 1 hour, 24 hours and 7 days (daily shape, noise, a few spikes), reduced as the watch does for a
/// 24-hour watch; per size, the time per reduction (median of several repetitions) and the managed memory the reduced
/// baseline keeps in its arrays. The last row's 7 days have weekends at 55% of a weekday's requests and a latency that
/// follows them, to which the reduction fits a load adjustment.
/// </summary>
internal static class BaselineBenchmark
{
    private static readonly DateTimeOffset End = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset WatchEnd = End.AddHours(24);

    public static int Run(string[] args)
    {
        Console.WriteLine("| baseline | samples | reduction ms (median) | retained KB | stored reduction KB | reading it back ms (median) | 10,000 watches × 3 metrics: reduction CPU s | reading back CPU s | memory GB |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (name, length, weekends) in new[] { ("1 h", TimeSpan.FromHours(1), 1.0), ("24 h", TimeSpan.FromHours(24), 1.0), ("7 d", TimeSpan.FromDays(7), 1.0), ("7 d, weekends at 55% load", TimeSpan.FromDays(7), 0.55) })
        {
            var samples = Samples(length, weekends);
            var reduced = BaselineWindow.From(MetricKind.Latency, samples, DetectorOptions.Default, WatchEnd);
            var stored = reduced.Encode();
            var reduction = MedianMilliseconds(() => BaselineWindow.From(MetricKind.Latency, samples, DetectorOptions.Default, WatchEnd));
            var readBack = MedianMilliseconds(() => BaselineWindow.Decode(stored, MetricKind.Latency, DetectorOptions.Default, WatchEnd));

            // The arrays the reduced baseline keeps (8 bytes a value); the object headers around them are a few dozen bytes.
            var retained = reduced.RetainedValues * 8L;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {samples.Count:N0} | {reduction:F2} | {retained / 1024.0:F1} | {stored.Length / 1024.0:F1} | {readBack:F3} | {reduction * 30000 / 1000:F0} | {readBack * 30000 / 1000:F1} | {retained * 30000.0 / (1L << 30):F2} |"));
        }

        Console.WriteLine();
        Console.WriteLine($"command: dotnet run -c Release --project tests/RolloutGate.Benchmarks -- baselines");
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}");
        return 0;
    }

    /// <summary>
    /// The median time of repeated runs of <paramref name="action"/>, after a second of warm-up, so the times are those of
    /// optimised code, as in a service that has been running (the JIT recompiles a method with full optimisation only
    /// after it has run a few dozen times).
    /// </summary>
    private static double MedianMilliseconds(Action action)
    {
        var warmUp = Stopwatch.StartNew();
        while (warmUp.Elapsed < TimeSpan.FromSeconds(1))
        {
            action();
        }

        var times = new List<double>();
        var budget = Stopwatch.StartNew();
        do
        {
            var watch = Stopwatch.StartNew();
            action();
            times.Add(watch.Elapsed.TotalMilliseconds);
        }
        while (times.Count < 3 || (times.Count < 200 && budget.Elapsed < TimeSpan.FromSeconds(10)));

        return times.Order().ElementAt(times.Count / 2);
    }

    /// <summary>Samples over <paramref name="length"/>; Saturdays' and Sundays' requests at <paramref name="weekends"/> of 1000 a minute, and their latency × weekends^0.3.</summary>
    private static List<Observation> Samples(TimeSpan length, double weekends)
    {
        var random = new Random(7);
        var count = (int)(length / TimeSpan.FromMinutes(1));
        return Enumerable.Range(0, count)
            .Select(i => End - TimeSpan.FromMinutes(count - i))
            .Select(t => (At: t, Load: t.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday ? weekends : 1))
            .Select(s => new Observation(s.At,
                0.25 * (1 + 0.3 * Math.Sin(2 * Math.PI * s.At.UtcDateTime.TimeOfDay.TotalHours / 24)) * Math.Exp(0.05 * (random.NextDouble() - 0.5)) * (random.Next(200) == 0 ? 3 : 1) * Math.Pow(s.Load, 0.3),
                (long)Math.Round(1000 * s.Load * Math.Exp(0.03 * (random.NextDouble() - 0.5)))))
            .ToList();
    }
}
