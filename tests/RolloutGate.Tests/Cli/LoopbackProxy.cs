using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace RolloutGate.Tests.Cli;

/// <summary>
/// The test service's webhook on a real 127.0.0.1 port, for callers that cannot use the in-process client (a shell
/// script, the CLI's own HttpClient). It answers 503 to the first <paramref name="failFirst"/> deliveries and passes
/// the rest on byte for byte, recording each attempt's delivery id.
/// </summary>
public sealed class LoopbackProxy(HttpClient service, int failFirst = 0) : IAsyncDisposable
{
    private static readonly string[] ForwardedHeaders = ["X-RolloutGate-Delivery", "X-RolloutGate-Timestamp", "X-RolloutGate-Signature", "Authorization"];

    private readonly List<string> deliveries = [];
    private WebApplication? server;

    public string Url { get; private set; } = "";

    public IReadOnlyList<string> Deliveries
    {
        get
        {
            lock (deliveries)
            {
                return [.. deliveries];
            }
        }
    }

    public async Task<LoopbackProxy> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        server = builder.Build();
        server.MapPost("/api/v1/deployments", async (HttpRequest request) =>
        {
            lock (deliveries)
            {
                deliveries.Add(request.Headers["X-RolloutGate-Delivery"].ToString());
                if (deliveries.Count <= failFirst)
                {
                    return Results.StatusCode(StatusCodes.Status503ServiceUnavailable);
                }
            }

            return await ForwardAsync(request);
        });
        await server.StartAsync();
        Url = server.Urls.Single();
        return this;
    }

    private async Task<IResult> ForwardAsync(HttpRequest request)
    {
        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body);
        using var forward = new HttpRequestMessage(HttpMethod.Post, "/api/v1/deployments") { Content = new ByteArrayContent(body.ToArray()) };
        forward.Content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(request.ContentType ?? "application/json");
        foreach (var header in ForwardedHeaders.Where(h => request.Headers.ContainsKey(h)))
        {
            forward.Headers.TryAddWithoutValidation(header, request.Headers[header].ToString());
        }

        using var response = await service.SendAsync(forward);
        var contentType = response.Content.Headers.ContentType?.ToString() ?? "application/json";
        return Results.Content(await response.Content.ReadAsStringAsync(), contentType, statusCode: (int)response.StatusCode);
    }

    public async ValueTask DisposeAsync()
    {
        if (server is not null)
        {
            await server.DisposeAsync();
        }
    }
}
