using System.Net;
using System.Text;

namespace RolloutGate.Tests.Infrastructure;

/// <summary>A server that answers every request with the same status and body (a proxy's login page, another service).</summary>
public sealed class CannedAnswer(HttpStatusCode status, string mediaType, string body) : HttpMessageHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        Task.FromResult(new HttpResponseMessage(status) { Content = new StringContent(body, Encoding.UTF8, mediaType) });
}
