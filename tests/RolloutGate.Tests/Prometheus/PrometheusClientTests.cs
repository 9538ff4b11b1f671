using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Prometheus;

namespace RolloutGate.Tests.Prometheus;

public sealed class PrometheusClientTests : IDisposable
{
    private readonly ServiceProvider services = PrometheusTestServer.Services();

    private IPrometheusClient Client => services.GetRequiredService<IPrometheusClient>();

    private static DateTimeOffset Anchor => PrometheusTestServer.Anchor;

    public void Dispose() => services.Dispose();

    [Fact]
    public async Task QueryAsync_RateOverKnownCounters_ReturnsKnownRate()
    {
        var samples = await Client.QueryAsync(
            "sum(rate(rolloutgate_test_requests_total{service=\"checkout\"}[5m]))", Anchor, CancellationToken.None);

        var sample = Assert.Single(samples);
        Assert.Empty(sample.Labels);
        Assert.Equal(PrometheusTestServer.CheckoutRequestsPerSecond + PrometheusTestServer.CheckoutErrorsPerSecond, sample.Value, 9);
        Assert.Equal(Anchor, sample.Timestamp);
    }

    [Fact]
    public async Task QueryAsync_Vector_ReturnsOneSampleWithLabelsPerSeries()
    {
        var samples = await Client.QueryAsync("rolloutgate_test_error_ratio", Anchor, CancellationToken.None);

        Assert.Equal(2, samples.Count);
        var byService = samples.ToDictionary(s => s.Labels["service"]);
        Assert.Equal(PrometheusTestServer.CheckoutErrorRatio, byService["checkout"].Value);
        Assert.Equal(PrometheusTestServer.PaymentsErrorRatio, byService["payments"].Value);
        Assert.Equal("rolloutgate_test_error_ratio", byService["checkout"].Labels["__name__"]);
        Assert.Equal("rolloutgate_test_error_ratio{service=\"checkout\"}", byService["checkout"].SeriesName);
    }

    [Fact]
    public async Task QueryAsync_EarlierTime_EvaluatesAtThatTime()
    {
        var samples = await Client.QueryAsync("rolloutgate_test_queue_depth", Anchor.AddHours(-1), CancellationToken.None);

        Assert.Equal(PrometheusTestServer.QueueDepthAtAnchor - 60, Assert.Single(samples).Value);
    }

    [Fact]
    public async Task QueryAsync_ScalarResult_ReturnsOneUnlabelledSample()
    {
        var samples = await Client.QueryAsync("scalar(rolloutgate_test_queue_depth)", Anchor, CancellationToken.None);

        var sample = Assert.Single(samples);
        Assert.Empty(sample.Labels);
        Assert.Equal(PrometheusTestServer.QueueDepthAtAnchor, sample.Value);
    }

    [Theory]
    [InlineData("vector(0) / 0", double.NaN)]
    [InlineData("vector(1) / 0", double.PositiveInfinity)]
    [InlineData("vector(-1) / 0", double.NegativeInfinity)]
    public async Task QueryAsync_SpecialValues_AreParsed(string promql, double expected)
    {
        var samples = await Client.QueryAsync(promql, Anchor, CancellationToken.None);

        Assert.Equal(expected, Assert.Single(samples).Value);
    }

    [Fact]
    public async Task QueryAsync_NoMatchingSeries_ReturnsEmpty()
    {
        var samples = await Client.QueryAsync("rolloutgate_test_error_ratio{service=\"nobody\"}", Anchor, CancellationToken.None);

        Assert.Empty(samples);
    }

    [Fact]
    public async Task QueryRangeAsync_LastTenMinutes_ReturnsEveryStep()
    {
        var series = await Client.QueryRangeAsync(
            "rolloutgate_test_queue_depth", Anchor.AddMinutes(-10), Anchor, TimeSpan.FromMinutes(1), CancellationToken.None);

        var only = Assert.Single(series);
        Assert.Equal("checkout", only.Labels["service"]);
        Assert.Equal(11, only.Points.Count);
        Assert.Equal(Enumerable.Range(0, 11).Select(i => Anchor.AddMinutes(i - 10)), only.Points.Select(p => p.Timestamp));
        Assert.Equal(Enumerable.Range(170, 11).Select(i => (double)i), only.Points.Select(p => p.Value));
    }

    [Fact]
    public async Task QueryRangeAsync_MoreStepsThanPrometheusAnswersInOneQuery_ReturnsEveryStepInOrder()
    {
        // A week at 30 s is 20,160 steps: asked at once, Prometheus refuses it (more than 11,000 points per series).
        var from = Anchor.AddDays(-7);

        var series = await Client.QueryRangeAsync("vector(1)", from, Anchor, TimeSpan.FromSeconds(30), CancellationToken.None);

        var only = Assert.Single(series);
        Assert.Equal(Enumerable.Range(0, 20_161).Select(i => from.AddSeconds(30 * i)), only.Points.Select(p => p.Timestamp));
        Assert.All(only.Points, p => Assert.Equal(1, p.Value));
    }

    [Fact]
    public async Task QueryRangeAsync_TheLargestPiece_IsOneQueryPrometheusAnswers()
    {
        var step = TimeSpan.FromSeconds(1);
        var from = Anchor - step * PrometheusConstants.MaxStepsPerRangeQuery;

        var series = await Client.QueryRangeAsync("vector(1)", from, Anchor, step, CancellationToken.None);

        Assert.Single(PrometheusClient.RangePieces(from, Anchor, step, PrometheusConstants.MaxStepsPerRangeQuery));
        Assert.Equal(PrometheusConstants.MaxStepsPerRangeQuery + 1, Assert.Single(series).Points.Count);
    }

