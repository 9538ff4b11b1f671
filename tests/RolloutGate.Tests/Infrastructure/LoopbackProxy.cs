using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace RolloutGate.Tests.Infrastructure;

/// <summary>
/// The in-process test service on a real 127.0.0.1 port, for callers that cannot use the in-process client (a shell
/// script, the CLI's own HttpClient, a real browser). Every request passes through with its method, headers (cookies
/// included) and body, and the answer comes back as <paramref name="service"/> gets it: with a client made with
/// <c>AllowAutoRedirect = false, HandleCookies = false</c>, redirects and Set-Cookie reach the caller unfollowed, so a
/// browser does the token-to-cookie round trip and its form posts itself. The first <paramref name="failFirst"/>
/// requests are answered 503 instead (with <c>Retry-After</c> when <paramref name="retryAfterSeconds"/> is given), and so is
/// every request while <see cref="Failing"/> is set. Each request is recorded.
/// </summary>
public sealed class LoopbackProxy(HttpClient service, int failFirst = 0, int? retryAfterSeconds = null) : IAsyncDisposable
{
    /// <summary>Headers that belong to one connection, not to the request.</summary>
    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Connection", "Keep-Alive", "Transfer-Encoding", "TE", "Trailer", "Upgrade", "Expect", "Content-Length", "Proxy-Connection",
    };

    private readonly List<ProxiedRequest> requests = [];
    private WebApplication? server;
    private volatile bool failing;

    public string Url { get; private set; } = "";

    /// <summary>While set, every request is answered 503: the service behind the proxy is down.</summary>
    public bool Failing
    {
        get => failing;
        set => failing = value;
    }

    public IReadOnlyList<ProxiedRequest> Requests
    {
        get
        {
            lock (requests)
            {
                return [.. requests];
            }
        }
    }

    /// <summary>The X-RolloutGate-Delivery header of each request, failed attempts included.</summary>
    public IReadOnlyList<string> Deliveries => [.. Requests.Select(r => r.Delivery)];

    public async Task<LoopbackProxy> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        server = builder.Build();
        server.Run(ForwardAsync);
        await server.StartAsync();
        Url = server.Urls.Single();
        return this;
    }

    private async Task ForwardAsync(HttpContext context)
    {
        var request = context.Request;
        var pathAndQuery = request.Path + request.QueryString;
        int count;
        lock (requests)
        {
            requests.Add(new ProxiedRequest(request.Method, pathAndQuery, request.Headers["X-RolloutGate-Delivery"].ToString(), request.Headers.Cookie.Count > 0));
            count = requests.Count;
        }

        if (count <= failFirst || failing)
        {
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            if (retryAfterSeconds is { } seconds)
            {
                context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            return;
        }

        using var forward = new HttpRequestMessage(new HttpMethod(request.Method), pathAndQuery);
        if (request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0)
        {
            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body);
            forward.Content = new ByteArrayContent(body.ToArray());
        }

        foreach (var (name, values) in request.Headers.Where(h => !HopByHop.Contains(h.Key)))
        {
            if (!forward.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
            {
                forward.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        using var response = await service.SendAsync(forward);
        context.Response.StatusCode = (int)response.StatusCode;
        foreach (var header in response.Headers.Concat(response.Content.Headers).Where(h => !HopByHop.Contains(h.Key)))
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

/// <summary>One request that reached a <see cref="LoopbackProxy"/>.</summary>
public sealed record ProxiedRequest(string Method, string PathAndQuery, string Delivery, bool HadCookie);
