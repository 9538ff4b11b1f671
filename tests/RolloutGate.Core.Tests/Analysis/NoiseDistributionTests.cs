using RolloutGate.Core.Analysis;

namespace RolloutGate.Core.Tests.Analysis;

public sealed class NoiseDistributionTests
{
    [Theory]
    [InlineData(0.5, 0)]
    [InlineData(0.975, 1.959963984540054)]
    [InlineData(0.9, 1.2815515655446004)]
    [InlineData(0.2, -0.8416212335729142)]
    [InlineData(0.001, -3.090232306167813)]
    [InlineData(1e-6, -4.753424308822899)]
    [InlineData(1e-10, -6.361340902404056)]
    public void NormalQuantile_MatchesTheTabulatedPercentagePoints(double p, double expected)
    {
        Assert.Equal(expected, NoiseDistribution.NormalQuantile(p), 12);
    }

    [Fact]
    public void NormalQuantile_InvertsTheDistributionFunction()
    {
        foreach (var p in new[] { 1e-6, 0.01, 0.2, 0.5, 0.7, 0.99, 1 - 1e-6 })
        {
            // To the distribution function's own accuracy (its erfc approximation is good to about 4e-7 here).
            Assert.Equal(p, RegressionDetector.NormalCdf(NoiseDistribution.NormalQuantile(p)), 6);
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => NoiseDistribution.NormalQuantile(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => NoiseDistribution.NormalQuantile(1));
    }

    [Fact]
    public void Score_OfGaussianResiduals_IsAboutTheResidualOverTheirStandardDeviation()
    {
        // 20,000 residuals of standard deviation 0.1 (the floor, 0.02, is below their spread, so they are not widened);
        // the empirical quantiles are then within about 0.03 noise units of the normal ones up to ±2.
        var random = new Random(1);
        var residuals = Enumerable.Range(0, 20000).Select(_ => 0.1 * Gaussian(random)).ToArray();
        var noise = NoiseDistribution.From(residuals, 0.02);

        foreach (var k in new[] { -2, -1, -0.3, 0, 0.5, 1.5, 2 })
        {
            Assert.InRange(noise.Score(0.1 * k), k - 0.1, k + 0.1);
        }

        Assert.InRange(noise.RetainedValues, 0, 2 * NoiseDistribution.MaxQuantiles);
    }

    [Fact]
    public void Score_OfNewSamplesFromTheBaselinesOwnSkewedDistribution_IsStandardNormal()
    {
        // Left-skewed on the log scale, as a p95 latency per minute is: long tail below, little room above.
        var random = new Random(2);
        var noise = NoiseDistribution.From(Enumerable.Range(0, 5000).Select(_ => Skewed(random)).ToArray(), 0.02);

        var scores = Enumerable.Range(0, 20000).Select(_ => noise.Score(Skewed(random))).ToArray();
        var mean = scores.Average();
        var sd = Math.Sqrt(scores.Average(s => (s - mean) * (s - mean)));

        Assert.InRange(mean, -0.05, 0.05);
        Assert.InRange(sd, 0.95, 1.05);
        Assert.InRange(scores.Count(s => s > 1.645) / 20000.0, 0.04, 0.06);
        // Measured from the median in noise units instead, the same samples sit below zero on average (about −0.24 here):
        // part of every shift would be eaten before it counted.
        var more = Enumerable.Range(0, 20000).Select(_ => Skewed(random)).ToArray();
        var median = Median([.. more]);
        var scale = 1.4826 * Median(more.Select(r => Math.Abs(r - median)).ToArray());
        Assert.InRange(more.Average(r => (r - median) / scale), -0.3, -0.1);
    }

    [Fact]
    public void Score_OfAQuantisedBaseline_GivesTiesTheMiddleOfTheirRankAndNeverDecreases()
    {
        // 40 at −0.1, 50 at 0, 10 at +0.1: a value equal to 0 is the middle of ranks 40..89 of 100, p = 0.65.
        var residuals = Enumerable.Repeat(-0.1, 40).Concat(Enumerable.Repeat(0.0, 50)).Concat(Enumerable.Repeat(0.1, 10)).ToArray();
        var noise = NoiseDistribution.From(residuals, 0.05);

        Assert.Equal(NoiseDistribution.NormalQuantile(0.65), noise.Score(0), 12);
        Assert.Equal(NoiseDistribution.NormalQuantile(0.2), noise.Score(-0.1), 12);
        Assert.Equal(NoiseDistribution.NormalQuantile(0.95) + 0.1 / 0.05, noise.Score(0.2), 12);
        var grid = Enumerable.Range(-400, 801).Select(i => i / 1000.0).ToArray();
        for (var i = 1; i < grid.Length; i++)
        {
            Assert.True(noise.Score(grid[i]) >= noise.Score(grid[i - 1]), $"score falls between {grid[i - 1]} and {grid[i]}");
        }
    }

    [Fact]
    public void Score_OfABaselineQuieterThanTheFloor_IsWidenedToTheFloor()
    {
        var random = new Random(3);
        var noise = NoiseDistribution.From(Enumerable.Range(0, 3000).Select(_ => 0.002 * Gaussian(random)).ToArray(), 0.02);

        Assert.InRange(noise.Score(0.02), 0.9, 1.1);
        Assert.InRange(noise.Score(-0.04), -2.1, -1.9);
    }

    [Fact]
    public void Score_WithoutASpreadToShape_IsTheResidualOverTheScale()
    {
        var flat = NoiseDistribution.From(Enumerable.Repeat(0.0, 100).Concat([0.3, -0.2]).ToArray(), 0.02);
        var empty = NoiseDistribution.From([], 0.02);

        foreach (var y in new[] { -0.1, 0, 0.01, 0.5 })
        {
            Assert.Equal(y / 0.02, flat.Score(y), 12);
            Assert.Equal(y / 0.02, empty.Score(y), 12);
        }
    }

    /// <summary>0.1 N(0, 1) − 0.2 (E − 1), E exponential: mean 0, a long tail below.</summary>
    internal static double Skewed(Random random) => 0.1 * Gaussian(random) - 0.2 * (-Math.Log(1 - random.NextDouble()) - 1);

    private static double Median(double[] values)
    {
        Array.Sort(values);
        return values[values.Length / 2];
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
