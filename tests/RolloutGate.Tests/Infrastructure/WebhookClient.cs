using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using RolloutGate.Webhooks;

namespace RolloutGate.Tests.Infrastructure;

/// <summary>Sends CD webhooks the way a pipeline does (CONTRACT section 4), with knobs to get each part wrong.</summary>
public sealed class WebhookClient(HttpClient http, TimeProvider? time = null)
{
    private readonly TimeProvider clock = time ?? TimeProvider.System;

    public static string Body(string @event, string deploymentId, string service = "checkout", string environment = "production", string initiator = "alice", string? at = null) =>
        JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["event"] = @event,
            ["deploymentId"] = deploymentId,
            ["service"] = service,
            ["environment"] = environment,
            ["version"] = "2.4.0",
            ["previousVersion"] = "2.3.9",
            ["initiator"] = initiator,
            ["commit"] = "9fceb02",
            ["pipelineUrl"] = "https://ci.example/runs/8812",
            ["at"] = at,
        }.Where(pair => pair.Value is not null).ToDictionary());

    public Task<HttpResponseMessage> SendAsync(
        string body,
        string? deliveryId = null,
        string secret = RolloutGateHost.WebhookSecret,
        long? timestamp = null,
        string? signatureOverride = null,
        string? bearer = null,
        bool sign = true,
        string contentType = "application/json",
        bool withDeliveryId = true,
        CancellationToken cancellationToken = default)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/api/v1/deployments", UriKind.Relative))
        {
            Content = new StringContent(body, Encoding.UTF8, contentType),
        };
        if (withDeliveryId)
        {
            request.Headers.Add("X-RolloutGate-Delivery", deliveryId ?? Guid.NewGuid().ToString());
        }

        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
            if (timestamp is { } bearerTimestamp)
            {
                // Not needed with a token, but a sender may send it anyway (or a capture replays it).
                request.Headers.Add("X-RolloutGate-Timestamp", bearerTimestamp.ToString(CultureInfo.InvariantCulture));
            }
        }
        else if (sign)
        {
            var ts = (timestamp ?? clock.GetUtcNow().ToUnixTimeSeconds()).ToString(CultureInfo.InvariantCulture);
            request.Headers.Add("X-RolloutGate-Timestamp", ts);
            request.Headers.Add("X-RolloutGate-Signature", signatureOverride ?? WebhookAuthenticator.SignatureHeaderValue(secret, ts, Encoding.UTF8.GetBytes(body)));
        }

        return http.SendAsync(request, cancellationToken);
    }

    public Task<HttpResponseMessage> SendEventAsync(string @event, string deploymentId, string service = "checkout", string? deliveryId = null) =>
        SendAsync(Body(@event, deploymentId, service), deliveryId);
}

public static class HttpExtensions
{
    public static async Task<JsonElement> JsonAsync(this HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        using var document = JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }

    /// <summary>
    /// GET of <paramref name="relativeUrl"/> and its answer's JSON, whatever the status (a test that cares asserts it on
    /// the response): the one step most API tests take, written once instead of nesting GetAsync, a relative Uri and
    /// <see cref="JsonAsync"/> at each call.
    /// </summary>
    public static async Task<JsonElement> GetJsonAsync(this HttpClient client, string relativeUrl)
    {
        using var response = await client.GetAsync(new Uri(relativeUrl, UriKind.Relative));
        return await response.JsonAsync();
    }

    public static HttpClient WithToken(this HttpClient client, string token)
    {
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }
}
