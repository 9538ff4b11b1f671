using System.Net;

namespace RolloutGate.Kubernetes;

/// <summary>
/// The API server answered with an error; <see cref="Message"/> is the message of its Status object
/// (e.g. <c>virtualservices.networking.istio.io "checkout" not found</c>) when it sent one.
/// </summary>
public sealed class KubernetesApiException(HttpStatusCode statusCode, string? reason, string message, TimeSpan? retryAfter = null)
    : Exception(message)
{
    public HttpStatusCode StatusCode { get; } = statusCode;

    /// <summary>The Status object's <c>reason</c> (NotFound, Conflict, Forbidden...), when there was one.</summary>
    public string? Reason { get; } = reason;

    public TimeSpan? RetryAfter { get; } = retryAfter;

    /// <summary>
    /// The API server does not serve the path at all: a 404 without a Status object, which is what it answers (its
    /// not-found handler's plain "404 page not found") for a group, version or resource type it does not have, such as
    /// a CRD not installed or installed without that version. An object that does not exist, or a subresource its CRD
    /// does not have, is a 404 with a Status whose reason is NotFound.
    /// </summary>
    public bool IsNotServed => StatusCode == HttpStatusCode.NotFound && Reason is null;

    /// <summary>
    /// Worth trying again: the server was overloaded or failing (5xx, 429, 408), or another writer changed the object
    /// since it was read (409); every other 4xx would fail the same way again.
    /// </summary>
    public bool IsTransient => (int)StatusCode >= 500
        || StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout or HttpStatusCode.Conflict;
}
