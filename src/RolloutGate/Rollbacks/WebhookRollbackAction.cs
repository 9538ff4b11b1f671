using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using RolloutGate.Core.Runbooks;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure.Http;
using RolloutGate.Webhooks;

namespace RolloutGate.Rollbacks;

/// <summary>
/// <c>webhook: {url, secret}</c>: a POST of <c>{deploymentId, service, environment, rollbackTo, reason}</c> signed as
/// CD webhooks are (CONTRACT section 4), with the rollback's idempotency key as <c>X-RolloutGate-Delivery</c> so the
/// receiver can tell our retries from a second rollback. Any 2xx is success.
/// </summary>
internal sealed class WebhookRollbackAction(IHttpClientFactory httpClients, RollbackAttempts attempts, TimeProvider time)
{
    public const string HttpClientName = "rollback-webhook";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public Task<RollbackOutcome> ExecuteAsync(WebhookRollback webhook, RollbackRequest request, CancellationToken cancellationToken)
    {
        var url = new Uri(webhook.Url, UriKind.Absolute);
        // Never the query string or user info: either may carry a credential.
        var shown = Urls.Shown(webhook.Url);
        var action = $"webhook POST {shown}";
        var body = JsonSerializer.SerializeToUtf8Bytes(
            new RollbackWebhookBody(request.DeploymentId, request.Service, request.Environment, request.RollbackTo, request.Reason), Json);

        return attempts.RunAsync(action, shown, request.BeforeEachAttempt, async token =>
        {
            // Signed afresh on every attempt: the receiver refuses timestamps more than five minutes old.
            var timestamp = time.GetUtcNow().ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
            using var message = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
            message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            message.Headers.Add(DeploymentEndpoints.DeliveryHeader, request.IdempotencyKey);
            message.Headers.Add(WebhookAuthenticator.TimestampHeader, timestamp);
            var signature = WebhookAuthenticator.SignatureHeaderValue(webhook.Secret, timestamp, body);
            message.Headers.Add(WebhookAuthenticator.SignatureHeader, signature);
            // The URL's user info as Basic credentials, as curl sends it: HttpClient would send none.
            if (Urls.BasicCredentials(webhook.Url) is { } basic)
            {
                message.Headers.Authorization = new AuthenticationHeaderValue("Basic", basic);
            }

            // Headers first: the answer's body is read only as far as the excerpt needs, whatever its size.
            using var response = await httpClients.CreateClient(HttpClientName).SendAsync(message, HttpCompletionOption.ResponseHeadersRead, token);
            var code = (int)response.StatusCode;
            if (response.IsSuccessStatusCode)
            {
                return $"the receiver answered {code} {response.ReasonPhrase}";
            }

            var transient = code >= 500 || response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout;
            // The excerpt without the signature either (against which a weak secret could be guessed offline), nor the
            // Basic credentials made of the URL's user info.
            throw new RollbackAttemptException(
                $"the receiver answered {code} {response.ReasonPhrase}{await ResponseBodies.ExcerptAsync(response, [.. Urls.Hidden(webhook.Url), signature, Urls.BasicCredentials(webhook.Url)], token)}",
                transient, response.Headers.RetryAfter?.Delta);
        }, cancellationToken);
    }

    private sealed record RollbackWebhookBody(string DeploymentId, string Service, string Environment, string RollbackTo, string Reason);
}
