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
/// Prometheus's own storage errors) beside those of a query that cannot be answered (<c>bad_data</c>, <c>execution</c>);
/// and successful answers no metric can use (a range vector, a string, native histograms, many megabytes) or that are not
/// in the API's form.
/// </summary>
public sealed class CompatibleServerAnswerTests : IAsyncLifetime
{
    private const string Value = """{"resultType":"vector","result":[{"metric":{},"value":[1800000000,"0.25"]}]}""";

    /// <summary>The answer limit the clients here are given; the big answers are past it, the others well within.</summary>
    private const int MaxAnswerBytes = 1024 * 1024;

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
        // An error answer past MaxAnswerBytes: a server (or a proxy answering in its form) quoting a huge query back.
        foreach (var status in new[] { 400, 422, 503 })
        {
            server.Map($"/huge-error-{status}/api/v1/query", () => Json(HugeError, status));
        }

        // The same, said by its Content-Length (so not read past the start) and sent in pieces without one (read to the limit).
        server.Map("/huge-error-declared/api/v1/query", (HttpContext context) => WriteAsync(context, 400, declared: true, HugeError));
        server.Map("/huge-error-chunked/api/v1/query", (HttpContext context) => WriteAsync(context, 400, declared: false, [.. HugeError.Chunk(64 * 1024).Select(c => new string(c))]));
        // An error of emoji past a small limit, whose last bytes read are the start of one.
        server.Map("/huge-emoji-error/api/v1/query", () => Json($$"""{"status":"error","errorType":"bad_data","error":"{{string.Concat(Enumerable.Repeat("\U0001F600", 1000))}}"}""", 400));

        // A query without aggregation on a big mesh: one series per pod and response code, past MaxAnswerBytes.
        server.Map("/huge/api/v1/query", () => Json(Success("vector", ManySeries("value", "[1800000000,\"0.25\"]"))));
        server.Map("/huge/api/v1/query_range", () => Json(Success("matrix", ManySeries("values", "[[1800000000,\"0.25\"]]"))));
        server.Map("/endless/api/v1/query", EndlessAsync);
        server.Map("/stalled/api/v1/query", StalledAsync);
        server.Map("/matrix/api/v1/query", () => Json("""{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up"},"values":[[1799999940,"1"],[1800000000,"1"]]}]}}"""));
        server.Map("/string/api/v1/query", () => Json("""{"status":"success","data":{"resultType":"string","result":[1800000000,"up"]}}"""));
        const string histogram = """{"count":"10","sum":"2.5","buckets":[[0,"0.5","1","10"]]}""";
        server.Map("/native-histogram/api/v1/query", () => Json(Success("vector", $"[{{\"metric\":{{}},\"histogram\":[1800000000,{histogram}]}}]")));
        server.Map("/native-histogram/api/v1/query_range", () => Json(Success("matrix", $"[{{\"metric\":{{}},\"histograms\":[[1800000000,{histogram}]]}}]")));
        string[] malformed =
        [
            """{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1800000000,"twelve"]}]}}""",
            """{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1800000000,0.25]}]}}""",
            """{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}""",
            """{"status":"success","data":{"resultType":"vector"}}""",
            """{"status":"success","data":{"resultType":"table","result":[]}}""",
            """{"status":"success","data":null}""",
            """["status","success"]""",
            """{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1e20,"0.25"]}]}}""",
            """{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a","pod":"b"},"value":[1800000000,"0.25"]}]}}""",
        ];
        for (var i = 0; i < malformed.Length; i++)
        {
            var body = malformed[i];
            server.Map($"/malformed-{i}/api/v1/query", () => Json(body));
        }

        server.Map("/malformed-range/api/v1/query_range", () => Json("""{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1800000000,"twelve"]]}]}}"""));

