using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using RolloutGate.Api;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Reports;

/// <summary>
/// Reports that help a team tune its runbooks: the alert quality of each metric rule, and a decision log per runbook
/// that documents every decision next to the runbook version and the evidence it was taken on.
/// </summary>
public static class RunbookReports
{
    /// <summary>The newest decisions the decision log shows; the audit trail keeps every one.</summary>
    public const int DecisionLogLimit = 500;

    public static IEndpointRouteBuilder MapRunbookReports(this IEndpointRouteBuilder app)
    {
        var reports = app.MapGroup("/api/v1").WithTags("Reports").RequireApiToken(ApiRole.Reader);
        reports.MapGet("/reports/alert-quality", AlertQualityAsync);
        reports.MapGet("/runbooks/{name}/decisions.md", DecisionLogAsync);
        return app;
    }

    /// <summary>
    /// Per runbook and metric rule: how many deployments it flagged, and what people made of them: <c>agreed</c> (rolled
    /// back by a person or by the pipeline), <c>dismissed</c> (kept), <c>automatic</c> (rolled back by RolloutGate in
    /// auto mode), <c>undecided</c>. A rule flags a deployment when its verdict turns <c>regressed</c>, <c>breach-of-max</c> or <c>breach-of-min</c>. A rule with a high <c>dismissRate</c> is crying wolf: try a new threshold on past
    /// deploys with the backtest verb before changing it.
    /// </summary>
    private static async Task<IResult> AlertQualityAsync(
        HttpRequest request, RolloutGateDbContext db, IsoTime? from, IsoTime? to, string? service, CancellationToken cancellationToken)
    {
        if (Problems.BackwardsWindow(from, to) is { } backwards)
        {
            return backwards;
        }

        // As the summary's: Npgsql writes a timestamptz only from a UTC DateTimeOffset.
        var since = from?.Value.ToUniversalTime();
        var until = to?.Value.ToUniversalTime();
        var rows = await db.Database.SqlQuery<AlertQualityRow>($"""
            WITH flagged AS (
                SELECT DISTINCT a.deployment_id, v.name AS runbook, a.data::jsonb ->> 'metric' AS metric, d.state
                FROM audit_events a
                JOIN deployments d ON d.id = a.deployment_id
                JOIN runbook_versions v ON v.id = d.runbook_version_id
                WHERE a.type = 'evaluation.verdict-changed' AND a.data::jsonb ->> 'verdict' IN ('regressed', 'breach-of-max', 'breach-of-min')
                  AND ({since}::timestamptz IS NULL OR d.deployed_at >= {since})
                  AND ({until}::timestamptz IS NULL OR d.deployed_at < {until})
                  AND ({service}::text IS NULL OR d.service = {service})
            ),
            judged AS (
                SELECT f.runbook, f.metric,
                       bool_or(x.kind = 'rollback' AND x.actor = 'rolloutgate') AS automatic,
                       bool_or(x.kind = 'rollback' AND x.actor <> 'rolloutgate') OR (f.state = 'rolled-back' AND NOT bool_or(x.kind IS NOT NULL)) AS agreed,
                       coalesce(bool_or(x.kind = 'dismiss'), false) AS dismissed
                FROM flagged f LEFT JOIN decisions x ON x.deployment_id = f.deployment_id
                GROUP BY f.deployment_id, f.runbook, f.metric, f.state
            )
            SELECT runbook AS "Runbook", metric AS "Metric",
                   count(*)::int AS "Flagged",
                   count(*) FILTER (WHERE agreed AND NOT coalesce(automatic, false))::int AS "Agreed",
                   count(*) FILTER (WHERE dismissed)::int AS "Dismissed",
                   count(*) FILTER (WHERE coalesce(automatic, false))::int AS "Automatic",
                   count(*) FILTER (WHERE NOT coalesce(agreed, false) AND NOT dismissed AND NOT coalesce(automatic, false))::int AS "Undecided"
            FROM judged
            GROUP BY runbook, metric
            ORDER BY runbook, metric
            """).ToListAsync(cancellationToken);

        var rules = rows.Select(r => new AlertQuality(r.Runbook, r.Metric, r.Flagged, r.Agreed, r.Dismissed, r.Automatic, r.Undecided,
            r.Agreed + r.Dismissed == 0 ? null : Math.Round((double)r.Dismissed / (r.Agreed + r.Dismissed), 4))).ToList();
        if (Csv.IsRequested(request))
        {
            return Csv.Result(["runbook", "metric", "flagged", "agreed", "dismissed", "automatic", "undecided", "dismissRate"],
                rules.Select(r => (IReadOnlyList<object?>)[r.Runbook, r.Metric, r.Flagged, r.Agreed, r.Dismissed, r.Automatic, r.Undecided, r.DismissRate]));
        }

        return TypedResults.Ok(new AlertQualityReport(rules));
    }