    [Fact]
    public async Task QueryRangeAsync_SeriesThatBeginsWithinTheRange_JoinsItsPointsAcrossPieces()
    {
        // 12,000 one-second steps: two pieces. The series has samples for the last 3 hours (10,800 s) only.
        var series = await Client.QueryRangeAsync(
            "rolloutgate_test_queue_depth", Anchor.AddSeconds(-12_000), Anchor, TimeSpan.FromSeconds(1), CancellationToken.None);

        var only = Assert.Single(series);
        Assert.Equal("checkout", only.Labels["service"]);
        Assert.Equal(Enumerable.Range(0, 10_801).Select(i => Anchor.AddSeconds(i - 10_800)), only.Points.Select(p => p.Timestamp));
        Assert.Equal(180, only.Points[^1].Value);
        Assert.Equal(0, only.Points[0].Value);
    }

    [Theory]
    [InlineData("00:01:00", 1_440)]
    [InlineData("00:00:30", 2_880)]
    [InlineData("00:00:01", PrometheusConstants.MaxStepsPerRangeQuery)]
    [InlineData("1.00:00:00", 1)]
    [InlineData("2.00:00:00", 1)]
    public void StepsPerPiece_ADayAtMostAndNeverBeyondPrometheusLimit(string step, int expected) =>
        Assert.Equal(expected, PrometheusClient.StepsPerPiece(TimeSpan.Parse(step, CultureInfo.InvariantCulture)));

    [Theory]
    [InlineData(25, "0-10 11-21 22-25")]
    [InlineData(21, "0-10 11-21")]
    [InlineData(22, "0-10 11-21 22-22")]
    [InlineData(10, "0-10")]
    [InlineData(0, "0-0")]
    [InlineData(-3, "0--3")]
    public void RangePieces_CutsTheGridIntoRangesOfAtMostTheGivenSteps(int steps, string expected)
    {
        var step = TimeSpan.FromSeconds(30);

        var pieces = PrometheusClient.RangePieces(Anchor, Anchor + step * steps, step, 10);

        Assert.Equal(expected, string.Join(' ', pieces.Select(p => $"{(p.From - Anchor) / step}-{(p.To - Anchor) / step}")));
    }

    [Fact]
    public async Task QueryAsync_SyntaxError_ThrowsWithQueryAndPrometheusError()
    {
        const string promql = "sum(rate(rolloutgate_test_requests_total[5m]";

        var exception = await Assert.ThrowsAsync<PrometheusQueryException>(
            () => Client.QueryAsync(promql, Anchor, CancellationToken.None));

        Assert.Equal("bad_data", exception.ErrorType);
        Assert.Contains(promql, exception.Message, StringComparison.Ordinal);
        Assert.Contains("parse error", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task QueryAsync_RangeVectorExpression_IsRefused()
    {
        var exception = await Assert.ThrowsAsync<PrometheusQueryException>(
            () => Client.QueryAsync("rolloutgate_test_queue_depth[5m]", Anchor, CancellationToken.None));

        Assert.Contains("matrix", exception.Message, StringComparison.Ordinal);
        // Its metric is blind with this, not every watch held back as if Prometheus were down.
        Assert.True(exception.IsPermanent);
    }

    [Fact]
    public async Task QueryAsync_PrometheusDown_ThrowsUnavailableQuickly()
    {
        var url = PrometheusTestServer.UnusedLoopbackUrl();
        using var down = PrometheusTestServer.Services(options => options.Prometheus.Url = url);
        var stopwatch = Stopwatch.StartNew();

        var exception = await Assert.ThrowsAsync<PrometheusUnavailableException>(
            () => down.GetRequiredService<IPrometheusClient>().QueryAsync("up", Anchor, CancellationToken.None));

        Assert.Contains(url, exception.Message, StringComparison.Ordinal);
        Assert.Contains("unreachable", exception.Message, StringComparison.Ordinal);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(10), $"took {stopwatch.Elapsed}");
    }

    [Fact]
    public async Task QueryAsync_PrometheusDownUntilTheCircuitOpens_StillSaysWhyNotOnlyThatTheCircuitIsOpen()
    {
        var url = PrometheusTestServer.UnusedLoopbackUrl();
        using var down = PrometheusTestServer.Services(options => options.Prometheus.Url = url);
        var client = down.GetRequiredService<IPrometheusClient>();

        // Each query is four refused connections; ten failures in the sampling period open the breaker.
        string? behindTheBreaker = null;
        for (var i = 0; i < 10 && behindTheBreaker is null; i++)
        {
            var exception = await Assert.ThrowsAsync<PrometheusUnavailableException>(() => client.QueryAsync("up", Anchor, CancellationToken.None));
            behindTheBreaker = exception.InnerException is Polly.CircuitBreaker.BrokenCircuitException ? exception.Message : null;
        }

        Assert.NotNull(behindTheBreaker);
        Assert.Matches(@" is unreachable: recent requests failed, so it is not asked again for [0-9]+s; the failure that stopped them: ", behindTheBreaker);
        Assert.Contains(url.TrimEnd('/'), behindTheBreaker, StringComparison.Ordinal);
        Assert.DoesNotContain("circuit is now open", behindTheBreaker, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("NaN", double.NaN)]
    [InlineData("+Inf", double.PositiveInfinity)]
    [InlineData("-Inf", double.NegativeInfinity)]
    [InlineData("0.004", 0.004)]
    [InlineData("1e-05", 0.00001)]
    public void ParseValue_PrometheusNotation_GivesDouble(string text, double expected) =>
        Assert.Equal(expected, PrometheusFormat.ParseValue(text));
}