        // One server for a watch's custom queries: each answered as its name says.
        server.Map("/mixed/api/v1/{endpoint}", async (HttpContext context, string endpoint) =>
        {
            var query = (await context.Request.ReadFormAsync())["query"].ToString();
            var range = endpoint == "query_range";
            return query.Contains("huge", StringComparison.Ordinal)
                ? Json(range
                    ? Success("matrix", ManySeries("values", "[[1800000000,\"0.25\"]]"))
                    : Success("vector", ManySeries("value", "[1800000000,\"0.25\"]")))
                : range || query.Contains("matrix", StringComparison.Ordinal)
                    ? Json("""{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1800000000,"0.25"]]}]}}""")
                    : Json($$"""{"status":"success","data":{{Value}}}""");
        });
        // A mesh where one series of the latency histogram has an le that is not a number (relabelled, or written with a
        // decimal comma): Prometheus's histogram_quantile passes over it with a PromQL warning; the buckets query returns it.
        server.Map("/malformed-le/api/v1/query", async (HttpContext context) =>
        {
            var query = (await context.Request.ReadFormAsync())["query"].ToString();
            const string workload = "\"destination_workload_namespace\":\"" + WatchPrometheus.Namespace + "\",\"destination_workload\":\"healthy\"";
            static string Series(string le, string value) => "{\"metric\":{" + workload + le + "},\"value\":[1800000000,\"" + value + "\"]}";
            return Json(Success("vector", query.StartsWith("histogram_quantile", StringComparison.Ordinal) ? $"[{Series("", "0.25")}]"
                : query.Contains("le=\"+Inf\"", StringComparison.Ordinal) ? $"[{Series("", "1000")}]"
                : $"[{Series(",\"le\":\"0,1\"", "400")},{Series(",\"le\":\"250\"", "900")},{Series(",\"le\":\"+Inf\"", "1000")}]"));
        });
        await server.StartAsync();
        url = server.Urls.Single();
    }

    /// <summary>An error answer past <see cref="MaxAnswerBytes"/>: a server (or a proxy answering in its form) quoting a huge query back.</summary>
    private static readonly string HugeError = $$"""{"status":"error","errorType":"bad_data","error":"parse error: {{new string('y', 2 * MaxAnswerBytes)}}"}""";

    /// <summary>Writes <paramref name="pieces"/> one after another, flushing each, with or without their Content-Length.</summary>
    private static async Task WriteAsync(HttpContext context, int status, bool declared, params string[] pieces)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        if (declared)
        {
            context.Response.ContentLength = pieces.Sum(p => (long)System.Text.Encoding.UTF8.GetByteCount(p));
        }

        foreach (var piece in pieces)
        {
            await context.Response.WriteAsync(piece, context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }
    }

    private static string Success(string resultType, string result) =>
        "{\"status\":\"success\",\"data\":{\"resultType\":\"" + resultType + "\",\"result\":" + result + "}}";

    /// <summary>A result of series enough to pass <see cref="MaxAnswerBytes"/> twice.</summary>
    private static string ManySeries(string field, string points) => "[" + string.Join(',', Enumerable.Range(0, 20_000).Select(i =>
        $$"""{"metric":{"destination_workload":"checkout","pod":"checkout-7d4f9b6c5-{{i:D5}}","response_code":"200"},"{{field}}":{{points}}""" + "}")) + "]";

    /// <summary>
    /// A vector that never ends: twice <see cref="MaxAnswerBytes"/> at once, then nothing more on a connection held open
    /// until the client goes. Only a client that reads no further than the limit gets to the end of it.
    /// </summary>
    private static Task EndlessAsync(HttpContext context) =>
        BeginAndHoldAsync(context, """{"status":"success","data":{"resultType":"vector","result":""" + ManySeries("value", "[1800000000,\"0.25\"]")[..^1]);

    /// <summary>The start of a small answer, then nothing more on a connection held open until the client goes.</summary>
    private static Task StalledAsync(HttpContext context) =>
        BeginAndHoldAsync(context, """{"status":"success","data":{"resultType":"vector","result":[""");

    /// <summary>Sends <paramref name="start"/> of a JSON answer and holds the connection open, sending nothing more, until the client goes.</summary>
    private static async Task BeginAndHoldAsync(HttpContext context, string start)
    {
        context.Response.ContentType = "application/json";
        var aborted = context.RequestAborted;
        try
        {
            await context.Response.WriteAsync(start, aborted);
            await context.Response.Body.FlushAsync(aborted);
            await Task.Delay(Timeout.Infinite, aborted);
        }
        catch (OperationCanceledException)
        {
            // The client went.
        }
    }

    public async Task DisposeAsync() => await server.DisposeAsync();

    private static IResult Json(string body, int status = 200) => Results.Text(body, "application/json", statusCode: status);

    private async Task<T> WithClientAsync<T>(string path, Func<IPrometheusClient, Task<T>> use, int maxAnswerBytes = MaxAnswerBytes)
    {
        await using var services = PrometheusTestServer.Services(options =>
        {
            options.Prometheus.Url = $"{url}/{path}";
            options.Prometheus.MaxAnswerBytes = maxAnswerBytes;
        });
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

    [Fact]
    public async Task QueryAsync_AnswerPastMaxAnswerBytes_RefusedForGood_NamingTheQueryAndSayingToAggregate()
    {
        const string promql = "rate(istio_requests_total[5m])";
        var at = DateTimeOffset.FromUnixTimeSeconds(1800000000);
        Func<IPrometheusClient, Task>[] asks =
        [
            client => client.QueryAsync(promql, at, CancellationToken.None),
            client => client.QueryRangeAsync(promql, at.AddHours(-1), at, TimeSpan.FromMinutes(1), CancellationToken.None),
        ];
        foreach (var ask in asks)
        {
            var exception = await Assert.ThrowsAsync<PrometheusQueryException>(() => WithClientAsync("huge", async client =>
            {
                await ask(client);
                return 0;
            }));

            Assert.True(exception.IsPermanent);
            Assert.Equal(
                $"the query '{promql}' returned more than 1 MiB (RolloutGate:Prometheus:MaxAnswerBytes), which is not read: one number is needed, so aggregate its series into one, with sum(...) for example (a preset's query, which asks for every workload of the mesh at once, needs the limit raised instead)",
                exception.Message);
        }
    }

    [Theory]
    [InlineData("huge-error-400", "bad_data", "400 Bad Request")]
    [InlineData("huge-error-422", "execution", "422 Unprocessable Entity")]
    [InlineData("huge-error-declared", "bad_data", "400 Bad Request")]
    [InlineData("huge-error-chunked", "bad_data", "400 Bad Request")]
    public async Task QueryAsync_RefusalPastMaxAnswerBytes_IsPrometheusRejectingTheQuery_QuotingTheStartOfWhy(string path, string errorType, string status)
    {
        // Before, the query was taken for Prometheus unavailable: asked again, then blind after the grace as if it were down.
        // Then it was refused without a word of why: the answer past the limit was not kept at all.
        var exception = await Assert.ThrowsAsync<PrometheusQueryException>(
            () => WithClientAsync(path, client => client.QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None)));

        Assert.True(exception.IsPermanent);
        Assert.Equal(errorType, exception.ErrorType);
        Assert.Equal(
            $"Prometheus rejected the query 'up': {errorType}: {status} with an answer of more than 1 MiB (RolloutGate:Prometheus:MaxAnswerBytes), which is not read whole; it starts: {HugeError[..ResponseBodies.MaxExcerptLength]}…",
            exception.Message);
    }

    [Fact]
    public async Task QueryAsync_RefusalPastASmallLimit_EndingInTheMiddleOfAnEmoji_QuotesTheWholeOnesOnly()
    {
        // 100 bytes: the 50 of {"status":"error","errorType":"bad_data","error":" and 12 emoji and a half.
        var exception = await Assert.ThrowsAsync<PrometheusQueryException>(
            () => WithClientAsync("huge-emoji-error", client => client.QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None), maxAnswerBytes: 100));

        Assert.Equal(
            $$"""400 Bad Request with an answer of more than 100 bytes (RolloutGate:Prometheus:MaxAnswerBytes), which is not read whole; it starts: {"status":"error","errorType":"bad_data","error":"{{string.Concat(Enumerable.Repeat("\U0001F600", 12))}}…""",
            exception.Error);
    }

    [Fact]
    public async Task QueryAsync_ServerFailingPastMaxAnswerBytes_IsStillUnavailable()
    {
        await Assert.ThrowsAsync<PrometheusUnavailableException>(
            () => WithClientAsync("huge-error-503", client => client.QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None)));
    }

    [Fact]
    public async Task QueryAsync_EndlessAnswer_IsReadOnlyToMaxAnswerBytes()
    {
        var exception = await Assert.ThrowsAsync<PrometheusQueryException>(
            () => WithClientAsync("endless", client => client.QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None)).WaitAsync(TimeSpan.FromSeconds(20)));

        Assert.Equal(
            "the query 'up' returned more than 1 MiB (RolloutGate:Prometheus:MaxAnswerBytes), which is not read: one number is needed, so aggregate its series into one, with sum(...) for example (a preset's query, which asks for every workload of the mesh at once, needs the limit raised instead)",
            exception.Message);
    }

    [Fact]
    public async Task QueryAsync_AnswerThatStopsComing_FailsAsUnavailableAfterTheAttemptTimeout()
    {
        var exception = await Assert.ThrowsAsync<PrometheusUnavailableException>(
            () => WithClientAsync("stalled", client => client.QueryAsync("up", DateTimeOffset.UtcNow, CancellationToken.None)).WaitAsync(TimeSpan.FromSeconds(40)));

        Assert.Equal($"Prometheus at {url}/stalled did not finish its answer within 10 s", exception.Message);
    }

    [Theory]
    [InlineData("matrix", "returned a range vector (a matrix: a selector with a range such as [5m] and no function over it) where one number is needed")]
    [InlineData("string", "returned a string where one number is needed")]
    [InlineData("native-histogram", "returned native histograms where one number is needed: take one from them with histogram_quantile(...)")]
    public async Task QueryAsync_ResultNoMetricCanUse_RefusedForGood_NamingTheQuery(string path, string said)
    {
        var exception = await Assert.ThrowsAsync<PrometheusQueryException>(
            () => WithClientAsync(path, client => client.QueryAsync("up[5m]", DateTimeOffset.UtcNow, CancellationToken.None)));

        Assert.True(exception.IsPermanent);
        Assert.StartsWith($"the query 'up[5m]' {said}", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task QueryRangeAsync_NativeHistograms_RefusedForGood_NamingTheQuery()
    {
        var at = DateTimeOffset.FromUnixTimeSeconds(1800000000);
        var exception = await Assert.ThrowsAsync<PrometheusQueryException>(() => WithClientAsync(
            "native-histogram", client => client.QueryRangeAsync("sum(rate(latency[5m]))", at.AddHours(-1), at, TimeSpan.FromMinutes(1), CancellationToken.None)));

        Assert.True(exception.IsPermanent);
        Assert.StartsWith("the query 'sum(rate(latency[5m]))' returned native histograms", exception.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("malformed-0", "the value 'twelve' is not a number")]
    [InlineData("malformed-1", "")]
    [InlineData("malformed-2", "a sample has no value")]
    [InlineData("malformed-3", "")]
    [InlineData("malformed-4", "resultType 'table' is none of vector, scalar, matrix and string")]
    [InlineData("malformed-5", "")]
    [InlineData("malformed-6", "")]
    [InlineData("malformed-7", "")]
    [InlineData("malformed-8", "")]
    [InlineData("malformed-range", "the value 'twelve' is not a number")]
    public async Task Query_SuccessNotInTheApisForm_IsTheServerFailing_NamingTheQuery(string path, string said)
    {
        var at = DateTimeOffset.FromUnixTimeSeconds(1800000000);
        var exception = await Assert.ThrowsAsync<PrometheusUnavailableException>(() => WithClientAsync(path, async client =>
            path.EndsWith("range", StringComparison.Ordinal)
                ? (await client.QueryRangeAsync("up", at.AddHours(-1), at, TimeSpan.FromMinutes(1), CancellationToken.None)).Count
                : (await client.QueryAsync("up", at, CancellationToken.None)).Count));

        Assert.Contains("answered the query 'up' with data not in its API's form: " + said, exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PrometheusSource_CustomQueryNoMetricCanUse_OnlyItsMetricIsBlind_SayingWhy()
    {
        var runbook = WatchTests.Runbook("healthy")
            .Replace("preset: p95-latency", "query: sum by (pod) (rate(huge_requests_total[5m]))", StringComparison.Ordinal)
            .Replace("preset: error-rate", "query: matrix_requests_total[5m]", StringComparison.Ordinal)
            .Replace("preset: cost-per-request", "query: sum(rate(requests_total[5m]))", StringComparison.Ordinal)
            .Replace("pricing: { cpuCoreHour: 0.031, memoryGiBHour: 0.0042 }", "max: 1", StringComparison.Ordinal);
        var plan = WatchPlan.From(RunbookParser.Parse(runbook, "healthy.yaml").Runbook!, "production");
        var at = DateTimeOffset.FromUnixTimeSeconds(1800000000);

        await WithClientAsync("mixed", async client =>
        {
            var source = new PrometheusMetricSource(client);
            var seen = await source.ObserveAsync(plan.Metrics, at, CancellationToken.None);

            Assert.Null(seen[0].Observation.Value);
            Assert.Equal(
                "No data because the query 'sum by (pod) (rate(huge_requests_total[5m]))' returned more than 1 MiB (RolloutGate:Prometheus:MaxAnswerBytes), which is not read: one number is needed, so aggregate its series into one, with sum(...) for example (a preset's query, which asks for every workload of the mesh at once, needs the limit raised instead)",
                seen[0].Note);
            Assert.Null(seen[1].Observation.Value);
            Assert.StartsWith("No data because the query 'matrix_requests_total[5m]' returned a range vector", seen[1].Note, StringComparison.Ordinal);
            Assert.Equal(0.25, seen[2].Observation.Value);

            // No baseline for the one past the limit (its evaluations say why), rather than the interval read again for ever.
            Assert.Empty(await source.BaselineAsync(plan.Metrics[0], at.AddHours(-1), at, TimeSpan.FromMinutes(1), CancellationToken.None));
            Assert.Equal(0.25, Assert.Single(await source.BaselineAsync(plan.Metrics[2], at.AddHours(-1), at, TimeSpan.FromMinutes(1), CancellationToken.None)).Value);
            return 0;
        });
    }

    [Fact]
    public async Task PrometheusSource_HistogramBucketWithAnLeThatIsNotANumber_IsPassedOver_AsHistogramQuantileDoes()
    {
        // Its FormatException escaped ObserveAsync, which the sweep reads every watch due at t with: the sweep failed at every
        // fire for as long as the series stayed in the window, and no watch of the mesh was evaluated, not even as blind.
        var plan = WatchPlan.From(RunbookParser.Parse(WatchTests.Runbook("healthy"), "healthy.yaml").Runbook!, "production");
        var latency = plan.Metrics.Single(m => m.Name == "p95-latency");

        var seen = await WithClientAsync("malformed-le", client =>
            new PrometheusMetricSource(client).ObserveAsync([latency], DateTimeOffset.FromUnixTimeSeconds(1800000000), CancellationToken.None));

        var observation = Assert.Single(seen);
        Assert.Equal(0.25, observation.Observation.Value);
        // 1000 requests in the 2-minute window, 500 in the 1-minute interval.
        Assert.Equal(500, observation.Observation.Requests);
        // The other buckets are read: 950 of the 1000 requests lie beyond the 900 at or below le="250".
        Assert.Equal("The 95th percentile lies beyond the histogram's last finite bucket (le=\"250\"): the true value is at least 0.25 s.", observation.Note);
    }
}
