using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RolloutGate.Api;
using RolloutGate.Core.Runbooks;
using RolloutGate.Decisions;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;
using RolloutGate.Slack;
using RolloutGate.Web;
using static RolloutGate.Web.HtmlPages;

namespace RolloutGate.Inbox;

/// <summary>
/// The local decision inbox: one server-rendered page listing deployments that wait for a decision (the
/// <c>decision_inbox</c> view), with their newest evidence and the three decisions; a rollback whose action failed
/// waits too, with the failure, Retry rollback and Stop automation. Reading needs a reader token
/// (<c>?token=</c> once, then a cookie; see <see cref="HtmlPages"/>); deciding needs an operator token typed into the form, which also makes a forged
/// cross-site form useless. The form posts here rather than to /api/v1/deployments/{id}/… because an HTML form can send
/// neither a bearer header nor JSON; both routes call the same <see cref="DeploymentDecisions"/>.
/// </summary>
public static class InboxEndpoints
{
    private const string Title = "Decision inbox";

    /// <summary>Deployments a page, longest waiting first: failed rollbacks stay until someone acts, and can pile up.</summary>
    public const int PageSize = 100;

    private static readonly string[] Decisions = [DecisionKinds.Rollback, DecisionKinds.Dismiss, DecisionKinds.Stop];

    private const string Style =
        ".regressed,.failed{color:#c0392b}.failed b,.regressed b{font-weight:bold}";

    public static IEndpointRouteBuilder MapInbox(this IEndpointRouteBuilder app)
    {
        var group = app.MapHtmlPages("/inbox", "Inbox");
        group.MapGet("/", ShowAsync);
        group.MapPost("/{id}/decide", DecideAsync);
        return app;
    }

