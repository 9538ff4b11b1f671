using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Deployments;

public sealed class WebhookProcessingTests
{
    [Fact]
    public async Task Predeploy_SameDeliveryRetried50TimesConcurrently_OneDeploymentOneSetOfEvents()
    {
        await using var service = await TestService.StartAsync();
        var body = WebhookClient.Body("predeploy", "gh-run-50");
        var auditBefore = await service.CountAsync("audit_events");

        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => service.Webhooks.SendAsync(body, deliveryId: "delivery-50")));

        Assert.All(responses, response => Assert.Equal(HttpStatusCode.OK, response.StatusCode));
        var answers = await Task.WhenAll(responses.Select(response => response.Content.ReadAsStringAsync()));
        Assert.Single(answers.Distinct());
        Assert.Equal(1, await service.CountAsync("deployments"));
        Assert.Equal(1, await service.CountAsync("webhook_deliveries"));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'webhook.predeploy'"));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'deployment.state-changed'"));
        var perDelivery = await service.CountAsync("audit_events") - auditBefore;
        Assert.Equal(1 + 3 + 1, perDelivery); // the webhook, three built-in rules, one state change
    }

    [Fact]
    public async Task Deployed_RetriedAfterTheWatchStarted_GetsTheFirstAnswer()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "gh-run-7");
        var first = await service.Webhooks.SendEventAsync("deployed", "gh-run-7", deliveryId: "d-7");

        var retry = await service.Webhooks.SendEventAsync("deployed", "gh-run-7", deliveryId: "d-7");

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, retry.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'webhook.deployed'"));
    }

    [Fact]
    public async Task Deployed_WatchUntilInTheAnswer_IsTheDeploymentsWatchUntil()
    {
        // The 202's watchUntil and GET's watch.until are one instant, written the same way: PostgreSQL keeps
        // microseconds, so an answer with the clock's 100 ns ticks (or a finer "at") named a time the deployment never had.
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "wu-1");
        var at = DateTimeOffset.UtcNow.AddMinutes(-1).ToString("yyyy-MM-dd'T'HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture) + ".1234567Z";

        var deployed = await (await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "wu-1", at: at))).JsonAsync();
        using var reader = service.Reader();
        var deployment = await reader.GetJsonAsync("/api/v1/deployments/wu-1");

        var watch = deployment.GetProperty("watch");
        Assert.Equal(watch.GetProperty("until").GetString(), deployed.GetProperty("watchUntil").GetString());
        Assert.Equal(watch.GetProperty("until").GetDateTimeOffset() - TimeSpan.FromHours(24), watch.GetProperty("baseline").GetProperty("to").GetDateTimeOffset());
    }

    [Fact]
    public async Task Deployed_AtWithAnOffsetOtherThanUtc_WatchesFromThatInstant()
    {
        // Any ISO 8601 offset names an instant; PostgreSQL's timestamptz took only +00:00, and the deployed event was a 500.
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "ofs-1");
        var deployedAt = new DateTimeOffset(DateTimeOffset.UtcNow.AddMinutes(-1).Ticks / TimeSpan.TicksPerSecond * TimeSpan.TicksPerSecond, TimeSpan.Zero);
        var at = deployedAt.ToOffset(TimeSpan.FromHours(-5)).ToString("yyyy-MM-dd'T'HH:mm:sszzz", System.Globalization.CultureInfo.InvariantCulture);

        var deployed = await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "ofs-1", at: at));

        Assert.True(deployed.StatusCode == HttpStatusCode.Accepted, $"{(int)deployed.StatusCode}: {await deployed.Content.ReadAsStringAsync()}");
        Assert.Equal(deployedAt.AddHours(24), (await deployed.JsonAsync()).GetProperty("watchUntil").GetDateTimeOffset());
        using var reader = service.Reader();
        var deployment = await reader.GetJsonAsync("/api/v1/deployments/ofs-1");
        Assert.Equal("watching", deployment.GetProperty("state").GetString());
        Assert.Equal(deployedAt, deployment.GetProperty("watch").GetProperty("baseline").GetProperty("to").GetDateTimeOffset());
    }

    [Fact]
    public async Task Webhook_AtAheadOfTheClockBeyondTheTolerance_Refused400_WithinItAccepted()
    {
        // An event is sent when it happens. A deployed event a month ahead started a watch of a month ahead, blind till
        // then and holding the service's next change (one change at a time) until someone stopped it.
        await using var service = await TestService.StartAsync();
        static string Ahead(TimeSpan by) => DateTimeOffset.UtcNow.Add(by).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);

        var month = await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "ahead-1", at: Ahead(TimeSpan.FromDays(30))));
        var hour = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "ahead-2", at: Ahead(TimeSpan.FromHours(1))));
        var skewed = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "ahead-3", at: Ahead(TimeSpan.FromMinutes(2))));

        Assert.Equal(HttpStatusCode.BadRequest, month.StatusCode);
        Assert.Matches(@"at \(.+\) is (29|30) days ahead of this server's clock; an event is sent when it happens: send its time, or leave at out for now$",
            (await month.JsonAsync()).GetProperty("detail").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, hour.StatusCode);
        Assert.Matches("is (59|60) minutes ahead of this server's clock", (await hour.JsonAsync()).GetProperty("detail").GetString());
        // A sender's clock a little ahead (within the signature's 5-minute tolerance) is not a mistake.
        Assert.Equal(HttpStatusCode.OK, skewed.StatusCode);
        Assert.Equal(1, await service.CountAsync("deployments"));
    }

    [Fact]
    public async Task Webhook_DeliveryIdReusedForAnotherEvent_GetsTheFirstAnswerMarked_AndChangesNothing()
    {
        await using var service = await TestService.StartAsync();
        var first = await service.Webhooks.SendEventAsync("predeploy", "gh-run-8", deliveryId: "d-8");
        var firstAnswer = await first.Content.ReadAsStringAsync();
        var identical = await service.Webhooks.SendEventAsync("predeploy", "gh-run-8", deliveryId: "d-8");
        var auditBefore = await service.CountAsync("audit_events");

        // CONTRACT section 4: a repeated delivery id gets the first answer again and has no second effect, whatever it carries.
        var reused = await service.Webhooks.SendEventAsync("deployed", "gh-run-8", deliveryId: "d-8");
        var another = await service.Webhooks.SendEventAsync("predeploy", "gh-run-9", deliveryId: "d-8");

        foreach (var replay in new[] { reused, another })
        {
            Assert.Equal(first.StatusCode, replay.StatusCode);
            Assert.Equal(firstAnswer, await replay.Content.ReadAsStringAsync());
            Assert.Equal("other-body", Assert.Single(replay.Headers.GetValues("X-RolloutGate-Replayed")));
        }

        Assert.False(identical.Headers.Contains("X-RolloutGate-Replayed"));
        Assert.Equal(1, await service.CountAsync("deployments"));
        Assert.Equal("allowed", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'gh-run-8'"));
        // Only what was sent is added to the record: no watch started, no second deployment.
        Assert.Equal(2, await service.CountAsync("audit_events") - auditBefore);
        var detail = await service.Database.ScalarAsync<string>(
            "SELECT data::jsonb->>'detail' FROM audit_events WHERE type = 'webhook.replayed-other-body' AND deployment_id = 'gh-run-8'");
        Assert.Equal(
            "delivery id 'd-8' was first used for predeploy of deployment 'gh-run-8': answered with that first answer again, "
            + "and this body was not applied (a new event needs a new delivery id)",
            detail);
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'webhook.replayed-other-body' AND deployment_id = 'gh-run-9'"));
    }

    public static TheoryData<string, string> MalformedBodies => new()
    {
        { "not json", "not valid webhook JSON" },
        { "{\"event\": \"predeploy\", \"deploymentId\": \"x\"", "not valid webhook JSON" },
        { "[1, 2]", "not valid webhook JSON: expected a JSON object" },
        { "null", "JSON object" },
        { "", "empty" },
        { "{\"event\": \"predeploy\", \"deploymentId\": 42, \"service\": \"checkout\", \"environment\": \"production\"}", "at $.deploymentId: expected a string" },
        { "{\"event\": \"predeploy\", \"deploymentId\": \"x\", \"service\": \"checkout\", \"environment\": \"production\", \"at\": \"yesterday\"}", "at $.at: expected an ISO 8601 time" },
        // Without an offset the serializer reads a time on the server's clock: another instant on a server in another zone.
        { "{\"event\": \"deployed\", \"deploymentId\": \"x\", \"service\": \"checkout\", \"environment\": \"production\", \"at\": \"2026-11-21T10:00:00\"}", "at $.at: a time without Z or an offset such as +01:00 names no instant; send \"2026-11-21T10:00:00Z\" for 10:00 UTC" },
        { "{\"event\": \"deployed\", \"deploymentId\": \"x\", \"service\": \"checkout\", \"environment\": \"production\", \"at\": 1763719200}", "at $.at: expected an ISO 8601 time with an offset" },
        { "{\"event\": \"predeploy\", \"service\": \"checkout\", \"environment\": \"production\"}", "missing required field: deploymentId" },
        { "{\"event\": \"shipit\", \"deploymentId\": \"x\", \"service\": \"checkout\", \"environment\": \"production\"}", "is not one of" },
        { "{\"event\": \"predeploy\", \"deploymentId\": \"nul\\u0000id\", \"service\": \"checkout\", \"environment\": \"production\"}", "deploymentId contains a NUL character" },
        { "{\"event\": \"predeploy\", \"deploymentId\": \"x\", \"service\": \"checkout\", \"environment\": \"production\", \"initiator\": \"a\\u0000b\"}", "initiator contains a NUL character" },
        { "{\"event\": \"deployed\", \"deploymentId\": \"x\", \"service\": \"checkout\", \"environment\": \"production\", \"at\": \"9999-12-31T23:59:59Z\"}", "days from now" },
        { "{\"event\": \"predeploy\", \"deploymentId\": \"team/app-42\", \"service\": \"checkout\", \"environment\": \"production\"}", "must not contain '/'" },
        // A line break in an id would start a line of its own in the log (a forged entry), and the id names the deployment there.
        { "{\"event\": \"predeploy\", \"deploymentId\": \"gh-1\\nWebhook predeploy for deployment gh-2\", \"service\": \"checkout\", \"environment\": \"production\"}", "deploymentId must not contain a control character" },
        { "{\"event\": \"predeploy\", \"deploymentId\": \"gh-1\\u2028\", \"service\": \"checkout\", \"environment\": \"production\"}", "deploymentId must not contain a control character" },
        { "{\"event\": \"predeploy\", \"deploymentId\": \".\", \"service\": \"checkout\", \"environment\": \"production\"}", "must not be '.' or '..'" },
        { "{\"event\": \"predeploy\", \"deploymentId\": \"..\", \"service\": \"checkout\", \"environment\": \"production\"}", "must not be '.' or '..'" },
        { $"{{\"event\": \"predeploy\", \"deploymentId\": \"{new string('x', 257)}\", \"service\": \"checkout\", \"environment\": \"production\"}}", "deploymentId is 257 characters long; at most 256 are accepted" },
        { $"{{\"event\": \"predeploy\", \"deploymentId\": \"x\", \"service\": \"checkout\", \"environment\": \"production\", \"pipelineUrl\": \"https://ci.example/{new string('r', 2040)}\"}}", "pipelineUrl is 2059 characters long; at most 2048 are accepted" },
        { "{\"event\": \"deployed\", \"deploymentId\": \"x\", \"service\": \"checkout\", \"environment\": \"production\", \"at\": \"0001-01-01T00:00:00Z\"}", "days from now" },
        // A field given twice means what the reader makes of it (the last one, or the first one in another tool).
        { "{\"event\": \"predeploy\", \"deploymentId\": \"x\", \"service\": \"checkout\", \"environment\": \"production\", \"deploymentId\": \"y\"}", "not valid webhook JSON at $.deploymentId: the field is given more than once" },
    };

    [Theory]
    [MemberData(nameof(MalformedBodies))]
    public async Task Webhook_MalformedBody_Refused400_NothingChangedAndTheRefusalAudited(string body, string reason)
    {
        await using var service = await TestService.StartAsync();
        var auditBefore = await service.CountAsync("audit_events");

        var response = await service.Webhooks.SendAsync(body, deliveryId: "d-malformed");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(reason, (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, await service.CountAsync("deployments"));
        Assert.Equal(0, await service.CountAsync("webhook_deliveries"));
        Assert.Equal(auditBefore + 1, await service.CountAsync("audit_events"));
        Assert.Equal(1, await service.CountAsync("audit_events",
            "type = 'webhook.refused' AND deployment_id IS NULL AND data::jsonb->>'deliveryId' = 'd-malformed' AND (data::jsonb->>'answer')::int = 400"));
    }

    [Fact]
    public async Task Webhook_BodyAfterAUtf8ByteOrderMark_IsRead()
    {
        await using var service = await TestService.StartAsync();

        var response = await service.Webhooks.SendAsync("\uFEFF" + WebhookClient.Body("predeploy", "gh-bom-1"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("gh-bom-1", (await response.JsonAsync()).GetProperty("deploymentId").GetString());
    }

    [Fact]
    public async Task Webhook_AnyContentType_IsReadAsJson_AndAnUnsignedOneIs401Not415()
    {
        await using var service = await TestService.StartAsync();
        var body = WebhookClient.Body("predeploy", "gh-form-1");

        // What curl -d sends: a form content type, with a JSON body. The signature decides, not the header.
        var signed = await service.Webhooks.SendAsync(body, contentType: "application/x-www-form-urlencoded");
        var plain = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "gh-form-2"), contentType: "text/plain");
        var unsigned = await service.Webhooks.SendAsync(body, sign: false, contentType: "application/x-www-form-urlencoded");

        Assert.Equal(HttpStatusCode.OK, signed.StatusCode);
        Assert.Equal("allow", (await signed.JsonAsync()).GetProperty("verdict").GetString());
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, unsigned.StatusCode);
    }

    [Fact]
    public async Task Webhook_RetriedAfterItsRunbookWasRemoved_GetsTheFirstAnswer()
    {
        await using var service = await TestService.StartAsync();
        var body = WebhookClient.Body("predeploy", "gh-removed-1");
        var first = await service.Webhooks.SendAsync(body, deliveryId: "d-removed-1");
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        File.Delete(service.Runbooks.PathOf("checkout.yaml"));
        await service.ReloadRunbooksAsync();
        var retry = await service.Webhooks.SendAsync(body, deliveryId: "d-removed-1");
        var fresh = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "gh-removed-2"), deliveryId: "d-removed-2");

        Assert.Equal(HttpStatusCode.OK, retry.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.UnprocessableEntity, fresh.StatusCode);
    }

    [Fact]
    public async Task RunbookVersionRecordedByAnOlderVersionThatNoLongerParses_DeployedRefused422_StopAndCancelStillAnswered()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "gh-old-allowed");
        service.Runbooks.Write("payments.yaml", TestRunbooks.Minimal("payments"));
        await service.ReloadRunbooksAsync();
        Assert.Equal(HttpStatusCode.OK, (await service.Webhooks.SendEventAsync("predeploy", "gh-old-watching", service: "payments")).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await service.Webhooks.SendEventAsync("deployed", "gh-old-watching", service: "payments")).StatusCode);
        // As after an upgrade: the files moved on to new versions, and the versions both changes recorded hold what an
        // older RolloutGate accepted and this one refuses.
        service.Runbooks.Write("checkout.yaml", TestRunbooks.Minimal(version: 2));
        service.Runbooks.Write("payments.yaml", TestRunbooks.Minimal("payments", version: 2));
        await service.ReloadRunbooksAsync();
        await service.Database.ExecuteAsync("UPDATE runbook_versions SET content = content || chr(10) || 'retired: true' || chr(10) WHERE version = 1");
        var changesBefore = await service.CountAsync("audit_events", "type = 'deployment.state-changed'");

        var deployed = await service.Webhooks.SendEventAsync("deployed", "gh-old-allowed");

        Assert.Equal(HttpStatusCode.UnprocessableEntity, deployed.StatusCode);
        var detail = (await deployed.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString();
        Assert.Contains("deployment 'gh-old-allowed' cannot be watched: its stored runbook version checkout v1 no longer parses", detail, StringComparison.Ordinal);
        Assert.Equal("allowed", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'gh-old-allowed'"));
        Assert.Equal(changesBefore, await service.CountAsync("audit_events", "type = 'deployment.state-changed'"));

        using var operatorClient = service.Operator();
        var stop = await operatorClient.PostAsJsonAsync(new Uri("/api/v1/deployments/gh-old-watching/stop", UriKind.Relative), new { actor = "bob", reason = "its runbook no longer parses" });
        var cancel = await service.Webhooks.SendEventAsync("cancelled", "gh-old-allowed");

        Assert.Equal(HttpStatusCode.OK, stop.StatusCode);
        Assert.Equal("stopped", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'gh-old-watching'"));
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        Assert.Equal("cancelled", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'gh-old-allowed'"));
    }

    [Fact]
    public async Task Queries_WithANulCharacterOrAnUnreadableParameter_Refused400NotA500()
    {
        await using var service = await TestService.StartAsync();
        using var reader = service.Reader();

        foreach (var (path, detail) in new[]
        {
            ("/api/v1/deployments?service=%00", "NUL character"),
            ("/api/v1/deployments?environment=a%00b", "NUL character"),
            ("/api/v1/audit/events?deploymentId=%00", "NUL character"),
            ("/api/v1/audit/events?actor=%00", "NUL character"),
            ("/api/v1/reports/summary?service=%00", "NUL character"),
            ("/api/v1/audit/events?from=garbage", "from 'garbage' cannot be read: it must be an ISO 8601 time such as 2026-11-21T10:00:00Z."),
            ("/api/v1/audit/events?limit=abc", "limit 'abc' cannot be read: it must be a whole number."),
            ("/api/v1/audit/events?limit=2147483648", "limit '2147483648' cannot be read: it must be a whole number no larger than 2147483647 in size."),
            ("/api/v1/audit/events?limit=-1", "limit must be between 1 and 1000"),
            ("/api/v1/audit/events?after=-5", "after '-5' is not a cursor"),
            ("/api/v1/audit/events?after=abc", "after 'abc' cannot be read: it must be a whole number."),
            ("/api/v1/audit/events?after=9223372036854775808", "after '9223372036854775808' cannot be read: it must be a whole number no larger than 9223372036854775807 in size."),
            ("/api/v1/deployments?limit=0", "limit must be between 1 and 1000"),
            ("/api/v1/deployments?limit=1001", "limit must be between 1 and 1000"),
            ("/api/v1/deployments?limit=x", "limit 'x' cannot be read: it must be a whole number."),
        })
        {
            await AssertRefused400Async(reader, path, detail);
        }

        using var operatorClient = service.Operator();
        var stop = await operatorClient.PostAsync(new Uri("/api/v1/deployments/gh-1/stop", UriKind.Relative),
            new StringContent("{\"actor\":\"a\\u0000b\",\"reason\":\"r\"}", System.Text.Encoding.UTF8, "application/json"));
        Assert.True(stop.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"stop: {(int)stop.StatusCode}");
    }

    [Fact]
    public async Task Queries_AskingForCsv_WithAnUnreadableParameter_Refused400ProblemJsonNamingIt()
    {
        // Accept: text/csv (CONTRACT section 7) left the framework's problem writer nothing it could write: the 400 came
        // with an empty body, and the refusal was logged as an unhandled exception with its stack trace.
        await using var service = await TestService.StartAsync();
        using var reader = service.Reader();
        reader.DefaultRequestHeaders.Accept.ParseAdd("text/csv");

        foreach (var (path, detail) in new[]
        {
            ("/api/v1/audit/events?limit=abc", "limit 'abc' cannot be read: it must be a whole number."),
            ("/api/v1/audit/events?from=yesterday", "from 'yesterday' cannot be read: it must be an ISO 8601 time such as 2026-11-21T10:00:00Z."),
            ("/api/v1/deployments?service=%00", "NUL character"),
            ("/api/v1/reports/summary?to=tomorrow", "to 'tomorrow' cannot be read"),
        })
        {
            await AssertRefused400Async(reader, path, detail);
        }

        Assert.DoesNotContain(service.Host.Logs.Lines, line => line.Contains("unhandled exception", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task Queries_WithATimeThatIsNotIso8601_Refused400_Iso8601FormsRead()
    {
        // from and to were read as DateTimeOffset.Parse reads: 12/07/2026 as 7 December (month first), an RFC 1123 date,
        // a time without an offset on the server's clock; each answered as a window, 200, whatever was meant. ISO 8601
        // without an offset is UTC, a date alone its midnight UTC.
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "iso-1");
        using var reader = service.Reader();

        foreach (var path in new[] { "/api/v1/audit/events", "/api/v1/reports/summary", "/api/v1/reports/alert-quality" })
        {
            foreach (var (name, value) in new[]
            {
                ("from", "12/07/2026"), ("to", "Mon, 07 Dec 2026 10:00:00 GMT"), ("from", "2026-12-07 10:00:00Z"),
                ("to", "2026-12-7"), ("from", "07.12.2026"),
            })
            {
                await AssertRefused400Async(reader, $"{path}?{name}={Uri.EscapeDataString(value)}",
                    $"{name} '{value}' cannot be read: it must be an ISO 8601 time such as 2026-11-21T10:00:00Z.");
            }

            foreach (var window in new[]
            {
                "from=2026-12-07T10:00:00Z", "to=2126-12-07T11:00:00%2B01:00", "from=2026-12-07T10:00:00.1234567-03:00", "from=20261207T100000Z",
                "from=2026-12-07T10:00:00", "to=2126-12-07", "to=2126-12-07T11:00:00+01:00",
            })
            {
                var read = await reader.GetAsync(new Uri($"{path}?{window}", UriKind.Relative));
                Assert.True(read.StatusCode == HttpStatusCode.OK, $"{path}?{window}: {(int)read.StatusCode}");
            }
        }

        var events = await reader.GetJsonAsync("/api/v1/audit/events?to=2126-12-07T11:00:00%2B01:00");
        Assert.Contains(events.GetProperty("events").EnumerateArray(), e => e.GetProperty("deploymentId").GetString() == "iso-1");

        // The same instant however it is written: an unescaped + (a space once decoded), no offset (UTC), a date alone.
        var at = await service.Database.ScalarAsync<DateTime>("SELECT max(at) FROM audit_events");
        var second = new DateTimeOffset(at.Ticks - at.Ticks % TimeSpan.TicksPerSecond, TimeSpan.Zero);
        foreach (var written in new[] { $"{second.ToOffset(TimeSpan.FromHours(1)):yyyy-MM-dd'T'HH:mm:ss}+01:00", $"{second:yyyy-MM-dd'T'HH:mm:ss}" })
        {
            var before = await reader.GetJsonAsync($"/api/v1/audit/events?to={written}");
            var after = await reader.GetJsonAsync($"/api/v1/audit/events?from={written}");
            Assert.True(before.GetProperty("events").GetArrayLength() + after.GetProperty("events").GetArrayLength() == await service.CountAsync("audit_events"), written);
            Assert.NotEqual(0, after.GetProperty("events").GetArrayLength());
        }

        var today = await reader.GetJsonAsync($"/api/v1/audit/events?from={second:yyyy-MM-dd}");
        Assert.NotEqual(0, today.GetProperty("events").GetArrayLength());
    }

    [Fact]
    public async Task Queries_WithFromAfterTo_Refused400NamingBoth()
    {
        // A swapped window holds nothing: it was answered as an empty page or report, as if nothing had happened.
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "w-1");
        using var reader = service.Reader();
        const string Window = "from=2026-12-07T00:00:00Z&to=2026-12-07T00:30:00%2B01:00";
        const string Detail = "from (2026-12-07T00:00:00.0000000+00:00) is after to (2026-12-07T00:30:00.0000000+01:00)";

        foreach (var path in new[] { "/api/v1/audit/events", "/api/v1/reports/summary", "/api/v1/reports/alert-quality" })
        {
            await AssertRefused400Async(reader, $"{path}?{Window}", Detail);
            var empty = await reader.GetAsync(new Uri($"{path}?from=2026-12-07T00:00:00Z&to=2026-12-07T01:00:00%2B01:00", UriKind.Relative));
            Assert.True(empty.StatusCode == HttpStatusCode.OK, $"{path}, from = to: {(int)empty.StatusCode}");
        }
    }

    [Theory]
    [InlineData("/api/v1/audit/events?from=yesterday", "a reader token is required")]
    [InlineData("/api/v1/deployments?service=a&service=b", "a reader token is required")]
    [InlineData("/api/v1/reports/summary?to=soon", "a reader token is required")]
    public async Task Queries_WithoutAToken_Refused401_BeforeTheirParametersAreRead(string path, string detail)
    {
        // The token is checked before the query is read: a caller who may not ask is not told what is wrong with its question.
        await using var service = await TestService.StartAsync();

        using var response = await service.Client.GetAsync(new Uri(path, UriKind.Relative));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.StartsWith(detail, (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Queries_WithAParameterGivenTwice_Refused400NamingIt()
    {
        // Read as one text ("checkout,cart"), a repeated filter matched nothing and answered an empty page as if true.
        await using var service = await TwoServicesWithAChangeEachAsync();
        using var reader = service.Reader();

        foreach (var (path, name) in new[]
        {
            ("/api/v1/deployments?service=checkout&service=cart", "service"),
            ("/api/v1/deployments?state=allowed&limit=10&state=denied", "state"),
            ("/api/v1/audit/events?type=webhook.predeploy&type=check.result", "type"),
            ("/api/v1/audit/events?deploymentId=c-1&deploymentId=k-1", "deploymentId"),
            ("/api/v1/audit/events?limit=1&limit=2", "limit"),
            ("/api/v1/reports/summary?service=checkout&service=cart", "service"),
        })
        {
            await AssertRefused400Async(reader, path, $"the query parameter '{name}' is given 2 times; give each at most once");
        }

        var once = await reader.GetJsonAsync("/api/v1/deployments?service=cart");
        Assert.Equal("k-1", Assert.Single(once.GetProperty("deployments").EnumerateArray()).GetProperty("deploymentId").GetString());
    }

    /// <summary>checkout and cart, each with an allowed predeploy: c-1 of checkout, then k-1 of cart.</summary>
    private static async Task<TestService> TwoServicesWithAChangeEachAsync()
    {
        var service = await TestService.StartAsync(("checkout.yaml", TestRunbooks.Minimal("checkout")), ("cart.yaml", TestRunbooks.Minimal("cart")));
        await service.Webhooks.SendEventAsync("predeploy", "c-1");
        await service.Webhooks.SendEventAsync("predeploy", "k-1", service: "cart");
        return service;
    }

    [Fact]
    public async Task Queries_WithAParameterGivenEmpty_ReadItAsNotGiven()
    {
        // CONTRACT section 5 writes the filters as ?service=&environment=&state=: a URL built from it with a filter left
        // blank asked for the service "" (an empty page that looked true) or was refused for state and limit.
        await using var service = await TwoServicesWithAChangeEachAsync();
        using var reader = service.Reader();
        static List<string?> Ids(JsonElement page, string list, string id) =>
            page.GetProperty(list).EnumerateArray().Select(item => item.GetProperty(id).GetString()).ToList();

        Assert.Equal(["k-1", "c-1"], Ids(await reader.GetJsonAsync("/api/v1/deployments?service=&environment=&state="), "deployments", "deploymentId"));
        Assert.Equal(["k-1"], Ids(await reader.GetJsonAsync("/api/v1/deployments?service=cart&state&limit=&after="), "deployments", "deploymentId"));
        Assert.Equal(["c-1", "k-1"], Ids(await reader.GetJsonAsync("/api/v1/audit/events?deploymentId=&actor=&type=webhook.predeploy&from=&to=&limit="), "events", "deploymentId"));
        using var summary = await reader.GetAsync(new Uri("/api/v1/reports/summary?service=&from=&to=", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, summary.StatusCode);
        // An anchor asks for a check: given empty (verify?anchor=$ANCHOR, the variable unset) it is refused, not skipped.
        await AssertRefused400Async(reader, "/api/v1/audit/verify?anchor=", "anchor '' is not ID:HASH");
    }

    [Fact]
    public async Task Webhook_DeliveryIdTooLong_Refused400_NothingChangedAndTheRefusalAudited()
    {
        // CONTRACT section 7: every webhook and every refusal is an event. The delivery was authenticated; the id it
        // gives is refused, so the event names no delivery, but it names the deployment the pipeline meant.
        await using var service = await TestService.StartAsync();
        var auditBefore = await service.CountAsync("audit_events");

        var response = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "gh-1"), deliveryId: new string('d', 201));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(0, await service.CountAsync("deployments"));
        Assert.Equal(0, await service.CountAsync("webhook_deliveries"));
        Assert.Equal(auditBefore + 1, await service.CountAsync("audit_events"));
        Assert.Equal(1, await service.CountAsync("audit_events",
            "type = 'webhook.refused' AND deployment_id = 'gh-1' AND service = 'checkout' AND data::jsonb->>'deliveryId' IS NULL " +
            "AND (data::jsonb->>'answer')::int = 400 AND data::jsonb->>'detail' LIKE '%X-RolloutGate-Delivery header%at most 200 characters%'"));
    }

    [Theory]
    [InlineData("gh-1%0AWebhook%20predeploy")]
    [InlineData("gh-1%09x")]
    [InlineData("gh-1%00")]
    public async Task Webhook_DeliveryIdWithAControlCharacter_Refused400_NothingChangedAndTheRefusalAuditedWithoutTheId(string escapedDeliveryId)
    {
        // The delivery id is logged when a delivery is replayed: a line break would forge a log line of its own. The
        // refusal is audited as any other, and the id it refuses is not kept there either.
        await using var service = await TestService.StartAsync();
        var auditBefore = await service.CountAsync("audit_events");
        using var request = Signed($"/api/v1/deployments?delivery={escapedDeliveryId}", WebhookClient.Body("predeploy", "gh-1"));

        var response = await service.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("no control character", (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, await service.CountAsync("deployments"));
        Assert.Equal(0, await service.CountAsync("webhook_deliveries"));
        Assert.Equal(auditBefore + 1, await service.CountAsync("audit_events"));
        Assert.Equal(1, await service.CountAsync("audit_events",
            "type = 'webhook.refused' AND deployment_id = 'gh-1' AND data::jsonb->>'deliveryId' IS NULL AND (data::jsonb->>'answer')::int = 400"));
    }

    [Theory]
    [InlineData("/api/v1/deployments", true)]
    [InlineData("/api/v1/deployments?delivery=gh-1-a&delivery=gh-1-b", false)]
    public async Task Webhook_DeliveryIdGivenTwice_Refused400AndNothingWritten(string path, bool twoHeaderLines)
    {
        // Read joined, two lines (a proxy that adds its own, say) made the id "gh-1-a,gh-1-b", which a retry sending one of
        // them does not repeat: the retry would have been a second delivery.
        await using var service = await TestService.StartAsync();
        using var request = Signed(path, WebhookClient.Body("predeploy", "gh-1"));
        if (twoHeaderLines)
        {
            request.Headers.Add("X-RolloutGate-Delivery", ["gh-1-a", "gh-1-b"]);
        }

        var response = await service.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("given 2 times", (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, await service.CountAsync("deployments"));
        Assert.Equal(0, await service.CountAsync("webhook_deliveries"));
    }

    /// <summary>A webhook signed with the test secret, its delivery id left to the caller (in the path or a header).</summary>
    private static HttpRequestMessage Signed(string path, string body)
    {
        var timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative))
        {
            Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-RolloutGate-Timestamp", timestamp);
        request.Headers.Add("X-RolloutGate-Signature", RolloutGate.Webhooks.WebhookAuthenticator.SignatureHeaderValue(
            RolloutGateHost.WebhookSecret, timestamp, System.Text.Encoding.UTF8.GetBytes(body)));
        return request;
    }

    [Fact]
    public async Task Webhook_UnknownServiceOrEnvironment_Refused422AndNothingWritten()
    {
        await using var service = await TestService.StartAsync();

        var unknownService = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "gh-1", service: "inventory"));
        var unknownEnvironment = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "gh-2", environment: "qa"));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, unknownService.StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, unknownEnvironment.StatusCode);
        Assert.Contains("inventory", (await unknownService.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, await service.CountAsync("deployments"));
        Assert.Equal(0, await service.CountAsync("webhook_deliveries"));
        Assert.Equal(1, await service.CountAsync("audit_events",
            "type = 'webhook.refused' AND deployment_id = 'gh-1' AND service = 'inventory' AND (data::jsonb->>'answer')::int = 422 AND data::jsonb->>'detail' LIKE 'no runbook governs%'"));
    }

    [Fact]
    public async Task Deployed_AfterAllow_StartsTheWatchForTheRunbooksDuration()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "gh-run-10");

        var response = await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "gh-run-10", at: "2026-11-21T10:00:00Z"));

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var json = await response.JsonAsync();
        Assert.Equal("watching", json.GetProperty("state").GetString());
        Assert.Equal(DateTimeOffset.Parse("2026-11-22T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture), json.GetProperty("watchUntil").GetDateTimeOffset());

        using var reader = service.Reader();
        var deployment = await reader.GetJsonAsync("/api/v1/deployments/gh-run-10");
        Assert.Equal("watching", deployment.GetProperty("state").GetString());
        Assert.Equal("2.3.9", deployment.GetProperty("previousVersion").GetString());
        var baseline = deployment.GetProperty("watch").GetProperty("baseline");
        Assert.Equal(DateTimeOffset.Parse("2026-11-20T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture), baseline.GetProperty("from").GetDateTimeOffset());
        Assert.Equal(DateTimeOffset.Parse("2026-11-21T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture), baseline.GetProperty("to").GetDateTimeOffset());
    }

    [Fact]
    public async Task Predeploy_AnotherChangeInFlight_DeniedNamingIt_ThenDeployedAnyway_WatchedAsOverridden()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "first");
        await service.Webhooks.SendEventAsync("deployed", "first");

        var second = await service.Webhooks.SendEventAsync("predeploy", "second");
        var json = await second.JsonAsync();
        var deployedAnyway = await service.Webhooks.SendEventAsync("deployed", "second");

        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("deny", json.GetProperty("verdict").GetString());
        var rule = Assert.Single(json.GetProperty("checks").EnumerateArray());
        Assert.Equal("one-change-at-a-time", rule.GetProperty("name").GetString());
        Assert.Contains("'first'", rule.GetProperty("detail").GetString(), StringComparison.Ordinal);
        // RolloutGate cannot stop a deploy: the change is running, so it is watched, and its record says the gate was overridden.
        Assert.Equal(HttpStatusCode.Accepted, deployedAnyway.StatusCode);
        Assert.Equal("watching", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'second'"));
        var gate = (await deployedAnyway.JsonAsync()).GetProperty("preDeployGate");
        Assert.Equal("overridden", gate.GetProperty("status").GetString());
        Assert.Equal(["one-change-at-a-time"], gate.GetProperty("failedChecks").EnumerateArray().Select(c => c.GetString()));
        Assert.Equal("deployed although the pre-deploy gate denied it: one-change-at-a-time failed", gate.GetProperty("summary").GetString());
    }

    /// <summary>A freeze over the whole of the Saturday the test's changes are made on (2026-11-21).</summary>
    private static string RunbookWithAFreeze() => TestRunbooks.Minimal().Replace("\n  watch:", string.Join("\n",
        [
            "",
            "  preDeploy:",
            "    timeout: 10s",
            "    checks:",
            "      - name: change-freeze",
            "        freeze:",
            "          timezone: UTC",
            "          windows: [\"Sat 00:00 - Sun 00:00\"]",
            "      - name: payments-healthy",
            "        http:",
            "          url: http://127.0.0.1:9/healthz",
            "          expectStatus: 200",
            "  watch:",
        ]), StringComparison.Ordinal);

    [Fact]
    public async Task Deployed_AfterADeny_WatchedAsAfterAnAllow_RecordSaysTheGateWasOverriddenWhichChecksFailedAndWhichCouldNotRun()
    {
        // An emergency fix pushed through a change freeze was answered 409 and left unwatched, and the pipeline's
        // "gate deployed" step turned red after the deploy had succeeded.
        await using var service = await TestService.StartAsync(("checkout.yaml", RunbookWithAFreeze()));
        const string at = "2026-11-21T10:00:00Z";
        var verdict = await (await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "through-freeze", at: at))).JsonAsync();
        var body = WebhookClient.Body("deployed", "through-freeze", at: at);

        var deployed = await service.Webhooks.SendAsync(body, deliveryId: "deployed-through-freeze");
        var again = await service.Webhooks.SendAsync(body, deliveryId: "deployed-through-freeze");

        Assert.Equal("deny", verdict.GetProperty("verdict").GetString());
        Assert.Equal(HttpStatusCode.Accepted, deployed.StatusCode);
        var answer = await deployed.Content.ReadAsStringAsync();
        string answeredGate;
        using (var json = JsonDocument.Parse(answer))
        {
            Assert.Equal("watching", json.RootElement.GetProperty("state").GetString());
            Assert.Equal(DateTimeOffset.Parse("2026-11-22T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture),
                json.RootElement.GetProperty("watchUntil").GetDateTimeOffset());
            Assert.Equal("deployed although the pre-deploy gate denied it: change-freeze failed; payments-healthy could not run (error)",
                json.RootElement.GetProperty("preDeployGate").GetProperty("summary").GetString());
            answeredGate = json.RootElement.GetProperty("preDeployGate").GetRawText();
        }

        Assert.Single(service.Host.Logs.Lines, line => line.StartsWith("Warning ", StringComparison.Ordinal) && line.Contains(
            "Deployment through-freeze (checkout/production) is watched, but it was deployed although the pre-deploy gate denied it: change-freeze failed; payments-healthy could not run (error)",
            StringComparison.Ordinal));

        // A repeated delivery gets the first answer and has no second effect.
        Assert.Equal(HttpStatusCode.Accepted, again.StatusCode);
        Assert.Equal(answer, await again.Content.ReadAsStringAsync());
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'deployment.gate-bypassed'"));
        Assert.Equal(1, await service.CountAsync("audit_events",
            "type = 'deployment.state-changed' AND data::json->>'from' = 'denied' AND data::json->>'to' = 'watching' AND data::json->>'trigger' = 'Deployed'"));

        using var reader = service.Reader();
        var events = await reader.GetJsonAsync("/api/v1/audit/events?deploymentId=through-freeze&type=deployment.gate-bypassed");
        var data = Assert.Single(events.GetProperty("events").EnumerateArray()).GetProperty("data");
        Assert.Equal("overridden", data.GetProperty("preDeployGate").GetString());
        // The freeze failed; the health check could not run (nothing answers on port 9): an error, not a failure.
        Assert.Equal(["change-freeze"], data.GetProperty("failedChecks").EnumerateArray().Select(c => c.GetString()));
        Assert.Equal(["payments-healthy"], data.GetProperty("erroredChecks").EnumerateArray().Select(c => c.GetString()));

        var view = await reader.GetJsonAsync("/api/v1/deployments/through-freeze");
        Assert.Equal("watching", view.GetProperty("state").GetString());
        Assert.Equal(DateTimeOffset.Parse(at, System.Globalization.CultureInfo.InvariantCulture), view.GetProperty("watch").GetProperty("baseline").GetProperty("to").GetDateTimeOffset());
        var gate = view.GetProperty("preDeployGate");
        Assert.Equal("overridden", gate.GetProperty("status").GetString());
        Assert.Equal(["change-freeze"], gate.GetProperty("failedChecks").EnumerateArray().Select(c => c.GetString()));
        Assert.Equal(["payments-healthy"], gate.GetProperty("erroredChecks").EnumerateArray().Select(c => c.GetString()));
        // One shape under one name: the deployed answer's preDeployGate is the view's.
        Assert.Equal(gate.GetRawText(), answeredGate);
    }

    [Fact]
    public async Task Predeploy_ConcurrentForOneService_ExactlyOneAllowed()
    {
        await using var service = await TestService.StartAsync();

        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => service.Webhooks.SendEventAsync("predeploy", $"race-{i}")));
        var verdicts = await Task.WhenAll(responses.Select(async r => (await r.JsonAsync()).GetProperty("verdict").GetString()));

        Assert.Equal(1, verdicts.Count(v => v == "allow"));
        Assert.Equal(7, verdicts.Count(v => v == "deny"));
    }

    [Fact]
    public async Task Predeploy_SameDeploymentIdTwice_Refused409()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "gh-run-11");

        var again = await service.Webhooks.SendEventAsync("predeploy", "gh-run-11");

        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'webhook.predeploy'"));
    }

    [Fact]
    public async Task RolledBackAndCancelled_FollowTheStateMachine()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "a");
        await service.Webhooks.SendEventAsync("deployed", "a");

        var rolledBack = await service.Webhooks.SendEventAsync("rolledback", "a");
        var cancelledAfterwards = await service.Webhooks.SendEventAsync("cancelled", "a");
        var unknown = await service.Webhooks.SendEventAsync("cancelled", "never-seen");

        Assert.Equal("rolled-back", (await rolledBack.JsonAsync()).GetProperty("state").GetString());
        Assert.Equal(HttpStatusCode.Conflict, cancelledAfterwards.StatusCode);
        Assert.Equal("rolled-back", (await cancelledAfterwards.JsonAsync()).GetProperty("state").GetString());
        Assert.Equal(HttpStatusCode.Conflict, unknown.StatusCode);
    }

    /// <summary>
    /// A change on record is governed by the runbook version it pinned, even after the runbook's file is removed: the
    /// pipeline can still end it. Only a new change needs a runbook in force.
    /// </summary>
    [Fact]
    public async Task RolledBackAndCancelled_AfterTheRunbookWasRemoved_EndTheChangesOnRecord()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "watched");
        await service.Webhooks.SendEventAsync("deployed", "watched");
        var denied = await service.Webhooks.SendEventAsync("predeploy", "denied"); // another change in flight
        Assert.Equal("deny", (await denied.JsonAsync()).GetProperty("verdict").GetString());

        File.Delete(service.Runbooks.PathOf("checkout.yaml"));
        await service.ReloadRunbooksAsync();
        var rolledBack = await service.Webhooks.SendEventAsync("rolledback", "watched");
        var cancelled = await service.Webhooks.SendEventAsync("cancelled", "denied");
        var cancelledAfterwards = await service.Webhooks.SendEventAsync("cancelled", "watched");
        var unknown = await service.Webhooks.SendEventAsync("rolledback", "never-seen");
        var fresh = await service.Webhooks.SendEventAsync("predeploy", "fresh");

        Assert.Equal(HttpStatusCode.OK, rolledBack.StatusCode);
        Assert.Equal("rolled-back", (await rolledBack.JsonAsync()).GetProperty("state").GetString());
        Assert.Equal(HttpStatusCode.OK, cancelled.StatusCode);
        Assert.Equal("cancelled", (await cancelled.JsonAsync()).GetProperty("state").GetString());
        Assert.Equal(HttpStatusCode.Conflict, cancelledAfterwards.StatusCode); // the state machine's answer, as with the runbook
        Assert.Equal(HttpStatusCode.UnprocessableEntity, unknown.StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, fresh.StatusCode);
        Assert.Equal("rolled-back", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'watched'"));
        Assert.Equal("cancelled", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'denied'"));
    }

    [Fact]
    public async Task Deployed_AfterAllow_RunbookRemovedSince_WatchesUnderThePinnedVersion()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "allowed");

        File.Delete(service.Runbooks.PathOf("checkout.yaml"));
        await service.ReloadRunbooksAsync();
        var deployed = await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "allowed", at: "2026-11-21T10:00:00Z"));
        var unannounced = await service.Webhooks.SendEventAsync("deployed", "unannounced");

        Assert.Equal(HttpStatusCode.Accepted, deployed.StatusCode);
        var json = await deployed.JsonAsync();
        Assert.Equal("watching", json.GetProperty("state").GetString());
        Assert.Equal(DateTimeOffset.Parse("2026-11-22T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture), json.GetProperty("watchUntil").GetDateTimeOffset());
        Assert.Equal(HttpStatusCode.UnprocessableEntity, unannounced.StatusCode);
    }

    [Fact]
    public async Task Deployed_WithoutPredeploy_WhereRunbookHasNoChecks_StartsTheWatch()
    {
        await using var service = await TestService.StartAsync();

        var response = await service.Webhooks.SendEventAsync("deployed", "no-gate");

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Equal("watching", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'no-gate'"));
        // Nothing was skipped: the runbook has no checks.
        Assert.False((await response.JsonAsync()).TryGetProperty("preDeployGate", out _));
        Assert.Equal(0, await service.CountAsync("audit_events", "type = 'deployment.gate-bypassed'"));
    }

    [Fact]
    public async Task Deployed_WithoutPredeploy_WhereRunbookHasChecks_WatchedWithoutRunningThem_RecordSaysTheGateWasSkipped()
    {
        // A pipeline that skipped the gate step was answered 409 ("send predeploy first") after its deploy, and the change
        // went unwatched.
        await using var service = await TestService.StartAsync(("checkout.yaml", RunbookWithAFreeze()));
        var body = WebhookClient.Body("deployed", "skipped-gate", at: "2026-11-21T10:00:00Z");

        var deployed = await service.Webhooks.SendAsync(body, deliveryId: "deployed-skipped-gate");
        var again = await service.Webhooks.SendAsync(body, deliveryId: "deployed-skipped-gate");

        Assert.Equal(HttpStatusCode.Accepted, deployed.StatusCode);
        var answer = await deployed.Content.ReadAsStringAsync();
        string answeredGate;
        using (var json = JsonDocument.Parse(answer))
        {
            Assert.Equal("watching", json.RootElement.GetProperty("state").GetString());
            Assert.Equal("deployed without a predeploy: its pre-deploy checks were not run",
                json.RootElement.GetProperty("preDeployGate").GetProperty("summary").GetString());
            answeredGate = json.RootElement.GetProperty("preDeployGate").GetRawText();
        }

        Assert.Equal(answer, await again.Content.ReadAsStringAsync());
        Assert.Equal("watching", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'skipped-gate'"));
        // The checks are not run now: the change is already out (the freeze would fail).
        Assert.Equal(0, await service.CountAsync("audit_events", "type = 'check.result'"));
        Assert.Equal(1, await service.CountAsync("audit_events",
            "type = 'deployment.gate-bypassed' AND deployment_id = 'skipped-gate' AND data::json->>'preDeployGate' = 'skipped'"));
        using var reader = service.Reader();
        var view = await reader.GetJsonAsync("/api/v1/deployments/skipped-gate");
        Assert.Equal("skipped", view.GetProperty("preDeployGate").GetProperty("status").GetString());
        Assert.Empty(view.GetProperty("preDeployGate").GetProperty("failedChecks").EnumerateArray());
        Assert.Equal(view.GetProperty("preDeployGate").GetRawText(), answeredGate);
    }

    [Fact]
    public async Task Deployments_ListAndGet_NeedReaderToken_AndFilter()
    {
        await using var service = await TestService.StartAsync(
            ("checkout.yaml", TestRunbooks.Minimal("checkout")), ("cart.yaml", TestRunbooks.Minimal("cart")));
        await service.Webhooks.SendEventAsync("predeploy", "c-1");
        await service.Webhooks.SendEventAsync("predeploy", "k-1", service: "cart");
        await service.Webhooks.SendEventAsync("deployed", "k-1", service: "cart");

        var anonymous = await service.Client.GetAsync(new Uri("/api/v1/deployments", UriKind.Relative));
        using var reader = service.Reader();
        var all = await reader.GetJsonAsync("/api/v1/deployments");
        var watching = await reader.GetJsonAsync("/api/v1/deployments?state=watching");
        var cart = await reader.GetJsonAsync("/api/v1/deployments?service=cart&environment=production");
        var missing = await reader.GetAsync(new Uri("/api/v1/deployments/nope", UriKind.Relative));
        var badState = await reader.GetAsync(new Uri("/api/v1/deployments?state=sleeping", UriKind.Relative));

        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal(2, all.GetProperty("deployments").GetArrayLength());
        Assert.Equal("k-1", Assert.Single(watching.GetProperty("deployments").EnumerateArray()).GetProperty("deploymentId").GetString());
        Assert.Equal("k-1", Assert.Single(cart.GetProperty("deployments").EnumerateArray()).GetProperty("deploymentId").GetString());
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, badState.StatusCode);
    }

    [Fact]
    public async Task Deployments_List_PagesThroughEveryDeploymentNewestFirst()
    {
        // Only the newest page (at most 1,000) could be listed: every deployment before it was out of reach, and the CSV
        // export ended there without a word.
        await using var service = await TestService.StartAsync();
        var ids = new[] { "p-1", "p-2", "p-3", "p-4", "p-5" };
        foreach (var id in ids)
        {
            await service.Webhooks.SendEventAsync("predeploy", id);
        }

        using var reader = service.Reader();
        var seen = new List<string>();
        string? next = null;
        do
        {
            var page = await reader.GetJsonAsync($"/api/v1/deployments?limit=2{(next is null ? "" : "&after=" + Uri.EscapeDataString(next))}");
            seen.AddRange(page.GetProperty("deployments").EnumerateArray().Select(d => d.GetProperty("deploymentId").GetString()!));
            next = page.GetProperty("next").GetString();
        }
        while (next is not null && seen.Count < 10);

        Assert.Equal(ids.Reverse(), seen);

        reader.DefaultRequestHeaders.Accept.ParseAdd("text/csv");
        var csv = await reader.GetAsync(new Uri("/api/v1/deployments?service=checkout&limit=3", UriKind.Relative));
        var link = Assert.Single(csv.Headers.GetValues("Link"));
        Assert.Matches("^</api/v1/deployments\\?service=checkout&limit=3&after=[^>]+_p-3>; rel=\"next\"$", link);
        var rest = await reader.GetStringAsync(new Uri(link[1..link.IndexOf('>', StringComparison.Ordinal)], UriKind.Relative));
        Assert.Equal(["p-2", "p-1"], rest.Split("\r\n", StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(line => line.Split(',')[0]));

        foreach (var garbage in new[] { "abc", "2026-13-01T00:00:00.000000Z_x", "_p-3" })
        {
            var refused = await service.Reader().GetAsync(new Uri($"/api/v1/deployments?after={Uri.EscapeDataString(garbage)}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("is not a cursor", (await refused.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        // A cursor made by hand is only a place in the order: the page after the oldest possible one is empty.
        var made = await service.Reader().GetJsonAsync("/api/v1/deployments?after=0001-01-01T00:00:00.000000Z_");
        Assert.Empty(made.GetProperty("deployments").EnumerateArray());
    }

    [Fact]
    public async Task Deployments_List_ShowsEachDeploymentsLatestEvaluation()
    {
        await using var service = await TestService.StartAsync(
            ("checkout.yaml", TestRunbooks.Minimal("checkout")), ("cart.yaml", TestRunbooks.Minimal("cart")));
        await service.Webhooks.SendEventAsync("deployed", "evaluated");
        await service.Webhooks.SendEventAsync("deployed", "not-yet", service: "cart");
        await RolloutGate.Tests.Dashboard.EvaluationSeed.InsertAsync(service, "evaluated", "p95-latency", [0.30, 0.41], regressedFrom: 1);
        await RolloutGate.Tests.Dashboard.EvaluationSeed.InsertAsync(service, "evaluated", "error-rate", [0.01, 0.011]);

        using var reader = service.Reader();
        var list = await reader.GetJsonAsync("/api/v1/deployments");
        var byId = list.GetProperty("deployments").EnumerateArray().ToDictionary(d => d.GetProperty("deploymentId").GetString()!);

        var latest = byId["evaluated"].GetProperty("latestEvaluation");
        var metrics = latest.GetProperty("metrics").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);
        Assert.Equal(2, metrics.Count);
        Assert.Equal("regressed", metrics["p95-latency"].GetProperty("verdict").GetString());
        Assert.Equal(0.41, metrics["p95-latency"].GetProperty("value").GetDouble());
        Assert.Equal(JsonValueKind.Null, byId["not-yet"].GetProperty("latestEvaluation").ValueKind);
    }

    [Fact]
    public async Task Deployments_AcceptCsv_AnswersCsv()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "csv-1");
        using var reader = service.Reader();
        reader.DefaultRequestHeaders.Accept.ParseAdd("text/csv");

        var response = await reader.GetAsync(new Uri("/api/v1/deployments", UriKind.Relative));
        var lines = (await response.Content.ReadAsStringAsync()).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
        Assert.StartsWith("deploymentId,service,environment", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("csv-1,checkout,production,2.4.0,2.3.9,allowed,checkout,1,", lines[1], StringComparison.Ordinal);

        // CSV only when it is preferred: a lower quality than JSON's gets JSON.
        using var prefersJson = service.Reader();
        prefersJson.DefaultRequestHeaders.Accept.ParseAdd("text/csv;q=0.5, application/json");
        var json = await prefersJson.GetAsync(new Uri("/api/v1/deployments", UriKind.Relative));
        Assert.Equal("application/json", json.Content.Headers.ContentType?.MediaType);

        // q=0 is "not acceptable" (RFC 9110, 12.4.2), even when it names no other type.
        using var refusesCsv = service.Reader();
        refusesCsv.DefaultRequestHeaders.Accept.ParseAdd("text/csv;q=0");
        var notCsv = await refusesCsv.GetAsync(new Uri("/api/v1/deployments", UriKind.Relative));
        Assert.Equal("application/json", notCsv.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task DeploymentsAndAuditCsv_TextThatASpreadsheetWouldRun_StartsWithAQuote()
    {
        // A webhook's text lands in cells that people open in a spreadsheet, where =, +, -, @, a tab or a carriage
        // return at the start makes a formula (=cmd|..., =HYPERLINK(...)); a deploymentId may be any text but '/', '.' and '..'.
        await using var service = await TestService.StartAsync();
        var body = System.Text.Json.JsonSerializer.Serialize(new
        {
            @event = "predeploy", deploymentId = "=HYPERLINK(\"evil.example\")", service = "checkout", environment = "production",
            version = "+SUM(1,1)", previousVersion = "-2+3", initiator = "@SUM(1)", commit = "\tx",
        });
        Assert.Equal(HttpStatusCode.OK, (await service.Webhooks.SendAsync(body)).StatusCode);
        using var reader = service.Reader();
        reader.DefaultRequestHeaders.Accept.ParseAdd("text/csv");

        var deployments = (await (await reader.GetAsync(new Uri("/api/v1/deployments", UriKind.Relative))).Content.ReadAsStringAsync())
            .Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var events = (await (await reader.GetAsync(new Uri("/api/v1/audit/events?type=webhook.predeploy", UriKind.Relative))).Content.ReadAsStringAsync())
            .Split("\r\n", StringSplitOptions.RemoveEmptyEntries);

        Assert.StartsWith("\"'=HYPERLINK(\"\"evil.example\"\")\",checkout,production,\"'+SUM(1,1)\",'-2+3,allowed,checkout,1,", deployments[1], StringComparison.Ordinal);
        // The audit event's actor is the initiator; its id and time stay plain.
        Assert.Matches("^[0-9]+,[0-9-]+T[0-9:.]+Z,webhook.predeploy,\"'=HYPERLINK\\(\"\"evil.example\"\"\\)\",checkout,'@SUM\\(1\\),", events[1]);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("text/plain")]
    public async Task Stop_JsonBodyWithoutAJsonContentType_IsReadAsJson(string? contentType)
    {
        // CONTRACT section 5 names the body {"actor", "reason"}, not a content type: curl -d sends a form type, and the
        // webhook reads its JSON whatever the header says; the operator endpoints do the same.
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "ct-1");
        await service.Webhooks.SendEventAsync("deployed", "ct-1");
        using var @operator = service.Operator();
        var body = new ByteArrayContent(System.Text.Encoding.UTF8.GetBytes("{\"actor\":\"bob\",\"reason\":\"by curl\"}"));
        if (contentType is not null)
        {
            body.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
        }

        var stopped = await @operator.PostAsync(new Uri("/api/v1/deployments/ct-1/stop", UriKind.Relative), body);

        Assert.Equal(HttpStatusCode.OK, stopped.StatusCode);
        using var reader = service.Reader();
        var deployment = await reader.GetJsonAsync("/api/v1/deployments/ct-1");
        Assert.Equal("stopped", deployment.GetProperty("state").GetString());
        Assert.Equal("by curl", Assert.Single(deployment.GetProperty("decisions").EnumerateArray()).GetProperty("reason").GetString());
    }

    [Fact]
    public async Task Stop_BodyThatMeansTwoThingsOrNamesATypeIsRefusedReadably_ABomIsNotPartOfTheJson()
    {
        // The operator body is read as the webhook's is: a field given twice is refused (the last one won), a wrong type is
        // named in the sender's terms, not as a .NET type, and PowerShell's byte order mark is skipped.
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "op-json");
        await service.Webhooks.SendEventAsync("deployed", "op-json");
        using var @operator = service.Operator();
        async Task<(HttpStatusCode Status, string Text)> StopAsync(byte[] body)
        {
            var answer = await @operator.PostAsync(new Uri("/api/v1/deployments/op-json/stop", UriKind.Relative), new ByteArrayContent(body));
            return (answer.StatusCode, await answer.Content.ReadAsStringAsync());
        }

        var twice = await StopAsync("{\"actor\":\"alice\",\"actor\":\"mallory\",\"reason\":\"x\"}"u8.ToArray());
        var number = await StopAsync("{\"actor\":42,\"reason\":\"x\"}"u8.ToArray());
        Assert.Equal("watching", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'op-json'"));
        var withBom = await StopAsync([0xEF, 0xBB, 0xBF, .. "{\"actor\":\"alice\",\"reason\":\"from PowerShell\"}"u8.ToArray()]);

        Assert.Equal(HttpStatusCode.BadRequest, twice.Status);
        Assert.Contains("at $.actor: the field is given more than once", twice.Text, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, number.Status);
        Assert.Contains("at $.actor: expected a string", number.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("RolloutGate.", number.Text, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, withBom.Status);
        Assert.Equal("stopped", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'op-json'"));
    }

    [Fact]
    public async Task Stop_ActorLongerThanTheAuditIndexTakes_Refused400AndNothingChanged()
    {
        // audit_events.actor is indexed, and a btree entry over 2,704 bytes makes PostgreSQL refuse the row: 3,000 random
        // letters (which TOAST cannot compress below that) must be a clear 400, not a 500.
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "op-actor");
        await service.Webhooks.SendEventAsync("deployed", "op-actor");
        var random = new Random(7);
        var actor = new string([.. Enumerable.Range(0, 3000).Select(_ => (char)random.Next('!', '~'))]);
        using var @operator = service.Operator();

        var stop = await @operator.PostAsJsonAsync("/api/v1/deployments/op-actor/stop", new { actor, reason = "too long a name" });

        Assert.Equal(HttpStatusCode.BadRequest, stop.StatusCode);
        Assert.Equal("application/problem+json", stop.Content.Headers.ContentType?.MediaType);
        Assert.Equal("actor is 3000 characters long; at most 256 are accepted", (await stop.JsonAsync()).GetProperty("detail").GetString());
        Assert.Equal("watching", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'op-actor'"));
        Assert.Equal(0, await service.CountAsync("decisions", "deployment_id = 'op-actor'"));
    }

    [Fact]
    public async Task Deployment_Get_ShowsEveryFieldOfContractSection5()
    {
        // deploymentId, service, environment, version, previousVersion, state, runbook{name,version,sha256}, the watch
        // (startedAt, until, baseline{from,to}), the latest evaluation (none yet) and the decisions (at, kind, actor, reason).
        await using var service = await TestService.StartAsync();
        var predeploy = await (await service.Webhooks.SendEventAsync("predeploy", "shape-1")).JsonAsync();
        var before = DateTimeOffset.UtcNow;
        (await service.Webhooks.SendEventAsync("deployed", "shape-1")).EnsureSuccessStatusCode();
        (await service.Operator().PostAsJsonAsync("/api/v1/deployments/shape-1/stop", new { actor = "bob", reason = "noisy metric" })).EnsureSuccessStatusCode();
        using var reader = service.Reader();

        var deployment = await reader.GetJsonAsync("/api/v1/deployments/shape-1");

        Assert.Equal("shape-1", deployment.GetProperty("deploymentId").GetString());
        Assert.Equal("checkout", deployment.GetProperty("service").GetString());
        Assert.Equal("production", deployment.GetProperty("environment").GetString());
        Assert.Equal("2.4.0", deployment.GetProperty("version").GetString());
        Assert.Equal("2.3.9", deployment.GetProperty("previousVersion").GetString());
        Assert.Equal("stopped", deployment.GetProperty("state").GetString());
        var runbook = deployment.GetProperty("runbook");
        Assert.Equal("checkout", runbook.GetProperty("name").GetString());
        Assert.Equal(1, runbook.GetProperty("version").GetInt32());
        Assert.Equal(predeploy.GetProperty("runbook").GetProperty("sha256").GetString(), runbook.GetProperty("sha256").GetString());
        var watch = deployment.GetProperty("watch");
        var startedAt = watch.GetProperty("startedAt").GetDateTimeOffset();
        Assert.InRange(startedAt, before.AddMilliseconds(-1), DateTimeOffset.UtcNow);
        Assert.Equal(startedAt.AddHours(24), watch.GetProperty("until").GetDateTimeOffset());
        Assert.Equal(startedAt.AddHours(-24), watch.GetProperty("baseline").GetProperty("from").GetDateTimeOffset());
        Assert.Equal(startedAt, watch.GetProperty("baseline").GetProperty("to").GetDateTimeOffset());
        Assert.Equal(JsonValueKind.Null, deployment.GetProperty("latestEvaluation").ValueKind);
        var decision = Assert.Single(deployment.GetProperty("decisions").EnumerateArray());
        Assert.InRange(decision.GetProperty("at").GetDateTimeOffset(), startedAt, DateTimeOffset.UtcNow);
        Assert.Equal("stop", decision.GetProperty("kind").GetString());
        Assert.Equal("bob", decision.GetProperty("actor").GetString());
        Assert.Equal("noisy metric", decision.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task Deployment_Get_WatchShowsItsIntervalAndTheNextIntervalDue_AndHowLongThatHasWaitedOnTheServersClock()
    {
        // gate wait tells a watch that stopped evaluating (no replica, a stuck sweep) from one that is up to date by
        // these; the latest evaluation's at alone needs the interval and a clock, and the runner's clock is not the watch's.
        await using var service = await TestService.StartAsync();
        var now = DateTimeOffset.UtcNow;
        var deployedAt = new DateTimeOffset(now.Ticks / TimeSpan.TicksPerMinute * TimeSpan.TicksPerMinute, TimeSpan.Zero).AddMinutes(-10);
        var at = deployedAt.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(HttpStatusCode.Accepted, (await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "late-1", at: at))).StatusCode);
        await Dashboard.EvaluationSeed.InsertAsync(service, "late-1", "p95-latency", [0.2, 0.2]);
        Assert.Equal(HttpStatusCode.Accepted, (await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "fresh-1"))).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "ended-1"))).StatusCode);
        await service.DecideAsync("ended-1", "stop", "bob");
        using var reader = service.Reader();

        var late = (await reader.GetJsonAsync("/api/v1/deployments/late-1")).GetProperty("watch");
        var after = DateTimeOffset.UtcNow;
        var fresh = (await reader.GetJsonAsync("/api/v1/deployments/fresh-1")).GetProperty("watch");
        var ended = (await reader.GetJsonAsync("/api/v1/deployments/ended-1")).GetProperty("watch");
        var listed = (await reader.GetJsonAsync("/api/v1/deployments?state=watching"))
            .GetProperty("deployments").EnumerateArray().Single(d => d.GetProperty("deploymentId").GetString() == "late-1").GetProperty("watch");

        // Evaluated at deploy + 1 and + 2 minutes: the interval at + 3 minutes is due, and has waited about 7 minutes.
        Assert.Equal(60, late.GetProperty("intervalSeconds").GetDouble());
        var due = deployedAt.AddMinutes(3);
        Assert.Equal(due, late.GetProperty("nextEvaluationDue").GetDateTimeOffset());
        Assert.InRange(late.GetProperty("behindSeconds").GetInt64(), (long)(now - due).TotalSeconds, (long)(after - due).TotalSeconds);
        Assert.Equal(due, listed.GetProperty("nextEvaluationDue").GetDateTimeOffset());
        Assert.InRange(listed.GetProperty("behindSeconds").GetInt64(), (long)(now - due).TotalSeconds, (long)(DateTimeOffset.UtcNow - due).TotalSeconds);
        // Just deployed: its first interval (the first whole minute at least a minute after the deploy) is not due yet.
        var first = fresh.GetProperty("nextEvaluationDue").GetDateTimeOffset();
        Assert.InRange(first - fresh.GetProperty("startedAt").GetDateTimeOffset(), TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(2));
        Assert.Equal(0, fresh.GetProperty("behindSeconds").GetInt64());
        // A watch that ended keeps its interval, and nothing is due any more.
        Assert.Equal(60, ended.GetProperty("intervalSeconds").GetDouble());
        Assert.False(ended.TryGetProperty("nextEvaluationDue", out _));
        Assert.False(ended.TryGetProperty("behindSeconds", out _));
    }

    [Fact]
    public async Task Stop_WithOperatorToken_StopsAndRecordsTheDecision()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "s-1");
        await service.Webhooks.SendEventAsync("deployed", "s-1");
        using var reader = service.Reader();
        using var @operator = service.Operator();
        var body = new StringContent(JsonSerializer.Serialize(new { actor = "bob", reason = "noisy metric" }), System.Text.Encoding.UTF8, "application/json");

        var asReader = await reader.PostAsync(new Uri("/api/v1/deployments/s-1/stop", UriKind.Relative), body);
        var stopped = await @operator.PostAsync(new Uri("/api/v1/deployments/s-1/stop", UriKind.Relative), body);
        var dismissAfterStop = await @operator.PostAsync(new Uri("/api/v1/deployments/s-1/dismiss", UriKind.Relative), body);
        var noActor = await @operator.PostAsync(new Uri("/api/v1/deployments/s-1/rollback", UriKind.Relative),
            new StringContent("{}", System.Text.Encoding.UTF8, "application/json"));
        var deployment = await reader.GetJsonAsync("/api/v1/deployments/s-1");

        Assert.Equal(HttpStatusCode.Unauthorized, asReader.StatusCode);
        Assert.Equal(HttpStatusCode.OK, stopped.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, dismissAfterStop.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, noActor.StatusCode);
        Assert.Equal("stopped", deployment.GetProperty("state").GetString());
        var decision = Assert.Single(deployment.GetProperty("decisions").EnumerateArray());
        Assert.Equal("stop", decision.GetProperty("kind").GetString());
        Assert.Equal("bob", decision.GetProperty("actor").GetString());
        Assert.Equal("noisy metric", decision.GetProperty("reason").GetString());
        // The refused dismiss changed nothing but is on the record: who asked, for what, and why not.
        var refused = await service.Database.ScalarAsync<string>(
            "SELECT actor || ' ' || (data::jsonb->>'kind') || ' ' || (data::jsonb->>'source') || ': ' || (data::jsonb->>'detail') FROM audit_events WHERE type = 'decision.refused' AND deployment_id = 's-1'");
        Assert.Equal("bob dismiss http: a deployment in state 'stopped' cannot take 'dismiss'", refused);
    }

    [Theory]
    [InlineData("GET", "/api/v1/nothing-here", 404)]
    [InlineData("DELETE", "/api/v1/deployments", 405)]
    public async Task UnknownRouteOrMethod_AnswersProblemJson_EvenToACsvRequest(string method, string path, int status)
    {
        await using var service = await TestService.StartAsync();
        using var reader = service.Reader();
        foreach (var accept in new[] { "application/json", "text/csv", "text/html" })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative));
            request.Headers.Accept.ParseAdd(accept);

            using var response = await reader.SendAsync(request);

            Assert.Equal(status, (int)response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal(status, (await response.JsonAsync()).GetProperty("status").GetInt32());
        }
    }

    /// <summary>A GET of <paramref name="path"/> refused with 400, as application/problem+json whose detail holds <paramref name="detail"/>.</summary>
    private static async Task AssertRefused400Async(HttpClient client, string path, string detail)
    {
        var response = await client.GetAsync(new Uri(path, UriKind.Relative));
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{path}: {(int)response.StatusCode}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(detail, (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }
}
