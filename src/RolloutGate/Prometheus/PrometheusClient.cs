using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;
using Polly.Timeout;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Http;

namespace RolloutGate.Prometheus;

/// <summary>Reads from the Prometheus HTTP API (v1) at an explicit evaluation time, never "now".</summary>
public interface IPrometheusClient
{
    /// <summary>
    /// An instant query evaluated at <paramref name="at"/>. A vector result gives one sample per series;
    /// a scalar result gives one sample with no labels. A range vector, a string, native histograms and an answer past
    /// <c>RolloutGate:Prometheus:MaxAnswerBytes</c> are refused with a permanent <see cref="PrometheusQueryException"/>
    /// (<see cref="PrometheusQueryException.Unusable"/>).
    /// </summary>
    Task<IReadOnlyList<PrometheusSample>> QueryAsync(string promql, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>A range query from <paramref name="from"/> to <paramref name="to"/> every <paramref name="step"/>.</summary>
    Task<IReadOnlyList<PrometheusSeries>> QueryRangeAsync(
        string promql, DateTimeOffset from, DateTimeOffset to, TimeSpan step, CancellationToken cancellationToken);
}

/// <summary>
/// The typed client; its <see cref="HttpClient"/> (base address and resilience pipeline) is configured by
/// <see cref="PrometheusExtensions.AddPrometheus"/>. Queries are POSTed as forms, which the API accepts
/// like GET, so that long PromQL never meets a URL length limit.
/// </summary>
internal sealed partial class PrometheusClient(HttpClient http, IOptionsMonitor<RolloutGateOptions> options, ILogger<PrometheusClient> logger) : IPrometheusClient
{
    /// <summary>Prometheus's address as errors and logs name it: never user info or a query, which may hold a credential.</summary>
    private string Shown => Urls.Shown(http.BaseAddress);

    public Task<IReadOnlyList<PrometheusSample>> QueryAsync(string promql, DateTimeOffset at, CancellationToken cancellationToken) =>
        SendAsync(PrometheusConstants.QueryPath, promql, [new("time", PrometheusFormat.FormatTime(at))], data => ReadInstant(promql, data), cancellationToken);

    /// <summary>
    /// Asked in pieces of at most a day (<see cref="StepsPerPiece"/>), each starting one step after the last point of the
    /// one before (so on the same grid as one query from <paramref name="from"/>), and joined: each series' points in
    /// time order, a series that a piece lacks (no data then) simply without those points.
    /// </summary>
    public async Task<IReadOnlyList<PrometheusSeries>> QueryRangeAsync(
        string promql, DateTimeOffset from, DateTimeOffset to, TimeSpan step, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(step, TimeSpan.Zero);
        var pieces = RangePieces(from, to, step, StepsPerPiece(step)).ToList();
        if (pieces.Count == 1)
        {
            return await QueryRangePieceAsync(promql, from, to, step, cancellationToken);
        }

        var joined = new Dictionary<string, (IReadOnlyDictionary<string, string> Labels, List<PrometheusPoint> Points)>(StringComparer.Ordinal);
        foreach (var (start, end) in pieces)
        {
            foreach (var series in await QueryRangePieceAsync(promql, start, end, step, cancellationToken))
            {
                var key = PrometheusFormat.Series(series.Labels);
                if (!joined.TryGetValue(key, out var found))
                {
                    joined[key] = found = (series.Labels, []);
                }

                found.Points.AddRange(series.Points);
            }
        }

        return [.. joined.Values.Select(s => new PrometheusSeries(s.Labels, s.Points))];
    }

    /// <summary>
    /// How many steps one range query spans: a day's, and never more than Prometheus answers
    /// (<see cref="PrometheusConstants.MaxStepsPerRangeQuery"/>), at least one. A week-long baseline asked at once makes
    /// Prometheus hold the points of every series it selects for the whole week, seven times a day's, against its
    /// <c>--query.max-samples</c> (50 million by default; beyond it the query fails with an execution error) and the
    /// attempt's timeout; a day at a time costs each query what the former 24-hour default did. Thanos's and Cortex's
    /// query frontends split range queries by day for the same reason.
    /// </summary>
    internal static int StepsPerPiece(TimeSpan step) =>
        (int)Math.Clamp(TimeSpan.FromDays(1) / step, 1, PrometheusConstants.MaxStepsPerRangeQuery);

    /// <summary>
    /// [from, to] cut into consecutive ranges of at most <paramref name="maxSteps"/> steps, the points of each on the grid
    /// from + k × step and none in two ranges; one range when it is short enough (and when <paramref name="to"/> is before
    /// <paramref name="from"/>, for Prometheus to refuse as it does).
    /// </summary>
    internal static IEnumerable<(DateTimeOffset From, DateTimeOffset To)> RangePieces(
        DateTimeOffset from, DateTimeOffset to, TimeSpan step, int maxSteps)
    {
        var start = from;
        while (to - start > step * maxSteps)
        {
            var end = start + step * maxSteps;
            yield return (start, end);
            start = end + step;
        }

        if (start <= to || start == from)
        {
            yield return (start, to);
        }
    }

