using System.Globalization;
using System.Net;
using System.Text;
using RolloutGate.Demo;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Demo;

/// <summary>The demo workload under a fault (what a scrape shows, read the way Prometheus reads it) and reading a fault. No database.</summary>
public sealed class DemoWorkloadFaultTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 14, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Fault_FromTheMomentItIsSet_ShiftsTheLatencyBucketsAndFailsItsShareOfRequests()
    {
        var clock = new ManualClock(Start);
        var workload = new DemoWorkload(clock);
        var t0 = Scrape.Of(workload);
        clock.Now += TimeSpan.FromMinutes(10);
        var t1 = Scrape.Of(workload);
        workload.SetFault(new DemoFault(2.0, 0.05));
        clock.Now += TimeSpan.FromMinutes(10);
        var t2 = Scrape.Of(workload);

        var healthy = t1.Minus(t0);
        var faulted = t2.Minus(t1);
        Assert.InRange(healthy.Requests, 20_000, 30_000);
        Assert.InRange(healthy.ErrorShare, 0.0015, 0.0025);
        Assert.InRange(faulted.ErrorShare, 0.049, 0.051);
        // Healthy: p95 about 257 ms, 95% of requests within 250 ms; twice as slow: about 514 ms, and only about 54%.
        Assert.InRange(healthy.P95Ms, 245, 270);
        Assert.InRange(faulted.P95Ms, 490, 540);
        Assert.InRange(healthy.ShareWithin(250), 0.94, 0.96);
        Assert.InRange(faulted.ShareWithin(250), 0.50, 0.58);
        Assert.InRange(faulted.MeanMs / healthy.MeanMs, 1.99, 2.01);
    }

    [Fact]
    public void FaultSetBetweenScrapes_CountsEachPartUnderItsOwnFault()
    {
        var clock = new ManualClock(Start);
        var workload = new DemoWorkload(clock);
        var t0 = Scrape.Of(workload);
        clock.Now += TimeSpan.FromMinutes(5);
        workload.SetFault(new DemoFault(1, 0.10));
        clock.Now += TimeSpan.FromMinutes(5);
        var window = Scrape.Of(workload).Minus(t0);

        // Half the window at 0.2%, half at 10%.
        Assert.InRange(window.ErrorShare, 0.049, 0.053);
        Assert.Equal(new DemoFault(1, 0.10), workload.Fault.Fault);
        Assert.Equal(Start.AddMinutes(5), workload.Fault.Since);
    }

    [Fact]
    public void HealthyAgain_ErrorShareAndLatencyReturnToTheBaseline()
    {
        var clock = new ManualClock(Start);
        var workload = new DemoWorkload(clock);
        workload.SetFault(new DemoFault(5, 0.5));
        clock.Now += TimeSpan.FromMinutes(10);
        var t0 = Scrape.Of(workload);
        workload.SetFault(DemoFault.Healthy);
        clock.Now += TimeSpan.FromMinutes(10);
        var window = Scrape.Of(workload).Minus(t0);

        Assert.InRange(window.ErrorShare, 0.0015, 0.0025);
        Assert.InRange(window.P95Ms, 245, 270);
        Assert.True(workload.Fault.Fault.IsHealthy);
    }

    /// <summary>
    /// Faults flipped between extremes, between scrapes and, by another thread, during them, with every clock read a
    /// second later: each scrape has cumulative buckets ending at the count, and no series ever goes down.
    /// </summary>
    [Fact]
    public async Task FaultChangedBetweenAndDuringScrapes_CountersStayMonotonicAndBucketsCumulative()
    {
        var workload = new DemoWorkload(new TickingClock(Start));
        DemoFault[] faults = [new(100, 1), DemoFault.Healthy, new(0.1, 0), new(3, 0.5)];
        var previous = Scrape.Of(workload);
        for (var i = 0; i < 200; i++)
        {
            workload.SetFault(faults[i % faults.Length]);
            var next = Scrape.Of(workload);
            next.AssertConsistent();
            next.AssertNotBelow(previous);
            previous = next;
        }

        using var stop = new CancellationTokenSource();
        var flips = 0;
        var flipping = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                workload.SetFault(faults[Interlocked.Increment(ref flips) % faults.Length]);
            }
        });
        while (Volatile.Read(ref flips) == 0)
        {
            await Task.Yield();
        }

        for (var i = 0; i < 2000; i++)
        {
            var next = Scrape.Of(workload);
            next.AssertConsistent();
            next.AssertNotBelow(previous);
            previous = next;
        }

        await stop.CancelAsync();
        await flipping;
        Assert.True(flips > 10, $"the fault flipped {flips} times while scraping");
    }

    [Theory]
    [InlineData("", "not valid JSON")]
    [InlineData("latency=2", "not valid JSON")]
    [InlineData("{\"latency\": NaN}", "not valid JSON")]
    [InlineData("[1, 2]", "not an object")]
    [InlineData("{\"latency\": -1}", "\"latency\" -1 is out of range")]
    [InlineData("{\"latency\": 0}", "\"latency\" 0 is out of range")]
    [InlineData("{\"latency\": 1000}", "\"latency\" 1000 is out of range")]
    [InlineData("{\"latency\": 1e400}", "\"latency\" must be a finite number")]
    [InlineData("{\"latency\": \"NaN\"}", "\"latency\" must be a finite number")]
    [InlineData("{\"latency\": \"2\"}", "\"latency\" must be a finite number")]
    [InlineData("{\"latency\": null}", "\"latency\" must be a finite number")]
    [InlineData("{\"errorRate\": -0.1}", "\"errorRate\" -0.1 is out of range")]
    [InlineData("{\"errorRate\": 5}", "\"errorRate\" 5 is out of range")]
    [InlineData("{\"errorRate\": 0.1, \"errorRate\": 0.2}", "\"errorRate\" is given twice")]
    [InlineData("{\"latency\": 2, \"latencyMs\": 300}", "unknown field \"latencyMs\"")]
    [InlineData("{\"Latency\": 2}", "unknown field \"Latency\"")]
    public void Nonsense_IsRefusedWithItsReason(string body, string reason)
    {
        var (fault, error) = DemoFault.Parse(Encoding.UTF8.GetBytes(body));

        Assert.Null(fault);
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{}", 1.0, DemoWorkload.ErrorShare)]
    [InlineData("{\"latency\": 2.0, \"errorRate\": 0.05}", 2.0, 0.05)]
    [InlineData("{\"errorRate\": 1}", 1.0, 1.0)]
    [InlineData("{\"latency\": 0.1, \"errorRate\": 0}", 0.1, 0.0)]
    [InlineData(" {\"latency\": 100} ", 100.0, DemoWorkload.ErrorShare)]
    public void Fault_MissingFieldsAreHealthy(string body, double latency, double errorRate)
    {
        var (fault, error) = DemoFault.Parse(Encoding.UTF8.GetBytes(body));

        Assert.Null(error);
        Assert.Equal(new DemoFault(latency, errorRate), fault);
    }

    private sealed class ManualClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    /// <summary>A second later at every read, from any thread.</summary>
    private sealed class TickingClock(DateTimeOffset start) : TimeProvider
    {
        private long seconds;

        public override DateTimeOffset GetUtcNow() => start.AddSeconds(Interlocked.Increment(ref seconds));
    }
}

