using RolloutGate.Core.Analysis;

namespace RolloutGate.Core.Tests.Analysis;

public sealed class CountNoiseLawTests
{
    private const double Floor = 0.02 * 0.02;

    [Theory]
    [InlineData(0.06, 2.86)]  // both terms, equal at 825 requests (SyntheticTraffic.MixedP95)
    [InlineData(0.06, 0.0)]   // σ₀ only (SteadyP95)
    [InlineData(0.0, 2.86)]   // the pure 1/n law (NightlyP95)
    public void Fit_ResidualsOfADaysCounts_RecoversSigma0AndCWithinTheirErrorAndBoundsTheNightsVariance(double sigma0, double c)
    {
        var covered = 0;
        for (var seed = 0; seed < 50; seed++)
        {
            var (requests, residuals) = Day(new Random(seed), sigma0, c);

            var law = CountNoiseLaw.Fit(requests, residuals, Floor)!.Value;

            Assert.InRange(law.Intercept, sigma0 * sigma0 - 4 * Math.Sqrt(law.InterceptVariance), sigma0 * sigma0 + 4 * Math.Sqrt(law.InterceptVariance));
            Assert.InRange(law.Slope, c - 4 * Math.Sqrt(law.SlopeVariance), c + 4 * Math.Sqrt(law.SlopeVariance));
            // Within reason: the day's counts (150 to 1500) tell σ₀² to about 0.001 and c to about 0.6.
            Assert.InRange(Math.Sqrt(law.InterceptVariance), 0, 0.0015);
            Assert.InRange(Math.Sqrt(law.SlopeVariance), 0, 0.8);
            covered += law.UpperVariance(150) >= sigma0 * sigma0 + c / 150 ? 1 : 0;
        }

        // The bound at the night's 150 requests is a 99% one: of 50 days, at most one or two may miss.
        Assert.InRange(covered, 48, 50);
    }

    [Fact]
    public void Fit_NoiseThatDoesNotDependOnTheCount_BoundsTheNightNearSigma0WhereThePureLawWouldSayTwiceAsMuch()
    {
        var (requests, residuals) = Day(new Random(1), 0.06, 0);

        var law = CountNoiseLaw.Fit(requests, residuals, Floor)!.Value;

        // The rule for any law: the scale at the median count (about 825 requests) times √(825 / 150) ≈ 2.3.
        var night = Math.Sqrt(law.UpperVariance(150));
        Assert.InRange(night, 0.06, 0.06 * 1.5);
    }

    [Fact]
    public void Fit_CountsThatDoNotSpread_IsNoneOrNoTighterThanTheRuleForAnyLaw()
    {
        var random = new Random(2);

        // Every count the same, or too few samples for two bins: no fit.
        var same = Enumerable.Repeat(800L, 1440).ToArray();
        Assert.Null(CountNoiseLaw.Fit(same, [.. same.Select(_ => 0.06 * Normal(random))], Floor));
        Assert.Null(CountNoiseLaw.Fit([.. same.Take(59)], [.. same.Take(59).Select(_ => 0.06 * Normal(random))], Floor));

        // Counts within 2% of each other (800 to 815) cannot tell σ₀² from c/n: at the night's 150 requests the bound is
        // wider than the rule that holds for any law, (800 / 150) × the variance at 800, which is then kept.
        var near = Enumerable.Range(0, 1440).Select(i => 800L + (i % 16)).ToArray();
        var law = CountNoiseLaw.Fit(near, [.. near.Select(_ => 0.06 * Normal(random))], Floor);
        Assert.NotNull(law);
        Assert.True(law.Value.UpperVariance(150) > 800.0 / 150 * 0.06 * 0.06, $"{law.Value.UpperVariance(150)} at 150 requests");
    }

    [Fact]
    public void LogNoiseScaleFor_ABaselineWhoseNoiseDoesNotDependOnTheCount_IsNearItsOneScaleAtNight()
    {
        var traffic = new SyntheticTraffic(3);
        var samples = SyntheticTraffic.Minutes(SyntheticTraffic.Deploy.AddDays(-1), 1440).Select(t => traffic.SteadyP95(t)).ToList();

        var baseline = BaselineWindow.From(MetricKind.Latency, samples);

        // 6% whatever the count: the pure 1/n law would make the night's 150 requests (a fifth of the median count) about
        // 2.3 times as noisy; the fitted law keeps it near the one scale, never below it.
        Assert.InRange(baseline.LogNoiseScale, SyntheticTraffic.SteadyLogNoise * 0.9, SyntheticTraffic.SteadyLogNoise * 1.1);
        Assert.InRange(baseline.LogNoiseScaleFor(150), baseline.LogNoiseScale, baseline.LogNoiseScale * 1.5);
        Assert.Equal(baseline.LogNoiseScale, baseline.LogNoiseScaleFor(5000));
    }

    [Fact]
    public void LogNoiseScaleFor_ABaselineWhoseCountsDoNotSpread_IsTheRuleForAnyLaw()
    {
        var random = new Random(4);
        var samples = SyntheticTraffic.Minutes(SyntheticTraffic.Deploy.AddDays(-1), 1440)
            .Select((t, i) => new Observation(t, 0.2 * Math.Exp(0.06 * Normal(random)), 800 + (i % 16)))
            .ToList();

        var baseline = BaselineWindow.From(MetricKind.Latency, samples);

        Assert.Equal(Math.Sqrt(2), baseline.LogNoiseScaleFor(150) / baseline.LogNoiseScaleFor(300), 9);
    }

    /// <summary>
    /// A day of 1-minute residuals of variance σ₀² + c/n, with n the counts of <see cref="SyntheticTraffic"/>'s day (Poisson
    /// around 1500 × the load, 150 at 03:00).
    /// </summary>
    private static (long[] Requests, double[] Residuals) Day(Random random, double sigma0, double c)
    {
        var requests = Enumerable.Range(0, 1440)
            .Select(minute => 1500 * (0.55 - 0.45 * Math.Cos(2 * Math.PI * (minute / 60.0 - 3) / 24)))
            .Select(mean => (long)Math.Round(mean + Math.Sqrt(mean) * Normal(random)))
            .ToArray();
        return (requests, [.. requests.Select(n => Math.Sqrt(sigma0 * sigma0 + c / n) * Normal(random))]);
    }

    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
