using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using RolloutGate.Slack;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;
using RolloutGate.Webhooks;

namespace RolloutGate.Tests.Api;

/// <summary>
/// CONTRACT section 4: no input yields a 500, and errors are application/problem+json. Seeded, so a failure repeats:
/// correctly signed (or token-bearing) requests with hostile bodies (wrong JSON types, nulls, huge and deep values,
/// invalid UTF-8, duplicate keys, control characters, odd unicode, dates out of range), hostile headers and hostile query
/// strings, against every endpoint of the real service. Every answer is below 500, every 4xx of the JSON API is
/// problem+json with a detail, a refused request changes nothing (no deployment, no decision, the watched one still
/// watching, the audit chain whole), and the log holds no unhandled exception.
/// </summary>
public sealed class HostileInputFuzzTests
{
    private const int Seed = 20261206;
    private const string Watched = "gh-fuzz-watched";

    /// <summary>Of about 3,200 requests, how many one run sends (the seed fixes which): some 15 s on a busy machine.</summary>
    private const int DefaultSample = 200;

    private static readonly string[] HostileStrings =
    [
        "", " ", "\u0000", "a\u0000b", "\u0001\u001B[31m", "\r\n", "\t", "\u202Eevil", "\u200B", "日本語", "😀", "\uFFFD", "\uD800", "\uDC00x",
        "../../etc/passwd", "a/b", "%2F", "%00", "<script>alert(1)</script>", "' OR 1=1 --", "${jndi:x}", "{{ environment }}",
        new string('x', 257), new string('x', 10_000), new string('é', 5_000),
        "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "2026-13-45T99:99:99Z", "2026-11-21T10:00:00+14:00",
        "2026-11-21T10:00:00-23:59", "2026-11-21", "now", "1700000000", "-1", "NaN", "Infinity", "1e309", "true", "null",
    ];

    /// <summary>JSON values of every kind, raw.</summary>
    private static readonly string[] HostileJson =
    [
        "null", "true", "false", "0", "-1", "1.5", "1e308", "-1e308", "9223372036854775808", "123456789012345678901234567890",
        "[]", "{}", "[null]", "[1,2]", "{\"a\":1}", "\"\"", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    ];