    private static async Task<IResult> ShowAsync(
        HttpContext context, RolloutGateDbContext db, IOptionsMonitor<RolloutGateOptions> options, RunbookCatalog runbooks, TimeProvider time, string? decided,
        string? after, CancellationToken cancellationToken)
    {
        if (HtmlPages.ReaderRefusal(context, options.CurrentValue, Title) is { } refusal)
        {
            return refusal;
        }

        var cursor = (DateTimeOffset.MinValue, "");
        var paged = !string.IsNullOrEmpty(after);
        if (paged && !DeploymentCursor.TryParse(after!, out cursor))
        {
            return Page(StatusCodes.Status400BadRequest, "<p>That page link is not valid.</p><p><a href=\"/inbox\">The inbox</a></p>");
        }

        var (afterAt, afterId) = cursor;

        // After a decision the form lands here with ?decided={id}: say where that deployment stands now, and by whose
        // decision. Anyone can type the link, so the line shows only a decision on record, never the link's word alone.
        var lastDecision = string.IsNullOrEmpty(decided)
            ? null
            : await db.Decisions.AsNoTracking()
                .Where(d => d.DeploymentId == decided)
                .OrderByDescending(d => d.Id)
                .Join(db.Deployments, d => d.DeploymentId, deployment => deployment.Id, (d, deployment) => new { d.Kind, d.Actor, deployment.State })
                .FirstOrDefaultAsync(cancellationToken);

        // Keyset paging as the dashboard's: a page starts after the (regressed_at, deployment_id) of the previous one's last row.
        var waiting = await db.Database.SqlQuery<InboxRow>($"""
            SELECT deployment_id AS "DeploymentId", service AS "Service", environment AS "Environment", version AS "Version",
                   initiator AS "Initiator", regressed_at AS "RegressedAt", evidence AS "Evidence",
                   failed_action AS "FailedAction", failure AS "Failure"
            FROM decision_inbox
            WHERE NOT {paged} OR (regressed_at, deployment_id) > ({afterAt}, {afterId})
            ORDER BY regressed_at, deployment_id
            LIMIT {PageSize + 1}
            """).ToListAsync(cancellationToken);
        var later = waiting.Count > PageSize ? waiting[PageSize - 1] : null;
        waiting = waiting.Take(PageSize).ToList();
        var total = later is null && !paged
            ? waiting.Count
            : await db.Database.SqlQuery<int>($"SELECT count(*)::int AS \"Value\" FROM decision_inbox").SingleAsync(cancellationToken);
        var ids = waiting.Select(w => w.DeploymentId).ToList();
        var deployments = await db.Deployments.AsNoTracking().Include(d => d.RunbookVersion).Where(d => ids.Contains(d.Id))
            .ToDictionaryAsync(d => d.Id, StringComparer.Ordinal, cancellationToken);
        var now = time.GetUtcNow();
        var html = new StringBuilder();
        if (lastDecision is not null)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<p class=\"decided\">Decided: <a href=\"/dashboard/deployments/{E(Uri.EscapeDataString(decided!))}\">{E(decided)}</a> is now <b>{E(lastDecision.State)}</b> ({E(lastDecision.Kind)} by {E(lastDecision.Actor)}).</p>\n");
        }

        html.Append(CultureInfo.InvariantCulture, $"<p>{total} deployment(s) wait for a decision.{(total == waiting.Count ? "" : $" Shown: {waiting.Count} on this page, {PageSize} a page, longest waiting first.")}</p>\n");
        foreach (var row in waiting)
        {
            html.Append(CultureInfo.InvariantCulture, $"""
                <section>
                <h2>{E(row.Service)} {E(row.Version ?? "")} in {E(row.Environment)} <small>{E(row.DeploymentId)}</small></h2>
                <p><b class="{(row.FailedAction is null ? "regressed\">Regressed" : "failed\">Rolling back since")}</b> {When(row.RegressedAt, now)}; initiated by {E(row.Initiator ?? "unknown")}.
                <a href="/dashboard/deployments/{E(Uri.EscapeDataString(row.DeploymentId))}">Charts and audit timeline</a></p>

                """);
            if (row.FailedAction is null && deployments.TryGetValue(row.DeploymentId, out var deployment))
            {
                html.Append(IfNobodyDecides(deployment, runbooks, now)).Append('\n');
            }

            if (row.FailedAction is not null)
            {
                html.Append(CultureInfo.InvariantCulture,
                    $"<p class=\"failed\">Rollback action {E(row.FailedAction)} <b>failed</b>: {E(row.Failure ?? "")}. Traffic may still go to the new version: retry the rollback, or stop the automation and roll back by other means.</p>\n");
            }

            html.Append("<ul>\n");
            foreach (var evidence in row.Evidence is null ? [] : SlackMessages.ParseEvidence(row.Evidence))
            {
                html.Append(CultureInfo.InvariantCulture,
                    $"<li><b>{E(evidence.Metric)}</b>: {E(evidence.Figures)} {E(evidence.Verdict ?? "")} {E(evidence.Explanation ?? "")}</li>\n");
            }

            html.Append(CultureInfo.InvariantCulture, $"""
                </ul>
                <form method="post" action="/inbox/{Uri.EscapeDataString(row.DeploymentId)}/decide">
                <input type="password" name="operatorToken" placeholder="operator token" required>
                <input name="actor" placeholder="your name" required>
                <input name="reason" placeholder="reason">
                {(row.FailedAction is null
                    ? "<button name=\"kind\" value=\"rollback\">Roll back</button>\n<button name=\"kind\" value=\"dismiss\">Keep</button>"
                    : "<button name=\"kind\" value=\"rollback\">Retry rollback</button>")}
                <button name="kind" value="stop">Stop automation</button>
                </form>
                </section>
                """);
        }

        var links = new List<string>();
        if (paged)
        {
            links.Add("<a class=\"first\" href=\"/inbox\">← Longest waiting</a>");
        }

        if (later is not null)
        {
            links.Add($"<a class=\"later\" rel=\"next\" href=\"/inbox?after={E(Uri.EscapeDataString(DeploymentCursor.Of(later.RegressedAt, later.DeploymentId)))}\">More →</a>");
        }

        if (links.Count > 0)
        {
            html.Append(CultureInfo.InvariantCulture, $"<p class=\"pages\">{string.Join(" · ", links)}</p>\n");
        }

        return HtmlPages.Page(StatusCodes.Status200OK, Title, html.ToString(), Style);
    }

    /// <summary>
    /// <see cref="IfNobodyDecides(DeploymentRow, RollbackSpec, DateTimeOffset)"/> under the deployment's runbook version, or,
    /// when that version no longer parses, that no time-out applies and why.
    /// </summary>
    public static string IfNobodyDecides(DeploymentRow deployment, RunbookCatalog runbooks, DateTimeOffset now)
    {
        try
        {
            return IfNobodyDecides(deployment, runbooks.VersionOf(deployment).Rollback, now);
        }
        catch (StoredRunbookUnreadableException ex)
        {
            // Recorded under a version an older RolloutGate accepted and this one refuses: DecisionPolicy.ApplyTimeoutsAsync
            // leaves it to a person. Let through, the exception made the whole inbox (and the change's page) a 500.
            return $"{Recommends} No time-out applies: {E(ex.Message)}, so its approvalTimeout and onTimeout cannot be read; nothing happens until someone decides.</p>";
        }
    }

    private const string Recommends = "<p class=\"recommend\"><strong>RolloutGate recommends a rollback.</strong>";

    /// <summary>
    /// What RolloutGate recommends and what it does when nobody decides: the runbook's <c>onTimeout</c>, at the moment
    /// <see cref="DecisionPolicy.ApplyTimeoutsAsync"/> applies it.
    /// </summary>
    public static string IfNobodyDecides(DeploymentRow deployment, RollbackSpec rollback, DateTimeOffset now)
    {
        if (DecisionPolicy.DecideBy(deployment, rollback) is not { } deadline)
        {
            // Regressed under rollback.mode: auto only when the automatic rollback was held for a person.
            return Recommends + (rollback.Mode == RollbackMode.Auto
                ? " The runbook rolls back automatically, but this one is held: the automatic rollbacks of the last hour, all services together, reached RolloutGate__Rollback__AutomaticPerHour (see its <code>rollback.held</code> audit event). Nothing happens until someone decides.</p>"
                : "</p>");
        }

        var onTimeout = rollback.OnTimeout == TimeoutAction.Rollback ? "roll back" : "keep the new version";
        var then = deadline > now
            ? $"If nobody decides by {When(deadline, now)}, it will <strong>{onTimeout}</strong>"
            : string.Create(CultureInfo.InvariantCulture,
                $"The time to decide ran out at {When(deadline, now)}: it will <strong>{onTimeout}</strong> at its next check, within {DecisionTimeouts.Interval.TotalSeconds:0} s");
        return $"{Recommends} {then} (runbook: onTimeout after {SlackMessages.Duration(rollback.ApprovalTimeout)}).</p>";
    }

    private static async Task<IResult> DecideAsync(string id, HttpRequest request, DeploymentDecisions decisions, IOptionsMonitor<RolloutGateOptions> options,
        CancellationToken cancellationToken)
    {
        if (!request.HasFormContentType)
        {
            return Page(StatusCodes.Status400BadRequest, "<p>Send the inbox form.</p>");
        }

        // The form is read before its operator token can be checked: anyone may send one, so only one of the inbox's size.
        if (request.ContentLength > DeploymentEndpoints.MaxBodyBytes)
        {
            return Page(StatusCodes.Status413PayloadTooLarge, string.Create(CultureInfo.InvariantCulture,
                $"<p>That form is larger than {DeploymentEndpoints.MaxBodyBytes} bytes; send the inbox form. Nothing changed.</p>"));
        }

        IFormCollection form;
        try
        {
            form = await request.ReadFormAsync(FormLimits, cancellationToken);
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException)
        {
            // A NUL in a value, a multipart body without its boundary: not the inbox form.
            return Page(StatusCodes.Status400BadRequest, "<p>That form cannot be read; send the inbox form. Nothing changed.</p>");
        }

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
            Ok<StateResponse> => TypedResults.Redirect($"/inbox?decided={Uri.EscapeDataString(id)}"),
            ProblemHttpResult problem => Page(problem.StatusCode, $"<p>{E(problem.ProblemDetails.Detail ?? "refused")}; nothing changed.</p><p><a href=\"/inbox\">Back</a></p>"),
            _ => TypedResults.Redirect("/inbox"),
        };
    }

    private static ContentHttpResult Page(int status, string body) => HtmlPages.Page(status, Title, body);

    /// <summary>The inbox form is five short fields; a body sent in chunks past this size is not it (a 400, as any unreadable form).</summary>
    private static readonly Microsoft.AspNetCore.Http.Features.FormOptions FormLimits = new()
    {
        BufferBody = true,
        BufferBodyLengthLimit = DeploymentEndpoints.MaxBodyBytes,
        MemoryBufferThreshold = DeploymentEndpoints.MaxBodyBytes,
        ValueLengthLimit = DeploymentEndpoints.MaxBodyBytes,
        ValueCountLimit = 32,
    };

    private sealed record InboxRow(string DeploymentId, string Service, string Environment, string? Version, string? Initiator, DateTimeOffset RegressedAt,
        string? Evidence, string? FailedAction, string? Failure);
}