    private Task<IReadOnlyList<PrometheusSeries>> QueryRangePieceAsync(
        string promql, DateTimeOffset from, DateTimeOffset to, TimeSpan step, CancellationToken cancellationToken) =>
        SendAsync(
            PrometheusConstants.QueryRangePath,
            promql,
            [
                new("start", PrometheusFormat.FormatTime(from)),
                new("end", PrometheusFormat.FormatTime(to)),
                new("step", PrometheusFormat.FormatStep(step)),
            ],
            data => ReadRange(promql, data),
            cancellationToken);

    /// <summary>An instant query's samples; what no metric can use is refused for good (see <see cref="IPrometheusClient.QueryAsync"/>).</summary>
    private static IReadOnlyList<PrometheusSample> ReadInstant(string promql, JsonElement data) => data.GetProperty("resultType").GetString() switch
    {
        "vector" => [.. data.GetProperty("result").EnumerateArray().Select(sample => ReadSample(promql, sample))],
        "scalar" => [ScalarSample(ReadPoint(data.GetProperty("result")))],
        // What the query gives at every t: asked again, it fails again. One metric's or check's, not Prometheus's failure.
        "matrix" => throw PrometheusQueryException.Unusable(
            promql, "returned a range vector (a matrix: a selector with a range such as [5m] and no function over it) where one number is needed: take one from it with rate(...), avg_over_time(...) or another function over a range"),
        "string" => throw PrometheusQueryException.Unusable(promql, "returned a string where one number is needed"),
        var other => throw new FormatException($"resultType '{other}' is none of vector, scalar, matrix and string"),
    };

    private static IReadOnlyList<PrometheusSeries> ReadRange(string promql, JsonElement data) => data.GetProperty("resultType").GetString() switch
    {
        "matrix" => [.. data.GetProperty("result").EnumerateArray().Select(series => series.TryGetProperty("histograms", out _)
            ? throw NativeHistograms(promql)
            : new PrometheusSeries(ReadLabels(series), [.. series.GetProperty("values").EnumerateArray().Select(ReadPoint)]))],
        // Prometheus answers a range query with a matrix whatever the expression (a scalar one too).
        var other => throw new FormatException($"resultType '{other}' where a range query gives a matrix"),
    };