    [Fact]
    public async Task HostileRequests_NeverA5xx_ProblemJsonForEvery4xx_AndChangeNothing()
    {
        await using var test = await SlackTestService.StartAsync();
        var service = test.Service;
        await test.WatchAsync(Watched);
        var random = new Random(Seed);
        var failures = new List<string>();
        using var reader = service.Reader();
        using var @operator = service.Operator();

        async Task Expect(string what, Func<Task<HttpResponseMessage>> send, bool html = false)
        {
            var before = await CountsAsync(service);
            HttpResponseMessage response;
            try
            {
                response = await send();
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                failures.Add($"{what}: the request threw {ex.GetType().Name}: {ex.Message}");
                return;
            }

            using (response)
            {
                var status = (int)response.StatusCode;
                var body = await response.Content.ReadAsStringAsync();
                if (status >= 500)
                {
                    failures.Add($"{what}: {status} {Shorten(body)}");
                    return;
                }

                if (status >= 400 && !html && !IsProblem(response, body))
                {
                    failures.Add($"{what}: {status} is not problem+json with a detail: {response.Content.Headers.ContentType} {Shorten(body)}");
                }

                if (status >= 400 && await CountsAsync(service) != before)
                {
                    failures.Add($"{what}: refused with {status} but changed the database ({before} before, {await CountsAsync(service)} after)");
                }
            }
        }

        var cases = new List<(string What, Func<Task<HttpResponseMessage>> Send, bool Html)>();
        void Add(string what, Func<Task<HttpResponseMessage>> send, bool html = false) => cases.Add((what, send, html));

        // The CD webhook: each field of a valid body swapped for a hostile value, under each event.
        var events = new[] { "predeploy", "deployed", "rolledback", "cancelled" };
        var fields = new[] { "event", "deploymentId", "service", "environment", "version", "previousVersion", "initiator", "commit", "pipelineUrl", "at" };
        var n = 0;
        foreach (var field in fields)
        {
            foreach (var value in HostileStrings.Select(s => JsonSerializer.Serialize(s)).Concat(HostileJson))
            {
                var @event = events[random.Next(events.Length)];
                var body = WebhookBody(@event, $"gh-fuzz-{n++}");
                body[field] = "\uE000";
                var text = body.ToJsonString().Replace("\"\\uE000\"", value, StringComparison.Ordinal);
                // A valid but odd value (unicode in a version) may be accepted; a refusal changes nothing.
                Add($"webhook {@event} {field}={Shorten(value)}", () => SendWebhookAsync(service.Client, Encoding.UTF8.GetBytes(text)));
            }
        }

        // Whole bodies that are not one JSON object as the contract writes it.
        var valid = WebhookBody("predeploy", "gh-fuzz-body").ToJsonString();
        byte[][] bodies =
        [
            [], "null"u8.ToArray(), "[]"u8.ToArray(), "\"predeploy\""u8.ToArray(), "{"u8.ToArray(), Encoding.UTF8.GetBytes(valid[..^1]),
            Encoding.UTF8.GetBytes(valid.Replace("\"event\":\"predeploy\"", "\"event\":\"predeploy\",\"event\":\"deployed\"", StringComparison.Ordinal)),
            Encoding.UTF8.GetBytes(valid.Replace("\"service\":", "\"Service\":\"other\",\"service\":", StringComparison.Ordinal)),
            [.. "{\"event\":\"predeploy\",\"deploymentId\":\"gh-"u8.ToArray(), 0xC3, 0x28, 0xFF, 0xFE, .. "\"}"u8.ToArray()],
            [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(valid)],
            Encoding.Unicode.GetBytes(valid),
            Encoding.Latin1.GetBytes(valid.Replace("alice", "Zoë", StringComparison.Ordinal)),
            Encoding.UTF8.GetBytes(new string('[', 100_000)),
            Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("{\"a\":", 10_000)) + "1" + new string('}', 10_000)),
            Encoding.UTF8.GetBytes(valid.Replace("}", ",\"extra\":" + new string('[', 1000) + new string(']', 1000) + "}", StringComparison.Ordinal)),
            Encoding.UTF8.GetBytes(valid.Replace("}", ",\"pad\":\"" + new string('x', 70_000) + "\"}", StringComparison.Ordinal)),
            Encoding.UTF8.GetBytes(valid + valid),
            Encoding.UTF8.GetBytes("// comment\n" + valid),
            Encoding.UTF8.GetBytes(valid.Replace("\"", "'", StringComparison.Ordinal)),
            Encoding.UTF8.GetBytes(valid.Replace(":", ": NaN, \"x\":", StringComparison.Ordinal)),
        ];
        foreach (var body in bodies)
        {
            Add($"webhook body {Shorten(Encoding.UTF8.GetString(body))}", () => SendWebhookAsync(service.Client, body));
        }

        // Hostile headers around a valid body.
        var bytes = Encoding.UTF8.GetBytes(WebhookBody("predeploy", "gh-fuzz-headers").ToJsonString());
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        var good = WebhookAuthenticator.SignatureHeaderValue(RolloutGateHost.WebhookSecret, now, bytes);
        var headerCases = new (string What, Action<HttpRequestMessage> Set)[]
        {
            ("two signatures, the good one first", r => r.Headers.TryAddWithoutValidation("X-RolloutGate-Signature", [good, "sha256=00"])),
            ("two signatures, the good one last", r => r.Headers.TryAddWithoutValidation("X-RolloutGate-Signature", ["sha256=00", good])),
            ("the good signature twice", r => r.Headers.TryAddWithoutValidation("X-RolloutGate-Signature", [good, good])),
            ("two timestamps", r => r.Headers.TryAddWithoutValidation("X-RolloutGate-Timestamp", now)),
            ("a timestamp of 10,000 digits", r => Replace(r, "X-RolloutGate-Timestamp", new string('9', 10_000))),
            ("a timestamp of -1", r => Replace(r, "X-RolloutGate-Timestamp", "-1")),
            ("a timestamp of 1e3", r => Replace(r, "X-RolloutGate-Timestamp", "1e3")),
            ("a signature of 20,000 characters", r => Replace(r, "X-RolloutGate-Signature", "sha256=" + new string('a', 20_000))),
            ("a signature without sha256=", r => Replace(r, "X-RolloutGate-Signature", good["sha256=".Length..])),
            ("a signature in upper case hex", r => Replace(r, "X-RolloutGate-Signature", "sha256=" + good["sha256=".Length..].ToUpperInvariant())),
            ("a delivery id of 10,000 characters", r => Replace(r, "X-RolloutGate-Delivery", new string('d', 10_000))),
            ("two delivery ids", r => r.Headers.TryAddWithoutValidation("X-RolloutGate-Delivery", "second")),
            ("a delivery id with unicode", r => Replace(r, "X-RolloutGate-Delivery", "dé-livr😀")),
            ("a delivery id query and header", r => r.RequestUri = new Uri("/api/v1/deployments?delivery=x&delivery=y", UriKind.Relative)),
            ("two content types", r => r.Content!.Headers.TryAddWithoutValidation("Content-Type", "text/plain")),
            ("charset latin1", r => r.Content!.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json; charset=latin1")),
            ("charset nonsense", r => r.Content!.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json; charset=x-nope")),
            ("a form content type", r => r.Content!.Headers.ContentType = MediaTypeHeaderValue.Parse("application/x-www-form-urlencoded")),
            ("multipart without a boundary", r => r.Content!.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data")),
            ("bearer and signature", r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", RolloutGateHost.WebhookToken)),
            ("a wrong bearer of 8,000 characters", r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", new string('t', 8_000))),
            ("a Basic authorization", r => r.Headers.Authorization = new AuthenticationHeaderValue("Basic", "dXNlcjpwYXNz")),
            ("a bearer without a token", r => r.Headers.TryAddWithoutValidation("Authorization", "Bearer")),
            ("two authorizations", r => r.Headers.TryAddWithoutValidation("Authorization", ["Bearer a", "Bearer " + RolloutGateHost.WebhookToken])),
            ("a header of 16,000 characters", r => r.Headers.TryAddWithoutValidation("X-Padding", new string('p', 16_000))),
        };
        foreach (var (what, set) in headerCases)
        {
            Add($"webhook with {what}", () =>
            {
                var request = WebhookRequest(bytes, $"fuzz-{what}", now, good);
                set(request);
                return service.Client.SendAsync(request);
            });
        }

        // Operator decisions: hostile ids, and hostile bodies on a deployment that cannot be dismissed (it is watching).
        // A NUL in the path is refused by the in-process test server's client before it is sent (Kestrel refuses it with 400).
        foreach (var id in HostileStrings.Where(s => s.Length > 0 && !s.Contains('\0', StringComparison.Ordinal) && s != "%00").Select(Uri.EscapeDataString).Concat(["%", "%ZZ", "%C3%28", "..", "%2E%2E", "a%2Fb"]))
        {
            foreach (var kind in new[] { "stop", "rollback", "dismiss" })
            {
                Add($"POST {kind} of id {Shorten(id)}", () => @operator.SendAsync(Json(HttpMethod.Post, $"/api/v1/deployments/{id}/{kind}", """{"actor":"alice","reason":"fuzz"}""")));
            }

            Add($"GET deployment {Shorten(id)}", () => reader.GetAsync(new Uri($"/api/v1/deployments/{id}", UriKind.Relative)));
            Add($"GET dashboard deployment {Shorten(id)}", () => reader.GetAsync(new Uri($"/dashboard/deployments/{id}?token={RolloutGateHost.ReaderToken}", UriKind.Relative)), html: true);
            Add($"GET decisions.md of runbook {Shorten(id)}", () => reader.GetAsync(new Uri($"/api/v1/runbooks/{id}/decisions.md", UriKind.Relative)));
        }

        var decisionBodies = HostileJson
            .Concat(HostileStrings.SelectMany(s => new[] { $$"""{"actor":{{JsonSerializer.Serialize(s)}},"reason":"fuzz"}""", $$"""{"actor":"alice","reason":{{JsonSerializer.Serialize(s)}}}""" }))
            .Concat(HostileJson.Select(j => $$"""{"actor":{{j}},"reason":{{j}}}"""))
            .Concat(["""{"actor":"alice","actor":"bob","reason":"x"}""", """{"actor":"alice","reason":"x","extra":[[[[[]]]]]}""", "{", "", "\u0000"]);
        foreach (var body in decisionBodies)
        {
            Add($"POST dismiss with {Shorten(body)}", () => @operator.SendAsync(Json(HttpMethod.Post, $"/api/v1/deployments/{Watched}/dismiss", body)));
        }

        // Slack, correctly signed over odd bodies.
        var payloads = HostileJson
            .Concat(HostileStrings.Select(s => JsonSerializer.Serialize(s)))
            .Concat(HostileJson.SelectMany(j => new[]
            {
                $$"""{"type":{{j}},"user":{"id":"{{SlackTestService.Owner}}"},"actions":[{"action_id":"stop","value":"{{Watched}}"}]}""",
                $$"""{"type":"block_actions","user":{{j}},"actions":[{"action_id":"dismiss","value":"{{Watched}}"}]}""",
                $$"""{"type":"block_actions","user":{"id":{{j}}},"actions":[{"action_id":"dismiss","value":"{{Watched}}"}]}""",
                $$"""{"type":"block_actions","user":{"id":"{{SlackTestService.Owner}}"},"actions":{{j}}}""",
                $$"""{"type":"block_actions","user":{"id":"{{SlackTestService.Owner}}"},"actions":[{"action_id":{{j}},"value":"{{Watched}}"}]}""",
                $$"""{"type":"block_actions","user":{"id":"{{SlackTestService.Owner}}"},"channel":{{j}},"actions":[{"action_id":"dismiss","value":"{{Watched}}"}]}""",
                $$"""{"type":"block_actions","user":{"id":"{{SlackTestService.Owner}}"},"actions":[{"action_id":"dismiss","value":{{j}}}]}""",
            }))
            .Concat(HostileStrings.Select(s => $$"""{"type":"block_actions","user":{"id":"{{SlackTestService.Owner}}"},"actions":[{"action_id":"dismiss","value":{{JsonSerializer.Serialize(s)}}}]}"""));
        foreach (var payload in payloads)
        {
            Add($"slack interaction {Shorten(payload)}", () => test.PostSignedAsync("/slack/interactions", "payload=" + Uri.EscapeDataString(payload)));
        }

        string[] forms =
        [
            "", "payload", "payload=", "payload=%", "payload=%ZZ", "payload=%C3%28", "=x", "&&&", "payload=1&payload=2", new string('&', 10_000),
            "payload=" + Uri.EscapeDataString(new string('[', 20_000)), "{\"type\":\"block_actions\"}", "payload=%FF%FE",
        ];
        foreach (var form in forms)
        {
            Add($"slack interaction form {Shorten(form)}", () => test.PostSignedAsync("/slack/interactions", form));
            Add($"slack command form {Shorten(form)}", () => test.PostSignedAsync("/slack/commands", form));
        }

        foreach (var text in HostileStrings.SelectMany(s => new[] { s, $"status {s}", $"stop {s}", $"dismiss {Watched} {s}", $"{s} {Watched}" }))
        {
            Add($"slash command {Shorten(text)}", () => test.CommandAsync(SlackTestService.Stranger, text));
        }

        foreach (var user in HostileStrings)
        {
            Add($"slash command by {Shorten(user)}", () => test.CommandAsync(user, $"status {Watched}"));
        }

        // The inbox's decision form and the Slack endpoints under odd content types, the operator token given.
        string[] contentTypes =
        [
            "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=x-nope", "application/x-www-form-urlencoded; charset=utf-16",
            "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=abc", "multipart/form-data; boundary=" + new string('b', 100),
            "text/plain", "application/json", "garbage",
        ];
        string[] inboxForms =
        [
            "", "%", "operatorToken", $"operatorToken={RolloutGateHost.OperatorToken}", $"operatorToken={RolloutGateHost.OperatorToken}&kind=dismiss",
            $"operatorToken={RolloutGateHost.OperatorToken}&kind=dismiss&actor={new string('a', 10_000)}",
            $"operatorToken={RolloutGateHost.OperatorToken}&kind=dismiss&actor=a%00b", $"operatorToken={RolloutGateHost.OperatorToken}&kind=dismiss&kind=stop&actor=alice",
            $"operatorToken={RolloutGateHost.OperatorToken}&kind=dismiss&actor=alice&reason={new string('r', 60_000)}",
            $"operatorToken={RolloutGateHost.OperatorToken}&kind=dismiss&actor=%E2%80%AE%F0%9F%98%80&reason=%C3%28",
            "--abc\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\ndismiss\r\n--abc", string.Concat(Enumerable.Repeat("a=1&", 5_000)),
        ];
        foreach (var contentType in contentTypes)
        {
            foreach (var form in inboxForms)
            {
                foreach (var id in new[] { Watched, "gh-unknown", Uri.EscapeDataString("日本語😀") })
                {
                    Add($"inbox decide {id} as {contentType}: {Shorten(form)}", () =>
                    {
                        var content = new StringContent(form);
                        content.Headers.Remove("Content-Type");
                        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
                        return service.Client.PostAsync(new Uri($"/inbox/{id}/decide", UriKind.Relative), content);
                    }, html: true);
                }
            }

            foreach (var path in new[] { "/slack/interactions", "/slack/commands" })
            {
                Add($"slack {path} as {contentType}", () =>
                {
                    var form = $"user_id={SlackTestService.Owner}&command=%2Frolloutgate&text=status%20{Watched}";
                    var ts = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
                    var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative)) { Content = new StringContent(form) };
                    request.Content.Headers.Remove("Content-Type");
                    request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
                    request.Headers.Add(SlackRequestVerifier.TimestampHeader, ts);
                    request.Headers.Add(SlackRequestVerifier.SignatureHeader, SlackRequestVerifier.Signature(SlackTestService.SigningSecret, ts, Encoding.UTF8.GetBytes(form)));
                    return service.Client.SendAsync(request);
                });
            }
        }

        // Query strings of every list, report and page.
        string[] lists =
        [
            "/api/v1/deployments", "/api/v1/audit/events", "/api/v1/reports/summary", "/api/v1/reports/alert-quality", "/dashboard", "/inbox",
        ];
        string[] parameters = ["limit", "after", "before", "from", "to", "service", "environment", "state", "deploymentId", "actor", "type", "decided", "token"];
        string[] values =
        [
            "-1", "0", "1", "1001", "2147483648", "99999999999999999999", "1.5", "abc", "", "%", "%ZZ", "%C3%28", "%00", "a%00b", "%FF",
            "9999-12-31", "9999-12-31T23:59:59Z", "0001-01-01", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00%2B14:00", "9999-12-31T23:59:59-14:00",
            "2026-02-30", "garbage", "AAAA", "MjAyNi0xMS0yMVQxMDowMDowMFp8eA", "%2F", "x%2Cy", Uri.EscapeDataString(new string('x', 10_000)),
            Uri.EscapeDataString("😀\u202E"), "true", "null", "[]",
        ];
        foreach (var list in lists)
        {
            var html = !list.StartsWith("/api/", StringComparison.Ordinal);
            foreach (var parameter in parameters)
            {
                foreach (var value in values)
                {
                    var token = html ? $"token={RolloutGateHost.ReaderToken}&" : "";
                    Add($"GET {list}?{parameter}={Shorten(value)}", () => reader.GetAsync(new Uri($"{list}?{token}{parameter}={value}", UriKind.Relative)), html);
                }

                Add($"GET {list}?{parameter}[]=a&{parameter}=b", () => reader.GetAsync(new Uri($"{list}?{parameter}[]=a&{parameter}=1&{parameter}=2", UriKind.Relative)), html);
            }

            foreach (var accept in new[] { "text/csv", "text/csv; charset=latin1", "*/*", "application/xml", "text/csv;q=0.5, application/json", "garbage" })
            {
                Add($"GET {list}?limit=-1 Accept {accept}", () =>
                {
                    var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"{list}?limit=-1&from=garbage", UriKind.Relative));
                    request.Headers.TryAddWithoutValidation("Accept", accept);
                    return reader.SendAsync(request);
                }, html);
            }
        }

        // A seeded sample keeps the suite quick; ROLLOUTGATE_TEST_FUZZ_REQUESTS=all (or a number) sends more.
        var sample = Environment.GetEnvironmentVariable("ROLLOUTGATE_TEST_FUZZ_REQUESTS") is { } wanted
            ? wanted == "all" ? cases.Count : int.Parse(wanted, CultureInfo.InvariantCulture)
            : DefaultSample;
        foreach (var (what, send, html) in cases.OrderBy(_ => random.Next()).Take(sample))
        {
            await Expect(what, send, html);
        }

        Assert.True(failures.Count == 0, $"{failures.Count} hostile requests broke the promise:{Environment.NewLine}{string.Join(Environment.NewLine, failures.Take(40))}");

        Assert.Equal("watching", await test.StateAsync(Watched));
        var verify = await reader.GetJsonAsync("/api/v1/audit/verify");
        Assert.True(verify.GetProperty("ok").GetBoolean(), verify.ToString());
        var unhandled = service.Host.Logs.Lines.Where(line =>
            line.Contains("unhandled exception", StringComparison.OrdinalIgnoreCase)
            || line.StartsWith("Critical", StringComparison.Ordinal)
            || (line.StartsWith("Error Microsoft.AspNetCore", StringComparison.Ordinal))).ToList();
        Assert.True(unhandled.Count == 0, string.Join(Environment.NewLine, unhandled.Take(5).Select(Shorten)));
    }

    /// <summary>
    /// A path no endpoint has, or a method an endpoint does not take, is a problem that says which. The detail was missing:
    /// a deployment id of ".." (normalised away, so /api/v1/deployments/../stop is /api/v1/stop) got a bare "Not Found".
    /// </summary>
    [Fact]
    public async Task UnknownPathOrMethod_IsAProblemWithADetail()
    {
        await using var service = await TestService.StartAsync();
        using var @operator = service.Operator();

        using var dotted = await @operator.SendAsync(Json(HttpMethod.Post, "/api/v1/deployments/../stop", """{"actor":"alice","reason":"x"}"""));
        using var method = await @operator.SendAsync(Json(HttpMethod.Put, "/api/v1/deployments/gh-1/stop", """{"actor":"alice","reason":"x"}"""));

        Assert.Equal(HttpStatusCode.NotFound, dotted.StatusCode);
        Assert.Equal("application/problem+json", dotted.Content.Headers.ContentType?.MediaType);
        Assert.Equal("nothing answers POST /api/v1/stop; README.md lists the endpoints", (await dotted.JsonAsync()).GetProperty("detail").GetString());
        Assert.Equal(HttpStatusCode.MethodNotAllowed, method.StatusCode);
        Assert.Equal("application/problem+json", method.Content.Headers.ContentType?.MediaType);
        Assert.Equal("/api/v1/deployments/gh-1/stop does not take PUT", (await method.JsonAsync()).GetProperty("detail").GetString());
    }

    [Fact]
    public async Task UnknownLongPath_WithAnEmojiWhereItsQuoteIsCut_TheDetailEndsBeforeTheEmoji()
    {
        // The path's 200th character is the first half of an emoji: the detail quoted half of it, which JSON writes as U+FFFD.
        await using var service = await TestService.StartAsync();
        using var reader = service.Reader();
        var path = "/" + new string('a', 198) + "\U0001F600" + new string('b', 50);

        using var response = await reader.GetAsync(new Uri(path, UriKind.Relative));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal($"nothing answers GET /{new string('a', 198)}…; README.md lists the endpoints", (await response.JsonAsync()).GetProperty("detail").GetString());
    }

    private static JsonObject WebhookBody(string @event, string deploymentId) =>
        JsonNode.Parse(WebhookClient.Body(@event, deploymentId))!.AsObject();

    private static Task<HttpResponseMessage> SendWebhookAsync(HttpClient client, byte[] body)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        return client.SendAsync(WebhookRequest(body, Guid.NewGuid().ToString(), now, WebhookAuthenticator.SignatureHeaderValue(RolloutGateHost.WebhookSecret, now, body)));
    }

    private static HttpRequestMessage WebhookRequest(byte[] body, string delivery, string timestamp, string signature)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/api/v1/deployments", UriKind.Relative)) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.TryAddWithoutValidation("X-RolloutGate-Delivery", delivery);
        request.Headers.TryAddWithoutValidation("X-RolloutGate-Timestamp", timestamp);
        request.Headers.TryAddWithoutValidation("X-RolloutGate-Signature", signature);
        return request;
    }

    private static void Replace(HttpRequestMessage request, string header, string value)
    {
        request.Headers.Remove(header);
        request.Headers.TryAddWithoutValidation(header, value);
    }

    private static HttpRequestMessage Json(HttpMethod method, string path, string body) =>
        new(method, new Uri(path, UriKind.Relative)) { Content = new StringContent(body, Encoding.UTF8, "application/json") };

    private static bool IsProblem(HttpResponseMessage response, string body)
    {
        if (response.Content.Headers.ContentType?.MediaType != "application/problem+json")
        {
            return false;
        }

        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.TryGetProperty("detail", out var detail) && detail.GetString() is { Length: > 0 };
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Rows a refused request must not add: deployments, decisions, and the watched deployment's state.</summary>
    private static Task<string?> CountsAsync(TestService service) =>
        service.Database.ScalarAsync<string>(
            $"SELECT (SELECT count(*) FROM deployments) || ' deployments, ' || (SELECT count(*) FROM decisions) || ' decisions, ' || (SELECT state FROM deployments WHERE id = '{Watched}')");

    private static string Shorten(string text) => text.Length > 80 ? $"{text[..80]}… ({text.Length} characters)" : text;
}
