using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RolloutGate.Api;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Slack;

namespace RolloutGate.Inbox;

/// <summary>
/// The local decision inbox: one server-rendered page listing deployments that wait for a decision (the
/// <c>decision_inbox</c> view), with their newest evidence and the three decisions. Reading needs a reader token
/// (<c>?token=</c> once, then a cookie); deciding needs an operator token typed into the form, which also makes a forged
/// cross-site form useless. The form posts here rather than to /api/v1/deployments/{id}/… because an HTML form can send
/// neither a bearer header nor JSON; both routes call the same <see cref="DeploymentDecisions"/>.
/// </summary>
public static class InboxEndpoints
{
    public const string ReaderCookie = "rolloutgate_reader";
    private static readonly string[] Decisions = [DecisionKinds.Rollback, DecisionKinds.Dismiss, DecisionKinds.Stop];

    public static IEndpointRouteBuilder MapInbox(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/inbox").WithTags("Inbox").ExcludeFromDescription().DisableAntiforgery();
        group.AddEndpointFilter(async (context, next) =>
        {
            // No script, no framing, forms only to ourselves: the page holds buttons that roll production back.
            var headers = context.HttpContext.Response.Headers;
            headers.ContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";
            headers.XFrameOptions = "DENY";
            headers.CacheControl = "no-store";
            return await next(context);
        });
        group.MapGet("/", ShowAsync);
        group.MapPost("/{id}/decide", DecideAsync);
        return app;
    }

    private static async Task<IResult> ShowAsync(HttpContext context, RolloutGateDbContext db, IOptionsMonitor<RolloutGateOptions> options, CancellationToken cancellationToken)
    {
        var api = options.CurrentValue.Api;
        var fromQuery = context.Request.Query["token"].ToString();
        var token = fromQuery.Length > 0 ? fromQuery : context.Request.Cookies[ReaderCookie];
        if (!ApiTokens.Matches(token, api.ReaderTokens.Concat(api.OperatorTokens)))
        {
            return Page(StatusCodes.Status401Unauthorized, """
                <p>A reader token is needed to see the decision inbox.</p>
                <form method="get" action="/inbox"><input type="password" name="token" placeholder="reader token" required> <button>Open</button></form>
                """);
        }

        if (fromQuery.Length > 0)
        {
            // Moved into a cookie so the token leaves the address bar and the browser history.
            context.Response.Cookies.Append(ReaderCookie, fromQuery, new CookieOptions
            {
                HttpOnly = true, SameSite = SameSiteMode.Strict, Secure = context.Request.IsHttps, Path = "/inbox",
            });
            return TypedResults.Redirect("/inbox");
        }

        var waiting = await db.Database.SqlQuery<InboxRow>($"""
            SELECT deployment_id AS "DeploymentId", service AS "Service", environment AS "Environment", version AS "Version",
                   initiator AS "Initiator", regressed_at AS "RegressedAt", evidence AS "Evidence"
            FROM decision_inbox ORDER BY regressed_at, deployment_id
            """).ToListAsync(cancellationToken);
        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture, $"<p>{waiting.Count} deployment(s) wait for a decision.</p>\n");
        foreach (var row in waiting)
        {
            html.Append(CultureInfo.InvariantCulture, $"""
                <section>
                <h2>{E(row.Service)} {E(row.Version ?? "")} in {E(row.Environment)} <small>{E(row.DeploymentId)}</small></h2>
                <p>Regressed at {row.RegressedAt:u}; initiated by {E(row.Initiator ?? "unknown")}.</p>
                <ul>
                """);
            foreach (var evidence in row.Evidence is null ? [] : SlackMessages.ParseEvidence(row.Evidence))
            {
                html.Append(CultureInfo.InvariantCulture,
                    $"<li><b>{E(evidence.Metric)}</b>: {evidence.Value} (baseline {evidence.Baseline}, threshold {evidence.Threshold}) {E(evidence.Verdict ?? "")} {E(evidence.Explanation ?? "")}</li>\n");
            }

            html.Append(CultureInfo.InvariantCulture, $"""
                </ul>
                <form method="post" action="/inbox/{Uri.EscapeDataString(row.DeploymentId)}/decide">
                <input type="password" name="operatorToken" placeholder="operator token" required>
                <input name="actor" placeholder="your name" required>
                <input name="reason" placeholder="reason">
                <button name="kind" value="rollback">Roll back</button>
                <button name="kind" value="dismiss">Keep</button>
                <button name="kind" value="stop">Stop automation</button>
                </form>
                </section>
                """);
        }

        return Page(StatusCodes.Status200OK, html.ToString());
    }

    private static async Task<IResult> DecideAsync(string id, HttpRequest request, DeploymentDecisions decisions, IOptionsMonitor<RolloutGateOptions> options,
        CancellationToken cancellationToken)
    {
        if (!request.HasFormContentType)
        {
            return Page(StatusCodes.Status400BadRequest, "<p>Send the inbox form.</p>");
        }

        var form = await request.ReadFormAsync(cancellationToken);
        if (!ApiTokens.Matches(form["operatorToken"].ToString(), options.CurrentValue.Api.OperatorTokens))
        {
            return Page(StatusCodes.Status401Unauthorized, "<p>That is not an operator token; nothing changed.</p><p><a href=\"/inbox\">Back</a></p>");
        }

        var kind = form["kind"].ToString();
        var actor = form["actor"].ToString().Trim();
        if (!Decisions.Contains(kind) || actor.Length == 0)
        {
            return Page(StatusCodes.Status400BadRequest, "<p>Choose rollback, keep or stop, and say who you are.</p><p><a href=\"/inbox\">Back</a></p>");
        }

        var reason = form["reason"].ToString();
        var result = await decisions.DecideAsync(id, kind, actor, reason.Length == 0 ? null : reason, "inbox", cancellationToken);
        return result switch
        {
            Ok<StateResponse> => TypedResults.Redirect("/inbox"),
            ProblemHttpResult problem => Page(problem.StatusCode, $"<p>{E(problem.ProblemDetails.Detail ?? "refused")}; nothing changed.</p><p><a href=\"/inbox\">Back</a></p>"),
            _ => TypedResults.Redirect("/inbox"),
        };
    }

    private static ContentHttpResult Page(int status, string body) => TypedResults.Content($"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>RolloutGate decision inbox</title>
        <style>body{"{"}font-family:sans-serif;max-width:60em;margin:2em auto{"}"}section{"{"}border-top:1px solid #ccc{"}"}</style></head>
        <body><h1>Decision inbox</h1>
        {body}
        </body></html>
        """, "text/html", Encoding.UTF8, status);

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private sealed record InboxRow(string DeploymentId, string Service, string Environment, string? Version, string? Initiator, DateTimeOffset RegressedAt, string? Evidence);
}