/// <summary>The demo workload's fault switch through the service: mapped only in demo mode, operator token, validated, audited.</summary>
public sealed class DemoFaultEndpointTests
{
    private static readonly Uri Faults = new(DemoFaultEndpoints.Path, UriKind.Relative);
    private static readonly Dictionary<string, string?> DemoMode = new() { ["RolloutGate:Demo:Enabled"] = "true" };

    [Fact]
    public async Task OutsideDemoMode_TheSwitchDoesNotExist()
    {
        await using var service = await TestService.StartAsync();
        using var client = service.Operator();

        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync(Faults)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsync(Faults, Json("{\"latency\":2}"))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.DeleteAsync(Faults)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync(new Uri("/demo/metrics", UriKind.Relative))).StatusCode);
        Assert.Equal(0, await service.CountAsync("audit_events", "type = 'demo.fault'"));
    }

    [Fact]
    public async Task Changes_NeedTheOperatorToken_ReadingTheReaderToken()
    {
        await using var service = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], DemoMode);
        using var reader = service.Reader();

        Assert.Equal(HttpStatusCode.Unauthorized, (await service.Client.GetAsync(Faults)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync(Faults)).StatusCode);
        foreach (var client in new[] { service.Client, reader })
        {
            var post = await client.PostAsync(Faults, Json("{\"latency\":2}"));
            Assert.Equal(HttpStatusCode.Unauthorized, post.StatusCode);
            Assert.Contains("operator token", (await post.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.DeleteAsync(Faults)).StatusCode);
        }

        await AssertNothingChangedAsync(service, reader);
    }

    [Fact]
    public async Task Nonsense_IsRefusedWith400ProblemJson_AndChangesNothing()
    {
        await using var service = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], DemoMode);
        using var client = service.Operator();

        foreach (var (body, reason) in new[]
        {
            ("", "not valid JSON"), ("{\"latency\": -1}", "\"latency\" -1 is out of range"), ("{\"latency\": 1e400}", "must be a finite number"),
            ("{\"errorRate\": 5}", "\"errorRate\" 5 is out of range"), ("{\"latency\": 2, \"latencyMs\": 300}", "unknown field \"latencyMs\""),
        })
        {
            var response = await client.PostAsync(Faults, Json(body));

            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains(reason, (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        var tooLarge = await client.PostAsync(Faults, Json("{\"latency\": 2" + new string(' ', 70_000) + "}"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
        await AssertNothingChangedAsync(service, client);
    }

    [Fact]
    public async Task Fault_IsAnsweredShownAudited_AndDeleteOrEmptyObjectRestoresHealth()
    {
        await using var service = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], DemoMode);
        using var client = service.Operator();

        // curl -d sends a form content type: the body is read as JSON whatever the header says.
        var set = await client.PostAsync(Faults,
            new StringContent("{\"latency\": 2.5, \"errorRate\": 0.05}", Encoding.UTF8, "application/x-www-form-urlencoded"));
        Assert.Equal(HttpStatusCode.OK, set.StatusCode);
        var answer = await set.JsonAsync();
        Assert.Equal(2.5, answer.GetProperty("latency").GetDouble());
        Assert.Equal(0.05, answer.GetProperty("errorRate").GetDouble());
        Assert.False(answer.GetProperty("healthy").GetBoolean());
        Assert.True(answer.TryGetProperty("since", out var since) && since.ValueKind == System.Text.Json.JsonValueKind.String);
        var shown = await (await client.GetAsync(Faults)).JsonAsync();
        Assert.Equal(answer.GetRawText(), shown.GetRawText());

        // Only latency: the error rate is the healthy one again.
        var latencyOnly = await (await client.PostAsync(Faults, Json("{\"latency\": 3}"))).JsonAsync();
        Assert.Equal(DemoWorkload.ErrorShare, latencyOnly.GetProperty("errorRate").GetDouble());

        var deleted = await client.DeleteAsync(Faults);
        Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        var healthy = await deleted.JsonAsync();
        Assert.True(healthy.GetProperty("healthy").GetBoolean());
        Assert.Equal(1.0, healthy.GetProperty("latency").GetDouble());
        var empty = await (await client.PostAsync(Faults, Json("{}"))).JsonAsync();
        Assert.True(empty.GetProperty("healthy").GetBoolean());

        Assert.Equal(4, await service.CountAsync("audit_events", "type = 'demo.fault' AND service = 'checkout'"));
        Assert.Equal(1, await service.CountAsync("audit_events",
            "type = 'demo.fault' AND data::jsonb->>'latency' = '2.5' AND data::jsonb->>'errorRate' = '0.05' AND data::jsonb->'previous'->>'latency' = '1'"));
        Assert.Equal(1, await service.CountAsync("audit_events",
            "type = 'demo.fault' AND data::jsonb->>'healthy' = 'true' AND data::jsonb->'previous'->>'latency' = '3'"));
        using var reader = service.Reader();
        Assert.True((await reader.GetJsonAsync("/api/v1/audit/verify")).GetProperty("ok").GetBoolean());
        Assert.Contains(service.Host.Logs.Lines, line => line.Contains("Demo fault: the demo workload now runs at 2.5x latency", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Fault_ShowsInTheScrapedMetrics()
    {
        var clock = new ShiftedClock(new DateTimeOffset(2026, 11, 23, 14, 0, 0, TimeSpan.Zero));
        await using var database = await TestDatabase.CreateAsync();
        await using var host = new RolloutGateHost(database, DemoMode, clock);
        using var client = host.CreateClient().WithToken(RolloutGateHost.OperatorToken);

        var t0 = Scrape.Parse(await client.GetStringAsync(new Uri("/demo/metrics", UriKind.Relative)));
        clock.Now += TimeSpan.FromMinutes(10);
        var t1 = Scrape.Parse(await client.GetStringAsync(new Uri("/demo/metrics", UriKind.Relative)));
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync(Faults, Json("{\"latency\": 2, \"errorRate\": 0.05}"))).StatusCode);
        clock.Now += TimeSpan.FromMinutes(10);
        var t2 = Scrape.Parse(await client.GetStringAsync(new Uri("/demo/metrics", UriKind.Relative)));

        var healthy = t1.Minus(t0);
        var faulted = t2.Minus(t1);
        t2.AssertConsistent();
        t2.AssertNotBelow(t1);
        Assert.InRange(healthy.ErrorShare, 0.0015, 0.0025);
        Assert.InRange(faulted.ErrorShare, 0.049, 0.051);
        Assert.InRange(healthy.P95Ms, 245, 270);
        Assert.InRange(faulted.P95Ms, 490, 540);
    }

    /// <summary>The workload is still healthy and no change is on record.</summary>
    private static async Task AssertNothingChangedAsync(TestService service, HttpClient client)
    {
        Assert.True((await (await client.GetAsync(Faults)).JsonAsync()).GetProperty("healthy").GetBoolean());
        Assert.Equal(0, await service.CountAsync("audit_events", "type = 'demo.fault'"));
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
}

/// <summary>The demo workload's series in one scrape, and what Prometheus would compute from two of them.</summary>
internal sealed record Scrape(double Ok, double Failed, double Count, double SumMs, IReadOnlyList<(double Le, double Count)> Buckets)
{
    public double Requests => Ok + Failed;

    public double ErrorShare => Failed / Requests;

    public double MeanMs => SumMs / Count;

    public static Scrape Of(DemoWorkload workload) => Parse(workload.Scrape());

    public static Scrape Parse(string text)
    {
        double Value(string line) => double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        var lines = text.Split('\n').Where(line => line.StartsWith("istio_", StringComparison.Ordinal)).ToList();
        var buckets = lines.Where(line => line.StartsWith("istio_request_duration_milliseconds_bucket", StringComparison.Ordinal))
            .Select(line =>
            {
                var le = line[(line.IndexOf("le=\"", StringComparison.Ordinal) + 4)..];
                le = le[..le.IndexOf('"', StringComparison.Ordinal)];
                return (le == "+Inf" ? double.PositiveInfinity : double.Parse(le, CultureInfo.InvariantCulture), Value(line));
            })
            .ToList();
        return new Scrape(
            Value(lines.Single(line => line.StartsWith("istio_requests_total", StringComparison.Ordinal) && line.Contains("response_code=\"200\"", StringComparison.Ordinal))),
            Value(lines.Single(line => line.StartsWith("istio_requests_total", StringComparison.Ordinal) && line.Contains("response_code=\"503\"", StringComparison.Ordinal))),
            Value(lines.Single(line => line.StartsWith("istio_request_duration_milliseconds_count", StringComparison.Ordinal))),
            Value(lines.Single(line => line.StartsWith("istio_request_duration_milliseconds_sum", StringComparison.Ordinal))),
            buckets);
    }

    /// <summary>The increase from <paramref name="earlier"/> to this scrape, as increase() sees it without resets.</summary>
    public Scrape Minus(Scrape earlier) => new(Ok - earlier.Ok, Failed - earlier.Failed, Count - earlier.Count, SumMs - earlier.SumMs,
        Buckets.Zip(earlier.Buckets, (now, then) => (now.Le, now.Count - then.Count)).ToList());

    public double ShareWithin(double leMs) => Buckets.Single(b => b.Le == leMs).Count / Count;

    /// <summary>histogram_quantile(0.95, ...): linear interpolation inside the bucket the rank falls in.</summary>
    public double P95Ms
    {
        get
        {
            var rank = 0.95 * Count;
            var (lower, below) = (0.0, 0.0);
            foreach (var (le, count) in Buckets)
            {
                if (count >= rank)
                {
                    return lower + ((le - lower) * (rank - below) / (count - below));
                }

                (lower, below) = (le, count);
            }

            return double.NaN;
        }
    }

    /// <summary>Buckets cumulative, ending at the count; the count is the requests served.</summary>
    public void AssertConsistent()
    {
        for (var i = 1; i < Buckets.Count; i++)
        {
            Assert.True(Buckets[i].Count >= Buckets[i - 1].Count, $"bucket le={Buckets[i].Le} ({Buckets[i].Count}) below le={Buckets[i - 1].Le} ({Buckets[i - 1].Count})");
        }

        Assert.True(double.IsPositiveInfinity(Buckets[^1].Le));
        Assert.Equal(Count, Buckets[^1].Count);
        Assert.Equal(Requests, Count);
    }

    /// <summary>No counter, sum or bucket went down since <paramref name="earlier"/>.</summary>
    public void AssertNotBelow(Scrape earlier)
    {
        Assert.True(Ok >= earlier.Ok && Failed >= earlier.Failed && Count >= earlier.Count && SumMs >= earlier.SumMs,
            $"a counter went down: {earlier} then {this}");
        for (var i = 0; i < Buckets.Count; i++)
        {
            Assert.True(Buckets[i].Count >= earlier.Buckets[i].Count, $"bucket le={Buckets[i].Le} went down: {earlier.Buckets[i].Count} then {Buckets[i].Count}");
        }
    }
}
