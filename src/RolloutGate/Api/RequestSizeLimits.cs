using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace RolloutGate.Api;

/// <summary>
/// How long a request line and how large its headers may be, answered as every other error is: 414 or 431 as
/// application/problem+json, with a detail naming the limit. Kestrel answers its own limits itself, with a bodiless 414 or
/// 431 that no middleware sees; so its limits are set to twice these (which are Kestrel's defaults), and a request past
/// these but within those reaches <see cref="UseRequestSizeLimits"/>. One past Kestrel's still gets Kestrel's bodiless
/// answer: it is not read that far.
/// </summary>
public static class RequestSizeLimits
{
    /// <summary>The request line (method, target and protocol), in bytes: Kestrel's default MaxRequestLineSize.</summary>
    public const int MaxRequestLineBytes = 8 * 1024;

    /// <summary>All header lines together, in bytes: Kestrel's default MaxRequestHeadersTotalSize.</summary>
    public const int MaxHeaderBytes = 32 * 1024;

    /// <summary>Header lines: Kestrel's default MaxRequestHeaderCount.</summary>
    public const int MaxHeaderCount = 100;

    /// <summary>Kestrel's own limits, above these: what lies between is answered by <see cref="UseRequestSizeLimits"/>.</summary>
    public static void ConfigureKestrel(KestrelServerOptions kestrel)
    {
        kestrel.Limits.MaxRequestLineSize = 2 * MaxRequestLineBytes;
        kestrel.Limits.MaxRequestHeadersTotalSize = 2 * MaxHeaderBytes;
        kestrel.Limits.MaxRequestHeaderCount = 2 * MaxHeaderCount;
    }

    public static IApplicationBuilder UseRequestSizeLimits(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            if (Refusal(context) is { } refusal)
            {
                await refusal.ExecuteAsync(context);
                return;
            }

            await next(context);
        });

    private static Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult? Refusal(HttpContext context)
    {
        var request = context.Request;
        // As Kestrel counts them: "METHOD target PROTOCOL\r\n", and each header line "name: value\r\n".
        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? $"{request.PathBase}{request.Path}{request.QueryString}";
        var line = request.Method.Length + 1 + Encoding.UTF8.GetByteCount(target) + 1 + request.Protocol.Length + 2;
        if (line > MaxRequestLineBytes)
        {
            return Problems.UriTooLong(
                $"the request line (method, URL and protocol) is {line} bytes long; at most {MaxRequestLineBytes} are accepted: give fewer or shorter query parameters");
        }

        var count = 0;
        var bytes = 0;
        foreach (var (name, values) in request.Headers)
        {
            foreach (var value in values)
            {
                count++;
                bytes += name.Length + 2 + Encoding.UTF8.GetByteCount(value ?? "") + 2;
            }
        }

        return count > MaxHeaderCount || bytes > MaxHeaderBytes
            ? Problems.HeadersTooLarge($"the request has {count} header lines of {bytes} bytes in all; at most {MaxHeaderCount} lines and {MaxHeaderBytes} bytes are accepted")
            : null;
    }
}
