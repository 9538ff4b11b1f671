using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RolloutGate.Audit;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Deployments;
using RolloutGate.Deployments;
using RolloutGate.Inbox;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;
using RolloutGate.Slack;
using RolloutGate.Web;
using static RolloutGate.Web.HtmlPages;

namespace RolloutGate.Dashboard;

/// <summary>
/// The read-only dashboard (issue 6): deployments at a glance, and one deployment with a chart per watched metric and
/// its audit timeline. Same access as the decision inbox (a reader token, kept in a cookie); deciding happens there.
/// </summary>
public static class DashboardEndpoints
{
    private const string Title = "Dashboard";
    private const int PageSize = 200;
    private const int TimelineLimit = 500;
    private const int SummaryLength = 160;

    private const string TableStyle =
        "table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}" +
        ".state{font-weight:bold;white-space:nowrap}.s-regressed,.s-rolling-back,.s-denied{color:#c0392b}.s-watching{color:#1f4e9c}" +
        ".s-rolled-back{color:#7b3fa0}.s-completed{color:#2e7d32}.s-kept,.s-stopped,.s-cancelled{color:#666}code{font-size:90%}" +
        "tr.event td:first-child{white-space:nowrap}tr.event code{word-break:break-all}";

    public static IEndpointRouteBuilder MapDashboard(this IEndpointRouteBuilder app)
    {
        var group = app.MapHtmlPages("/dashboard", "Dashboard");
        group.MapGet("/", ListAsync);
        group.MapGet("/deployments/{id}", DetailAsync);
        return app;
    }

