using RolloutGate.Core.Analysis;

namespace RolloutGate.Core.Tests.Analysis;

/// <summary>Seeded synthetic traces with a daily cycle: the same seed always gives the same series.</summary>
internal sealed class SyntheticTraffic(int seed)
{
    public static readonly DateTimeOffset Deploy = new(2026, 3, 2, 9, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// The log standard deviation of <see cref="SteadyP95"/>'s noise: 0.06, about that of <see cref="NightlyP95"/> at the
    /// median count (0.8 √(0.95 × 0.05 / 825) / φ(1.645) ≈ 0.059), so the two shapes are as noisy there.
    /// </summary>
    public const double SteadyLogNoise = 0.06;

    private readonly Random _random = new(seed);

    /// <summary>p95 latency around 300 ms, ±40% over the day, with 10% log-normal noise per minute.</summary>
    public Observation Latency(DateTimeOffset at, double factor = 1.0) =>
        new(at, factor * 0.3 * Daily(at, 0.4) * Math.Exp(0.1 * Normal()), Requests: 2000);

    /// <summary>
    /// A business metric a custom query returns, such as orders per minute: about 120, ±40% over the day, with 10%
    /// log-normal noise per minute, and no request count (a query has none).
    /// </summary>
    public Observation OrdersPerMinute(DateTimeOffset at, double factor = 1.0) =>
        new(at, factor * 120 * Daily(at, 0.4) * Math.Exp(0.1 * Normal()));

    /// <summary>
    /// Like <see cref="Latency"/> with a weekly cycle on top: Monday to Friday (UTC) 30% above Saturday and Sunday, as
    /// traffic-driven metrics of a business service are.
    /// </summary>
    public Observation WeeklyLatency(DateTimeOffset at, double factor = 1.0) =>
        Latency(at, factor * (at.UtcDateTime.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday ? 1.0 : 1.3));

    /// <summary>
    /// A small service's request rate: about 400 requests a minute at 15:00 UTC and 40 at 03:00, so fewer than the 100 a
    /// verdict needs from about 23:50 to 06:10, with Poisson noise.
    /// </summary>
    public Observation QuietNightRequestRate(DateTimeOffset at) => RequestRate(at, at.UtcDateTime.TimeOfDay.TotalHours, 400);

    /// <summary>
    /// A request rate whose users follow the clock of <paramref name="zone"/>: about 3000 requests a minute at 15:00 local
    /// time and 300 at 03:00, with Poisson noise; where the zone changes its clock, the daily pattern moves by an hour in UTC.
    /// </summary>
    public Observation LocalRequestRate(DateTimeOffset at, TimeZoneInfo zone) =>
        RequestRate(at, TimeZoneInfo.ConvertTime(at, zone).TimeOfDay.TotalHours, 3000);

    /// <summary>
    /// Cost per request of a service whose requests follow the day (about 1500 a minute at 15:00 UTC and 150 at 03:00,
    /// Poisson) and which pays for its CPU by use (one unit per request, 3% noise from minute to minute) and for its
    /// memory by the minute (500 units, a quarter of the cost at the peak and three quarters at night). The fixed memory
    /// cost over a few requests makes the night's value about three times as noisy as the afternoon's (its log about
    /// 1/√requests at night), the heteroscedastic shape real services have. <paramref name="dayLoad"/> scales the day's
    /// requests (a weekend's or a holiday's share of a weekday's, see <see cref="WeekLoad"/>): with fewer, the fixed memory
    /// cost is spread over fewer requests and the cost per request rises.
    /// </summary>
    public Observation NightlyCostPerRequest(DateTimeOffset at, double factor = 1.0, double dayLoad = 1.0)
    {
        var requests = Requests(at.UtcDateTime.TimeOfDay.TotalHours, 1500 * dayLoad);
        if (requests == 0)
        {
            return new Observation(at, null, 0);
        }

        var cost = requests * Math.Exp(0.03 * Normal()) + 500;
        return new Observation(at, factor * cost / requests, requests);
    }

    /// <summary>
    /// p95 latency of the same service: each request's latency log-normal (median 80 ms, 20% higher at the peak, log
    /// standard deviation 0.8), and the interval's value the 95th percentile of its requests, the ⌈0.95 n⌉-th smallest of
    /// n (its exact law: that order statistic of n uniforms is Beta(k, n + 1 − k)). The log of a quantile of n requests
    /// varies like 1/√n, so the night's p95 of 150 requests is about three times as noisy as the afternoon's of 1500.
    /// </summary>
    public Observation NightlyP95(DateTimeOffset at, double factor = 1.0)
    {
        var hour = at.UtcDateTime.TimeOfDay.TotalHours;
        var requests = Requests(hour, 1500);
        if (requests == 0)
        {
            return new Observation(at, null, 0);
        }

        return new Observation(at, factor * MedianLatency(hour) * P95Factor(requests), requests);
    }

    /// <summary>
    /// p95 latency of a service with the same requests and daily level as <see cref="NightlyP95"/>, whose minute-to-minute
    /// noise does not depend on how many requests the minute had: log-normal, log standard deviation
    /// <see cref="SteadyLogNoise"/> (σ₀ only, c = 0 in σ²(n) = σ₀² + c/n), as a large service's p95 is, set by its own
    /// noise (GC pauses, neighbours) rather than by the sampling of a quantile.
    /// </summary>
    public Observation SteadyP95(DateTimeOffset at, double factor = 1.0)
    {
        var hour = at.UtcDateTime.TimeOfDay.TotalHours;
        var requests = Requests(hour, 1500);
        if (requests == 0)
        {
            return new Observation(at, null, 0);
        }

        return new Observation(at, factor * MedianLatency(hour) * Math.Exp(SteadyLogNoise * Normal()), requests);
    }

    /// <summary>
    /// <see cref="NightlyP95"/> with the noise of <see cref="SteadyP95"/> on top: σ²(n) = σ₀² + c/n with both terms about
    /// equal at the median count of about 825 requests a minute (σ₀² = 0.06², c/825 = 0.059²).
    /// </summary>
    public Observation MixedP95(DateTimeOffset at, double factor = 1.0)
    {
        var p95 = NightlyP95(at, factor);
        return p95.Value is { } value ? p95 with { Value = value * Math.Exp(SteadyLogNoise * Normal()) } : p95;
    }

    /// <summary>
    /// p95 latency of a service whose latency rises with its load: <see cref="NightlyP95"/>'s requests and sampling noise,
    /// its median latency 80 ms × (load)^<see cref="LoadElasticity"/>, load = the time of day's share of the peak (0.1 to 1)
    /// × <paramref name="dayLoad"/>: a holiday at half the load is 19% faster, the day after it 23% slower than the holiday.
    /// </summary>
    public Observation LoadedP95(DateTimeOffset at, double dayLoad, double factor = 1.0)
    {
        var hour = at.UtcDateTime.TimeOfDay.TotalHours;
        var requests = Requests(hour, 1500 * dayLoad);
        if (requests == 0)
        {
            return new Observation(at, null, 0);
        }

        return new Observation(at, factor * 0.08 * Math.Pow(Load(hour) * dayLoad, LoadElasticity) * P95Factor(requests), requests);
    }

    /// <summary>The load elasticity of <see cref="LoadedP95"/>'s median latency.</summary>
    public const double LoadElasticity = 0.3;

    /// <summary>
    /// A week of a business service's load (UTC days): Saturday and Sunday at <paramref name="weekend"/> of a weekday's
    /// load, the day <paramref name="holiday"/> (if any) at <paramref name="holidayLoad"/>, every other day 1.
    /// </summary>
    public static Func<DateTimeOffset, double> WeekLoad(double weekend, DateOnly? holiday = null, double holidayLoad = 1) => at =>
        DateOnly.FromDateTime(at.UtcDateTime) == holiday ? holidayLoad
            : at.UtcDateTime.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday ? weekend
            : 1;

    /// <summary>Times <paramref name="step"/> apart, starting at <paramref name="from"/>.</summary>
    public static IEnumerable<DateTimeOffset> Every(TimeSpan step, DateTimeOffset from, int count) =>
        Enumerable.Range(0, count).Select(i => from + (i * step));

    /// <summary>An error-rate interval: ~1000 requests a minute, each failing with probability <paramref name="rate"/>.</summary>
    public Observation Errors(DateTimeOffset at, double rate, long requests = 1000)
    {
        long errors = 0;
        for (var i = 0; i < requests; i++)
        {
            if (_random.NextDouble() < rate)
            {
                errors++;
            }
        }

        return new Observation(at, (double)errors / requests, requests, errors);
    }

    /// <summary>
    /// Bursty errors: a burst starts in 2% of minutes and lasts 3 minutes at 5% errors; between bursts 0.2%. The same
    /// process before and after a deploy is healthy, however lumpy its counts.
    /// </summary>
    public IEnumerable<Observation> BurstyErrors(DateTimeOffset from, int minutes)
    {
        var burstLeft = 0;
        foreach (var at in Minutes(from, minutes))
        {
            if (burstLeft == 0 && _random.NextDouble() < 0.02)
            {
                burstLeft = 3;
            }

            yield return Errors(at, burstLeft > 0 ? 0.05 : 0.002);
            burstLeft = Math.Max(0, burstLeft - 1);
        }
    }

    public static IEnumerable<DateTimeOffset> Minutes(DateTimeOffset from, int count) =>
        Enumerable.Range(0, count).Select(i => from.AddMinutes(i));

    /// <summary>Requests a minute peaking at <paramref name="peak"/> at hour 15 and at a tenth of it at hour 3, with Poisson noise.</summary>
    private Observation RequestRate(DateTimeOffset at, double hour, double peak)
    {
        var requests = Requests(hour, peak);
        return new Observation(at, requests / 60.0, requests);
    }

    /// <summary>A minute's requests at <paramref name="hour"/>: Poisson (normal approximation) around <paramref name="peak"/> × <see cref="Load"/>.</summary>
    private long Requests(double hour, double peak)
    {
        var mean = peak * Load(hour);
        return Math.Max(0, (long)Math.Round(mean + Math.Sqrt(mean) * Normal()));
    }

    /// <summary>
    /// The 95th percentile of <paramref name="requests"/> log-normal latencies (log standard deviation 0.8) over their
    /// median: the ⌈0.95 n⌉-th smallest of n, drawn by its exact law (that order statistic of n uniforms is Beta(k, n + 1 − k)).
    /// </summary>
    private double P95Factor(long requests)
    {
        var k = (int)Math.Ceiling(0.95 * requests);
        var x = Gamma(k);
        var u = x / (x + Gamma(requests + 1 - k));
        return Math.Exp(0.8 * NoiseDistribution.NormalQuantile(u));
    }

    /// <summary>The median latency of one request at <paramref name="hour"/>: 80 ms, 20% higher at the peak.</summary>
    private static double MedianLatency(double hour) => 0.08 * (1 + 0.2 * Load(hour));

    /// <summary>The daily traffic shape: 1 at hour 15, 0.1 at hour 3.</summary>
    private static double Load(double hour) => 0.55 - 0.45 * Math.Cos(2 * Math.PI * (hour - 3) / 24);

    /// <summary>
    /// A Gamma(<paramref name="shape"/>, 1) draw for shape ≥ 1 (Marsaglia, G. and Tsang, W. W. 2000, "A simple method for
    /// generating gamma variables", ACM Trans. Math. Softw. 26:363–372).
    /// </summary>
    private double Gamma(double shape)
    {
        var d = shape - 1.0 / 3;
        var c = 1 / Math.Sqrt(9 * d);
        while (true)
        {
            double x, v;
            do
            {
                x = Normal();
                v = 1 + c * x;
            }
            while (v <= 0);

            v = v * v * v;
            var u = 1 - _random.NextDouble();
            if (Math.Log(u) < 0.5 * x * x + d - d * v + d * Math.Log(v))
            {
                return d * v;
            }
        }
    }

    private static double Daily(DateTimeOffset at, double amplitude) =>
        1 + amplitude * Math.Sin(2 * Math.PI * at.UtcDateTime.TimeOfDay.TotalHours / 24);

    private double Normal() =>
        Math.Sqrt(-2 * Math.Log(1 - _random.NextDouble())) * Math.Cos(2 * Math.PI * _random.NextDouble());
}
