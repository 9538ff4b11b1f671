using Microsoft.EntityFrameworkCore;
using RolloutGate.Api;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Reports;

/// <summary>
/// <c>GET /api/v1/reports/summary</c> (CONTRACT section 7): per service, over the deployments deployed in
/// [from, to), of one <c>service</c> and one <c>environment</c> when given. Definitions, so the figures can be checked by hand:
/// <list type="bullet">
/// <item><c>deployments</c>: deployments that reached the watch (a <c>deployed</c> event).</item>
/// <item><c>rollbacks</c>: of those, the ones that ended <c>rolled-back</c> (by RolloutGate or by the pipeline).</item>
/// <item><c>changeFailureRate</c>: deployments that regressed or were rolled back, divided by <c>deployments</c>.</item>
/// <item><c>medianTimeToDetectSeconds</c>: deploy to the state change into <c>regressed</c>.</item>
/// <item><c>medianTimeToRollbackSeconds</c>: detection to <c>rolled-back</c>; from the deploy for a change rolled back without
/// having regressed (by the pipeline on its own, or on a person's rollback while it was watched).</item>
/// <item><c>autoRollbacks</c>: rollback decisions taken by <c>rolloutgate</c> itself; <c>humanDecisions</c>: decisions by anyone else;
/// <c>dismissedRecommendations</c>: decisions to keep a change that was recommended for rollback.</item>
/// </list>
/// The times are kept on the deployment row by the same transaction that changes its state (migration 0006).
/// </summary>
public static class ReportEndpoints
{
    public const string SystemActor = "rolloutgate";

    public static IEndpointRouteBuilder MapReportsApi(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/api/v1/reports").WithTags("Reports").RequireApiToken(ApiRole.Reader)
            .MapGet("/summary", SummaryAsync);
        return app;
    }

    private static async Task<IResult> SummaryAsync(
        HttpRequest request, RolloutGateDbContext db, IsoTime? from, IsoTime? to, string? service, string? environment,
        CancellationToken cancellationToken)
    {
        if (Problems.BackwardsWindow(from, to) is { } backwards)
        {
            return backwards;
        }

        // Npgsql writes a timestamptz only from a UTC DateTimeOffset: a window given with its offset (+01:00) is the same instant in UTC.
        var since = from?.Value.ToUniversalTime();
        var until = to?.Value.ToUniversalTime();
        // Counts by hashing, medians only over the deployments that have a time (regressed or rolled back; the others
        // add NULL, which percentile_cont ignores), decisions aggregated per service: three small aggregates joined on
        // service. One GROUP BY with the medians in it sorted every deployment of the window by service instead
        // (ordered-set aggregates cannot be hashed) and joined every one to its service's decision counts.
        var rows = await db.Database.SqlQuery<ServiceSummaryRow>($"""
            WITH watched AS NOT MATERIALIZED (
                SELECT d.id, d.service, d.state, d.deployed_at, d.regressed_at, d.rolled_back_at
                FROM deployments d
                WHERE d.deployed_at IS NOT NULL
                  AND ({since}::timestamptz IS NULL OR d.deployed_at >= {since})
                  AND ({until}::timestamptz IS NULL OR d.deployed_at < {until})
                  AND ({service}::text IS NULL OR d.service = {service})
                  AND ({environment}::text IS NULL OR d.environment = {environment})
            ),
            counted AS (
                SELECT w.service,
                       count(*) AS deployments,
                       count(*) FILTER (WHERE w.state = 'rolled-back') AS rollbacks,
                       count(*) FILTER (WHERE w.regressed_at IS NOT NULL OR w.state = 'rolled-back') AS failures
                FROM watched w
                GROUP BY w.service
            ),
            timed AS (
                SELECT w.service,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM w.regressed_at - w.deployed_at)) AS detect,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM w.rolled_back_at - coalesce(w.regressed_at, w.deployed_at)))
                           AS rollback
                FROM watched w
                WHERE w.regressed_at IS NOT NULL OR w.rolled_back_at IS NOT NULL
                GROUP BY w.service
            ),
            decided AS (
                SELECT w.service,
                       count(*) FILTER (WHERE x.kind = 'rollback' AND x.actor = {SystemActor}) AS auto_rollbacks,
                       count(*) FILTER (WHERE x.actor <> {SystemActor})                      AS human_decisions,
                       count(*) FILTER (WHERE x.kind = 'dismiss')                              AS dismissed
                FROM watched w JOIN decisions x ON x.deployment_id = w.id
                GROUP BY w.service
            )
            SELECT c.service AS "Service",
                   c.deployments::int AS "Deployments",
                   c.rollbacks::int AS "Rollbacks",
                   c.failures::int AS "Failures",
                   t.detect AS "MedianTimeToDetectSeconds",
                   t.rollback AS "MedianTimeToRollbackSeconds",
                   coalesce(dd.auto_rollbacks, 0)::int AS "AutoRollbacks",
                   coalesce(dd.human_decisions, 0)::int AS "HumanDecisions",
                   coalesce(dd.dismissed, 0)::int AS "DismissedRecommendations"
            FROM counted c
            LEFT JOIN timed t ON t.service = c.service
            LEFT JOIN decided dd ON dd.service = c.service
            ORDER BY c.service
            """).ToListAsync(cancellationToken);

        var services = rows.Select(row => new ServiceSummary(
            row.Service,
            row.Deployments,
            row.Rollbacks,
            row.Deployments == 0 ? 0 : Math.Round((double)row.Failures / row.Deployments, 4),
            row.MedianTimeToDetectSeconds,
            row.MedianTimeToRollbackSeconds,
            row.AutoRollbacks,
            row.HumanDecisions,
            row.DismissedRecommendations)).ToList();

        if (Csv.IsRequested(request))
        {
            return Csv.Result(
                ["service", "deployments", "rollbacks", "changeFailureRate", "medianTimeToDetectSeconds", "medianTimeToRollbackSeconds",
                 "autoRollbacks", "humanDecisions", "dismissedRecommendations"],
                services.Select(s => (IReadOnlyList<object?>)[s.Service, s.Deployments, s.Rollbacks, s.ChangeFailureRate,
                    s.MedianTimeToDetectSeconds, s.MedianTimeToRollbackSeconds, s.AutoRollbacks, s.HumanDecisions, s.DismissedRecommendations]));
        }

        return TypedResults.Ok(new SummaryReport(from?.Value, to?.Value, services));
    }

    /// <summary>One result row as PostgreSQL returns it.</summary>
    public sealed record ServiceSummaryRow(
        string Service,
        int Deployments,
        int Rollbacks,
        int Failures,
        double? MedianTimeToDetectSeconds,
        double? MedianTimeToRollbackSeconds,
        int AutoRollbacks,
        int HumanDecisions,
        int DismissedRecommendations);
}

public sealed record ServiceSummary(
    string Service,
    int Deployments,
    int Rollbacks,
    double ChangeFailureRate,
    double? MedianTimeToDetectSeconds,
    double? MedianTimeToRollbackSeconds,
    int AutoRollbacks,
    int HumanDecisions,
    int DismissedRecommendations);

public sealed record SummaryReport(DateTimeOffset? From, DateTimeOffset? To, IReadOnlyList<ServiceSummary> Services);