    private static async Task<IResult> ListAsync(
        HttpContext context, RolloutGateDbContext db, IOptionsMonitor<RolloutGateOptions> options, TimeProvider time, string? service, string? state,
        string? before, CancellationToken cancellationToken)
    {
        if (ReaderRefusal(context, options.CurrentValue, Title) is { } refusal)
        {
            return refusal;
        }

        service = string.IsNullOrWhiteSpace(service) ? null : service.Trim();
        state = string.IsNullOrWhiteSpace(state) ? null : state.Trim();
        if (state is not null && !DeploymentState.IsKnown(state))
        {
            return Page(StatusCodes.Status400BadRequest, Title, $"<p>State '{E(state)}' is not one of {E(string.Join(", ", DeploymentState.All))}.</p><p><a href=\"/dashboard\">All deployments</a></p>");
        }

        var cursor = (DateTimeOffset.MinValue, "");
        if (!string.IsNullOrEmpty(before) && !DeploymentCursor.TryParse(before, out cursor))
        {
            return Page(StatusCodes.Status400BadRequest, Title, "<p>That page link is not valid.</p><p><a href=\"/dashboard\">All deployments</a></p>");
        }

        var query = db.Deployments.AsNoTracking().Include(d => d.RunbookVersion).AsQueryable();
        if (service is not null)
        {
            query = query.Where(d => d.Service == service);
        }

        if (state is not null)
        {
            query = query.Where(d => d.State == state);
        }

        if (!string.IsNullOrEmpty(before))
        {
            query = query.After(cursor);
        }

        var rows = await query.NewestFirst().Take(PageSize + 1).ToListAsync(cancellationToken);
        var older = rows.Count > PageSize ? rows[PageSize - 1] : null;
        if (older is not null)
        {
            rows.RemoveAt(PageSize);
        }

        var now = time.GetUtcNow();
        var html = new StringBuilder();
        // What the on-call engineer came for first: deployments that wait for a decision, wherever they are in the list.
        var waiting = await db.Database.SqlQuery<int>($"SELECT count(*)::int AS \"Value\" FROM decision_inbox").SingleAsync(cancellationToken);
        if (waiting > 0)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<p class=\"recommend waiting\"><strong>{waiting} deployment(s) wait for a decision:</strong> <a href=\"/inbox\">decide in the inbox</a>.</p>\n");
        }

        html.Append(CultureInfo.InvariantCulture, $"""
            <form method="get" action="/dashboard">
            <input name="service" placeholder="service" value="{E(service)}">
            <select name="state"><option value="">any state</option>{string.Concat(DeploymentState.All.Select(s => $"<option{(s == state ? " selected" : "")}>{E(s)}</option>"))}</select>
            <button>Filter</button> <a href="/dashboard">clear</a> · <a href="/inbox">decision inbox</a>
            </form>
            <p>{rows.Count} deployment(s){(older is null && string.IsNullOrEmpty(before) ? "" : $" on this page, {PageSize} a page, newest first")}.</p>
            <table><thead><tr><th>deployment</th><th>service</th><th>environment</th><th>version</th><th>state</th><th>runbook</th><th>created</th><th>watching until</th></tr></thead><tbody>

            """);
        foreach (var row in rows)
        {
            html.Append(CultureInfo.InvariantCulture, $"""
                <tr><td><a href="/dashboard/deployments/{E(Uri.EscapeDataString(row.Id))}">{E(row.Id)}</a></td><td>{E(row.Service)}</td><td>{E(row.Environment)}</td>
                <td>{E(row.Version)}</td><td class="state s-{E(row.State)}">{E(row.State)}</td><td>{E(row.RunbookVersion.Name)} v{row.RunbookVersion.Version}</td>
                <td>{When(row.CreatedAt, now)}</td><td>{(row.State == DeploymentState.Watching ? When(row.WatchUntil, now) : "")}</td></tr>

                """);
        }

        html.Append("</tbody></table>\n");
        var links = new List<string>();
        if (!string.IsNullOrEmpty(before))
        {
            links.Add($"<a class=\"newest\" href=\"{E(ListUrl(service, state, null))}\">← Newest</a>");
        }

        if (older is not null)
        {
            links.Add($"<a class=\"older\" rel=\"next\" href=\"{E(ListUrl(service, state, DeploymentCursor.Of(older)))}\">Older →</a>");
        }

        if (links.Count > 0)
        {
            html.Append(CultureInfo.InvariantCulture, $"<p class=\"pages\">{string.Join(" · ", links)}</p>");
        }

        return Page(StatusCodes.Status200OK, Title, html.ToString(), TableStyle);
    }

    private static async Task<IResult> DetailAsync(
        string id, HttpContext context, RolloutGateDbContext db, IOptionsMonitor<RolloutGateOptions> options, RunbookCatalog runbooks, TimeProvider time,
        CancellationToken cancellationToken)
    {
        if (ReaderRefusal(context, options.CurrentValue, Title) is { } refusal)
        {
            return refusal;
        }

        var row = await db.Deployments.AsNoTracking().Include(d => d.RunbookVersion).Include(d => d.Decisions)
            .SingleOrDefaultAsync(d => d.Id == id, cancellationToken);
        if (row is null)
        {
            return Page(StatusCodes.Status404NotFound, Title, $"<p>Deployment '{E(id)}' is unknown.</p><p><a href=\"/dashboard\">All deployments</a></p>");
        }

        var evaluations = await db.Database.SqlQuery<EvaluationRow>($"""
            SELECT metric AS "Metric", at AS "At", value AS "Value", baseline AS "Baseline", threshold AS "Threshold",
                   verdict AS "Verdict", explanation AS "Explanation"
            FROM evaluations WHERE deployment_id = {id} ORDER BY metric, at
            """).ToListAsync(cancellationToken);
        var events = await db.AuditEvents.AsNoTracking().Where(e => e.DeploymentId == id).OrderBy(e => e.Id).Take(TimelineLimit)
            .ToListAsync(cancellationToken);
        var decisions = row.Decisions.OrderBy(d => d.At).ThenBy(d => d.Id).ToList();
        var now = time.GetUtcNow();

        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture, $"""
            <p><a href="/dashboard">All deployments</a> · <a href="/inbox">decision inbox</a></p>
            <h2>{E(row.Service)} {E(row.Version)} in {E(row.Environment)} <small>{E(row.Id)}</small></h2>
            <table>
            <tr><th>state</th><td class="state s-{E(row.State)}">{E(row.State)}</td></tr>
            <tr><th>version</th><td>{E(row.Version)} (previous {E(row.PreviousVersion)})</td></tr>
            <tr><th>runbook</th><td>{E(row.RunbookVersion.Name)} v{row.RunbookVersion.Version} <code>{E(row.RunbookVersion.Sha256)}</code></td></tr>
            <tr><th>initiator</th><td>{E(row.Initiator)}</td></tr>
            <tr><th>commit</th><td>{E(row.CommitSha)}</td></tr>
            <tr><th>pipeline</th><td>{E(row.PipelineUrl)}</td></tr>
            <tr><th>created</th><td>{When(row.CreatedAt, now)}</td></tr>
            <tr><th>deployed</th><td>{When(row.DeployedAt, now)}{(PreDeployGateBypass.Describe(row) is { } bypass ? $" <strong class=\"s-denied\">{E(bypass)}</strong>" : "")}</td></tr>
            <tr><th>watch</th><td>{When(row.WatchStartedAt, now)} until {WatchEnd(row, now)}; baseline {Time(row.BaselineFrom)} to {Time(row.BaselineTo)}</td></tr>
            </table>

            """);
        if (row.State == DeploymentState.Regressed)
        {
            html.Append("<p class=\"waiting\"><strong>Waiting for a decision:</strong> <a href=\"/inbox\">decide in the inbox</a> (needs an operator token).</p>\n")
                .Append(InboxEndpoints.IfNobodyDecides(row, runbooks, now)).Append('\n');
        }
        else if (row.State != DeploymentState.Checking && HeldBackBy.HoldsBackTheNext(runbooks, row))
        {
            // A change in flight denies every next predeploy of its service and environment (the one-change-at-a-time
            // rule), and the inbox does not list it, since it waits for no decision: allowed and never deployed (its
            // pipeline died between the gate and the deploy step), watching under onNewerDeploy: keep, rolling back. The
            // page says so in the deny's words, with what ends it; acting needs a token or Slack, not this page. (A change
            // still checking is its own predeploy, answered within preDeploy.timeout.)
            html.Append(CultureInfo.InvariantCulture,
                $"<p class=\"held\"><strong>Holds back the next change of {E(row.Service)} in {E(row.Environment)}:</strong> its predeploy is denied (one change at a time) while {E(await HeldBackBy.DetailAsync(db, row, now, cancellationToken))}.</p>\n");
        }

        html.Append("<h2>Decisions</h2>\n");
        html.Append(decisions.Count == 0 ? "<p>None.</p>\n" : "<ul>\n");
        foreach (var decision in decisions)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<li class=\"decision\">{When(decision.At, now)} <b>{E(decision.Kind)}</b> by {E(decision.Actor)}{(decision.Reason is null ? "" : $": {E(decision.Reason)}")}</li>\n");
        }

        html.Append(decisions.Count == 0 ? "" : "</ul>\n");
        html.Append("<h2>Metrics</h2>\n");
        var marks = Marks(row.DeployedAt ?? row.WatchStartedAt, evaluations, decisions);
        var metrics = evaluations.GroupBy(e => e.Metric, StringComparer.Ordinal).ToList();
        if (metrics.Count == 0)
        {
            html.Append(NoEvaluation(row, runbooks, now)).Append('\n');
        }
        else
        {
            html.Append(MetricChart.Legend).Append('\n');
        }

        if (row.EvaluationsThinnedAt is not null && await ThinnedAsync(db, id, cancellationToken) is { } thinned)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<p class=\"thinned\">Retention deleted {thinned.Removed} evaluation(s) between verdict changes {When(thinned.At, now)}: each metric's verdict changes and its last evaluation are kept (the audit trail is whole).</p>\n");
        }

        var specs = runbooks.ReadableVersionOf(row)?.Watch.Metrics ?? [];
        foreach (var metric in metrics)
        {
            var points = metric.Select(e => new ChartPoint(e.At, e.Value, e.Baseline, e.Threshold, e.Verdict, e.Explanation)).ToList();
            // In the metric's unit (ms, %, req/s) when the runbook version still names it, with its floor.
            var spec = specs.FirstOrDefault(s => s.Name == metric.Key);
            Func<double, string>? format = spec is null ? null : value => MetricValues.Format(spec, MetricKinds.FromPreset(spec.Preset), value);
            var last = points[^1];
            var circled = MetricChart.Circled(points).Count;
            var some = circled < points.Count(p => MetricChart.Finite(p.Value))
                ? $"The chart circles {circled} of them (hover for the explanation): the first, the latest, each change of verdict and evenly between; the API has every one."
                : "";
            html.Append(CultureInfo.InvariantCulture, $"""
                <section class="metric"><h3>{E(metric.Key)}</h3>
                <p>{points.Count} evaluation(s); latest {When(last.At, now)}: <b class="{(last.Verdict is "regressed" or "breach-of-max" or "breach-of-min" ? "s-regressed" : "")}">{E(last.Verdict)}</b>, {E(last.Explanation)}</p>{(some.Length == 0 ? "" : $"\n<p class=\"circled\">{some}</p>")}
                {MetricChart.Svg(metric.Key, points, marks, format, spec?.Min)}
                </section>

                """);
        }

        html.Append(CultureInfo.InvariantCulture, $"""
            <h2>Audit timeline</h2>
            <table><thead><tr><th>time</th><th>type</th><th>actor</th><th>data</th></tr></thead><tbody>

            """);
        foreach (var e in events)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<tr class=\"event\"><td>{Utc(e.At)}</td><td>{E(e.Type)}</td><td>{E(e.Actor)}</td><td><code>{E(Summary(e.Data))}</code></td></tr>\n");
        }

        html.Append("</tbody></table>\n");
        if (events.Count == TimelineLimit)
        {
            html.Append(CultureInfo.InvariantCulture, $"<p>The first {TimelineLimit} events; the audit API has the rest.</p>\n");
        }

        return Page(StatusCodes.Status200OK, Title, html.ToString(), TableStyle + MetricChart.Style);
    }

    /// <summary>The deploy, the detection (the first regression verdict of any metric) and each decision.</summary>
    private static List<ChartMark> Marks(DateTimeOffset? deployedAt, IReadOnlyList<EvaluationRow> evaluations, IReadOnlyList<DecisionRow> decisions)
    {
        var marks = new List<ChartMark>();
        if (deployedAt is { } deployed)
        {
            marks.Add(new ChartMark(deployed, "deploy", "deployed"));
        }

        var detection = evaluations.Where(e => e.Verdict is "regressed" or "breach-of-max" or "breach-of-min").OrderBy(e => e.At).FirstOrDefault();
        if (detection is not null)
        {
            marks.Add(new ChartMark(detection.At, "detection", $"detected: {detection.Metric} {detection.Verdict}"));
        }

        marks.AddRange(decisions.Select(d => new ChartMark(d.At, "decision", $"{d.Kind} by {d.Actor}")));
        return marks;
    }

    /// <summary>The list with the same filters, from <paramref name="before"/> on (the first page when null).</summary>
    private static string ListUrl(string? service, string? state, string? before) =>
        "/dashboard" + QueryString.Create(new[] { ("service", service), ("state", state), ("before", before) }
            .Where(p => p.Item2 is not null).Select(p => KeyValuePair.Create(p.Item1, p.Item2)));

    /// <summary>Why a deployment has no evaluation to chart, and for one being watched, when its first is due.</summary>
    private static string NoEvaluation(DeploymentRow row, RunbookCatalog runbooks, DateTimeOffset now)
    {
        if (row is not { DeployedAt: { } deployed })
        {
            return "<p>No evaluation: this change was never watched (a watch starts with its <code>deployed</code> event).</p>";
        }

        if (row.State != DeploymentState.Watching)
        {
            return "<p>No evaluation was stored before the watch ended.</p>";
        }

        if (runbooks.ReadableVersionOf(row) is not { } runbook)
        {
            return "<p>No evaluation: this change's runbook version no longer parses in this RolloutGate, so its watch does not run (the service's log says why).</p>";
        }

        var interval = runbook.Watch.Interval;
        var first = Core.Watch.WatchSchedule.Next(deployed, interval, null);
        return first > now
            ? $"<p>No evaluation yet: the first is due {When(first, now)}, then one every {SlackMessages.Duration(interval)}.</p>"
            : $"<p>No evaluation yet, though the first was due {When(first, now)}: the watch may still be reading its baseline, or Prometheus may not answer (see the service's log).</p>";
    }

    /// <summary>Until when the watch runs; once the deployment left watching (regressed, kept, stopped…), that it no longer does.</summary>
    private static string WatchEnd(DeploymentRow row, DateTimeOffset now) =>
        row.State == DeploymentState.Watching || row.WatchUntil is null || row.WatchUntil <= now
            ? When(row.WatchUntil, now)
            : $"{Time(row.WatchUntil)} as planned, but <b>no longer watched</b>: the deployment is {E(row.State)}";

    private static string Time(DateTimeOffset? at) => at is { } moment ? Utc(moment) : "-";

    /// <summary>
    /// When retention deleted evaluations of the deployment, and how many (its evaluations.thinned event); null when it
    /// deleted none: a deployment never watched, or one whose every evaluation changed a verdict or was the last, is
    /// marked as visited all the same.
    /// </summary>
    private static async Task<(DateTimeOffset At, long Removed)?> ThinnedAsync(RolloutGateDbContext db, string id, CancellationToken cancellationToken)
    {
        var thinned = await db.AuditEvents.AsNoTracking()
            .Where(e => e.DeploymentId == id && e.Type == AuditEventTypes.EvaluationsThinned).OrderBy(e => e.Id).FirstOrDefaultAsync(cancellationToken);
        if (thinned is null)
        {
            return null;
        }

        using var data = JsonDocument.Parse(thinned.Data);
        return data.RootElement.TryGetProperty("evaluationsRemoved", out var removed) && removed.GetInt64() > 0 ? (thinned.At, removed.GetInt64()) : null;
    }

    private static string Summary(string data)
    {
        var compact = string.Join(' ', data.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        return compact.Length <= SummaryLength ? compact : compact[..SummaryLength] + "…";
    }

    private sealed record EvaluationRow(string Metric, DateTimeOffset At, double? Value, double? Baseline, double? Threshold, string Verdict, string Explanation);
}
