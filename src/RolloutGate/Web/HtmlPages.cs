using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Http.HttpResults;
using RolloutGate.Api;
using RolloutGate.Infrastructure;

namespace RolloutGate.Web;

/// <summary>
/// What the server-rendered pages (decision inbox, dashboard) share: their security headers, the reader token that
/// arrives once as <c>?token=</c> and then lives in a cookie, the page frame and HTML encoding. Every value shown on a
/// page comes from a webhook or the database and is untrusted: encode it with <see cref="E"/>.
/// </summary>
public static class HtmlPages
{
    public const string ReaderCookie = "rolloutgate_reader";

    /// <summary>
    /// What every page may do: no script or fetched resource of any kind (the charts are inline SVG, the style inline),
    /// no &lt;base&gt; to move relative links and forms elsewhere, forms only to ourselves, no framing.
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    /// <summary>A group of HTML pages: no script, no framing, forms only to ourselves, nothing cached, no referrer.</summary>
    public static RouteGroupBuilder MapHtmlPages(this IEndpointRouteBuilder app, string prefix, string tag)
    {
        var group = app.MapGroup(prefix).WithTags(tag).ExcludeFromDescription().DisableAntiforgery();
        group.AddEndpointFilter(async (context, next) =>
        {
            // The pages hold buttons that roll production back.
            var headers = context.HttpContext.Response.Headers;
            headers.ContentSecurityPolicy = ContentSecurityPolicy;
            headers.XFrameOptions = "DENY";
            headers.CacheControl = "no-store";
            // A page's address may still carry ?token= (the redirect that drops it is the page's first answer): no link
            // followed from a page tells another site where it came from.
            headers["Referrer-Policy"] = "no-referrer";
            return await next(context);
        });
        return group;
    }

    /// <summary>
    /// <c>X-Content-Type-Options: nosniff</c> on every answer: a browser takes each for the type it says (text/csv,
    /// text/markdown, JSON holding a webhook's text) and never runs one as HTML or script.
    /// </summary>
    public static IApplicationBuilder UseNoSniff(this IApplicationBuilder app) =>
        app.Use((context, next) =>
        {
            // When the answer starts, not now: the exception handler clears the headers of the answer it replaces.
            context.Response.OnStarting(() =>
            {
                context.Response.Headers.XContentTypeOptions = "nosniff";
                return Task.CompletedTask;
            });
            return next(context);
        });

    /// <summary>
    /// Null when the request carries a reader (or operator) token in the cookie; otherwise the page to answer with: a
    /// token form (401), or, when the token came in the query string, a redirect to the same address without it after
    /// moving it into the cookie (so it leaves the address bar and the browser history).
    /// </summary>
    public static IResult? ReaderRefusal(HttpContext context, RolloutGateOptions options, string title)
    {
        var request = context.Request;
        var fromQuery = request.Query["token"].ToString();
        var token = fromQuery.Length > 0 ? fromQuery : request.Cookies[ReaderCookie];
        if (!ApiTokens.Matches(token, options.Api.ReaderTokens.Concat(options.Api.OperatorTokens)))
        {
            return Page(StatusCodes.Status401Unauthorized, title, $"""
                <p>A reader token is needed to see this page.</p>
                <form method="get" action="{E(request.PathBase + request.Path)}"><input type="password" name="token" placeholder="reader token" required> <button>Open</button></form>
                """);
        }

        if (fromQuery.Length == 0)
        {
            return null;
        }

        // Path "/": one token opens every page, and the links between the inbox and the dashboard keep working.
        context.Response.Cookies.Append(ReaderCookie, fromQuery, new CookieOptions
        {
            HttpOnly = true, SameSite = SameSiteMode.Strict, Secure = request.IsHttps, Path = "/",
        });
        var rest = QueryString.Create(request.Query.Where(pair => pair.Key != "token"));
        return TypedResults.Redirect((request.PathBase + request.Path + rest).ToString());
    }

    public static ContentHttpResult Page(int status, string title, string body, string style = "") => TypedResults.Content($"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>RolloutGate {E(title)}</title>
        <style>body{"{"}font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em{"}"}section{"{"}border-top:1px solid #ccc{"}"}.recommend{"{"}background:#fdf2e9;border-left:4px solid #c77d00;padding:.4em .6em{"}"}{style}</style></head>
        <body><h1>{E(title)}</h1>
        {body}
        </body></html>
        """, "text/html", Encoding.UTF8, status);

    /// <summary>
    /// A moment as the pages show it: in UTC, saying so (a bare "Z" is easy to miss at 2 a.m.), and how long ago it was
    /// or how long until it comes, against <paramref name="now"/>; "-" when there is none.
    /// </summary>
    public static string When(DateTimeOffset? at, DateTimeOffset now) => at is { } moment
        ? string.Create(CultureInfo.InvariantCulture, $"<time datetime=\"{moment.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}\">{Utc(moment)} ({IsoTimes.Relative(moment, now)})</time>")
        : "-";

    /// <summary>A moment in UTC to the second, with the zone spelled out: "2026-12-06 00:16:00 UTC".</summary>
    public static string Utc(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);

    /// <summary>HTML-encodes an untrusted value for element content or a quoted attribute.</summary>
    public static string E(string? text) => HtmlEncoder.Default.Encode(text ?? "");
}
