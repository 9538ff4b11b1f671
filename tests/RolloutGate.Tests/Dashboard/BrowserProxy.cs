using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace RolloutGate.Tests.Dashboard;

/// <summary>
/// The in-process test service's pages on a real 127.0.0.1 port, for a real browser: GETs pass through with their
/// cookies, and redirects and Set-Cookie come back unfollowed, so the browser does the token-to-cookie round trip
/// itself. Records each request's path and query and whether it carried a cookie.
/// </summary>
public sealed class BrowserProxy(HttpClient service) : IAsyncDisposable
{
    private readonly List<(string PathAndQuery, bool HadCookie)> requests = [];
    private WebApplication? server;

    public string Url { get; private set; } = "";

    public IReadOnlyList<(string PathAndQuery, bool HadCookie)> Requests
    {
        get
        {
            lock (requests)
            {
                return [.. requests];
            }
        }
    }

    public async Task<BrowserProxy> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        server = builder.Build();
        server.MapGet("/{**path}", ForwardAsync);
        await server.StartAsync();
        Url = server.Urls.Single();
        return this;
    }

    private async Task ForwardAsync(HttpContext context)
    {
        var pathAndQuery = context.Request.Path + context.Request.QueryString;
        var cookie = context.Request.Headers.Cookie.ToString();
        lock (requests)
        {
            requests.Add((pathAndQuery, cookie.Length > 0));
        }

        using var forward = new HttpRequestMessage(HttpMethod.Get, pathAndQuery);
        if (cookie.Length > 0)
        {
            forward.Headers.TryAddWithoutValidation("Cookie", cookie);
        }

        using var response = await service.SendAsync(forward);
        context.Response.StatusCode = (int)response.StatusCode;
        foreach (var header in response.Headers.Concat(response.Content.Headers).Where(h => h.Key is not ("Transfer-Encoding" or "Content-Length")))
        {
            context.Response.Headers[header.Key] = header.Value.ToArray();
        }

        await context.Response.Body.WriteAsync(await response.Content.ReadAsByteArrayAsync());
    }

    public async ValueTask DisposeAsync()
    {
        if (server is not null)
        {
            await server.DisposeAsync();
        }
    }
}