    /// <summary>
    /// Asks <paramref name="promql"/> and gives what <paramref name="read"/> makes of the <c>data</c> of a successful
    /// answer, read from the answer in place (no copy of it outlives the call).
    /// </summary>
    private async Task<T> SendAsync<T>(
        string path, string promql, KeyValuePair<string, string>[] parameters, Func<JsonElement, T> read, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, Urls.Under(http.BaseAddress!, path))
        {
            Content = new FormUrlEncodedContent([new("query", promql), .. parameters]),
        };
        HttpResponseMessage response;
        try
        {
            // Headers first: the body is read only as far as MaxAnswerBytes, whatever its size.
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (Exception exception) when (IsUnreachable(exception, cancellationToken))
        {
            throw Unreachable(exception);
        }

        using (response)
        {
            if (MonitoringAuthOptions.Refusal(response, "Prometheus") is { } refused)
            {
                throw new PrometheusUnavailableException($"Prometheus at {Shown} answered {(int)response.StatusCode} {response.ReasonPhrase}: {refused}");
            }

            var maxBytes = options.CurrentValue.Prometheus.MaxAnswerBytes;
            ReadOnlyMemory<byte>? body;
            string start;
            // The resilience pipeline's timeouts end with the headers: the body gets an attempt's time of its own, so that
            // a Prometheus (or a proxy) that stops in the middle of an answer does not hold the query for ever.
            using var reading = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            reading.CancelAfter(QueryResilience.AttemptTimeout);
            try
            {
                (body, start) = await ResponseBodies.WholeAsync(response, maxBytes, reading.Token);
            }
            catch (OperationCanceledException exception) when (!cancellationToken.IsCancellationRequested)
            {
                LogUnreachable(logger, Shown, exception);
                throw new PrometheusUnavailableException(
                    $"Prometheus at {Shown} did not finish its answer within {QueryResilience.AttemptTimeout.TotalSeconds:0} s", exception);
            }
            catch (Exception exception) when (exception is IOException || IsUnreachable(exception, cancellationToken))
            {
                // The connection lost in the middle of the answer.
                throw Unreachable(exception);
            }

            if (body is null)
            {
                throw response.StatusCode switch
                {
                    HttpStatusCode.OK => PrometheusQueryException.Unusable(
                        promql, $"returned more than {Size(maxBytes)} (RolloutGate:Prometheus:MaxAnswerBytes), which is not read: one number is needed, so aggregate its series into one, with sum(...) for example (a preset's query, which asks for every workload of the mesh at once, needs the limit raised instead)"),
                    // The two codes the HTTP API refuses a query with, bad_data (400) and execution (422): the query is refused
                    // whatever the size of the text that says why, as it is with a shorter one, not asked again as if
                    // Prometheus were down. The answer is not read whole, as none past the limit is, but its start is quoted:
                    // {"status":"error","errorType":...,"error":"..."} begins with why.
                    HttpStatusCode.BadRequest or HttpStatusCode.UnprocessableEntity => Rejected(promql,
                        response.StatusCode == HttpStatusCode.BadRequest ? "bad_data" : "execution",
                        $"{(int)response.StatusCode} {response.ReasonPhrase} with an answer of more than {Size(maxBytes)} (RolloutGate:Prometheus:MaxAnswerBytes), which is not read whole"
                        + (start.Trim() is { Length: > 0 } begun ? $"; it starts: {Quoted(begun, more: true)}" : "")),
                    _ => new PrometheusUnavailableException($"Prometheus at {Shown} answered {(int)response.StatusCode} {response.ReasonPhrase} with more than {Size(maxBytes)}"),
                };
            }

            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(body.Value);
            }
            catch (JsonException exception)
            {
                throw new PrometheusUnavailableException(
                    $"Prometheus at {Shown} answered {(int)response.StatusCode} without its JSON API body", exception);
            }

            using (document)
            {
                // Inside Read: a root that is not an object, a status or error that is not a string, is no API answer either.
                return Read(promql, () =>
                {
                    var root = document.RootElement;
                    var status = root.TryGetProperty("status", out var s) ? s.GetString() : null;
                    if (status == "error")
                    {
                        var errorType = ResponseBodies.Excerpt(root.TryGetProperty("errorType", out var t) ? t.GetString() ?? "unknown" : "unknown");
                        throw Rejected(promql, errorType, Quoted(root.TryGetProperty("error", out var e) ? e.GetString() ?? string.Empty : string.Empty));
                    }

                    if (status != "success" || response.StatusCode != HttpStatusCode.OK || !root.TryGetProperty("data", out var data))
                    {
                        throw new PrometheusUnavailableException(
                            $"Prometheus at {Shown} answered {(int)response.StatusCode} {response.ReasonPhrase} with status '{status}'");
                    }

                    if (Incomplete(root) is { } incomplete)
                    {
                        throw new PrometheusUnavailableException($"Prometheus at {Shown} answered with {incomplete}");
                    }

                    return read(data);
                });
            }
        }
    }

    /// <summary>
    /// Why a successful answer may still lack data, or null: <c>warnings</c> are errors that did not stop the query, and
    /// the API returns what it could collect beside them (a remote_read endpoint or a Thanos store that did not answer),
    /// and VictoriaMetrics marks an answer that misses vmstorage nodes <c>isPartial</c>. Such an answer would be judged,
    /// or stored as the baseline, as if it were whole. PromQL's own annotations about the query (<c>PromQL info: ...</c>,
    /// <c>PromQL warning: ...</c>; Prometheus 2 releases before the <c>infos</c> field sent its infos among the warnings, among them
    /// "input to histogram_quantile needed to be fixed for monotonicity", which the p95 preset's buckets meet in ordinary
    /// operation) say nothing is missing, and do not make it incomplete; nor do <c>infos</c>.
    /// </summary>
    private static string? Incomplete(JsonElement root)
    {
        var missing = root.TryGetProperty("warnings", out var warnings) && warnings.ValueKind == JsonValueKind.Array
            ? warnings.EnumerateArray()
                .Select(w => w.ValueKind == JsonValueKind.String ? w.GetString() ?? "" : w.GetRawText())
                .Where(w => !w.StartsWith("PromQL ", StringComparison.Ordinal))
                .ToList()
            : [];
        if (missing.Count > 0)
        {
            return $"warnings, so its answer may lack data: {string.Join("; ", missing.Take(3))}{(missing.Count > 3 ? $"; and {missing.Count - 3} more" : "")}";
        }

        return root.TryGetProperty("isPartial", out var partial) && partial.ValueKind == JsonValueKind.True
            ? "a partial response (isPartial: some storage nodes did not answer), so its answer may lack data"
            : null;
    }

    /// <summary>
    /// Prometheus's error text as it is quoted: without the credentials (a proxy in front that answers in the API's form may
    /// repeat the request, and the error goes to the log, the watch's evidence and the audit trail), cut as other services'
    /// error text is (the query, named beside it, is the runbook's own): a server or proxy may answer pages of it.
    /// <paramref name="more"/>: the text is only the start of the answer.
    /// </summary>
    private string Quoted(string error, bool more = false)
    {
        var settings = options.CurrentValue.Prometheus;
        return ResponseBodies.Excerpt(Urls.Redacted(error, [.. settings.Secrets(), .. Urls.Hidden(settings.Url)]), more);
    }

