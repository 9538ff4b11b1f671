using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Http;

namespace RolloutGate.Kubernetes;

/// <summary>The few Kubernetes API calls a rollback needs: read an object or list those of a type, merge-patch an object or one of its subresources.</summary>
public interface IKubernetesClient
{
    /// <summary>The API server's address, for messages.</summary>
    Uri BaseAddress { get; }

    /// <exception cref="KubernetesApiException">The server answered with an error.</exception>
    /// <exception cref="HttpRequestException">The server could not be reached.</exception>
    Task<JsonObject> GetAsync(KubernetesResource resource, string @namespace, string name, CancellationToken cancellationToken);

    /// <summary>
    /// Every object of the type in the namespace (the list's <c>items</c>), in one request: without <c>limit</c> the API
    /// server answers the whole list, never a page with a <c>continue</c> token.
    /// </summary>
    /// <exception cref="KubernetesApiException">The server answered with an error.</exception>
    /// <exception cref="HttpRequestException">The server could not be reached.</exception>
    Task<IReadOnlyList<JsonObject>> ListAsync(KubernetesResource resource, string @namespace, CancellationToken cancellationToken);

    /// <summary>
    /// A JSON merge patch (RFC 7386, <c>application/merge-patch+json</c>); returns the object as stored afterwards.
    /// A patch carrying <c>metadata.resourceVersion</c> is refused with 409 when the object changed since that version.
    /// </summary>
    Task<JsonObject> MergePatchAsync(
        KubernetesResource resource, string @namespace, string name, JsonObject patch, CancellationToken cancellationToken, string? subresource = null);
}

/// <summary>
/// A small typed client over <see cref="HttpClient"/> (no Kubernetes client library is served here). Its base address
/// and TLS trust come from <see cref="KubernetesExtensions.AddKubernetesClient"/>. It makes one attempt per call:
/// retries belong to the caller, which must re-read the object after a 409 before patching again.
/// </summary>
internal sealed class KubernetesClient(HttpClient http, IOptionsMonitor<RolloutGateOptions> options) : IKubernetesClient
{
    public const string MergePatchMediaType = "application/merge-patch+json";

    public Uri BaseAddress => http.BaseAddress ?? throw new InvalidOperationException("the Kubernetes HttpClient has no base address");

    public Task<JsonObject> GetAsync(KubernetesResource resource, string @namespace, string name, CancellationToken cancellationToken) =>
        AtAServedVersionAsync(resource, served => SendAsync(HttpMethod.Get, served.PathOf(@namespace, name), content: null, cancellationToken));

    public Task<IReadOnlyList<JsonObject>> ListAsync(KubernetesResource resource, string @namespace, CancellationToken cancellationToken) =>
        AtAServedVersionAsync<IReadOnlyList<JsonObject>>(resource, async served =>
        {
            var path = served.CollectionPathOf(@namespace);
            var list = await SendAsync(HttpMethod.Get, path, content: null, cancellationToken);
            return list["items"] is JsonArray items
                ? [.. items.OfType<JsonObject>()]
                : throw new KubernetesApiException(HttpStatusCode.OK, null, $"GET {path}: the API server answered without a list of items");
        });

    public Task<JsonObject> MergePatchAsync(
        KubernetesResource resource, string @namespace, string name, JsonObject patch, CancellationToken cancellationToken, string? subresource = null) =>
        AtAServedVersionAsync(resource, served =>
        {
            var content = new StringContent(patch.ToJsonString(), Encoding.UTF8);
            // Exactly the media type the API server documents, without a charset parameter.
            content.Headers.ContentType = new MediaTypeHeaderValue(MergePatchMediaType);
            return SendAsync(HttpMethod.Patch, served.PathOf(@namespace, name, subresource), content, cancellationToken);
        });

