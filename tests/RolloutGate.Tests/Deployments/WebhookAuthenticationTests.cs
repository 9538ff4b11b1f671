using System.Net;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Deployments;

public sealed class WebhookAuthenticationTests
{
    [Fact]
    public async Task Predeploy_ValidSignature_Allows()
    {
        await using var service = await TestService.StartAsync();

        var response = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "gh-run-1"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await response.JsonAsync();
        Assert.Equal("allow", json.GetProperty("verdict").GetString());
        Assert.Equal("gh-run-1", json.GetProperty("deploymentId").GetString());
        Assert.Equal("checkout", json.GetProperty("runbook").GetProperty("name").GetString());
        Assert.Equal(1, json.GetProperty("runbook").GetProperty("version").GetInt32());
        Assert.Equal(64, json.GetProperty("runbook").GetProperty("sha256").GetString()!.Length);
        Assert.Equal(0, json.GetProperty("checks").GetArrayLength());
    }

    [Fact]
    public async Task Predeploy_BearerWebhookToken_Allows()
    {
        await using var service = await TestService.StartAsync();

        var response = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "gh-run-2"), bearer: RolloutGateHost.WebhookToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    public static TheoryData<string> Forgeries => ["wrong-secret", "tampered-body", "stale", "future", "missing-headers", "wrong-token", "reader-token", "not-hex", "no-prefix", "bearer-stale", "bearer-future"];

    [Theory]
    [MemberData(nameof(Forgeries))]
    public async Task Predeploy_NotAuthentic_Refused401AndNothingWritten(string forgery)
    {
        await using var service = await TestService.StartAsync();
        var body = WebhookClient.Body("predeploy", "gh-run-3");
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var auditBefore = await service.CountAsync("audit_events");

        var response = forgery switch
        {
            "wrong-secret" => await service.Webhooks.SendAsync(body, secret: "not-the-secret"),
            "tampered-body" => await service.Webhooks.SendAsync(body.Replace("alice", "mallory", StringComparison.Ordinal),
                signatureOverride: RolloutGate.Webhooks.WebhookAuthenticator.SignatureHeaderValue(RolloutGateHost.WebhookSecret, now.ToString(System.Globalization.CultureInfo.InvariantCulture), System.Text.Encoding.UTF8.GetBytes(body)),
                timestamp: now),
            "stale" => await service.Webhooks.SendAsync(body, timestamp: now - 330),
            "future" => await service.Webhooks.SendAsync(body, timestamp: now + 330),
            "missing-headers" => await service.Webhooks.SendAsync(body, sign: false),
            "wrong-token" => await service.Webhooks.SendAsync(body, bearer: "guess"),
            "reader-token" => await service.Webhooks.SendAsync(body, bearer: RolloutGateHost.ReaderToken),
            "bearer-stale" => await service.Webhooks.SendAsync(body, bearer: RolloutGateHost.WebhookToken, timestamp: now - 600),
            "bearer-future" => await service.Webhooks.SendAsync(body, bearer: RolloutGateHost.WebhookToken, timestamp: now + 600),
            "not-hex" => await service.Webhooks.SendAsync(body, signatureOverride: "sha256=zz"),
            "no-prefix" => await service.Webhooks.SendAsync(body, signatureOverride: new string('a', 64)),
            _ => throw new ArgumentOutOfRangeException(nameof(forgery)),
        };

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(0, await service.CountAsync("deployments"));
        Assert.Equal(0, await service.CountAsync("webhook_deliveries"));
        Assert.Equal(auditBefore, await service.CountAsync("audit_events"));
    }

    [Fact]
    public async Task Predeploy_BearerWithAFreshTimestamp_Accepted_AndItsRetryGetsTheFirstAnswer()
    {
        await using var service = await TestService.StartAsync();
        var body = WebhookClient.Body("predeploy", "gh-run-6");
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        var first = await service.Webhooks.SendAsync(body, deliveryId: "bearer-timed", bearer: RolloutGateHost.WebhookToken, timestamp: now - 240);
        var retry = await service.Webhooks.SendAsync(body, deliveryId: "bearer-timed", bearer: RolloutGateHost.WebhookToken, timestamp: now);
        var stale = await service.Webhooks.SendAsync(body, deliveryId: "bearer-timed", bearer: RolloutGateHost.WebhookToken, timestamp: now - 600);

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, retry.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Unauthorized, stale.StatusCode);
        Assert.Contains("X-RolloutGate-Timestamp is", (await stale.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, await service.CountAsync("deployments"));
        Assert.Equal(1, await service.CountAsync("webhook_deliveries"));
    }

