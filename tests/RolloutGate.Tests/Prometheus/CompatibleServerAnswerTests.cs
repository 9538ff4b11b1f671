using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure.Http;
using RolloutGate.Prometheus;
using RolloutGate.Tests.Watch;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Prometheus;

/// <summary>
/// Answers of Prometheus-compatible servers that a Debian Prometheus does not give on demand, written as the Prometheus
/// HTTP API documents them: a VictoriaMetrics cluster's <c>isPartial</c>, Prometheus 3's <c>infos</c> (and the PromQL
/// annotations Prometheus 2 releases before the infos field sent among its warnings), and the error
/// types of a server that is failing for now (<c>unavailable</c>, <c>internal</c>, <c>canceled</c>: Mimir, Thanos and
/// Prometheus's own storage errors) beside those of a query that cannot be answered (<c>bad_data</c>, <c>execution</c>).
/// </summary>
public sealed class CompatibleServerAnswerTests : IAsyncLifetime
{
    private const string Value = """{"resultType":"vector","result":[{"metric":{},"value":[1800000000,"0.25"]}]}""";
    private WebApplication server = null!;
    private string url = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        server = builder.Build();
        server.Map("/victoria-partial/api/v1/query", () => Json($$"""{"status":"success","isPartial":true,"data":{{Value}}}"""));
        server.Map("/victoria-whole/api/v1/query", () => Json($$"""{"status":"success","isPartial":false,"data":{{Value}}}"""));
        server.Map("/infos/api/v1/query", () => Json($$"""{"status":"success","data":{{Value}},"infos":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"queue_depth\""]}"""));
        // Prometheus 2 releases before the infos field sent PromQL's infos among the warnings.
        server.Map("/annotations/api/v1/query", () => Json($$"""{"status":"success","data":{{Value}},"warnings":["PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name \"istio_request_duration_milliseconds_bucket\"","PromQL warning: bucket label \"le\" is missing or has a malformed value of \"x\""]}"""));
        foreach (var (errorType, status) in new[] { ("unavailable", 503), ("internal", 500), ("canceled", 499), ("timeout", 503), ("bad_data", 400), ("execution", 422) })
        {
            var body = $$"""{"status":"error","errorType":"{{errorType}}","error":"the {{errorType}} answer"}""";
            server.Map($"/{errorType}/api/v1/query", () => Json(body, status));
            server.Map($"/{errorType}/api/v1/query_range", () => Json(body, status));
        }

        // A server (or a proxy answering in its form) that quotes pages of text in its error.
        server.Map("/long-error/api/v1/query", () => Json($$"""{"status":"error","errorType":"bad_data","error":"parse error: {{new string('y', 100_000)}}"}""", 400));
        await server.StartAsync();
        url = server.Urls.Single();
    }

    public async Task DisposeAsync() => await server.DisposeAsync();

    private static IResult Json(string body, int status = 200) => Results.Text(body, "application/json", statusCode: status);

    private async Task<T> WithClientAsync<T>(string path, Func<IPrometheusClient, Task<T>> use)
    {
        await using var services = PrometheusTestServer.Services(options => options.Prometheus.Url = $"{url}/{path}");
        return await use(services.GetRequiredService<IPrometheusClient>());
    }

    [Fact]
    public async Task QueryAsync_VictoriaMetricsPartialResponse_ThrowsAsUnavailable()
    {
        var exception = await Assert.ThrowsAsync<PrometheusUnavailableException>(
            () => WithClientAsync("victoria-partial", client => client.QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None)));
        Assert.Contains("answered with a partial response (isPartial", exception.Message, StringComparison.Ordinal);

        var whole = await WithClientAsync("victoria-whole", client => client.QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None));
        Assert.Equal(0.25, Assert.Single(whole).Value);
    }

    [Fact]
    public async Task QueryAsync_InfosOnly_AnswerIsTaken()
    {
        var samples = await WithClientAsync("infos", client => client.QueryAsync("queue_depth", DateTimeOffset.UtcNow, CancellationToken.None));

        Assert.Equal(0.25, Assert.Single(samples).Value);
    }

    [Fact]
    public async Task QueryAsync_PromQLAnnotationsAmongTheWarnings_AnswerIsTaken()
    {
        var samples = await WithClientAsync("annotations", client => client.QueryAsync("histogram_quantile(0.95, x)", DateTimeOffset.UtcNow, CancellationToken.None));

        Assert.Equal(0.25, Assert.Single(samples).Value);
    }

    [Theory]
    [InlineData("unavailable", false)]
    [InlineData("internal", false)]
    [InlineData("canceled", false)]
    [InlineData("timeout", false)]
    [InlineData("bad_data", true)]
    [InlineData("execution", true)]
    public async Task QueryAsync_ErrorTypes_PermanentOnlyForAQueryThatCannotBeAnswered(string errorType, bool permanent)
    {
        var exception = await Assert.ThrowsAsync<PrometheusQueryException>(
            () => WithClientAsync(errorType, client => client.QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None)));

        Assert.Equal(errorType, exception.ErrorType);
        Assert.Equal(permanent, exception.IsPermanent);
    }

    [Fact]
    public async Task QueryAsync_LongErrorText_IsQuotedCut_WithItsQuery()
    {
        var exception = await Assert.ThrowsAsync<PrometheusQueryException>(
            () => WithClientAsync("long-error", client => client.QueryAsync("sum(rate(http_requests_total[5m]))", DateTimeOffset.UtcNow, CancellationToken.None)));

        Assert.Equal("parse error: " + new string('y', ResponseBodies.MaxExcerptLength - "parse error: ".Length) + "…", exception.Error);
        Assert.StartsWith("Prometheus rejected the query 'sum(rate(http_requests_total[5m]))': bad_data: parse error: yyy", exception.Message, StringComparison.Ordinal);
        Assert.True(exception.Message.Length < 500, $"{exception.Message.Length} characters");
    }

    [Theory]
    [InlineData("unavailable")]
    [InlineData("internal")]
    public async Task PrometheusSource_ServerFailingForNow_ThrowsSoTheBaselineIsReadAgainNotStoredEmpty(string errorType)
    {
        var plan = WatchPlan.From(RunbookParser.Parse(WatchTests.Runbook("healthy"), "healthy.yaml").Runbook!, "production");
        var at = DateTimeOffset.FromUnixTimeSeconds(1800000000);

        await WithClientAsync(errorType, async client =>
        {
            var source = new PrometheusMetricSource(client);
            // Thrown on (the resilience pipeline may have opened its circuit by then), not taken as a rejected query.
            await Assert.ThrowsAnyAsync<PrometheusException>(
                () => source.BaselineAsync(plan.Metrics[0], at.AddHours(-1), at, TimeSpan.FromMinutes(1), CancellationToken.None));
            await Assert.ThrowsAnyAsync<PrometheusException>(() => source.ObserveAsync(plan.Metrics, at, CancellationToken.None));
            return 0;
        });
    }
}