    /// <summary>
    /// <paramref name="call"/> at the type's version, then at each of its other versions while the API server answers that
    /// it does not serve the one asked (<see cref="KubernetesApiException.IsNotServed"/>: a CRD installed at other versions,
    /// or not at all). Each call asks afresh, without remembering what was served: a CRD upgraded meanwhile is found at
    /// its new version, and an older cluster costs one 404 a call. The resourceVersion of an object is the same at every
    /// version, so a patch at another version than its read keeps its optimistic concurrency.
    /// </summary>
    private static async Task<T> AtAServedVersionAsync<T>(KubernetesResource resource, Func<KubernetesResource, Task<T>> call)
    {
        var tried = new List<string>();
        foreach (var served in resource.Versions)
        {
            try
            {
                return await call(served);
            }
            catch (KubernetesApiException exception) when (exception.IsNotServed)
            {
                tried.Add($"{served.Group}/{served.Version}");
            }
        }

        throw new KubernetesApiException(HttpStatusCode.NotFound, null,
            $"the Kubernetes API serves {resource} at none of the versions RolloutGate uses ({string.Join(", ", tried)}): "
            + "its CustomResourceDefinition is not installed, or serves none of these versions");
    }

    private async Task<JsonObject> SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, Urls.Under(BaseAddress, path)) { Content = content };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        // Read on every call: projected service-account tokens are rotated on disk while the pod runs.
        if (await ReadTokenAsync(cancellationToken) is { } token)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        // Headers first: an error's body is read by its start only (FailureAsync).
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw await FailureAsync(response, method, path, cancellationToken);
        }

        var body = await response.Content.ReadAsStringAsync(cancellationToken);

        try
        {
            return JsonNode.Parse(body) as JsonObject
                ?? throw new KubernetesApiException(response.StatusCode, null, $"{method} {path}: the API server answered without a JSON object");
        }
        catch (JsonException exception)
        {
            throw new KubernetesApiException(response.StatusCode, null, $"{method} {path}: the API server answered with invalid JSON: {exception.Message}");
        }
    }

    /// <summary>
    /// The token, or null without a token file (out of a cluster, behind <c>kubectl proxy</c>). A token file that is
    /// there but cannot be used fails the call as an unreachable API server would (<see cref="BearerTokenFile"/>),
    /// retried and then recorded as the action's outcome, instead of an exception that no rollback caller handles.
    /// </summary>
    private async Task<string?> ReadTokenAsync(CancellationToken cancellationToken)
    {
        var file = options.CurrentValue.Kubernetes.TokenFile;
        return string.IsNullOrEmpty(file) || !Path.Exists(file) ? null : await BearerTokenFile.ReadAsync(file, cancellationToken);
    }

    /// <summary>How much of an error answer is read: a Status object is far smaller, a proxy's error page may be any size.</summary>
    internal const int MaxErrorBodyBytes = 64 * 1024;

    /// <summary>
    /// The Status object's message when the server sent one (it does for API errors), else the HTTP status. Only the
    /// body's first <see cref="MaxErrorBodyBytes"/> are read: a proxy in front of the API server (Rancher, a corporate
    /// gateway) may answer a huge or endless HTML page, which must neither fill memory nor hold the attempt.
    /// </summary>
    private static async Task<KubernetesApiException> FailureAsync(HttpResponseMessage response, HttpMethod method, string path, CancellationToken cancellationToken)
    {
        string? reason = null;
        string? message = null;
        var (body, more) = await ResponseBodies.StartAsync(response, MaxErrorBodyBytes, cancellationToken);
        try
        {
            if (!more && JsonNode.Parse(body) is JsonObject status && status["kind"]?.GetValue<string>() == "Status")
            {
                reason = status["reason"]?.GetValue<string>();
                message = status["message"]?.GetValue<string>();
            }
        }
        catch (Exception exception) when (exception is JsonException or InvalidOperationException or FormatException)
        {
            // Not a Status object (a proxy's HTML page, say): fall back to the HTTP status below.
        }

        var code = (int)response.StatusCode;
        message = string.IsNullOrWhiteSpace(message)
            ? $"{method} /{path} answered {code} {response.ReasonPhrase}"
            : message;
        return new KubernetesApiException(response.StatusCode, reason, message, RetryAfter(response));
    }

    private static TimeSpan? RetryAfter(HttpResponseMessage response) =>
        response.Headers.RetryAfter switch
        {
            { Delta: { } delta } => delta,
            { Date: { } date } when response.Headers.Date is { } now => date - now,
            _ => null,
        };
}