    /// <summary>Markdown, newest decision first: who decided what, why, under which runbook version, on which evidence.</summary>
    private static async Task<IResult> DecisionLogAsync(string name, RolloutGateDbContext db, CancellationToken cancellationToken)
    {
        var decisions = await db.Decisions.AsNoTracking()
            .Join(db.Deployments.Include(d => d.RunbookVersion), x => x.DeploymentId, d => d.Id, (x, d) => new { Decision = x, Deployment = d })
            .Where(p => p.Deployment.RunbookVersion.Name == name)
            .OrderByDescending(p => p.Decision.At).ThenByDescending(p => p.Decision.Id)
            .Take(DecisionLogLimit + 1)
            .ToListAsync(cancellationToken);
        var more = decisions.Count > DecisionLogLimit;
        decisions = decisions.Take(DecisionLogLimit).ToList();
        var ids = decisions.Select(p => p.Deployment.Id).Distinct().ToList();
        var evidence = await db.AuditEvents.AsNoTracking()
            .Where(e => e.Type == "evaluation.verdict-changed" && e.DeploymentId != null && ids.Contains(e.DeploymentId))
            .OrderBy(e => e.Id)
            .ToListAsync(cancellationToken);

        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"# Decisions under runbook {Markdown(name)}\n\n");
        if (decisions.Count == 0)
        {
            text.Append("No decision has been taken under this runbook yet.\n");
        }

        foreach (var (decision, deployment) in decisions.Select(p => (p.Decision, p.Deployment)))
        {
            var version = deployment.RunbookVersion;
            text.Append(CultureInfo.InvariantCulture,
                $"## {decision.At.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC · {Markdown(decision.Kind)} by {Markdown(decision.Actor)} · deployment {Markdown(deployment.Id)}\n\n");
            text.Append(CultureInfo.InvariantCulture,
                $"- Change: {Markdown(deployment.Service)} in {Markdown(deployment.Environment)}, version {Markdown(deployment.Version ?? "?")} (previous {Markdown(deployment.PreviousVersion ?? "?")}), initiated by {Markdown(deployment.Initiator ?? "?")}\n");
            text.Append(CultureInfo.InvariantCulture, $"- Runbook governing the change: {Markdown(version.Name)} v{version.Version} (sha256 {version.Sha256})\n");
            text.Append(CultureInfo.InvariantCulture, $"- Reason: {Markdown(decision.Reason ?? "none given")}\n");
            var before = evidence.Where(e => e.DeploymentId == deployment.Id && e.At <= decision.At).ToList();
            text.Append(before.Count == 0 ? "- Evidence: no verdict had changed before this decision\n" : "- Evidence:\n");
            foreach (var e in before)
            {
                text.Append("  - ").Append(EvidenceLine(e.Data)).Append('\n');
            }

            text.Append('\n');
        }

        if (more)
        {
            // Said, rather than ending as if there were no older decision.
            var services = decisions.Select(p => p.Deployment.Service).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)
                .Select(service => $"`GET /api/v1/audit/events?type=decision&service={Uri.EscapeDataString(service)}`");
            text.Append(CultureInfo.InvariantCulture,
                $"Only the newest {DecisionLogLimit} decisions are shown. Every decision is in the audit trail: {string.Join(", ", services)}.\n");
        }

        return TypedResults.Text(text.ToString(), "text/markdown; charset=utf-8");
    }

    private static string EvidenceLine(string data)
    {
        using var document = JsonDocument.Parse(data);
        var root = document.RootElement;
        string Field(string name) => root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? (value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText())
            : "?";
        // In the metric's unit where the watch recorded it so; else the bare numbers of older events.
        var figures = root.TryGetProperty("shown", out var shown) && shown.ValueKind == JsonValueKind.String
            ? shown.GetString()!
            : $"value {Field("value")}, baseline {Field("baseline")}, threshold {Field("threshold")}";
        return Markdown($"{Field("metric")} {Field("from")} → {Field("verdict")}: {figures}. {Field("explanation")}");
    }

    /// <summary>Keeps untrusted text (ids, versions, reasons) from turning into Markdown structure or HTML.</summary>
    private static string Markdown(string text)
    {
        var escaped = new StringBuilder(text.Length);
        foreach (var c in text.ReplaceLineEndings(" "))
        {
            if ("\\`*_{}[]()#+!|<>".Contains(c, StringComparison.Ordinal))
            {
                escaped.Append('\\');
            }

            escaped.Append(c);
        }

        return escaped.ToString();
    }

    public sealed record AlertQualityRow(string Runbook, string Metric, int Flagged, int Agreed, int Dismissed, int Automatic, int Undecided);
}

public sealed record AlertQuality(string Runbook, string Metric, int Flagged, int Agreed, int Dismissed, int Automatic, int Undecided, double? DismissRate);

public sealed record AlertQualityReport(IReadOnlyList<AlertQuality> Rules);