    /// <summary>Prometheus's refusal of <paramref name="promql"/>, logged.</summary>
    private PrometheusQueryException Rejected(string promql, string errorType, string error)
    {
        LogQueryRejected(logger, promql, errorType, error);
        return new PrometheusQueryException(promql, errorType, error);
    }

    private PrometheusUnavailableException Unreachable(Exception exception)
    {
        LogUnreachable(logger, Shown, exception);
        return new PrometheusUnavailableException($"Prometheus at {Shown} is unreachable: {Reason(exception)}", exception);
    }

    /// <summary>
    /// Why a request failed. Polly's open circuit says only "The circuit is now open and is not allowing calls.": for as
    /// long as it stays open that was every reason the watch's log and a check's detail gave, never the failure behind it.
    /// </summary>
    private static string Reason(Exception exception) => exception is BrokenCircuitException broken
        ? "recent requests failed, so it is not asked again" + (broken.RetryAfter is { } after ? $" for {DurationText.Format(TimeSpan.FromSeconds(Math.Ceiling(after.TotalSeconds)))}" : " for a while")
          + (broken.InnerException is { } cause ? $"; the failure that stopped them: {cause.Message}" : "")
        : exception.Message;

    /// <summary>
    /// What <paramref name="read"/> makes of a successful answer's data. Data not in the API's form (a field missing, a value
    /// that is not a number) is the server, or what answers in its place, failing, as a body that is not JSON is: asked
    /// again later, never a crash of the watch's sweep or a check's stack trace. (ArgumentException: a time out of range, a
    /// label given twice.)
    /// </summary>
    private T Read<T>(string promql, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception exception) when (exception is KeyNotFoundException or InvalidOperationException or FormatException or IndexOutOfRangeException or ArgumentException)
        {
            throw new PrometheusUnavailableException(
                $"Prometheus at {Shown} answered the query '{promql}' with data not in its API's form: {ResponseBodies.Excerpt(exception.Message)}", exception);
        }
    }

    /// <summary>A byte count as the limit's documentation gives it.</summary>
    private static string Size(int bytes) => bytes % (1024 * 1024) == 0 ? $"{bytes / (1024 * 1024)} MiB" : $"{bytes} bytes";

    private static PrometheusQueryException NativeHistograms(string promql) => PrometheusQueryException.Unusable(
        promql, "returned native histograms where one number is needed: take one from them with histogram_quantile(...), histogram_count(...) or histogram_sum(...)");

    /// <summary>Connection errors, and what the resilience pipeline throws once it gives up; not the caller's cancellation.</summary>
    private static bool IsUnreachable(Exception exception, CancellationToken cancellationToken) =>
        exception is HttpRequestException or TimeoutRejectedException or BrokenCircuitException
        || (exception is OperationCanceledException && !cancellationToken.IsCancellationRequested);

    /// <summary>A vector's sample; native histograms come as <c>histogram</c> in place of <c>value</c>.</summary>
    private static PrometheusSample ReadSample(string promql, JsonElement element)
    {
        if (!element.TryGetProperty("value", out var value))
        {
            throw element.TryGetProperty("histogram", out _) ? NativeHistograms(promql) : new FormatException("a sample has no value");
        }

        var point = ReadPoint(value);
        return new PrometheusSample(ReadLabels(element), point.Timestamp, point.Value);
    }

    private static PrometheusSample ScalarSample(PrometheusPoint point) =>
        new(new Dictionary<string, string>(), point.Timestamp, point.Value);

    private static Dictionary<string, string> ReadLabels(JsonElement element) =>
        element.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? string.Empty, StringComparer.Ordinal);

    /// <summary>A <c>[unix seconds, "value"]</c> pair.</summary>
    private static PrometheusPoint ReadPoint(JsonElement pair) =>
        new(PrometheusFormat.ParseTime(pair[0].GetDouble()), PrometheusFormat.ParseValue(pair[1].GetString() ?? throw new FormatException("a value is null")));

    [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "Prometheus rejected query {Query}: {ErrorType}: {Error}")]
    private static partial void LogQueryRejected(ILogger logger, string query, string errorType, string error);

    // At Debug: the exception is thrown on with the reason, and its caller says it once in its own words (the watch's line,
    // the check's detail); at Warning an outage was a stack trace for every query, several a second.
    [LoggerMessage(EventId = 1102, Level = LogLevel.Debug, Message = "Prometheus at {BaseAddress} is unreachable")]
    private static partial void LogUnreachable(ILogger logger, string baseAddress, Exception exception);
}