    [Theory]
    [InlineData("bearer")]
    [InlineData("signed")]
    [InlineData("signed, empty header")]
    public async Task Webhook_WithoutADeliveryId_IsTheDeliveryOfItsBytes_SoARetryGetsTheFirstAnswer(string sender)
    {
        // CONTRACT section 4 lists X-RolloutGate-Delivery among the headers but no refusal for its absence (a pipeline
        // that sends only its bearer token, say): the body's hash stands in for the id, so the idempotency holds.
        await using var service = await TestService.StartAsync();
        var predeploy = WebhookClient.Body("predeploy", "gh-run-7");
        Task<HttpResponseMessage> SendAsync(string body) => sender == "signed, empty header"
            ? service.Webhooks.SendAsync(body, deliveryId: "")
            : service.Webhooks.SendAsync(body, bearer: sender == "bearer" ? RolloutGateHost.WebhookToken : null, withDeliveryId: false);

        var first = await SendAsync(predeploy);
        var retry = await SendAsync(predeploy);
        var deployed = await SendAsync(WebhookClient.Body("deployed", "gh-run-7"));

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("allow", (await first.JsonAsync()).GetProperty("verdict").GetString());
        Assert.Equal(HttpStatusCode.OK, retry.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Accepted, deployed.StatusCode);
        Assert.Equal(1, await service.CountAsync("deployments"));
        var predeployId = "body-sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(predeploy)));
        Assert.Equal(1, await service.CountAsync("webhook_deliveries", $"delivery_id = '{predeployId}' AND event = 'predeploy'"));
        Assert.Equal(2, await service.CountAsync("webhook_deliveries", "delivery_id LIKE 'body-sha256:%'"));
        Assert.Equal(1, await service.CountAsync("audit_events", $"type = 'webhook.predeploy' AND data::jsonb->>'deliveryId' = '{predeployId}'"));
    }

    [Fact]
    public async Task Predeploy_TimestampWithinWindow_Accepted()
    {
        await using var service = await TestService.StartAsync();

        var response = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "gh-run-4"), timestamp: DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 240);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Predeploy_SignedWithAPreviousSecret_AcceptedCountedAndLoggedWithItsServiceWhileAnyOtherSecretIsRefused()
    {
        const string previous = "the-secret-before-7c1d";
        await using var service = await TestService.StartAsync(
            [("checkout.yaml", TestRunbooks.Minimal())],
            new Dictionary<string, string?> { ["RolloutGate:Webhook:PreviousSecrets:0"] = "", ["RolloutGate:Webhook:PreviousSecrets:1"] = previous });

        var current = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "rotating-1"), deliveryId: "with-current");
        var old = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "rotating-2"), deliveryId: "with-previous", secret: previous);
        var other = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "rotating-3"), secret: "neither-of-them");
        var empty = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "rotating-4"), secret: "");

        Assert.Equal(HttpStatusCode.OK, current.StatusCode);
        Assert.Equal(HttpStatusCode.OK, old.StatusCode);
        Assert.Equal("rotating-2", (await old.JsonAsync()).GetProperty("deploymentId").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, other.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, empty.StatusCode);
        Assert.Equal(1, MetricsScrape.Sample(await service.MetricsAsync(), "rolloutgate_webhooks_previous_secret_total"));
        var logged = Assert.Single(service.Host.Logs.Lines, line => line.Contains("previous webhook secret", StringComparison.Ordinal));
        Assert.Contains("Webhook delivery with-previous for service checkout is signed with a previous webhook secret", logged, StringComparison.Ordinal);
        Assert.DoesNotContain(service.Host.Logs.Lines, line => line.Contains(previous, StringComparison.Ordinal));

        // The service is logged before any runbook is looked for: a line break in it must not start a line of its own.
        const string forged = "Webhook delivery with-current for service checkout is signed with a previous webhook secret";
        var unknown = await service.Webhooks.SendAsync(
            WebhookClient.Body("predeploy", "rotating-5", service: $"nothing\n{forged}"), deliveryId: "with-a-line-break", secret: previous);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, unknown.StatusCode);
        var oneLine = Assert.Single(service.Host.Logs.Lines, line => line.Contains("with-a-line-break", StringComparison.Ordinal));
        Assert.Contains($"for service nothing\\n{forged} is signed", oneLine[..oneLine.IndexOf(" DeliveryId=", StringComparison.Ordinal)], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Predeploy_NoSecretConfigured_SignedWebhooksRefused()
    {
        await using var service = await TestService.StartAsync(
            [("checkout.yaml", TestRunbooks.Minimal())], new Dictionary<string, string?> { ["RolloutGate:Webhook:Secret"] = "" });

        var response = await service.Webhooks.SendAsync(WebhookClient.Body("predeploy", "gh-run-5"));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("no webhook secret", (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }
}
